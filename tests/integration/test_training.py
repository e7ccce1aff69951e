"""training.train end to end on a tiny model and a tiny slice; its output is served and answers."""

import json
import shutil
import subprocess
import sys

import pytest
import safetensors.torch
import torch

from tests.integration.servers import HTTP, ROOT, ServerProcess

pytestmark = pytest.mark.integration

GOOD = ["great", "wonderful", "brilliant", "moving", "delightful", "superb"]
BAD = ["awful", "boring", "dreadful", "tedious", "clumsy", "terrible"]


@pytest.fixture(scope="module")
def tiny_tsv(tmp_path_factory):
    """200 labelled movie-review-like rows, made here so the test needs nothing from ../shared."""
    rows = ["text\tlabel"]
    for i in range(100):
        rows.append(f"a {GOOD[i % 6]} film , truly {GOOD[(i + 1) % 6]} .\t1")
        rows.append(f"a {BAD[i % 6]} film , truly {BAD[(i + 1) % 6]} .\t0")
    path = tmp_path_factory.mktemp("data") / "tiny.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


def run_train(base_dir, tsv, out_dir, *extra):
    command = [sys.executable, "-m", "training.train", "--base_model", str(base_dir), "--train_file", str(tsv),
               "--labels", "NEGATIVE,POSITIVE", "--epochs", "1", "--holdout_size", "20", "--batch_size", "16",
               "--max_length", "32", "--lr", "1e-3", "--output_dir", str(out_dir), *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "epoch 1: validation accuracy" in done.stdout
    return json.loads((out_dir / "training.json").read_text())


@pytest.mark.parametrize("lora", [True, False], ids=["lora-adapter", "full-model"])
def test_trained_output_is_served(tiny_model_dir, tiny_tsv, tmp_path, lora):
    out_dir = tmp_path / "trained"
    record = run_train(tiny_model_dir, tiny_tsv, out_dir, *(["--lora"] if lora else []))
    assert record["train_examples"] == 180 and record["validation_examples"] == 20
    assert 0.0 <= record["validation_accuracy"] <= 1.0
    assert (out_dir / ("adapter_config.json" if lora else "config.json")).is_file()
    cache = tmp_path / "cache"
    server = ServerProcess("predictor", ["--model_name", "tiny", "--model_dir", str(out_dir),
                                         "--model_cache_dir", str(cache)], tmp_path / "serve.log").start()
    try:
        response = HTTP.post(f"{server.url}/v1/models/tiny:predict", json={"instances": ["a superb film", "dull"]})
        assert response.status_code == 200
        assert {s["label"] for s in response.json()["predictions"][0]["scores"]} == {"NEGATIVE", "POSITIVE"}
    finally:
        server.stop()
    merged = list(cache.glob("merged-trained-*/config.json")) if cache.exists() else []
    assert len(merged) == (1 if lora else 0)  # adapters are merged once into the cache; full models are not


def test_bf16_training_runs_and_is_recorded(tiny_model_dir, tiny_tsv, tmp_path):
    """--precision bf16 (autocast) trains, evaluates in fp32 and says so in the record."""
    record = run_train(tiny_model_dir, tiny_tsv, tmp_path / "bf16", "--precision", "bf16")
    assert record["recipe"]["precision"] == "bf16"
    assert 0.0 <= record["validation_accuracy"] <= 1.0
    weights = safetensors.torch.load_file(tmp_path / "bf16" / "model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}  # master weights stay fp32


def test_holdout_is_never_trained_on(tiny_tsv):
    from training.data import HoldOut, read_labelled, split_holdout

    rows = read_labelled(tiny_tsv)
    train, held_out = split_holdout(rows, HoldOut(size=20, seed=13, exclude_overlap=True))
    again, held_again = split_holdout(rows, HoldOut(size=20, seed=13, exclude_overlap=True))
    assert held_out == held_again and train == again  # deterministic
    held_texts = {r.text for r in held_out}
    assert not any(r.text in held_texts for r in train)


def test_distillation_from_an_ensemble(tiny_model_dir, tiny_tsv, tmp_path):
    """--teachers: the teachers' mean softmax is the soft target; the recipe records who taught."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.distil import teacher_probs
    from training.model import predict_logits

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = ["a superb film", "a tedious , clumsy film"]
    ids = tokenizer(texts)["input_ids"]
    # a second, different model: another initialisation and batch order, the same held-out slices
    teacher = run_train(tiny_model_dir, tiny_tsv, tmp_path / "teacher", "--train_seed", "7")
    mean = teacher_probs([tiny_model_dir, tmp_path / "teacher"], texts, ["NEGATIVE", "POSITIVE"], 32)
    each = [torch.softmax(torch.from_numpy(predict_logits(AutoModelForSequenceClassification.from_pretrained(d), ids,
                                                          tokenizer.pad_token_id)), -1)
            for d in (tiny_model_dir, tmp_path / "teacher")]
    assert not torch.allclose(each[0], each[1], atol=1e-3)
    np.testing.assert_allclose(mean.numpy(), ((each[0] + each[1]) / 2).numpy(), atol=1e-5)
    record = run_train(tiny_model_dir, tiny_tsv, tmp_path / "student", "--teachers", str(tiny_model_dir),
                       str(tmp_path / "teacher"), "--distill_weight", "0.7")
    assert record["recipe"]["teachers"] == [str(tiny_model_dir), str(tmp_path / "teacher")]
    assert record["recipe"]["distill_weight"] == 0.7 and teacher["validation_accuracy"] is not None
    assert teacher["recipe"]["train_seed"] == 7 and record["recipe"]["train_seed"] is None
    assert teacher["data"] == record["data"] and teacher["validation_examples"] == record["validation_examples"]


def test_model_soup_averages_trained_models_and_is_served(tiny_model_dir, tiny_tsv, tmp_path):
    """training.soup: the mean of two runs' weights (frozen ones bit for bit), chosen on calibration, served."""
    import torch
    from safetensors.torch import load_file

    split = ("--freeze_embeddings", "--calibration_size", "8")
    runs = [tmp_path / "a", tmp_path / "b"]
    run_train(tiny_model_dir, tiny_tsv, runs[0], *split)
    run_train(tiny_model_dir, tiny_tsv, runs[1], *split, "--train_seed", "7", "--lr", "3e-4")
    bare = shutil.copytree(runs[1], tmp_path / "epoch-1")  # a checkpoint: weights without a training.json first
    (bare / "training.json").unlink()
    runs = [bare, runs[0]]
    for greedy in (False, True):
        out = tmp_path / f"soup-{greedy}"
        command = [sys.executable, "-m", "training.soup", "--holdout_of", str(tiny_tsv), "--out", str(out),
                   *(["--greedy"] if greedy else []), *map(str, runs)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        soup = json.loads((out / "training.json").read_text())["soup"]
        alone = soup["ingredients_calibration_accuracy"]
        assert set(alone) == {str(r) for r in runs} and 0.0 <= soup["test_accuracy"] <= 1.0
        if greedy:  # the best ingredient alone first; the other only if calibration accuracy held
            assert soup["kept"][0] == max(alone, key=alone.get) and soup["calibration_accuracy"] >= max(alone.values())
        else:
            assert soup["kept"] == [str(r) for r in runs]
    weights = [load_file(str(r / "model.safetensors")) for r in runs]
    mean = load_file(str(tmp_path / "soup-False" / "model.safetensors"))
    embeddings = next(name for name in mean if name.endswith("word_embeddings.weight"))
    assert torch.equal(mean[embeddings], weights[0][embeddings])  # frozen: what bake --pack checks against the base
    moved = [name for name in mean if not torch.equal(weights[0][name], weights[1][name])]
    assert moved and all(torch.allclose(mean[n], (weights[0][n] + weights[1][n]) / 2, atol=1e-6) for n in moved)
    server = ServerProcess("predictor", ["--model_name", "soup", "--model_dir", str(tmp_path / "soup-False"),
                                         "--model_cache_dir", str(tmp_path / "cache")], tmp_path / "serve.log").start()
    try:
        response = HTTP.post(f"{server.url}/v1/models/soup:predict", json={"instances": ["a superb film"]})
        assert response.status_code == 200 and response.json()["predictions"][0]["label"] in ("NEGATIVE", "POSITIVE")
    finally:
        server.stop()

