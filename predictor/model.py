"""The KServe model: parses any protocol with the shared schema, batches, answers in kind."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kserve
from prometheus_client import Counter

from contract import schema, timings, tracing
from predictor.backends import DEFAULT_BACKEND
from predictor.batcher import DynamicBatcher, RequestStats
from predictor.bundle import model_revision
from predictor.classifier import TextClassifier

logger = logging.getLogger(__name__)

TEXTS_INFERRED = Counter(
    "predictor_texts_total", "Texts classified by the model (cache hits never get here)", ["model_name"]
)
WARM_UP_TEXTS = ["warm-up: the model runs once before the server reports ready"]


@dataclass(frozen=True)
class PredictorOptions:
    model_dir: Path
    max_length: int = 512
    max_batch_size: int = 32
    max_batch_delay_ms: float = 2.0
    max_batch_tokens: int = 16384
    max_queue_texts: int = 10_000
    request_timeout_s: float = 10.0
    model_version: str | None = None  # default: a content hash of the model directory
    backend: str = DEFAULT_BACKEND
    threads: int = 0  # intra-op threads; 0: the backend's default (one per core)
    cache_dir: Path | None = None  # where ONNX graphs not baked into the model dir are exported
    limits: schema.Limits = schema.Limits()


class TextClassifierModel(kserve.Model):
    def __init__(self, name: str, options: PredictorOptions):
        super().__init__(name, return_response_headers=True)  # the timing headers (contract/timings.py)
        self.options = options
        self.classifier: TextClassifier | None = None
        self.batcher: DynamicBatcher | None = None
        self.model_version = options.model_version

    def load(self) -> bool:
        started = time.perf_counter()
        self.classifier = TextClassifier(
            self.options.model_dir, max_length=self.options.max_length, max_batch_tokens=self.options.max_batch_tokens,
            backend=self.options.backend, threads=self.options.threads, cache_dir=self.options.cache_dir,
        )
        self.model_version = self.model_version or model_revision(self.options.model_dir)
        self.batcher = DynamicBatcher(
            self.classifier.classify_batch,
            num_outputs=len(self.classifier.labels),
            max_batch_size=self.options.max_batch_size,
            max_delay_s=self.options.max_batch_delay_ms / 1000,
            max_queue_texts=self.options.max_queue_texts,
        )
        self.classifier.classify(WARM_UP_TEXTS)  # first call pays one-off allocation; not a client's request
        self.ready = True
        logger.info(
            "Loaded %s (version %s, labels %s, backend %s) from %s in %.2f s", self.name, self.model_version,
            self.labels, self.options.backend, self.options.model_dir, time.perf_counter() - started,
        )
        return self.ready

    @property
    def labels(self) -> list[str]:
        return self.classifier.labels

    def validate(self, payload: Any) -> Any:
        return payload  # preprocess already validated it with the shared schema

    async def preprocess(self, payload: Any, headers: dict | None = None) -> schema.ClassifyRequest:
        with tracing.span("parse"):
            return schema.parse_request(payload, self.options.limits)

    async def predict(self, request: schema.ClassifyRequest, headers: dict | None = None, response_headers=None):
        stats = RequestStats()
        probs = await self.batcher.submit(request.texts, self.options.request_timeout_s, stats)
        TEXTS_INFERRED.labels(self.name).inc(len(request.texts))
        if response_headers is not None:
            response_headers.update(timings.predictor_headers(stats, sum(map(len, request.texts))))
        if request.v2 is None:
            return schema.v1_response(probs, self.labels)
        return schema.v2_response(request.v2, probs, self.labels, self.name, self.model_version)

    def get_input_types(self) -> list[dict]:
        return schema.tensor_metadata(len(self.labels))[0]

    def get_output_types(self) -> list[dict]:
        return schema.tensor_metadata(len(self.labels))[1]

    def metadata_parameters(self) -> dict:
        """Published in REST model metadata: what a client needs to read ``scores``."""
        return {
            "labels": self.labels,
            "problem_type": "multi_label" if self.classifier.multi_label else "single_label",
            "max_length": self.classifier.max_length,
            "backend": self.options.backend,
            "model_version": self.model_version,
        }
