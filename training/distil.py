"""Teachers for ``python -m training.train --teachers``: their soft targets and their figures.

A teacher's mean softmax on every training row is a soft target beside the label
(``--distill_weight``). A teacher may be another architecture with another vocabulary
(all-mpnet-base-v2 teaching the MiniLM student, docs/teacher.md): each teacher reads the
training texts through its own tokenizer, at its own max length, and only its
probabilities reach the student. What the teacher chose with (its decisions) and how
well it did go into the student's record, so the student's card shows both.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from modelbuild.layout import TRAINING_RECORD
from training.model import predict_logits
from training.record import inherit


def teacher_record(teacher: Path) -> dict:
    path = Path(teacher) / TRAINING_RECORD
    return json.loads(path.read_text()) if path.is_file() else {}


def teacher_probs(teachers: list[Path], texts: list[str], labels: list[str], max_length: int,
                  device: str = "cpu") -> torch.Tensor:
    """The teachers' mean softmax over ``texts``, each tokenizing with its own tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    total = None
    for teacher in teachers:
        started = time.perf_counter()
        model = AutoModelForSequenceClassification.from_pretrained(teacher).to(device)
        theirs = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if theirs != labels:  # a teacher with other labels, or another order, would teach the wrong classes
            raise ValueError(f"teacher {teacher} has labels {theirs}; the student's are {labels}")
        tokenizer = AutoTokenizer.from_pretrained(teacher)
        length = teacher_record(teacher).get("max_length", max_length)
        ids = tokenizer(texts, truncation=True, max_length=length)["input_ids"]
        probs = torch.softmax(torch.from_numpy(predict_logits(model, ids, tokenizer.pad_token_id)), -1)
        total = probs if total is None else total + probs
        print(f"teacher {teacher}: {len(texts)} rows in {time.perf_counter() - started:.0f} s", flush=True)
    return total / len(teachers)


def teacher_figures(teacher: Path) -> dict:
    """The teacher's own accuracy on the slices its record names (they must be the student's slices too)."""
    record = teacher_record(teacher)
    slices = {}
    for name, key, rows in (("calibration", "calibration_accuracy", "calibration_examples"),
                            ("test", "validation_accuracy", "validation_examples")):
        selected = record.get("selected_epoch")
        epoch = next((e for e in record.get("epochs", []) if e["epoch"] == selected), None)
        accuracy = record.get(key) if name == "test" else (epoch or (record.get("epochs") or [{}])[-1]).get(key)
        if accuracy is not None and record.get(rows):
            slices[name] = {"accuracy": accuracy, "rows": record[rows]}
    return {"path": str(teacher), "base_model": record.get("base_model", "unrecorded"), "slices": slices,
            "data": record.get("data")}


def leaking_teacher(teachers: list[Path], data_record: dict) -> str | None:
    """Why a teacher may not teach: one held out other rows may have trained on this model's test slice."""
    for teacher in teachers:
        if teacher_record(teacher).get("data", data_record) != data_record:
            return (f"teacher {teacher} was held out other rows ({teacher_record(teacher)['data']}); "
                    f"its soft targets would leak them. Train it with this run's data flags.")
    return None


def record_teachers(record: dict, teachers: list[Path]) -> dict:
    """The student's record inherits each teacher's decisions (as ``teacher <decision>``) and shows its figures."""
    for teacher in teachers:
        inherit(record, teacher_record(teacher))
    if teachers:
        record["teacher_figures"] = [teacher_figures(teacher) for teacher in teachers]
    return record
