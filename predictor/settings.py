"""``python -m predictor``'s settings, declared once (runtime/settings.py says how a field becomes a flag)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from contract.parameters import DEFAULT_TRUNCATION, TRUNCATIONS
from modelbuild.layout import default_cache_dir
from predictor.backends import BACKENDS, DEFAULT_BACKEND
from runtime.settings import ServiceSettings, setting

BackendName = Literal[tuple(BACKENDS)]  # the registry's names, in its order
Truncation = Literal[TRUNCATIONS]


class PredictorSettings(ServiceSettings):
    env_prefix_name = "PREDICTOR_"
    model_dir: Path | None = setting(
        None, "Hugging Face model directory or LoRA adapter directory (KServe's storage initializer puts a "
              "`storageUri` in `/mnt/models`)", shown="the bundled model named `--model_name`")
    model_cache_dir: Path = setting(
        factory=default_cache_dir, help="where merged adapters and ONNX graphs exported on first use are cached",
        shown="`~/.cache/kserve-text-classifier`")
    max_length: int = setting(512, "tokens per text; longer texts are truncated (capped at the model's positions)")
    max_batch_size: int = setting(32, "most texts one model call takes from the queue")
    max_batch_delay_ms: float = setting(2.0, "longest wait for a batch to fill before it runs")
    max_batch_tokens: int = setting(16384, "padded tokens per forward pass; a batch is split to stay under it")
    max_queue_texts: int = setting(10_000, "texts allowed to wait; beyond it requests get 429 `overloaded`")
    request_timeout_s: float = setting(10.0, "per-request deadline; past it the answer is 504 `timeout`")
    model_version: str | None = setting(
        None, "version reported in responses and metadata, and used in cache keys", shown="hash of the model files")
    backend: BackendName = setting(
        DEFAULT_BACKEND, "inference engine: `onnx-int8`, `onnx` (ONNX Runtime, int8 or fp32 weights), `torch`, "
                         "`torch-int8` (PyTorch); see [Backends](models.md#backends-and-speed)")
    threads: int = setting(0, "intra-op threads of the backend", env="INFERENCE_THREADS",
                           shown="0 (the backend's default: one per core)")
    truncation: Truncation = setting(
        DEFAULT_TRUNCATION, "texts longer than `--max_length` tokens, when a request does not choose: `head`, `head_tail` or "
                "`chunks` (see [Long texts](long-texts.md#long-texts-truncation))")
    max_windows: int = setting(8, "windows one text may take under `chunks`; more is a 400 `too_many_windows`")
    window_overlap: int = setting(64, "tokens consecutive `chunks` windows share (at most half a window)")
    max_request_rows: int = setting(
        4096, "model rows (windows, explanation variants) one request may need; more is a 413 `request_too_large`")
    explain: bool = setting(
        True, "serve V1 `:explain` and V2 explanations; `false` answers them 501 `not_implemented` (see "
              "[Explanations](long-texts.md#explanations-explain))")
    explain_max_words: int = setting(
        64, "words (tokens, with `granularity: token`) an explanation covers; a longer text is explained over its "
            "first ones")
