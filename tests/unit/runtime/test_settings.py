"""Settings declared once (runtime/settings.py): a flag beats its env var, which beats the declared default."""

import pytest

from predictor.settings import PredictorSettings
from runtime.settings import env_var, parse
from transformer.settings import TransformerSettings


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


def test_the_prefixed_env_var_wins_and_todays_name_stays_an_alias(monkeypatch):
    monkeypatch.setenv("MAX_BATCH_SIZE", "7")
    settings, _ = parse(PredictorSettings, "p", None, [])
    assert settings.max_batch_size == 7
    monkeypatch.setenv("PREDICTOR_MAX_BATCH_SIZE", "5")
    monkeypatch.setenv("PREDICTOR_INFERENCE_THREADS", "2")  # the prefix goes before a field's own env name
    monkeypatch.setenv("TRANSFORMER_MAX_TEXTS", "3")  # another service's prefix is not ours
    settings, _ = parse(PredictorSettings, "p", None, [])
    assert (settings.max_batch_size, settings.threads, settings.max_texts) == (5, 2, 1000)
    settings, _ = parse(PredictorSettings, "p", None, ["--max_batch_size", "9"])
    assert settings.max_batch_size == 9  # the flag still beats both


def test_no_prefixed_name_is_another_services_plain_name():
    """PREDICTOR_HOST is the transformer's; a predictor setting prefixed into it would be read by both."""
    def names(cls, prefixed):
        return {(cls.env_prefix_name if prefixed else "") + env_var(n, f) for n, f in cls.model_fields.items()}

    for ours, theirs in ((PredictorSettings, TransformerSettings), (TransformerSettings, PredictorSettings)):
        assert names(ours, True).isdisjoint(names(theirs, False))


@pytest.mark.parametrize(("transformer_s", "predictor_s", "refused"), [
    (15, 10, False), (11, 10.5, False), (10, 10, True), (5, 10, True), (2, 2.5, True)])
def test_the_transformer_deadline_must_exceed_the_predictors(transformer_s, predictor_s, refused):
    from runtime.settings import deadline_order_problem

    problem = deadline_order_problem(transformer_s, predictor_s)
    assert (problem is not None) == refused
    if refused:
        assert f"({transformer_s:g} s) must exceed" in problem and f"({predictor_s:g} s)" in problem


def test_the_code_defaults_put_the_deadlines_in_order():
    from runtime.settings import deadline_order_problem

    transformer_s = TransformerSettings.model_fields["predictor_request_timeout_seconds"].default
    assert deadline_order_problem(transformer_s, PredictorSettings.model_fields["request_timeout_s"].default) is None


@pytest.mark.parametrize("cls", [PredictorSettings, TransformerSettings])
def test_help_renders(cls):
    """argparse formats each help with %: a bare % in a setting's help breaks --help (it did, with "±10%")."""
    from runtime.settings import parser_for

    assert "--grpc_connection_age_s" in parser_for(cls, "service", None).format_help()
