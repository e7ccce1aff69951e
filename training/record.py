"""Which rows each decision saw, and how uncertain a figure is: ``python -m training.record``.

A test figure estimates accuracy on new text only if the test rows took no part in any
choice: training, selection or early stopping, a soup or ensemble choice, the temperature,
a threshold. A choice made with the test slice in view (even by a person, reading printed
figures) turns the figure into the best of several tries, optimistic by an unknown amount.
So training.json keeps ``"decisions"``: for each decision, the slices it saw (``train``,
``calibration``, ``test``). training.train, training.soup and training.calibrate write
their own; a choice made by hand is recorded with this module's command line::

    python -m training.record --model_dir predictor/bundled/sentiment --decision model_choice \\
        --saw calibration,test --note "kept over two other soups after their test figures were known"
    python -m training.card --model_dir predictor/bundled/sentiment      # the card, re-rendered from the record

``python -m training.evaluate`` refuses to print a test figure for such a model, and the
model card marks it. Every accuracy on the card carries its standard error.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from modelbuild.layout import TRAINING_RECORD

SLICES = ("train", "calibration", "test")
# training; selection (the epoch or checkpoint kept); model_choice (soup, ensemble, which run ships);
# temperature; threshold. A distilled model also inherits its teachers' decisions as "teacher <decision>".
DECISIONS = ("training", "selection", "model_choice", "temperature", "threshold")
Z95 = 1.959964


def standard_error(accuracy: float, rows: int) -> float:
    """One binomial standard error of an accuracy measured on ``rows`` independent rows."""
    if rows <= 0:
        return float("nan")
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / rows)


def interval95(accuracy: float, rows: int) -> tuple[float, float]:
    """Wilson's 95% score interval: unlike ±1.96 SE it stays inside [0, 1] near 100%."""
    if rows <= 0:
        return float("nan"), float("nan")
    z2 = Z95 * Z95
    centre = (accuracy + z2 / (2 * rows)) / (1 + z2 / rows)
    half = Z95 * math.sqrt(accuracy * (1 - accuracy) / rows + z2 / (4 * rows * rows)) / (1 + z2 / rows)
    return max(0.0, centre - half), min(1.0, centre + half)


def with_error(accuracy: float, rows: int) -> str:
    """``0.9130 ± 0.0121``: the figure and one standard error, as every card table shows them."""
    return f"{accuracy:.4f} ± {standard_error(accuracy, rows):.4f}"


def with_interval(accuracy: float, rows: int) -> str:
    low, high = interval95(accuracy, rows)
    return f"{with_error(accuracy, rows)} (one standard error; 95% interval {low:.3f}–{high:.3f}, {rows} rows)"


def holds(claimed: float, rows: int, measured: float) -> bool:
    """The CI rule: a re-evaluation of the same rows stays within one standard error of the card's claim.

    Either way: a served model far above its card is as much a different model as one far below."""
    return abs(measured - claimed) <= standard_error(claimed, rows) + 1e-9


def decisions(record: dict) -> dict[str, list[str]]:
    return record.get("decisions") or {}


def add_decisions(record: dict, **seen: list[str]) -> dict:
    """``record`` with each decision's slices joined to what it already lists (a later stage adds, never erases)."""
    merged = {name: list(slices) for name, slices in decisions(record).items()}
    for name, slices in seen.items():
        unknown = set(slices) - set(SLICES)
        if unknown:
            raise ValueError(f"unknown slice(s) {sorted(unknown)}: a decision sees some of {SLICES}")
        merged[name] = [s for s in SLICES if s in set(merged.get(name, [])) | set(slices)]
    record["decisions"] = merged
    return record


def inherit(record: dict, teacher: dict) -> dict:
    """A student's soft targets carry every choice its teacher made: record them as ``teacher <decision>``."""
    return add_decisions(record, **{f"teacher {name}": slices for name, slices in decisions(teacher).items()})


def saw_test(record: dict) -> list[str]:
    """The decisions that saw the test slice (empty when none did, or nothing was recorded)."""
    return [name for name, slices in decisions(record).items() if "test" in slices]


def refusal(record: dict) -> str | None:
    """Why no "test" figure may be printed for this model, or None when its test rows chose nothing."""
    seen = saw_test(record)
    if not seen:
        return None
    notes = "; ".join(record.get("decision_notes", {}).get(name, "") for name in seen).strip("; ")
    return (f"refusing to print a test figure: this model's training record says its test slice took part in "
            f"{', '.join(seen)}{' (' + notes + ')' if notes else ''}, so any accuracy on it is the best of several "
            f"tries, not an estimate for new text. Measure the calibration slice (--slice calibration) or rows "
            f"no decision saw (--file).")


def record_decision(model_dir: Path, decision: str, saw: list[str], note: str = "") -> dict:
    path = Path(model_dir) / TRAINING_RECORD
    record = add_decisions(json.loads(path.read_text()), **{decision: saw})
    if note:
        record.setdefault("decision_notes", {})[decision] = note
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.record", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", type=Path, required=True)
    parser.add_argument("--decision", required=True, choices=DECISIONS)
    parser.add_argument("--saw", required=True, help=f"comma-separated slices the decision saw: {', '.join(SLICES)}")
    parser.add_argument("--note", default="", help="what was decided and how, for the card")
    args = parser.parse_args(argv)
    try:
        record = record_decision(args.model_dir, args.decision, args.saw.split(","), args.note)
    except ValueError as error:
        parser.error(str(error))
    print(json.dumps({"decisions": record["decisions"], "saw_test": saw_test(record)}))


if __name__ == "__main__":
    main()
