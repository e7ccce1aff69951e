"""Run the locust suite headless with an SLO gate: ``python load/run.py --host URL``.

Writes into --out (load/results/<time>): locust's CSVs (stats, failures, history),
its HTML report, and latency.png (p50/p95/p99 and throughput over time). Exits 1
when the SLO is broken: aggregated p99 above --slo-p99-ms (2000) or an error rate
above --slo-error-rate (0.005); 2 when locust itself failed to run.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
USER_CLASSES = {"v1": "V1User", "v2": "V2User", "grpc": "GrpcUser"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python load/run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--host", default="http://127.0.0.1:8080", help="REST base URL (the transformer of `make serve`)")
    add("--grpc-host", default="127.0.0.1:8081", help="V2 gRPC endpoint")
    add("--model", default="sentiment")
    add("--protocols", default="v1,v2,grpc", help="comma-separated: v1, v2, grpc")
    add("--cache-rate", type=float, default=0.95)
    add("--batch-sizes", default="1,1,1,1,2,4,8")
    add("--peak-users", type=int, default=10)
    add("--ramp-s", type=float, default=30)
    add("--hold-s", type=float, default=120)
    add("--slo-p99-ms", type=float, default=2000)
    add("--slo-error-rate", type=float, default=0.005)
    add("--out", type=Path, default=None, help="results directory (default load/results/<time>)")
    return parser


def aggregated(stats_csv: Path) -> dict:
    with stats_csv.open() as handle:
        return next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")


def plot(history_csv: Path, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with history_csv.open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["Name"] == "Aggregated" and r["99%"] not in ("N/A", "")]
    start = int(rows[0]["Timestamp"]) if rows else 0
    seconds = [int(r["Timestamp"]) - start for r in rows]
    figure, latency = plt.subplots(figsize=(10, 5))
    for column, style in (("50%", "-"), ("95%", "--"), ("99%", ":")):
        latency.plot(seconds, [float(r[column]) for r in rows], style, label=f"p{column.rstrip('%')}")
    latency.set_xlabel("seconds")
    latency.set_ylabel("latency (ms)")
    throughput = latency.twinx()
    throughput.plot(seconds, [float(r["Requests/s"]) for r in rows], color="grey", alpha=0.5, label="requests/s")
    throughput.set_ylabel("requests/s")
    lines = latency.get_legend_handles_labels()[0] + throughput.get_legend_handles_labels()[0]
    labels = latency.get_legend_handles_labels()[1] + throughput.get_legend_handles_labels()[1]
    latency.legend(lines, labels, loc="upper left")
    latency.set_title("text-classifier load test: latency percentiles and throughput")
    figure.tight_layout()
    figure.savefig(out_png, dpi=100)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or HERE / "results" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    classes = [USER_CLASSES[p.strip()] for p in args.protocols.split(",") if p.strip()]
    command = [
        sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless", "--host", args.host,
        "--csv", str(out / "stats"), "--csv-full-history", "--html", str(out / "report.html"), "--only-summary",
        "--model", args.model, "--grpc-host", args.grpc_host, "--cache-rate", str(args.cache_rate),
        "--batch-sizes", args.batch_sizes, "--peak-users", str(args.peak_users), "--ramp-s", str(args.ramp_s),
        "--hold-s", str(args.hold_s), "--exit-code-on-error", "0", *classes,
    ]
    # The shape ends the test; the margin covers start-up and the final report. A locust
    # that has written its report but not exited is stopped rather than waited for.
    deadline = 2 * args.ramp_s + args.hold_s + 120  # locust's start-up alone can take a minute on a loaded machine
    try:
        returncode = subprocess.run(command, check=False, timeout=deadline).returncode
    except subprocess.TimeoutExpired:
        returncode = 0 if (out / "report.html").is_file() else 2
    if returncode != 0 or not (out / "stats_stats.csv").is_file():
        print("load: locust did not complete", file=sys.stderr)
        return 2
    totals = aggregated(out / "stats_stats.csv")
    requests, failures = int(totals["Request Count"]), int(totals["Failure Count"])
    p50, p99 = float(totals["50%"]), float(totals["99%"])
    error_rate = failures / requests if requests else 1.0
    plot(out / "stats_stats_history.csv", out / "latency.png")
    print(f"load: {requests} requests, {failures} failed ({error_rate:.2%}), {float(totals['Requests/s']):.1f} req/s, "
          f"p50 {p50:.0f} ms, p99 {p99:.0f} ms -> {out}")
    broken = []
    if p99 > args.slo_p99_ms:
        broken.append(f"p99 {p99:.0f} ms > {args.slo_p99_ms:g} ms")
    if error_rate > args.slo_error_rate:
        broken.append(f"error rate {error_rate:.2%} > {args.slo_error_rate:.2%}")
    if requests == 0:
        broken.append("no request was made")
    if broken:
        print("load: SLO BROKEN: " + "; ".join(broken), file=sys.stderr)
        return 1
    print("load: SLO met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
