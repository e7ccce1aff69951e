"""Safe rollouts with real parts: Debian's Prometheus scraping real predictors and transformers (and a real Redis).

Predictor revisions of one InferenceService ``sentiment``, as Knative would run them:
``-00001`` the primary (version sentiment-0.1.0), ``-00002`` a canary whose
``id2label`` is swapped (0.2.0: fast and wrong), ``-00003`` a byte-for-byte copy of the
primary under a new version (0.3.0). The test client splits traffic between them as
Knative does below a transformer (every tenth request to a canary). Two transformers
in front of the primary: one plain, one shadowing every miss to a separate predictor
(InferenceService ``sentiment-shadow``) serving the inverted model. Every target gets
the labels the chart's PodMonitor adds, so ``python -m rollout.verdict`` queries them
as on a cluster.

Required: HOLD while the copy has little traffic, PROMOTE once it has enough, ROLL BACK
for the inverted canary, and shadow agreement near zero for the inverted shadow while
the users' answers equal the primary's and their p99 stays within a generous bound of
the plain transformer's, measured in the same run, request by request interleaved.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from harness.prometheus import PrometheusProcess, prometheus_binary
from tests.integration.servers import ROOT, ServerProcess, metric

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600),
              pytest.mark.skipif(prometheus_binary() is None,
                                 reason="no prometheus binary: `make setup` copies it out of Debian's `prometheus` "
                                        "package (scripts/install-tools.sh); without apt access it cannot")]

NS, ISVC = "text", "sentiment"
PRIMARY, INVERTED, COPY = "sentiment-predictor-00001", "sentiment-predictor-00002", "sentiment-predictor-00003"
SENTENCES = [line for line in (ROOT / "load" / "sentences.txt").read_text().splitlines() if line.strip()]
V1 = f"/v1/models/{ISVC}:predict"
SHADOWED = 150  # requests of two texts to each transformer in the shadow test


def inverted_copy(model_dir: Path, out: Path) -> Path:
    """The same weights with id2label (and label2id) swapped: every answer's label flips."""
    shutil.copytree(model_dir, out)
    config = json.loads((out / "config.json").read_text())
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))][::-1]
    config["id2label"] = {str(i): label for i, label in enumerate(labels)}
    config["label2id"] = {label: i for i, label in enumerate(labels)}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


class Texts:
    """Distinct texts (every one a cache miss), real sentences with a counter."""

    def __init__(self):
        self.sent = 0
        self.lock = threading.Lock()  # four client threads take texts

    def take(self, n: int) -> list[str]:
        with self.lock:
            first, self.sent = self.sent, self.sent + n
        return [f"{SENTENCES[(first + i) % len(SENTENCES)]} (#{first + i})" for i in range(n)]


