"""What transformers itself answers: the reference every backend is checked against."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def hf_probs(model_or_dir, texts: Sequence[str], multi_label: bool = False, tokenizer_dir=None) -> np.ndarray:
    """Probabilities from a transformers model (or model dir), one text per forward pass: no padding involved."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = model_or_dir
    if not isinstance(model, torch.nn.Module):
        model = AutoModelForSequenceClassification.from_pretrained(model_or_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or model_or_dir)
    rows = []
    with torch.no_grad():
        for text in texts:
            logits = model(**tokenizer([text], truncation=True, max_length=512, return_tensors="pt")).logits
            rows.append((torch.sigmoid(logits) if multi_label else torch.softmax(logits, -1)).numpy()[0])
    return np.array(rows)


def served_classifier(model_dir, cache_dir=None, **settings):
    """The classifier ``python -m predictor --model_dir model_dir`` would serve, with those settings changed."""
    from predictor.classifier import build_classifier
    from predictor.settings import PredictorSettings

    cache = {"model_cache_dir": cache_dir} if cache_dir is not None else {}
    return build_classifier(PredictorSettings(model_dir=model_dir, **cache, **settings), model_dir.name)
