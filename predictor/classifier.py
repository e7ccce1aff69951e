"""A Hugging Face sequence classifier behind one synchronous call: texts in, probabilities out.

``classify`` runs on one of the batcher's inference threads (one per session). It tokenizes the whole
batch in one call of the Rust ``tokenizers`` library (the model directory's
``tokenizer.json``, the same one transformers' fast tokenizer reads), sorts the texts
by token count and runs them in chunks whose padded size stays under a token budget,
so a long text does not make every short text in its batch pay for its padding.
Labels and the activation come from ``config.json`` read as JSON: no transformers
import on the serving path.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from modelbuild.layout import CONFIG, TOKENIZER, TOKENIZER_CONFIG
from predictor import metrics
from predictor.backends import BACKENDS, Backend, load_backend
from predictor.batcher import BatchResult
from predictor.budget import FIRST_CUT_CHARS_PER_TOKEN, TokenBudget
from predictor.devices import BatchLimits, batch_limits, choose_backend
from predictor.files import ModelFiles, resolve
from predictor.settings import PredictorSettings
from predictor.windows import special_frame

logger = logging.getLogger(__name__)

MULTI_LABEL = "multi_label_classification"
# A forward pass of full-size DistilBERT with int8 weights costs ~3.6 ms before its
# first token (streaming the weights) and ~0.35 ms per padded token on this project's
# 2-core machine: one call is worth about ten tokens of padding. Rounded up, since
# ONNX Runtime's per-call bookkeeping grows with the batch.
CALL_OVERHEAD_TOKENS = 16
MAX_CHUNK_TEXTS = 64  # larger passes gain nothing more and slow the planner down


def _pad_id(model_dir: Path, tokenizer: Tokenizer, config: dict) -> int:
    special = json.loads((model_dir / TOKENIZER_CONFIG).read_text()) if (model_dir / TOKENIZER_CONFIG).is_file() else {}
    token = special.get("pad_token")
    token_id = tokenizer.token_to_id(token) if isinstance(token, str) else None
    return token_id if token_id is not None else int(config.get("pad_token_id") or 0)


def load_tokenizer(model_dir: Path) -> Tokenizer:
    """The model's fast tokenizer from ``tokenizer.json``; converted by transformers when a model ships none."""
    path = model_dir / TOKENIZER
    if path.is_file():
        return Tokenizer.from_file(str(path))
    logger.warning("No tokenizer.json in %s: converting its tokenizer with transformers (a slow start; "
                   "python -m modelbuild.bake --out writes one at build time)", model_dir)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir, use_fast=True).backend_tokenizer


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


