"""The soak's pass/fail gates (load/soak.py), on made-up minutes."""

from load.soak import gates


def minute(n: int, p99: float = 40.0, errors: int = 0, predictor: float = 800.0, transformer: float = 200.0) -> dict:
    return {"minute": n, "p99_ms": p99, "errors": errors, "predictor_rss_mb": predictor,
            "transformer_rss_mb": transformer}


def test_a_steady_run_passes():
    assert gates([minute(n, p99=40 + n) for n in range(1, 11)], 0.10) == []


def test_errors_an_unstable_p99_and_memory_growth_fail():
    minutes = [minute(n) for n in range(1, 11)]
    minutes[4] = minute(5, errors=2)
    minutes[7] = minute(8, p99=200)
    minutes[9] = minute(10, transformer=230)
    failures = gates(minutes, 0.10)
    assert len(failures) == 3
    assert "2 errors" in failures[0] and "minute 8" in failures[1] and "transformer RSS grew 15.0%" in failures[2]
