"""The canary analysis: figures per predictor revision from Prometheus, checks against thresholds, one decision.

Shaped like Argo Rollouts' and Flagger's analyses: every check is a measurement, a
condition and the amount of data it rests on; a failed check rolls back, a check
with too little data is inconclusive and holds (Argo's "Inconclusive"), and only
when every check passes is the canary promoted.

The checks (thresholds are ``Thresholds``, flags of ``python -m rollout.verdict``):

- **p99 latency**: canary p99 / primary p99 <= ``max_p99_ratio``; a canary slower by
  less than ``p99_slack_ms`` passes anyway (histogram buckets and a few slow requests
  make small latencies noisy). Needs ``min_requests`` on both revisions.
- **error ratio** (5xx and 429, as the alert): canary minus primary <= ``max_error_increase``.
- **label shares**: the Jensen-Shannon divergence (base 2: 0 identical, 1 disjoint)
  between the two revisions' top-label shares <= ``max_label_divergence``. Needs
  ``min_texts`` answered by both. Above 0.02, for two labels: a 50/50 model moved to
  67/33, or a 90/10 one to 77/23; sampling noise of 200 texts a side stays well below.
- **shadow agreement** (where the transformer shadows the canary's model version):
  share of compared texts with the same top label >= ``min_shadow_agreement``.
  Needs ``min_texts`` compared; absent or too few, it is not a reason to hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rollout.prometheus import Prometheus

PROMOTE, HOLD, ROLL_BACK = "PROMOTE", "HOLD", "ROLL BACK"
EXIT_CODES = {PROMOTE: 0, HOLD: 3, ROLL_BACK: 4}  # 1: no verdict (Prometheus, kubectl); 2: bad flags


@dataclass(frozen=True)
class Thresholds:
    max_p99_ratio: float = 1.2
    p99_slack_ms: float = 25.0
    max_error_increase: float = 0.01
    max_label_divergence: float = 0.02
    min_shadow_agreement: float = 0.9
    min_requests: int = 100
    min_texts: int = 200


@dataclass
class Revision:
    name: str
    model_version: str = "?"
    requests: float = 0.0
    errors: float = 0.0
    p99_s: float | None = None
    labels: dict[str, float] = field(default_factory=dict)
    confidence: float | None = None

    @property
    def texts(self) -> float:
        return sum(self.labels.values())

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass
class Check:
    name: str
    result: str  # pass, fail, inconclusive, skipped
    value: str
    condition: str
    rests_on: str


def jensen_shannon(p: dict[str, float], q: dict[str, float]) -> float:
    """JS divergence in bits between two count vectors over labels (normalised here); 0 when either is empty."""
    labels = sorted(set(p) | set(q))
    total_p, total_q = sum(p.values()), sum(q.values())
    if not total_p or not total_q:
        return 0.0
    a = [p.get(label, 0.0) / total_p for label in labels]
    b = [q.get(label, 0.0) / total_q for label in labels]
    m = [(x + y) / 2 for x, y in zip(a, b)]

    def kl(x: list[float], y: list[float]) -> float:
        return sum(xi * math.log2(xi / yi) for xi, yi in zip(x, y) if xi > 0)

    return max(0.0, (kl(a, m) + kl(b, m)) / 2)


def shares(revision: Revision) -> str:
    total = revision.texts
    return " ".join(f"{label} {count / total:.0%}" for label, count in sorted(revision.labels.items())) if total else "-"


class Figures:
    """What Prometheus says about one InferenceService's predictor revisions and transformer over ``window``."""

    def __init__(self, prometheus: Prometheus, namespace: str, isvc: str, window: str):
        self.prometheus, self.window = prometheus, window
        self.predictor = f'namespace="{namespace}", isvc="{isvc}", component="predictor"'
        self.transformer = f'namespace="{namespace}", isvc="{isvc}", component="transformer"'

    def _by(self, expr: str, *labels: str) -> dict:
        rows = self.prometheus.query(expr)
        return {tuple(row.get(label, "") for label in labels) if len(labels) > 1 else row.get(labels[0], ""): value
                for row, value in rows}

    def revisions(self) -> dict[str, Revision]:
        w, sel = self.window, self.predictor
        found: dict[str, Revision] = {}

        def rev(name: str) -> Revision:
            return found.setdefault(name, Revision(name))

        for (name, version), _ in self._by(f"max by (revision, model_version) (max_over_time("
                                           f"text_classifier_info{{{sel}}}[{w}]))", "revision", "model_version").items():
            rev(name).model_version = version
        for name, value in self._by(f"sum by (revision) (increase(text_classifier_requests_total{{{sel}}}[{w}]))",
                                    "revision").items():
            rev(name).requests = value
        for name, value in self._by(f'sum by (revision) (increase(text_classifier_requests_total{{{sel}, '
                                    f'status=~"5..|429"}}[{w}]))', "revision").items():
            rev(name).errors = value
        for name, value in self._by(f"histogram_quantile(0.99, sum by (le, revision) (increase("
                                    f"text_classifier_request_duration_seconds_bucket{{{sel}}}[{w}])))",
                                    "revision").items():
            rev(name).p99_s = value
        for (name, label), value in self._by(f"sum by (revision, label) (increase("
                                             f"text_classifier_answers_total{{{sel}}}[{w}]))",
                                             "revision", "label").items():
            rev(name).labels[label] = value
        for name, value in self._by(f"sum by (revision) (increase(text_classifier_answer_confidence_sum{{{sel}}}[{w}]))"
                                    f" / sum by (revision) (increase(text_classifier_answer_confidence_count{{{sel}}}"
                                    f"[{w}]))", "revision").items():
            rev(name).confidence = value
        return found

    def shadow(self) -> dict[tuple[str, str], tuple[float, float]]:
        """(primary version, shadow version) -> (compared texts, agreed texts), from the transformer."""
        w, sel = self.window, self.transformer
        by = "sum by (primary_version, shadow_version)"
        compared = self._by(f"{by} (increase(transformer_shadow_compared_texts_total{{{sel}}}[{w}]))",
                            "primary_version", "shadow_version")
        agreed = self._by(f"{by} (increase(transformer_shadow_agreed_texts_total{{{sel}}}[{w}]))",
                          "primary_version", "shadow_version")
        return {pair: (count, agreed.get(pair, 0.0)) for pair, count in compared.items()}