class TextClassifier:
    """The model's files (resolved by modelbuild.files) behind ``classify``; the settings come from --flags."""

    fewest_passes = False  # chunk planning: the cheapest split (a CPU), or the fewest passes (a GPU: see __init__)

    def __init__(self, files: ModelFiles, max_length: int, max_batch_tokens: int, threads: int,
                 torch_dtype: str = "auto", device: str = "cpu", sessions: int = 1):
        self.files = files
        self.model_dir = files.model_dir
        config = json.loads((self.model_dir / CONFIG).read_text())
        id2label = {int(k): v for k, v in config["id2label"].items()}
        self.labels: list[str] = [id2label[i] for i in range(len(id2label))]
        self.multi_label = config.get("problem_type") == MULTI_LABEL
        # Fitted on a held-out slice at training time (training.calibrate): logits / T make the
        # softmax scores calibrated probabilities; every backend's logits pass through here.
        self.temperature = float(config.get("temperature", 1.0))
        positions = config.get("max_position_embeddings", max_length)
        if max_length > positions:
            logger.warning("max_length %d exceeds the model's %d positions; using %d", max_length, positions, positions)
        self.max_length = min(max_length, positions)
        self.max_batch_tokens = max(max_batch_tokens, self.max_length)
        self.tokenizer = load_tokenizer(self.model_dir)
        self.tokenizer.no_padding()  # we pad per chunk, to that chunk's longest text
        self.tokenizer.enable_truncation(self.max_length)
        self.pad_id = _pad_id(self.model_dir, self.tokenizer, config)
        self.budget = TokenBudget(self.tokenizer)
        self.frame = special_frame(self.budget.tokenizer)
        self.width = self.max_length - len(self.frame.prefix) - len(self.frame.suffix)  # content tokens of a row
        self.long_chars = self.width * FIRST_CUT_CHARS_PER_TOKEN
        self.backend_name = files.backend
        self.device = device  # "cpu" or the GPU's name: the metadata shows it
        # A GPU pass costs about the same for 1 or 256 texts (kernel launches, not FLOPs): fewest passes wins,
        # and the planner's O(n * 64) search would cost more CPU time than it saves GPU time.
        self.fewest_passes = BACKENDS[files.backend].device != "cpu"
        self.batch_limits = BatchLimits(BACKENDS[files.backend].max_batch_size, self.max_batch_tokens)
        # Several sessions (--inference_sessions): one per inference thread, each with its own
        # intra-op threads (1 unless --threads says: the threads of one session cost more to
        # synchronise on a small batch than a second session running another batch does).
        self.sessions = sessions
        threads = threads or (1 if sessions > 1 else 0)
        self.backend: Backend = load_backend(files.backend, files.weights, threads, torch_dtype, sessions)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Head-truncated ids; a text too long to need whole is tokenized only as far as its first row
        (predictor/budget.py): the tokenizer truncates only after it has tokenized everything."""
        long = [i for i, text in enumerate(texts) if len(text) > self.long_chars]
        if not long:
            return [encoding.ids for encoding in self.tokenizer.encode_batch_fast(list(texts))]
        ids = [[] if len(text) > self.long_chars else encoding.ids for text, encoding in
               zip(texts, self.tokenizer.encode_batch_fast([t if len(t) <= self.long_chars else "" for t in texts]))]
        for i, (content, _) in zip(long, self.budget.heads([texts[i] for i in long], self.width)):
            ids[i] = self.frame.wrap(content)
        return ids

    def _item_ids(self, items: Sequence[str | list[int]]) -> list[list[int]]:
        """Token ids of each item: texts are tokenized (in one call), rows of ids pass through."""
        texts = [item for item in items if isinstance(item, str)]
        if len(texts) == len(items):
            return self.token_ids(items)
        encoded = iter(self.token_ids(texts))
        return [next(encoded) if isinstance(item, str) else item for item in items]

    def _chunks(self, order: Sequence[int], lengths: Sequence[int]) -> list[list[int]]:
        """Split text indices (sorted by length) into the chunks that cost least to run.

        A forward pass costs about ``CALL_OVERHEAD_TOKENS`` (reading every weight once)
        plus its padded tokens, so the cheapest split of a sorted batch is found by a
        small dynamic program over cut points: a long text gets a chunk of its own
        instead of padding fifteen short ones to its length, while texts of similar
        length share one pass. Each chunk stays under ``max_batch_tokens``.
        """
        if self.fewest_passes:
            return _fewest_passes(order, lengths, self.max_batch_tokens)
        sizes = [lengths[i] for i in order]
        best = [0.0] + [float("inf")] * len(sizes)  # best[j]: cheapest cost of the first j texts
        cut = [0] * (len(sizes) + 1)
        for j in range(1, len(sizes) + 1):
            for i in range(j - 1, max(j - MAX_CHUNK_TEXTS, 0) - 1, -1):  # chunk = sorted texts i..j-1
                padded = (j - i) * sizes[j - 1]
                if padded > self.max_batch_tokens and j - i > 1:
                    break
                cost = best[i] + CALL_OVERHEAD_TOKENS + padded
                if cost < best[j]:
                    best[j], cut[j] = cost, i
        chunks, j = [], len(sizes)
        while j > 0:
            chunks.append(list(order[cut[j] : j]))
            j = cut[j]
        return chunks[::-1]

    def _padded(self, rows: Sequence[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(row) for row in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return ids, mask

    def _logits(self, texts: Sequence[str | list[int]]) -> tuple[np.ndarray, list[int], float]:
        """(raw logits in input order, tokens per item, seconds spent tokenizing)."""
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if not texts:
            return out, [], 0.0
        started = time.perf_counter()
        ids = self._item_ids(texts)
        tokenized = time.perf_counter()
        lengths = [len(row) for row in ids]
        metrics.observe_tokens(lengths)
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        for chunk in self._chunks(order, lengths):
            out[chunk] = self.backend(*self._padded([ids[i] for i in chunk])).astype(np.float32)
        return out, lengths, tokenized - started

    def logits(self, texts: Sequence[str | list[int]]) -> np.ndarray:
        """Raw logits of shape (len(texts), num_labels), rows in input order (before the temperature); an item may be token ids."""
        return self._logits(texts)[0]

    def classify(self, texts: Sequence[str | list[int]]) -> np.ndarray:
        """Probabilities of shape (len(texts), num_labels), rows in input order; an item may be token ids."""
        return self.classify_batch(texts).probs

    def classify_batch(self, texts: Sequence[str | list[int]]) -> BatchResult:
        """``classify``, with the token count of each item and the time tokenizing took (for the batcher)."""
        started = time.perf_counter()
        logits, lengths, tokenization_s = self._logits(texts)
        logits = logits / self.temperature
        probs = sigmoid(logits) if self.multi_label else softmax(logits)
        if len(texts):
            metrics.observe_inference(self.backend_name, time.perf_counter() - started)
        return BatchResult(probs.astype(np.float32), lengths, tokenization_s)


def _fewest_passes(order: Sequence[int], lengths: Sequence[int], max_batch_tokens: int) -> list[list[int]]:
    """Sorted text indices cut into as few chunks as the padded-token budget allows (one pass over them)."""
    chunks: list[list[int]] = []
    for i in order:
        if chunks and (len(chunks[-1]) + 1) * lengths[i] <= max_batch_tokens:
            chunks[-1].append(i)  # sorted ascending: this text sets the chunk's new width
        else:
            chunks.append([i])
    return chunks


def build_classifier(settings: PredictorSettings, model_name: str) -> TextClassifier:
    """Pick the backend (DeviceError if this machine cannot run it), resolve the model's files once (merge, export:
    FileNotFoundError if none), then build the classifier; ``batch_limits`` on it are the batcher's."""
    choice = choose_backend(settings.backend, settings.torch_dtype)
    logger.info("Backend: %s", choice.reason)
    limits = batch_limits(choice.backend, settings.max_batch_size, settings.max_batch_tokens)
    files = resolve(settings.model_dir, model_name, settings.model_cache_dir, choice.backend)
    classifier = TextClassifier(files, settings.max_length, limits.max_batch_tokens, settings.threads,
                                settings.torch_dtype, choice.device, settings.inference_sessions)
    classifier.batch_limits = BatchLimits(limits.max_batch_size, classifier.max_batch_tokens)
    return classifier
