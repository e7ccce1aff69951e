"""The peer table's pieces that need no peer installed: the lock files, the answer check, the table."""

import re

import pytest

from bench.peers import HERE, PEERS
from bench.peers.compare import answer_kind, markdown, summarize


@pytest.mark.parametrize("venv", sorted({peer.venv for peer in PEERS.values()}))
def test_each_peer_lock_pins_everything_but_torch_and_no_cuda(venv):
    lines = [line for line in (HERE / f"{venv}.lock").read_text().splitlines() if line and not line.startswith("#")]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^=\s]+", line) for line in lines), lines
    names = {line.split("==")[0].lower() for line in lines}
    assert "torch" not in names  # installed first, apart, and held by a constraints file
    assert not {name for name in names if name.startswith("nvidia") or "cuda" in name}


def test_answer_kind_tells_labels_from_top_label_and_indices():
    assert answer_kind('[{"label": "POSITIVE", "score": 0.9}, {"label": "NEGATIVE", "score": 0.1}]') == "labels + scores"
    assert answer_kind('{"outputs": [{"data": ["{\\"label\\": \\"POSITIVE\\"}"]}]}') == "top label only"
    assert answer_kind('{"predictions": [1]}') == "no label names"


def _round(rps: float, p50: float) -> dict:
    return {"first_start_s": 2.0, "cold_start_s": 1.5, "p50_1_ms": p50, "p99_1_ms": p50 * 2, "rps_16": rps,
            "p99_16_ms": 100.0, "peak_rss_mb": 300, "errors": 0, "statuses": {"200": 10}, "answer": "labels + scores",
            "probe": "{}"}


def test_the_table_has_a_column_per_peer_with_ratios_against_ours():
    servers = {"ours": summarize([_round(200.0, 5.0)]), "infinity-optimum": summarize([_round(100.0, 10.0)])}
    servers["infinity-optimum"]["ratios"] = {"ours_rps_over_peer": 2.0, "peer_p50_over_ours": 2.0,
                                             "peer_cold_over_ours": 1.0, "peer_rss_over_ours": 1.0}
    lines = markdown({"servers": servers, "failed": {"mlserver": "RuntimeError: boom"}, "rounds": 1,
                      "described": {}, "kserve_hf_quoted": {"rps_ratio": 0.17, "p50_slower": 2.8, "cold_slower": 3.8,
                                                            "rss_ratio": 2.5, "answer": "class indices only"}})
    header = next(line for line in lines if line.startswith("| case"))
    assert "infinity-optimum" in header and "KServe huggingfaceserver" in header
    rps_row = next(line for line in lines if line.startswith("| uncached"))
    assert "200.0" in rps_row and "100.0 (2.0x" in rps_row
    assert any("mlserver failed" in line and "boom" in line for line in lines)
