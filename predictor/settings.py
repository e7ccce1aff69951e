"""``python -m predictor``'s settings, declared once (runtime/settings.py says how a field becomes a flag)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import PositiveInt

from contract.parameters import DEFAULT_TRUNCATION, TRUNCATIONS
from modelbuild.layout import default_cache_dir
from predictor.backends import AUTO, BACKENDS, DEFAULT_BACKEND, TORCH_DTYPES
from runtime.settings import PREDICTOR_DEADLINE_S, ServiceSettings, setting

BackendName = Literal[(*BACKENDS, AUTO)]  # the registry's names, in its order, and `auto`
TorchDtype = Literal[TORCH_DTYPES]
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
    max_batch_size: int | None = setting(None, "most texts one model call takes from the queue",
                                         shown="the backend's: 32, 256 on `torch-cuda`")
    max_batch_delay_ms: float = setting(2.0, "longest wait for a batch to fill before it runs")
    max_batch_tokens: int | None = setting(
        None, "padded tokens per forward pass; a batch is split to stay under it",
        shown="the backend's: 16384, 65536 on `torch-cuda`")
    max_queue_texts: int = setting(10_000, "texts allowed to wait; beyond it requests get 429 `overloaded`")
    request_timeout_s: float = setting(
        float(PREDICTOR_DEADLINE_S), "per-request deadline; past it the answer is 504 `timeout` (a transformer in "
                                     "front must wait longer: it checks)")
    model_version: str | None = setting(
        None, "version reported in responses and metadata, and used in cache keys", shown="hash of the model files")
    backend: BackendName = setting(
        DEFAULT_BACKEND, "inference engine: `onnx-int8`, `onnx` (ONNX Runtime, int8 or fp32 weights), `torch`, "
                         "`torch-int8` (PyTorch), `torch-cuda` (PyTorch on a GPU), `auto` (`torch-cuda` where a "
                         "GPU is visible, else `onnx-int8`); see [Backends](models.md#backends-and-speed)")
    torch_dtype: TorchDtype = setting(
        "auto", "weights and activations of the PyTorch backends: `auto` (fp32 on a CPU, bf16 on a GPU that has it, "
                "else fp16), `float32`, `bfloat16`, `float16`")
    threads: int = setting(0, "intra-op threads of the backend", env="INFERENCE_THREADS",
                           shown="0 (the backend's default: one per core)")
    inference_sessions: PositiveInt = setting(
        1, "copies of the model, each run by its own inference thread, taking batches from the one queue at once; "
           "with more than one, `--threads` is per copy and 0 means 1")
    truncation: Truncation = setting(
        DEFAULT_TRUNCATION, "texts longer than `--max_length` tokens, when a request does not choose: `head`, `head_tail` or "
                "`chunks` (see [Long texts](long-texts.md#long-texts-truncation))")
    max_windows: int = setting(8, "windows one text may take under `chunks`; more is a 400 `too_many_windows`")
    window_overlap: int = setting(64, "tokens consecutive `chunks` windows share (at most half a window)")
    max_request_rows: int = setting(
        4096, "model rows (windows, explanation variants) one request may need; more is a 413 `request_too_large`")
    max_explain_rows: int = setting(
        260, "model rows one `:explain` request may need (one per explained word plus one per text: 260 is four "
             "texts of 64 words); more is a 413 `request_too_large`, before any text is tokenized when the texts "
             "alone need more")
    explain: bool = setting(
        True, "serve V1 `:explain` and V2 explanations; `false` answers them 501 `not_implemented` (see "
              "[Explanations](long-texts.md#explanations-explain))")
    explain_max_words: int = setting(
        64, "words (tokens, with `granularity: token`) an explanation covers; a longer text is explained over its "
            "first ones")
