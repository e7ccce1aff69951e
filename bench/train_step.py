"""``python -m bench.train_step``: seconds per training step of the teacher, fp32 against bf16 autocast.

    make teacher-base   # the MPNet checkpoint into .cache/teacher
    python -m bench.train_step --steps 8

What ``training.train --precision bf16`` buys on this machine's CPU: the same batches
(32 emotion training rows each, tokenized to at most 72 tokens as the emotion recipe
does) go through one forward, backward and AdamW step in fp32, then in bf16 autocast,
alternating, so both see the same load. The first pair is a warm-up and is not counted.
Prints one JSON line: the median seconds per step of each, and fp32 / bf16.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from harness.processes import ROOT
from training.model import collate

CHECKPOINT = ROOT / ".cache" / "teacher" / "all-mpnet-base-v2"
ROWS = ROOT.parent / "shared" / "data" / "emotion" / "train.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base_model", type=Path, default=CHECKPOINT, help="default: make teacher-base's checkpoint")
    parser.add_argument("--train_file", type=Path, default=ROWS)
    parser.add_argument("--steps", type=int, default=8, help="steps of each precision, after one warm-up pair")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = one per core")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.base_model)
    with args.train_file.open(newline="") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    random.Random(13).shuffle(texts)
    texts = texts[: args.batch_size * (args.steps + 1)]
    ids = tokenizer(texts, truncation=True, max_length=72)["input_ids"]
    model = AutoModelForSequenceClassification.from_pretrained(args.base_model, num_labels=6)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for step in range(args.steps + 1):
        batch = collate(ids[step * args.batch_size : (step + 1) * args.batch_size], tokenizer.pad_token_id)
        labels = torch.randint(0, 6, (batch["input_ids"].shape[0],))
        for precision in seconds:
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = model(**batch, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if step:  # the first pair warms up both
                seconds[precision].append(time.perf_counter() - started)
    medians = {name: round(statistics.median(values), 3) for name, values in seconds.items()}
    print(json.dumps({"threads": torch.get_num_threads(), "steps": args.steps, "median_s_per_step": medians,
                      "fp32_over_bf16": round(medians["fp32"] / medians["bf16"], 2)}))


if __name__ == "__main__":
    main()
