"""A Hugging Face sequence classifier behind one synchronous call: texts in, probabilities out.

``classify`` runs on the batcher's single inference thread. It tokenizes the whole
batch in one call, sorts the texts by token count and runs them in chunks whose
padded size stays under a token budget, so a long text does not make every short
text in its batch pay for its padding.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

logger = logging.getLogger(__name__)

MULTI_LABEL = "multi_label_classification"


class TextClassifier:
    def __init__(self, model_dir: str | Path, max_length: int = 512, max_batch_tokens: int = 16384):
        self.model_dir = Path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.model_dir).eval()
        config = self.model.config
        self.labels: list[str] = [config.id2label[i] for i in range(config.num_labels)]
        self.multi_label = config.problem_type == MULTI_LABEL
        positions = getattr(config, "max_position_embeddings", max_length)
        if max_length > positions:
            logger.warning("max_length %d exceeds the model's %d positions; using %d", max_length, positions, positions)
        self.max_length = min(max_length, positions)
        self.max_batch_tokens = max(max_batch_tokens, self.max_length)

    def _chunks(self, order: Sequence[int], lengths: Sequence[int]) -> list[list[int]]:
        """Split text indices (sorted by length) into chunks whose padded size fits the token budget."""
        chunks: list[list[int]] = []
        current: list[int] = []
        for index in order:
            longest = max(lengths[index], lengths[current[-1]] if current else 0)
            if current and longest * (len(current) + 1) > self.max_batch_tokens:
                chunks.append(current)
                current = []
            current.append(index)
        if current:
            chunks.append(current)
        return chunks

    @torch.inference_mode()
    def classify(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities of shape (len(texts), num_labels), rows in input order."""
        probs = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if not texts:
            return probs
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        ids = encoded["input_ids"]
        lengths = [len(row) for row in ids]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        for chunk in self._chunks(order, lengths):
            features = [{name: encoded[name][i] for name in encoded} for i in chunk]
            batch = self.tokenizer.pad(features, return_tensors="pt")
            logits = self.model(**batch).logits.float()
            chunk_probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
            probs[chunk] = chunk_probs.numpy()
        return probs
