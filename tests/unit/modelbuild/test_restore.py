"""Packed models (fp16 weights of what training changed, the base's frozen embeddings) restore to the trained model."""

import json

import numpy as np
import pytest
import torch

from modelbuild.files import baked_graph
from modelbuild.layout import BAKED_FROM, FP16_WEIGHTS, ONNX_DIR, ONNX_INT8, weights_revision
from modelbuild.restore import is_packed, pack, restore


@pytest.fixture(scope="module")
def base_and_trained(tmp_path_factory):
    """A tiny BERT base and a classifier "trained" on it with the word embeddings frozen."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    root = tmp_path_factory.mktemp("packed")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    base = BertModel(config)
    base.save_pretrained(root / "base")
    model = BertForSequenceClassification(config)
    model.bert.load_state_dict(base.state_dict())
    with torch.no_grad():  # training moved every weight except the frozen word embeddings
        for name, param in model.named_parameters():
            if "word_embeddings" not in name:
                param.add_(torch.randn_like(param) * 0.05)
    model.config.id2label, model.config.label2id = {0: "NEGATIVE", 1: "POSITIVE"}, {"NEGATIVE": 0, "POSITIVE": 1}
    model.save_pretrained(root / "trained")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (root / "trained" / name).write_text(json.dumps({}))
    return root, model.eval()


def test_pack_keeps_fp16_of_the_trained_weights_only(base_and_trained):
    root, model = base_and_trained
    packed = pack(root / "trained", root / "packed", root / "base")
    assert is_packed(packed) and not is_packed(root / "trained")
    from safetensors.numpy import load_file

    tensors = load_file(str(packed / FP16_WEIGHTS))
    assert "bert.embeddings.word_embeddings.weight" not in tensors
    assert all(t.dtype == np.float16 for t in tensors.values())
    assert "classifier.weight" in tensors and "bert.encoder.layer.1.output.dense.weight" in tensors


def test_restored_model_answers_as_the_trained_one(base_and_trained):
    from transformers import BertForSequenceClassification

    root, model = base_and_trained
    packed = pack(root / "trained", root / "packed2", root / "base")
    restored = BertForSequenceClassification.from_pretrained(restore(packed, root / "restored", root / "base")).eval()
    ids = torch.tensor([[1, 5, 9, 33, 2], [1, 7, 2, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        expected, got = model(input_ids=ids, attention_mask=mask).logits, restored(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(got, expected, atol=2e-3, rtol=1e-2)  # fp16 rounding of the trained weights
    assert torch.equal(restored.bert.embeddings.word_embeddings.weight, model.bert.embeddings.word_embeddings.weight)


def test_packing_refuses_a_model_whose_embeddings_were_trained(base_and_trained, tmp_path):
    from transformers import BertForSequenceClassification

    root, _ = base_and_trained
    model = BertForSequenceClassification.from_pretrained(root / "trained")
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight.add_(0.01)
    model.save_pretrained(tmp_path / "moved")
    with pytest.raises(ValueError, match="--freeze_embeddings"):
        pack(tmp_path / "moved", tmp_path / "out", root / "base")


def test_a_graph_baked_from_other_weights_is_never_served(base_and_trained):
    root, _ = base_and_trained
    packed = pack(root / "trained", root / "packed3", root / "base")
    (packed / ONNX_DIR).mkdir()
    (packed / ONNX_DIR / ONNX_INT8).write_bytes(b"graph")
    (packed / ONNX_DIR / BAKED_FROM).write_text("0123456789ab\n")  # baked before the weights changed
    assert baked_graph(packed, ONNX_INT8) is None
    (packed / ONNX_DIR / BAKED_FROM).write_text(weights_revision(packed) + "\n")
    assert baked_graph(packed, ONNX_INT8) == packed / ONNX_DIR / ONNX_INT8
