"""The teacher and student recipes (training.teacher, make teacher / make student) end to end on tiny models.

The teacher is a tiny MPNet with its own small vocabulary: the student's token ids would
index past its embeddings, so the student can only learn from it if each model reads the
text through its own tokenizer. The real recipe differs only in sizes (docs/teacher.md).
"""

import json
import shlex
import subprocess
import sys

import pytest

from harness.random_model import build_random_model
from tests.conftest import EMOTIONS
from tests.integration.servers import ROOT
from training.record import refusal, saw_test
from training.teacher import RECIPES, STUDENT_FLAGS, TEACHER_FLAGS
from training.train import build_parser

pytestmark = pytest.mark.integration

WORDS = {0: ["sad", "gloomy"], 1: ["happy", "glad"], 2: ["loving", "fond"], 3: ["angry", "furious"],
         4: ["afraid", "scared"], 5: ["amazed", "surprised"]}


def write_emotion_data(data_dir):
    """An emotion-shaped data directory (train.csv, validation.csv) of 240 + 48 rows."""
    folder = data_dir / "emotion"
    folder.mkdir(parents=True)
    for name, count in (("train.csv", 40), ("validation.csv", 8)):
        rows = ["text,label"] + [f"i feel so {WORDS[label][i % 2]} today number {i},{label}"
                                 for label in WORDS for i in range(count)]
        (folder / name).write_text("\n".join(rows) + "\n")


def build_tiny_mpnet(out_dir, data_dir):
    """A bare MPNet encoder (as the sentence-transformers checkpoint is) with a 60-token vocabulary."""
    from transformers import BertTokenizerFast, MPNetConfig, MPNetModel

    words = sorted({w for line in (data_dir / "emotion/train.csv").read_text().split() for w in line.split(",")})
    out_dir.mkdir(parents=True)
    (out_dir / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *reversed(words)]))
    tokenizer = BertTokenizerFast(vocab_file=str(out_dir / "vocab.txt"))
    config = MPNetConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=80, pad_token_id=tokenizer.pad_token_id)
    MPNetModel(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def recipe(step, data_dir, cache, *extra):
    command = [sys.executable, "-m", "training.teacher", step, "--model", "emotion", "--data", str(data_dir),
               "--cache", str(cache), "--calibration_size", "12", "--max_length", "24", "--batch_size", "16",
               "--lr", "1e-3", "--threads", "1", *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_every_recipe_parses_and_chooses_on_the_calibration_slice():
    for model, r in RECIPES.items():
        for flags in (TEACHER_FLAGS, STUDENT_FLAGS):
            args = build_parser().parse_args(shlex.split(r.data.format(data="D") + " " + flags)
                                             + ["--base_model", "x", "--output_dir", "o"])
            assert args.select == "calibration" and args.labels.split(",")[0] in ("NEGATIVE", "sadness"), model


def test_teacher_then_student_on_tiny_models(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    write_emotion_data(data)
    base = build_tiny_mpnet(tmp_path / "mpnet", data)
    student_base = build_random_model(tmp_path / "minilm", labels=EMOTIONS)
    out = recipe("teacher", data, cache, "--base", str(base))
    assert "kept epoch" in out
    teacher = json.loads((cache / "emotion-teacher" / "training.json").read_text())
    assert teacher["decisions"] == {"training": ["train"], "selection": ["calibration"]}
    assert all("validation_accuracy" not in e for e in teacher["epochs"])  # the test slice: read once, at the end
    assert teacher["selected_epoch"] in (1, 2) and 0.0 <= teacher["validation_accuracy"] <= 1.0
    assert json.loads((cache / "emotion-teacher" / "config.json").read_text())["model_type"] == "mpnet"

    recipe("student", data, cache, "--base_model", str(student_base))
    student = json.loads((cache / "emotion-student" / "training.json").read_text())
    assert student["recipe"]["teachers"] == [str(cache / "emotion-teacher")]
    assert student["decisions"]["temperature"] == ["calibration"]
    assert student["decisions"]["teacher selection"] == ["calibration"] and saw_test(student) == []
    assert refusal(student) is None  # evaluate will print its test figure
    figures = student["teacher_figures"][0]
    assert figures["base_model"] == str(base) and figures["slices"]["test"]["rows"] == student["validation_examples"]
    served = student["evaluation"]["backends"]["onnx-int8"]["all"]
    assert {"ece", "ece_with_temperature", "standard_error"} <= set(served)
    card = (cache / "emotion-student" / "README.md").read_text()
    assert f"**Teacher** `{base}`" in card and "**Test accuracy** (PyTorch fp32" in card and "95% interval" in card
    assert f"| {student['selected_epoch']} (kept: best calibration) |" in card


def test_a_teacher_held_out_other_rows_is_refused(tmp_path):
    """Its soft targets could carry this student's test rows: train stops before using them."""
    data = tmp_path / "data"
    write_emotion_data(data)
    teacher = build_random_model(tmp_path / "teacher", labels=EMOTIONS)
    (teacher / "training.json").write_text(json.dumps({"data": {"validation_file": "x", "calibration_size": 99}}))
    command = [sys.executable, "-m", "training.train", "--base_model", str(teacher), "--train_file",
               str(data / "emotion/train.csv"), "--validation_file", str(data / "emotion/validation.csv"),
               "--labels", ",".join(EMOTIONS), "--teachers", str(teacher), "--output_dir", str(tmp_path / "out")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "was held out other rows" in done.stderr
