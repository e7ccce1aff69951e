"""Fit the temperature and write the model card's figures: ``python -m training.calibrate``.

    python -m training.calibrate --model_dir predictor/bundled/sentiment --holdout_of ../shared/data/sst2/train.tsv
    python -m training.calibrate --model_dir predictor/bundled/emotion --validation_of ../shared/data/emotion/validation.csv

The temperature is fitted on the calibration slice recorded in training.json (rows
never trained on, kept apart from the test slice), on the logits of the served
backend, and stored in config.json, where every backend's softmax reads it. Then each
backend is measured on the test slice and its hard sub-slices, and training.json and
README.md get the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from predictor.backends import DEFAULT_BACKEND
from training.card import machine, model_card
from training.evaluate import TRAINING_RECORD, add_slice_source, logits_of, quality_report, recorded_slices
from training.quality import ECE_BINS, fit_temperature
from training.record import add_decisions

CONFIG = "config.json"


def set_temperature(model_dir: Path, temperature: float) -> None:
    path = Path(model_dir) / CONFIG
    config = json.loads(path.read_text())
    config["temperature"] = round(float(temperature), 4)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def calibrate(model_dir: Path, calibration, test, backends: list[str], description: str, command: str,
              calibration_description: str, cache_dir: Path | None = None) -> dict:
    served = backends[0]
    set_temperature(model_dir, 1.0)  # fit on the raw logits
    logits, _ = logits_of(model_dir, calibration, cache_dir, served)
    temperature = fit_temperature(logits, np.array([e.label for e in calibration]))
    set_temperature(model_dir, temperature)
    evaluation = {
        "served_backend": served,
        "test_description": description,
        "calibration": {"temperature": round(temperature, 4), "rows": len(calibration), "bins": ECE_BINS,
                        "backend": served, "description": calibration_description},
        "backends": {backend: quality_report(model_dir, test, cache_dir, backend) for backend in backends},
        "command": command,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    record_path = Path(model_dir) / TRAINING_RECORD
    record = json.loads(record_path.read_text())
    record["evaluation"] = evaluation
    add_decisions(record, temperature=["calibration"])  # T is fitted on the calibration slice alone
    record["ci_sample"] = {  # what tests/integration/test_bundled_models.py holds the served model to
        "rows": len(test), "accuracy": evaluation["backends"][served]["all"]["accuracy"],
        "description": f"the test slice ({description}), served by the predictor with its default backend {served}",
        "command": "pytest tests/integration/test_bundled_models.py",
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    (Path(model_dir) / "README.md").write_text(model_card(record))
    return evaluation


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", type=Path, required=True)
    add_slice_source(parser)
    parser.add_argument("--backends", default=f"{DEFAULT_BACKEND},onnx,torch",
                        help="comma-separated; the first is the served one, on whose logits T is fitted")
    parser.add_argument("--test_description", required=True, help="what the test slice is, for the card")
    parser.add_argument("--calibration_description", required=True, help="what the calibration slice is")
    parser.add_argument("--cache_dir", type=Path, default=None)
    args = parser.parse_args()
    calibration, test = recorded_slices(args)
    command = "python -m training.calibrate " + shlex.join(sys.argv[1:])
    evaluation = calibrate(args.model_dir, calibration, test, args.backends.split(","), args.test_description,
                           command, args.calibration_description, args.cache_dir)
    summary = {backend: {name: result["accuracy"] for name, result in report.items() if isinstance(result, dict)}
               for backend, report in evaluation["backends"].items()}
    print(json.dumps({"temperature": evaluation["calibration"]["temperature"], "accuracy": summary,
                      "pid": os.getpid()}, indent=1))


if __name__ == "__main__":
    main()
