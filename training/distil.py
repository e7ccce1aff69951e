"""Distillation from an ensemble: the teachers' mean probabilities as soft targets (``--teachers``)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from training.model import predict_logits


def ensemble_probs(teachers: list[Path], ids: list[list[int]], pad_id: int) -> torch.Tensor:
    """The teachers' mean softmax on ``ids`` (they share the student's tokenizer: one base, one vocabulary)."""
    from transformers import AutoModelForSequenceClassification

    total = None
    for teacher in teachers:
        started = time.perf_counter()
        logits = predict_logits(AutoModelForSequenceClassification.from_pretrained(teacher), ids, pad_id)
        probs = torch.softmax(torch.from_numpy(logits), -1)
        total = probs if total is None else total + probs
        print(f"teacher {teacher}: {len(ids)} rows in {time.perf_counter() - started:.0f} s", flush=True)
    return total / len(teachers)
