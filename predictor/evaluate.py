"""Accuracy of a model directory on labelled text: ``python -m predictor.evaluate``.

    python -m predictor.evaluate --model_dir predictor/bundled/sentiment --holdout_of ../shared/data/sst2/train.tsv
    python -m predictor.evaluate --model_dir predictor/bundled/emotion --file ../shared/data/emotion/validation.csv --limit 500

``--holdout_of`` rebuilds the held-out slice recorded in the model's training.json
(the same rows its model card reports), so nothing from the data is stored here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from predictor.backends import BACKENDS
from predictor.classifier import build_classifier
from predictor.data import Example, HoldOut, read_labelled, split_holdout
from predictor.layout import TRAINING_RECORD
from predictor.settings import PredictorSettings


def holdout_examples(model_dir: Path, train_file: Path) -> list[Example]:
    record = json.loads((Path(model_dir) / TRAINING_RECORD).read_text())
    return split_holdout(read_labelled(train_file), HoldOut(**record["data"]["holdout"]))[1]


def accuracy_of(model_dir: Path, examples: list[Example], cache_dir: Path | None = None, backend: str = "torch") -> float:
    cache = {"model_cache_dir": cache_dir} if cache_dir else {}  # else the setting's default
    classifier = build_classifier(PredictorSettings(model_dir=model_dir, backend=backend, **cache), model_dir.name)
    probs = classifier.classify([e.text for e in examples])
    return float((probs.argmax(axis=1) == [e.label for e in examples]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m predictor.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", type=Path, required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, help="labelled CSV/TSV (text, label)")
    source.add_argument("--holdout_of", type=Path, help="the training file whose recorded held-out slice to use")
    parser.add_argument("--limit", type=int, default=0, help="only the first N rows")
    parser.add_argument("--backend", choices=BACKENDS, default="torch", help="the inference backend to measure")
    args = parser.parse_args()
    examples = holdout_examples(args.model_dir, args.holdout_of) if args.holdout_of else read_labelled(args.file)
    examples = examples[: args.limit] if args.limit else examples
    accuracy = accuracy_of(args.model_dir, examples, backend=args.backend)
    print(json.dumps({"rows": len(examples), "backend": args.backend, "accuracy": round(accuracy, 4)}))


if __name__ == "__main__":
    main()
