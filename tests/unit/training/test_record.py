"""The training record's honesty rules: standard errors, the CI rule, and the refusal to print a seen test figure."""

import json
import shutil

import pytest

from modelbuild.layout import BUNDLED_DIR
from training.card import model_card
from training.record import add_decisions, holds, inherit, interval95, main, refusal, saw_test, standard_error


def test_standard_error_is_the_binomial_one():
    assert standard_error(0.5, 100) == pytest.approx(0.05)
    assert standard_error(0.9, 540) == pytest.approx(0.01291, abs=1e-5)  # the "540 rows: about ±1.3 points"
    assert standard_error(1.0, 50) == 0.0
    assert standard_error(0.9, 2160) == pytest.approx(standard_error(0.9, 540) / 2)  # 4x the rows, half the error


def test_wilson_interval_brackets_the_figure_and_stays_in_range():
    low, high = interval95(0.9, 540)
    assert low < 0.9 < high and high - low == pytest.approx(2 * 1.96 * standard_error(0.9, 540), rel=0.05)
    low, high = interval95(1.0, 20)
    assert high == 1.0 and 0.8 < low < 0.9  # 20 of 20 right is no proof of 100%: ±SE would say [1, 1]


def test_ci_rule_is_one_standard_error_either_way():
    se = standard_error(0.913, 540)  # 0.0121: 6.5 rows of 540
    assert holds(0.913, 540, 0.913) and holds(0.913, 540, 0.913 - se) and holds(0.913, 540, 0.913 + se)
    assert not holds(0.913, 540, 0.913 - 0.01 - se / 2 - 0.002)  # today's "minus one point" let this through
    assert not holds(0.913, 540, 0.913 + 2 * se)  # far above the card: not the model the card describes


def test_decisions_accumulate_and_teachers_pass_theirs_on():
    record = add_decisions({}, training=["train"], selection=["calibration"])
    record = add_decisions(record, selection=["test"], temperature=["calibration"])
    assert record["decisions"] == {"training": ["train"], "selection": ["calibration", "test"],
                                   "temperature": ["calibration"]}
    assert saw_test(record) == ["selection"]
    student = inherit(add_decisions({}, training=["train"]), record)
    assert saw_test(student) == ["teacher selection"]
    with pytest.raises(ValueError, match="unknown slice"):
        add_decisions({}, training=["dev"])


def test_evaluate_refuses_a_test_figure_the_record_says_was_chosen_on(tmp_path, capsys):
    from training.evaluate import main as evaluate

    model = tmp_path / "model"
    model.mkdir()
    (model / "training.json").write_text(json.dumps({"data": {"holdout": {}}}))
    main(["--model_dir", str(model), "--decision", "model_choice", "--saw", "calibration,test",
          "--note", "kept after its test figure was known"])
    with pytest.raises(SystemExit) as refused:
        evaluate(["--model_dir", str(model), "--holdout_of", str(tmp_path / "unread.tsv")])
    message = str(refused.value.code)
    assert "refusing to print a test figure" in message and "model_choice" in message
    assert "kept after its test figure was known" in message and "--slice calibration" in message


def test_the_bundled_sentiment_soup_has_no_untouched_test_figure(tmp_path):
    """Its test slice took part in the soup choice: evaluate refuses, and the card does not headline it."""
    record = json.loads((BUNDLED_DIR / "sentiment" / "training.json").read_text())
    assert "model_choice" in saw_test(record) and refusal(record)
    card = (BUNDLED_DIR / "sentiment" / "README.md").read_text()
    assert card == model_card(record)
    assert "**Test accuracy**: none untouched" in card and "**Test accuracy** (PyTorch" not in card
    model = shutil.copytree(BUNDLED_DIR / "sentiment", tmp_path / "sentiment", ignore=shutil.ignore_patterns("*.safetensors", "onnx"))
    from training.evaluate import main as evaluate

    with pytest.raises(SystemExit, match="refusing"):
        evaluate(["--model_dir", str(model), "--holdout_of", str(tmp_path / "unread.tsv"), "--report"])


def test_a_card_without_test_choices_headlines_the_figure_with_its_interval():
    record = json.loads((BUNDLED_DIR / "emotion" / "training.json").read_text())
    record["decisions"] = {"training": ["train"], "temperature": ["calibration"]}
    record.pop("decision_notes", None)
    card = model_card(record)
    assert "**Test accuracy** (PyTorch fp32, at training time): **0.9380 ± 0.0062 (one standard error; 95% interval" in card
    assert "| all | 1500 | 0.9353 ± 0.0064 |" in card and "within one standard error (±0.0064)" in card

