"""The predictor's KServe model: texts in, probabilities out, through the dynamic batcher.

Parsing, the V1/V2 answers and the metadata are the shared model face's
(runtime/face.py); this is what the predictor adds: its files resolved once, the
classifier, the batcher and the deadline, and the requests that cost more than a row
per text (``head_tail``/``chunks``, explanations: predictor/expanded.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from prometheus_client import Counter

from contract import timings
from contract.errors import ErrorType, ServiceError
from contract.parameters import Options, Truncation
from contract.schema import CLIENT_HEADER, client_of
from contract.scores import Scores
from predictor.batcher import DynamicBatcher, RequestStats
from predictor.classifier import TextClassifier, build_classifier
from predictor.expanded import Expander, ExpansionLimits
from predictor.settings import PredictorSettings
from runtime import answers
from runtime.face import TextClassificationModel
from runtime.metrics import child

logger = logging.getLogger(__name__)

TEXTS_INFERRED = Counter(
    "predictor_texts_total", "Texts classified by the model (cache hits never get here)", ["model_name"]
)
WARM_UP_TEXTS = ["warm-up: the model runs once before the server reports ready"]


class PredictorModel(TextClassificationModel):
    def __init__(self, name: str, settings: PredictorSettings):
        super().__init__(name, settings.limits(), return_response_headers=True)  # the timings (contract/timings.py)
        self.settings = settings
        self.classifier: TextClassifier | None = None
        self.batcher: DynamicBatcher | None = None
        self.expander: Expander | None = None
        self.model_version = settings.model_version

    def load(self) -> bool:
        """Resolve the files (FileNotFoundError if there are none), build the classifier, warm it up."""
        started = time.perf_counter()
        s = self.settings
        self.classifier = build_classifier(s, self.name)
        self.model_version = self.model_version or self.classifier.files.revision
        self.batcher = DynamicBatcher(self.classifier.classify_batch, len(self.classifier.labels),
                                      self.classifier.batch_limits.max_batch_size,
                                      s.max_batch_delay_ms / 1000, s.max_queue_texts, workers=self.classifier.sessions)
        self.expander = Expander(self.classifier, self.batcher, ExpansionLimits(
            s.max_request_rows, s.max_windows, s.window_overlap, s.explain_max_words,
            s.max_explain_rows))
        for _ in range(self.classifier.sessions):  # sessions are taken in turn: each one warms up once
            self.classifier.classify(WARM_UP_TEXTS)  # first call pays one-off allocation; not a client's request
        self.ready = True
        logger.info(
            "Loaded %s (version %s, labels %s, backend %s) from %s in %.2f s", self.name, self.model_version,
            self.labels, self.classifier.backend_name, self.classifier.model_dir, time.perf_counter() - started,
        )
        return self.ready

    @property
    def labels(self) -> list[str] | None:
        return self.classifier.labels if self.classifier else None

    async def score(self, texts: Sequence[str], headers: dict, options: Options) -> Scores:
        timeout_s = self.settings.request_timeout_s
        stats = RequestStats()
        windows = explanations = None
        client = client_of(headers.get(CLIENT_HEADER))  # whose turn its texts take in the batches
        if options.explain:
            if not self.settings.explain:
                raise ServiceError(ErrorType.NOT_IMPLEMENTED,
                                   "Explanations are turned off on this server (--explain false).")
            probs, explanations = await self.expander.explain(texts, options.granularity, timeout_s, stats, client)
        elif (strategy := options.truncation or self.settings.truncation) == Truncation.HEAD:  # the plain path
            probs = await self.batcher.submit(texts, timeout_s, stats=stats, client=client)
        else:
            probs, windows = await self.expander.score(texts, strategy, timeout_s, options.field_name, stats,
                                                           client)
        child(TEXTS_INFERRED, self.name).inc(len(texts))
        answers.observe(self.name, self.model_version, self.labels, probs)
        return Scores(probs, self.labels, self.model_version, windows=windows, explanations=explanations,
                      measured=timings.predictor_headers(stats, sum(map(len, texts))))

    def describe(self) -> dict:
        return {
            "problem_type": "multi_label" if self.classifier.multi_label else "single_label",
            "max_length": self.classifier.max_length,
            "backend": self.classifier.backend_name,  # what --backend auto chose, not "auto"
            "device": self.classifier.device,
            "max_batch_size": self.classifier.batch_limits.max_batch_size,
            "truncation": self.settings.truncation,
            "max_windows": self.settings.max_windows,
            "explain": self.settings.explain,
            # A transformer in front checks that its deadline is the later (runtime/settings.py, deadline_order_problem)
            "request_timeout_s": self.settings.request_timeout_s,
        }
