"""Accuracy and calibration of a model directory on labelled text: ``python -m training.evaluate``.

    python -m training.evaluate --model_dir predictor/bundled/sentiment --holdout_of ../shared/data/sst2/train.tsv
    python -m training.evaluate --model_dir predictor/bundled/emotion --file ../shared/data/emotion/validation.csv
    python -m training.evaluate --model_dir predictor/bundled/sentiment --data ../shared/data --report

``--holdout_of`` rebuilds the held-out test slice recorded in the model's training.json
(the same rows its model card reports), so nothing from the data is stored here;
``--data`` finds the model's files in a data directory laid out like ../shared/data and
``--report`` prints the model card's figures (per-class precision/recall/F1, confusion
matrix, ECE before and after the temperature) for the test slice and its hard sub-slices.
It refuses to print a test figure for a model whose training record says the test slice
took part in a choice (training/record.py): that figure would not estimate new text.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from modelbuild.layout import TRAINING_RECORD
from predictor.backends import BACKENDS
from predictor.classifier import build_classifier
from predictor.settings import PredictorSettings
from training.data import Example, HoldOut, calibration_split, read_labelled, split_three
from training.record import refusal, standard_error


def training_record(model_dir: Path) -> dict:
    return json.loads((Path(model_dir) / TRAINING_RECORD).read_text())


def holdout_slices(model_dir: Path, train_file: Path) -> tuple[list[Example], list[Example]]:
    """(calibration, test) held out of ``train_file`` by the settings in the model's training.json."""
    holdout = HoldOut(**training_record(model_dir)["data"]["holdout"])
    _, calibration, test = split_three(read_labelled(train_file), holdout)
    return calibration, test


def validation_slices(model_dir: Path, validation_file: Path) -> tuple[list[Example], list[Example]]:
    """(calibration, test) of a separate validation file, split as the model's training.json says."""
    data = training_record(model_dir)["data"]
    return calibration_split(read_labelled(validation_file), data.get("calibration_size", 0), data.get("seed", 13))


def holdout_examples(model_dir: Path, train_file: Path) -> list[Example]:
    return holdout_slices(model_dir, train_file)[1]


def logits_of(model_dir: Path, examples: list[Example], cache_dir: Path | None = None,
              backend: str = "torch") -> tuple[np.ndarray, float]:
    """(logits, the model's temperature) of ``examples`` from ``backend``."""
    cache = {"model_cache_dir": cache_dir} if cache_dir else {}  # else the setting's default
    classifier = build_classifier(PredictorSettings(model_dir=model_dir, backend=backend, **cache), model_dir.name)
    return classifier.logits([e.text for e in examples]), classifier.temperature


def accuracy_of(model_dir: Path, examples: list[Example], cache_dir: Path | None = None, backend: str = "torch") -> float:
    logits, _ = logits_of(model_dir, examples, cache_dir, backend)
    return float((logits.argmax(axis=1) == [e.label for e in examples]).mean())


def quality_report(model_dir: Path, examples: list[Example], cache_dir: Path | None = None,
                   backend: str = "torch") -> dict:
    """The model card's figures for ``examples`` and each of their hard sub-slices."""
    from training.quality import hard_slices, report

    labels = training_record(model_dir)["labels"]
    logits, temperature = logits_of(model_dir, examples, cache_dir, backend)
    truth = np.array([e.label for e in examples])
    out = {"backend": backend, "temperature": temperature, "all": report(logits, truth, labels, temperature)}
    for name, rows in hard_slices(examples).items():
        if rows:
            out[name] = report(logits[rows], truth[rows], labels, temperature)
    for result in out.values():  # no accuracy without its uncertainty
        if isinstance(result, dict):
            result["standard_error"] = round(standard_error(result["accuracy"], result["rows"]), 4)
    return out


def add_slice_source(parser: argparse.ArgumentParser):
    """--holdout_of / --validation_of: where the slices recorded in a model's training.json come from."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--holdout_of", type=Path, help="the training file the model's held-out slices come from")
    source.add_argument("--validation_of", type=Path, help="the validation file the model's slices come from")
    return source


def recorded_slices(args: argparse.Namespace) -> tuple[list[Example], list[Example]]:
    """(calibration, test) for ``args.model_dir`` from the file ``add_slice_source`` named."""
    if args.holdout_of:
        return holdout_slices(args.model_dir, args.holdout_of)
    return validation_slices(args.model_dir, args.validation_of)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", type=Path, required=True)
    source = add_slice_source(parser)
    source.add_argument("--file", type=Path, help="labelled CSV/TSV (text, label)")
    parser.add_argument("--slice", choices=["test", "calibration"], default="test")
    parser.add_argument("--limit", type=int, default=0, help="only the first N rows")
    parser.add_argument("--backend", choices=BACKENDS, default="torch", help="the inference backend to measure")
    parser.add_argument("--report", action="store_true", help="per-class figures, confusion matrix, ECE, hard slices")
    args = parser.parse_args(argv)
    if not args.file and args.slice == "test" and (reason := refusal(training_record(args.model_dir))):
        sys.exit(f"training.evaluate: {reason}")
    if args.file:
        examples = read_labelled(args.file)
    else:
        calibration, test = recorded_slices(args)
        examples = test if args.slice == "test" else calibration
    examples = examples[: args.limit] if args.limit else examples
    if args.report:
        print(json.dumps(quality_report(args.model_dir, examples, backend=args.backend), indent=1))
        return
    accuracy = accuracy_of(args.model_dir, examples, backend=args.backend)
    print(json.dumps({"rows": len(examples), "backend": args.backend, "accuracy": round(accuracy, 4),
                      "standard_error": round(standard_error(accuracy, len(examples)), 4)}))


if __name__ == "__main__":
    main()
