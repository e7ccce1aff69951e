"""Ours beside the peers: the same model, client and cases, one server at a time, alternating.

For each server (ours first, then each peer; every other round the other way round): spawn to ready
(cold start), one request to see what it answers (label names and scores, the top
label only, or class indices), 1 client in a closed loop (latency), 16 clients
(uncached saturation), peak RSS over all of it; then more spawn-to-ready starts for
the cold-start median (the first start of a peer may build its caches: reported
apart). Ratios are against ours in the same run: on a shared machine only those mean much.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.loadgen import PAYLOADS
from bench.peers import PEERS, Peer, install
from harness.processes import ServerProcess
from predictor.backends import DEFAULT_BACKEND

LABELS = ("NEGATIVE", "POSITIVE")  # the bench model's id2label (predictor.demo_model)
PROBE = "a gripping, beautifully acted film"
# KServe's huggingfaceserver is not on PyPI (it ships in KServe's container image): the
# issue's figures, measured elsewhere against our onnx-int8 predictor, quoted as they are.
KSERVE_HF_QUOTED = {"rps_ratio": 0.17, "p50_slower": 2.8, "cold_slower": 3.8, "rss_ratio": 2.5,
                    "answer": "class indices only"}


def answer_kind(body: str) -> str:
    named = [label for label in LABELS if label in body]
    if len(named) == len(LABELS):
        return "labels + scores"
    return "top label only" if named else "no label names"


def measure(run, name: str, start: Callable[[], ServerProcess], infer_path: str, payload: str,
            cold_starts: int) -> dict:
    server = start()
    first_start = server.cold_start_s
    url = server.url + infer_path
    try:
        probe = httpx.post(url, json=PAYLOADS[payload](PROBE, "bench"), timeout=60)
        common = ("--payload", payload, "--model", "bench", "--mode", "closed", "--concurrency")
        one = run.load(url, f"peers-{name}-1", *common, "1")
        many = run.load(url, f"peers-{name}-16", *common, "16")
    finally:
        server.stop()
    starts = []
    for _ in range(cold_starts):
        again = start()
        starts.append(again.cold_start_s)
        again.stop()
    return {"first_start_s": round(first_start, 2), "cold_start_s": round(statistics.median(starts), 2),
            "p50_1_ms": one["p50_ms"], "p99_1_ms": one["p99_ms"], "rps_16": many["rps"], "p99_16_ms": many["p99_ms"],
            "errors": one["errors"] + many["errors"], "statuses": {**one["statuses"], **many["statuses"]},
            "peak_rss_mb": round(server.peak_rss_mb), "probe_status": probe.status_code,
            "answer": answer_kind(probe.text) if probe.status_code == 200 else f"HTTP {probe.status_code}",
            "probe": probe.text[:300]}


def _peer_starter(run, peer: Peer, model_dir: Path, cache: Path) -> tuple[Callable[[], ServerProcess], Path]:
    install(peer.venv)
    work = cache / "peers" / peer.name
    work.mkdir(parents=True, exist_ok=True)
    served = peer.prepare(peer, model_dir, work)
    return (lambda: peer.server(served, work, run.out / f"peer-{peer.name}.log").start(ready_timeout_s=600)), served


def compare(run, model_dir: Path, cache: Path, names: list[str], rounds: int = 1, cold_starts: int = 3,
            variants: dict[str, list[str]] | None = None) -> dict:
    """``{server: {round figures..., "rounds": [...]}}`` for ours and each named peer, plus the ratios.

    ``variants``: our predictor again with other flags (name -> flags), measured in the same rounds as
    ours, so that a setting's A/B sees the same background load (``--variants`` of bench.run).
    """
    servers: dict[str, tuple] = {"ours": (lambda: run.predictor(model_dir), "/v1/models/bench:predict", "instances")}
    for name, flags in (variants or {}).items():
        servers[name] = ((lambda flags=flags: run.predictor(model_dir, DEFAULT_BACKEND, *flags)),
                         "/v1/models/bench:predict", "instances")
    failed: dict[str, str] = {}
    for name in names:
        peer = PEERS[name]
        try:
            started = time.perf_counter()
            starter, _ = _peer_starter(run, peer, model_dir, cache)
            print(f"  {name}: installed and prepared in {time.perf_counter() - started:.0f} s", flush=True)
            servers[name] = (starter, peer.infer_path, peer.payload)
        except Exception as exc:  # noqa: BLE001  a peer that cannot run is a finding, not a crash
            failed[name] = f"{type(exc).__name__}: {str(exc)[-800:]}"
            print(f"  {name}: FAILED to install or prepare: {failed[name]}", flush=True)
    figures: dict[str, list[dict]] = {name: [] for name in servers}
    for round_ in range(rounds):
        # every other round in reverse order (A B, B A, ...): a load that rises or falls during the run
        # then weighs on both sides alike
        for name, (starter, path, payload) in (list(servers.items()) if round_ % 2 == 0 else
                                               list(servers.items())[::-1]):
            print(f"peers round {round_ + 1}: {name}", flush=True)
            try:
                figures[name].append(measure(run, name, starter, path, payload, cold_starts))
                print(f"  {name}: {figures[name][-1]}", flush=True)  # each server's figures as soon as they exist
            except Exception as exc:  # noqa: BLE001
                failed[name] = f"{type(exc).__name__}: {str(exc)[-800:]}"
                print(f"  {name}: FAILED: {failed[name]}", flush=True)
    table = {name: summarize(rows) for name, rows in figures.items() if rows}
    ours = table.get("ours")
    for name, row in table.items():
        if ours and name != "ours":
            row["ratios"] = {"ours_rps_over_peer": _ratio(ours["rps_16"], row["rps_16"]),
                             "peer_p50_over_ours": _ratio(row["p50_1_ms"], ours["p50_1_ms"]),
                             "peer_cold_over_ours": _ratio(row["cold_start_s"], ours["cold_start_s"]),
                             "peer_rss_over_ours": _ratio(row["peak_rss_mb"], ours["peak_rss_mb"])}
    return {"servers": table, "failed": failed, "rounds": rounds,
            "described": {name: PEERS[name].describe for name in names} | {
                name: f"our predictor with {' '.join(flags)}" for name, flags in (variants or {}).items()}, "kserve_hf_quoted": KSERVE_HF_QUOTED}


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("nan")


def summarize(rows: list[dict]) -> dict:
    """Medians over rounds (one round: its figures), every round kept."""
    keys = ("first_start_s", "cold_start_s", "p50_1_ms", "p99_1_ms", "rps_16", "p99_16_ms", "peak_rss_mb")
    out = {key: round(statistics.median(row[key] for row in rows), 2) for key in keys}
    out |= {"errors": sum(row["errors"] for row in rows), "answer": rows[0]["answer"], "probe": rows[0]["probe"],
            "statuses": rows[-1]["statuses"], "rounds": rows}
    return out


def markdown(results: dict) -> list[str]:
    table, failed = results["servers"], results["failed"]
    if "ours" not in table:
        return ["", f"Peers: ours did not run ({failed.get('ours')})."]
    names = [name for name in table if name != "ours"]
    cell = lambda name, key, unit, ratio_key, better: (  # noqa: E731
        f"{table[name][key]}{unit}" if name == "ours" else
        f"{table[name][key]}{unit} ({table[name]['ratios'][ratio_key]}x {better})")
    lines = ["", "| case | ours (`onnx-int8` predictor) | " + " | ".join(f"{n}" for n in names) +
             " | KServe huggingfaceserver (quoted, not run) |", "|---|---|" + "---|" * len(names) + "---|"]
    q = results["kserve_hf_quoted"]
    rows = [("uncached req/s, 16 clients (ours / peer)", "rps_16", "", "ours_rps_over_peer", "",
             f"{round(1 / q['rps_ratio'], 1)}x"),
            ("1-client p50 (peer / ours)", "p50_1_ms", " ms", "peer_p50_over_ours", "", f"{q['p50_slower']}x"),
            ("cold start, spawn to ready (peer / ours)", "cold_start_s", " s", "peer_cold_over_ours", "",
             f"{q['cold_slower']}x"),
            ("peak RSS (peer / ours)", "peak_rss_mb", " MB", "peer_rss_over_ours", "", f"{q['rss_ratio']}x")]
    for label, key, unit, ratio_key, better, quoted in rows:
        lines.append(f"| {label} | " + " | ".join(cell(n, key, unit, ratio_key, better) for n in ["ours", *names])
                     + f" | {quoted} |")
    lines.append("| answers with | " + " | ".join(table[n]["answer"] for n in ["ours", *names]) + f" | {q['answer']} |")
    lines.append("| errors | " + " | ".join(str(table[n]["errors"]) for n in ["ours", *names]) + " | |")
    lines.append("| first start (builds caches) | " + " | ".join(f"{table[n]['first_start_s']} s"
                                                               for n in ["ours", *names]) + " | |")
    for name, error in failed.items():
        lines.append(f"\n{name} failed: `{error[-400:]}`")
    return lines