@pytest.fixture(scope="module")
def stack(tiny_model_dir, redis, tmp_path_factory):
    from modelbuild.files import onnx_graph
    from modelbuild.layout import ONNX_DIR, ONNX_FP32, default_cache_dir

    work = tmp_path_factory.mktemp("rollout")
    # The ONNX graph baked in (exported once, or found in the cache the other tests filled): the four
    # predictors then start in seconds. The graph does not depend on id2label, read from config.json.
    primary = shutil.copytree(tiny_model_dir, work / "primary")
    shutil.copytree(onnx_graph(tiny_model_dir, ONNX_FP32, default_cache_dir()).parent, primary / ONNX_DIR)
    inverted = inverted_copy(primary, work / "inverted")
    # fp32 ONNX: scores independent of batch mates, so answers compare exactly across processes
    def predictor(name: str, model_dir: Path, version: str) -> ServerProcess:
        return ServerProcess("predictor", ["--model_name", ISVC, "--model_dir", str(model_dir), "--backend", "onnx",
                                           "--model_version", version], work / f"{name}.log")

    predictors = {PRIMARY: predictor("primary", primary, "sentiment-0.1.0"),
                  INVERTED: predictor("inverted", inverted, "sentiment-0.2.0"),
                  COPY: predictor("copy", primary, "sentiment-0.3.0"),
                  "shadow": predictor("shadow", inverted, "sentiment-0.2.0")}
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda server: server.start(ready_timeout_s=180), predictors.values()))
    primary_host = f"127.0.0.1:{predictors[PRIMARY].http_port}"
    base = ["--model_name", ISVC, "--predictor_host", primary_host, "--redis_url", redis.url, "--access_log", "false"]
    plain = ServerProcess("transformer", base, work / "plain.log")
    shadowed = ServerProcess("transformer", [*base, "--shadow_predictor_host",
                                             f"127.0.0.1:{predictors['shadow'].http_port}", "--shadow_percent", "100"],
                             work / "shadowed.log")
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda server: server.start(), (plain, shadowed)))
    scrape = lambda server, isvc, component, revision: (  # noqa: E731
        f"127.0.0.1:{server.http_port}", {"namespace": NS, "isvc": isvc, "component": component, "revision": revision})
    prometheus = PrometheusProcess(work, [
        *(scrape(server, ISVC, "predictor", revision) for revision, server in predictors.items() if revision != "shadow"),
        scrape(predictors["shadow"], "sentiment-shadow", "predictor", "sentiment-shadow-predictor-00001"),
        scrape(plain, ISVC, "transformer", "sentiment-transformer-00001"),
        scrape(shadowed, ISVC, "transformer", "sentiment-transformer-00002"),
    ]).start()
    servers = [*predictors.values(), plain, shadowed]
    try:
        deadline = time.monotonic() + 30
        while prometheus.targets_up() < len(servers) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert prometheus.targets_up() == len(servers)
        texts = Texts()
        with httpx.Client(timeout=30) as client:  # every series exists before the measured traffic: increase()
            for server in servers:                # cannot count a series' first sample
                post(client, server, texts.take(1))
        time.sleep(2.5)
        yield {"prometheus": prometheus, "predictors": predictors, "plain": plain, "shadowed": shadowed,
               "texts": texts}
    finally:
        prometheus.stop()
        for server in servers:
            server.stop()


def post(client: httpx.Client, server: ServerProcess, texts: list[str]) -> tuple[float, dict]:
    started = time.perf_counter()
    answer = client.post(f"{server.url}{V1}", json={"instances": texts})
    assert answer.status_code == 200, answer.text
    return time.perf_counter() - started, answer.json()


def split_traffic(stack, requests: int, canary: str | None, every: int = 10, texts_per_request: int = 3) -> None:
    """``requests`` to the predictor revisions, every ``every``-th to ``canary``, four clients at a time."""
    def client_loop(first: int) -> None:
        with httpx.Client(timeout=30) as client:  # one per client: a new httpx.Client loads the CA bundle
            for i in range(first, requests, 4):
                target = stack["predictors"][canary if canary and i % every == 0 else PRIMARY]
                post(client, target, stack["texts"].take(texts_per_request))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(client_loop, range(4)))


def scraped(stack) -> None:
    """Wait until Prometheus's latest samples hold every request the revisions have counted."""
    deadline = time.monotonic() + 20
    for revision, server in stack["predictors"].items():
        if revision == "shadow":
            continue
        served = metric(server.url, "text_classifier_requests_total", model_name=ISVC, status="200")
        while time.monotonic() < deadline:
            rows = stack["prometheus"].query(f'sum(text_classifier_requests_total{{revision="{revision}"}})')
            if rows and float(rows[0]["value"][1]) >= served:
                break
            time.sleep(0.3)
    time.sleep(1.5)  # and one more scrape of the transformers' shadow counters


