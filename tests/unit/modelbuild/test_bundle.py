"""Adapters merged into their base once, cached, and equal to the unmerged adapter."""

import json

import numpy as np
import pytest
import torch

from modelbuild.files import resolve_model_dir
from tests.reference import hf_probs, served_classifier


@pytest.fixture(scope="module")
def tiny_adapter(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter over the tiny model with non-zero weights, saved as training saves it."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(1)
    model = get_peft_model(
        AutoModelForSequenceClassification.from_pretrained(tiny_model_dir),
        LoraConfig(task_type=TaskType.SEQ_CLS, r=4, target_modules=["q_lin", "v_lin", "lin1"], init_lora_weights=False),
    )
    out = tmp_path_factory.mktemp("adapters") / "tiny-adapter"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    (out / "training.json").write_text(json.dumps({"base_model": str(tiny_model_dir), "labels": ["NEGATIVE", "POSITIVE"]}))
    return out, model.eval()


def test_merged_model_equals_the_adapter(tiny_adapter, tmp_path):
    adapter_dir, peft_model = tiny_adapter
    merged_dir = resolve_model_dir(adapter_dir, "ignored", tmp_path)
    texts = ["a fine film", "not good at all"]
    merged = served_classifier(merged_dir, backend="torch").classify(texts)
    expected = hf_probs(peft_model, texts, tokenizer_dir=merged_dir)
    np.testing.assert_allclose(merged, expected, rtol=1e-4, atol=1e-5)


def test_merge_happens_once_and_is_reused(tiny_adapter, tmp_path):
    adapter_dir, _ = tiny_adapter
    first = resolve_model_dir(adapter_dir, "ignored", tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    second = resolve_model_dir(adapter_dir, "ignored", tmp_path)
    assert second == first and (second / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no staging leftovers


def test_unknown_bundled_name_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no bundled model named 'nope'"):
        resolve_model_dir(None, "nope", tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a Hugging Face model directory nor a LoRA adapter"):
        resolve_model_dir(tmp_path, "x", tmp_path)
