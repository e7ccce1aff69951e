"""Settings declared once (runtime/settings.py): a flag beats its env var, which beats the declared default."""

import pytest

from predictor.settings import PredictorSettings
from runtime.settings import parse
from transformer.settings import TransformerSettings


def test_defaults_come_from_the_declaration(monkeypatch):
    monkeypatch.delenv("MAX_LENGTH", raising=False)
    settings, _ = parse(PredictorSettings, "p", None, [])
    assert settings.max_length == PredictorSettings.model_fields["max_length"].default == 512


def test_env_var_then_flag(monkeypatch):
    monkeypatch.setenv("MAX_BATCH_SIZE", "7")
    monkeypatch.setenv("INFERENCE_THREADS", "3")  # a field whose env var is not its name
    monkeypatch.setenv("MODEL_VERSION", "")  # empty is unset
    settings, _ = parse(PredictorSettings, "p", None, [])
    assert (settings.max_batch_size, settings.threads, settings.model_version) == (7, 3, None)
    settings, _ = parse(PredictorSettings, "p", None, ["--max_batch_size", "9", "--threads", "1"])
    assert (settings.max_batch_size, settings.threads) == (9, 1)


def test_kserve_flags_we_default_keep_kserve_spelling(monkeypatch):
    monkeypatch.setenv("MODEL_NAME", "sentiment")
    settings, args = parse(TransformerSettings, "t", None, ["--predictor_host", "h:1"])
    assert settings.model_name == args.model_name == "sentiment"
    assert settings.predictor_protocol == "v2" and args.http_port == 8080  # KServe's own default, untouched
    assert settings.predictor_config(False, False).predictor_host == "h:1"


def test_invalid_values_stop_the_start_with_a_message(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        parse(TransformerSettings, "t", None, ["--predictor_protocol", "v1"])
    assert "predictor_protocol" in capsys.readouterr().err
    monkeypatch.setenv("MAX_TEXTS", "many")
    with pytest.raises(SystemExit, match="max_texts"):
        parse(TransformerSettings, "t", None, [])


def test_the_options_objects_are_built_from_the_settings():
    limits = PredictorSettings(max_texts=5, max_chars=6, max_body_bytes=7).limits()
    assert (limits.max_texts, limits.max_chars, limits.max_body_bytes) == (5, 6, 7)
