"""``python -m bench.answers_cost``: CPU time of the per-version answer metrics (runtime/answers.py) per request.

A load test on a shared 2-core machine cannot resolve a cost of a few microseconds
(BENCHMARKS.md, "Label metrics"); process CPU time of the call itself can. Prints the
CPU microseconds of ``answers.observe`` per request of 1, 32 and 1000 texts, and of
the naive one-by-one alternative. Run it with ``PROMETHEUS_MULTIPROC_DIR`` set to an
empty directory for the multiprocess mode the servers use.
"""

import time

import numpy as np

from runtime import answers

LABELS = ["NEGATIVE", "POSITIVE"]


def cpu_us(call, repeats: int) -> float:
    started = time.process_time()
    for _ in range(repeats):
        call()
    return (time.process_time() - started) / repeats * 1e6


def main() -> None:
    for n in (1, 32, 1000):
        probs = np.random.default_rng(0).dirichlet([1, 1], size=n).astype(np.float32)
        repeats = 20_000 if n < 1000 else 2_000
        ours = cpu_us(lambda probs=probs: answers.observe("m", "v", LABELS, probs), repeats)
        counters = [answers.ANSWERS.labels("m", "w", label) for label in LABELS]
        histogram = answers.CONFIDENCE.labels("m", "w")

        def one_by_one(probs=probs, counters=counters, histogram=histogram):
            for row in probs:
                best = int(row.argmax())
                counters[best].inc()
                histogram.observe(float(row[best]))

        naive = cpu_us(one_by_one, repeats if n < 1000 else 200)
        print(f"{n:5d} texts per request: {ours:7.1f} us CPU (one by one: {naive:8.1f} us)")


if __name__ == "__main__":
    main()
