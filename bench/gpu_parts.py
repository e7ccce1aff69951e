"""The pieces bench/gpu.py runs: the model it measures, one forward pass timed, a load run, the GPU sampled.

Everything here also runs without a GPU (``device="cpu"``, tiny sizes), which is how
tests/integration/test_gpu_bench.py keeps the GPU script from rotting between the rare
runs on a GPU machine.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from harness.processes import ROOT, SERVER_ENV
from modelbuild.layout import BUNDLED_DIR, TOKENIZER, TOKENIZER_CONFIG

LABELS = ("NEGATIVE", "POSITIVE")


def build_distilbert(out_dir: Path, full_size: bool) -> Path:
    """A DistilBERT classifier with random weights: DistilBertConfig()'s sizes (66M parameters, the production
    DistilBERT SST-2's compute) or a tiny one. Speed, not answers. The tokenizer is the bundled models'
    (the same uncased BERT WordPiece vocabulary), so nothing is downloaded and no training package is needed."""
    import torch
    from tokenizers import Tokenizer
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    source = BUNDLED_DIR / "sentiment"
    vocab = Tokenizer.from_file(str(source / TOKENIZER)).get_vocab_size()
    sizes = {} if full_size else {"dim": 32, "hidden_dim": 128, "n_layers": 2, "n_heads": 2}
    config = DistilBertConfig(vocab_size=vocab, id2label=dict(enumerate(LABELS)),
                              label2id={label: i for i, label in enumerate(LABELS)}, **sizes)
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    for name in (TOKENIZER, TOKENIZER_CONFIG):
        shutil.copy(source / name, out_dir / name)
    return out_dir


def synthetic_texts(count: int, seed: int = 0) -> list[str]:
    """Distinct sentences of 6 to 40 vocabulary words (about 8 to 50 tokens): the served runs' supply."""
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(BUNDLED_DIR / "sentiment" / TOKENIZER)).get_vocab()
    words = sorted(word for word in vocab if word.isalpha() and len(word) > 2)
    rng = random.Random(seed)
    return [" ".join(rng.choices(words, k=rng.randint(6, 40))) for _ in range(count)]


def forward_rate(backend, batch: int, tokens: int, seconds: float) -> dict:
    """Texts/s of one backend call on a (batch, tokens) block of ids, after warm-up; the call returns host
    numpy, so a GPU's work is finished when it returns."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 29000, size=(batch, tokens), dtype=np.int64)
    ids[:, 0] = 101  # [CLS]
    mask = np.ones_like(ids)
    for _ in range(3):
        backend(ids, mask)
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or calls < 2:
        backend(ids, mask)
        calls += 1
    return {"batch": batch, "tokens": tokens, "texts_per_s": round(batch * calls / elapsed, 1),
            "ms_per_call": round(1000 * elapsed / calls, 3)}


class GpuSampler:
    """nvidia-smi's utilisation and memory, every 200 ms while running; nothing where there is no nvidia-smi."""

    QUERY = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-lms", "200"]

    def __init__(self):
        self.samples: list[tuple[float, float]] = []
        self.process: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi"):
            self.process = subprocess.Popen(self.QUERY, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        return self

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                util, memory = (float(field) for field in line.split(",")[:2])
            except ValueError:
                continue
            self.samples.append((util, memory))

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.thread.join(5)

    def summary(self) -> dict:
        if not self.samples:
            return {"gpu_util_pct": None, "gpu_mem_mib": None}
        utils = [util for util, _ in self.samples]
        return {"gpu_util_pct": round(float(np.mean(utils)), 1), "gpu_mem_mib": max(m for _, m in self.samples)}


def child_env() -> dict:
    """The environment of the servers and clients: this checkout first, then whatever PYTHONPATH the caller had
    (the GPU machine's carried wheels, images/placeholders)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**SERVER_ENV, "PYTHONPATH": path}


def load(url: str, texts: Path, clients: int, texts_per_request: int, seconds: float, processes: int) -> dict:
    """Closed-loop load from ``processes`` bench.loadgen processes sharing ``clients`` connections in flight.

    One asyncio client process tops out at a few thousand requests/s, below what a GPU
    predictor may answer: several share the clients. Their req/s add up; the p99 reported
    is the highest of theirs (each saw its share of the same server), an upper bound.
    """
    shares = [clients // processes + (i < clients % processes) for i in range(min(processes, clients))]
    commands = [[sys.executable, "-m", "bench.loadgen", "--url", url, "--texts", str(texts), "--repeat",
                 "--concurrency", str(share), "--duration_s", str(seconds), "--texts_per_request",
                 str(texts_per_request), "--timeout_s", "60"] for share in shares]
    env = {**os.environ, **child_env()}
    running = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for command in commands]
    results = []
    for process in running:
        out, err = process.communicate(timeout=seconds * 4 + 120)
        if process.returncode != 0:
            raise RuntimeError(f"loadgen failed: {err[-2000:]}")
        results.append(json.loads(out))
    rps = sum(r["rps"] for r in results)
    return {"clients": clients, "texts_per_request": texts_per_request, "rps": round(rps, 1),
            "texts_per_s": round(rps * texts_per_request, 1), "p50_ms": max(r["p50_ms"] for r in results),
            "p99_ms": max(r["p99_ms"] for r in results), "errors": sum(r["errors"] for r in results)}