def pick(revisions: dict[str, Revision], primary: str | None, canary: str | None) -> tuple[Revision | None, ...]:
    """The primary and canary revisions: as named, else the canary is the newest name (Knative numbers them)
    and the primary the busiest of the others."""
    if canary is None and len(revisions) > 1:
        canary = max(name for name in revisions if name != primary)
    if primary is None:
        others = [r for name, r in revisions.items() if name != canary]
        primary = max(others, key=lambda r: r.requests).name if others else None
    return revisions.get(primary) if primary else None, revisions.get(canary) if canary else None


def checks(primary: Revision | None, canary: Revision | None, shadow: dict, t: Thresholds) -> list[Check]:
    found: list[Check] = []
    if primary is None or canary is None:
        missing = "primary" if primary is None else "canary"
        found.append(Check("revisions", "inconclusive", f"no {missing} revision in the window",
                           "a primary and a canary revision with traffic", "-"))
    else:
        found += _canary_checks(primary, canary, t)
    found += _shadow_checks(primary, canary, shadow, t)
    return found


def _canary_checks(primary: Revision, canary: Revision, t: Thresholds) -> list[Check]:
    requests = f"{primary.requests:.0f} / {canary.requests:.0f} requests"
    enough_requests = min(primary.requests, canary.requests) >= t.min_requests
    found = []
    if not enough_requests:
        found.append(Check("request count", "inconclusive", requests, f">= {t.min_requests} requests each", requests))
    if primary.p99_s and canary.p99_s is not None:
        ratio = canary.p99_s / primary.p99_s
        slower_ms = (canary.p99_s - primary.p99_s) * 1000
        bad = ratio > t.max_p99_ratio and slower_ms > t.p99_slack_ms
        found.append(Check("p99 latency", "fail" if bad else "pass" if enough_requests else "inconclusive",
                           f"{primary.p99_s * 1000:.1f} ms -> {canary.p99_s * 1000:.1f} ms (ratio {ratio:.2f})",
                           f"ratio <= {t.max_p99_ratio} or < {t.p99_slack_ms:g} ms slower", requests))
    increase = canary.error_ratio - primary.error_ratio
    found.append(Check("error ratio (5xx, 429)",
                       "fail" if increase > t.max_error_increase else "pass" if enough_requests else "inconclusive",
                       f"{primary.error_ratio:.2%} -> {canary.error_ratio:.2%}",
                       f"increase <= {t.max_error_increase:.2%}", requests))
    texts = f"{primary.texts:.0f} / {canary.texts:.0f} texts"
    enough_texts = min(primary.texts, canary.texts) >= t.min_texts
    divergence = jensen_shannon(primary.labels, canary.labels)
    found.append(Check("label shares (Jensen-Shannon, bits)",
                       "inconclusive" if not enough_texts else "fail" if divergence > t.max_label_divergence else "pass",
                       f"{divergence:.3f}: {shares(primary)} -> {shares(canary)}",
                       f"<= {t.max_label_divergence} (>= {t.min_texts} texts each)", texts))
    if primary.confidence is not None and canary.confidence is not None:
        found.append(Check("mean confidence (top score)", "skipped",
                           f"{primary.confidence:.3f} -> {canary.confidence:.3f}", "shown, not gated", texts))
    return found


def _shadow_checks(primary: Revision | None, canary: Revision | None, shadow: dict, t: Thresholds) -> list[Check]:
    found = []
    for (primary_version, shadow_version), (compared, agreed) in sorted(shadow.items()):
        if canary is not None and shadow_version != canary.model_version:
            continue  # another candidate's shadow: not evidence about this canary
        if canary is None and primary is not None and shadow_version == primary.model_version:
            continue
        agreement = agreed / compared if compared else 0.0
        enough = compared >= t.min_texts
        found.append(Check(f"shadow agreement {primary_version} vs {shadow_version}",
                           "fail" if enough and agreement < t.min_shadow_agreement else "pass" if enough else "skipped",
                           f"{agreement:.1%} same top label" if compared >= 1 else "no text compared",
                           f">= {t.min_shadow_agreement:.0%} (>= {t.min_texts} texts)",
                           f"{compared:.0f} texts compared"))
    return found


def decide(found: list[Check]) -> str:
    results = {check.result for check in found}
    return ROLL_BACK if "fail" in results else HOLD if "inconclusive" in results else PROMOTE