def verdict(stack, canary: str, *extra: str) -> tuple[int, str, dict]:
    args = [sys.executable, "-m", "rollout.verdict", "--prometheus", stack["prometheus"].url, "--namespace", NS,
            "--isvc", ISVC, "--window", "10m", "--primary_revision", PRIMARY, "--canary_revision", canary,
            # a 2-core machine shared with other work: latency noise must not decide these cases; and
            # half the default data, to keep the test short (the defaults are for production traffic)
            "--p99_slack_ms", "250", "--min_requests", "50", "--min_texts", "150", *extra]
    text = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    as_json = subprocess.run([*args, "--output", "json"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                             check=False)
    assert text.returncode == as_json.returncode, text.stderr + as_json.stderr
    print(text.stdout)
    return text.returncode, text.stdout, json.loads(as_json.stdout)


def check(report: dict, prefix: str) -> dict:
    return next(c for c in report["checks"] if c["name"].startswith(prefix))


def test_hold_with_too_little_traffic_then_promote_a_copy_and_roll_back_inverted_labels(stack):
    split_traffic(stack, 200, COPY)  # the copy gets 20 requests: too few to judge
    scraped(stack)
    code, out, report = verdict(stack, COPY)
    assert code == 3 and out.splitlines()[-1].startswith("HOLD") and report["verdict"] == "HOLD"
    assert check(report, "request count")["result"] == "inconclusive"
    assert "to act on it" not in out  # nothing to patch on a hold

    for canary in (INVERTED, COPY):
        split_traffic(stack, 600, canary)  # 60 requests, 180 texts each
    scraped(stack)

    code, out, report = verdict(stack, COPY)
    assert code == 0 and report["verdict"] == "PROMOTE", out
    assert check(report, "label shares")["result"] == "pass"
    assert report["canary"]["model_version"] == "sentiment-0.3.0" and report["canary"]["requests"] >= 50
    assert '"canaryTrafficPercent":100' in report["command"]

    code, out, report = verdict(stack, INVERTED)
    assert code == 4 and report["verdict"] == "ROLL BACK", out
    labels = check(report, "label shares")
    assert labels["result"] == "fail" and float(labels["value"].split(":")[0]) > 0.5  # disjoint shares: 1.0
    assert check(report, "error ratio")["result"] == "pass" and check(report, "p99 latency")["result"] == "pass"
    assert report["command"].endswith("'{\"spec\":{\"predictor\":{\"canaryTrafficPercent\":0}}}'")
    assert f"to act on it: kubectl patch inferenceservice {ISVC} -n {NS} --type merge" in out


def p99_ms(seconds: list[float]) -> float:
    return float(np.percentile(np.array(seconds) * 1000, 99))


def test_shadow_scoring_of_inverted_labels_reports_no_agreement_and_leaves_users_untouched(stack):
    plain, shadowed, texts = stack["plain"], stack["shadowed"], stack["texts"]

    def shadowed_texts(outcome: str) -> float:
        return metric(shadowed.url, "transformer_shadow_texts_total", model_name=ISVC, outcome=outcome)

    outcomes = ("compared", "dropped", "timeout", "error")
    before = {outcome: shadowed_texts(outcome) for outcome in outcomes}
    latencies: dict[str, list[float]] = {"plain": [], "shadowed": []}
    answered: list[tuple[list[str], dict]] = []
    with httpx.Client(timeout=30) as client:
        for _ in range(SHADOWED):  # interleaved: both see the same machine load, shadow work included
            seconds, _ = post(client, plain, texts.take(2))
            latencies["plain"].append(seconds)
            batch = texts.take(2)
            seconds, answer = post(client, shadowed, batch)
            latencies["shadowed"].append(seconds)
            answered.append((batch, answer))
    # the users' answers are the primary's: same labels and scores as the primary predictor itself gives
    with httpx.Client(timeout=30) as client:
        for batch, answer in answered[::10]:
            _, direct = post(client, stack["predictors"][PRIMARY], batch)
            assert [p["label"] for p in answer["predictions"]] == [p["label"] for p in direct["predictions"]]
            assert np.allclose([p["score"] for p in answer["predictions"]], [p["score"] for p in direct["predictions"]],
                               atol=1e-6)
    plain_p99, shadowed_p99 = p99_ms(latencies["plain"]), p99_ms(latencies["shadowed"])
    print(f"p99 plain {plain_p99:.1f} ms, with shadow {shadowed_p99:.1f} ms; p50 "
          f"{np.median(latencies['plain']) * 1000:.1f} / {np.median(latencies['shadowed']) * 1000:.1f} ms")
    assert shadowed_p99 <= 2 * plain_p99 + 50, (plain_p99, shadowed_p99)

    def new(outcome: str) -> float:
        return shadowed_texts(outcome) - before[outcome]

    deadline = time.monotonic() + 30  # the last shadow calls finish after their answers
    while sum(map(new, outcomes)) < 2 * SHADOWED and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sum(map(new, outcomes)) == 2 * SHADOWED  # every miss shadowed (percent 100), each accounted for
    assert new("compared") >= SHADOWED  # a busy machine may drop some, not most
    scraped(stack)
    series = 'primary_version="sentiment-0.1.0", shadow_version="sentiment-0.2.0"'
    compared, agreed = (float(stack["prometheus"].query(f"sum(transformer_shadow_{name}_texts_total{{{series}}})")[0]
                              ["value"][1]) for name in ("compared", "agreed"))
    assert compared >= SHADOWED and agreed / compared < 0.05, (compared, agreed)  # inverted labels: no agreement
    print("\n".join(line for line in httpx.get(f"{shadowed.url}/metrics", timeout=10).text.splitlines()
                    if line.startswith("transformer_shadow_") and "_created" not in line))
    # the verdict shows the shadow's evidence (no canary traffic for that version is needed)
    _, out, report = verdict(stack, INVERTED)
    shadow = check(report, "shadow agreement sentiment-0.1.0 vs sentiment-0.2.0")
    assert shadow["result"] == "fail" and "texts compared" in shadow["rests_on"]


def test_a_saturated_or_dead_shadow_costs_users_nothing(stack, tiny_model_dir, redis, tmp_path):
    """A frozen shadow (SIGSTOP): calls time out, the rest are dropped at once, and every user gets a 200."""
    frozen = ServerProcess("predictor", ["--model_name", ISVC, "--model_dir", str(tiny_model_dir), "--backend",
                                         "onnx"], tmp_path / "frozen.log").start()
    transformer = None
    try:
        frozen.process.send_signal(signal.SIGSTOP)
        transformer = ServerProcess("transformer", [
            "--model_name", ISVC, "--predictor_host", f"127.0.0.1:{stack['predictors'][PRIMARY].http_port}",
            "--redis_url", redis.url, "--shadow_predictor_host", f"127.0.0.1:{frozen.http_port}",
            "--shadow_max_in_flight", "2", "--shadow_timeout_ms", "300"], tmp_path / "transformer.log").start()

        def send(_):
            with httpx.Client(timeout=30) as client:
                return post(client, transformer, stack["texts"].take(1))[0]

        with ThreadPoolExecutor(4) as pool:
            seconds = list(pool.map(send, range(60)))
        assert max(seconds) < 5  # none waited for the frozen shadow (its calls run out their 300 ms in the background)

        def outcome(name: str) -> float:
            return metric(transformer.url, "transformer_shadow_texts_total", model_name=ISVC, outcome=name)

        deadline = time.monotonic() + 10
        while sum(map(outcome, ("dropped", "timeout", "error"))) < 60 and time.monotonic() < deadline:
            time.sleep(0.2)  # the last shadow calls run out their deadline
        assert outcome("dropped") > 0 and outcome("timeout") + outcome("error") > 0 and outcome("compared") == 0
        assert sum(map(outcome, ("dropped", "timeout", "error"))) == 60  # every shadowed text accounted for
        assert metric(transformer.url, "text_classifier_requests_total", model_name=ISVC, status="200") == 60
    finally:
        if transformer is not None:
            transformer.stop()
        frozen.process.send_signal(signal.SIGCONT)  # so that it can stop
        frozen.stop()
