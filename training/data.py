"""Labelled text files and the held-out slice: shared by training and the accuracy tests.

The held-out slice is a pure function of the file and the split settings, so CI can
rebuild exactly the sentences a model card's accuracy was measured on without the
project ever storing them.
"""

from __future__ import annotations

import csv
import random
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

SENTENCE_END = re.compile(r"[.!?]\s*$")


@dataclass(frozen=True)
class Example:
    text: str
    label: int


def read_labelled(path: Path, text_column: str = "text", label_column: str = "label") -> list[Example]:
    """A CSV or TSV file (by extension) with a header row naming the text and label columns."""
    path = Path(path)
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    with path.open(newline="", encoding="utf-8") as handle:
        # SST-2's TSV has bare quotes inside texts; TSV is read without quote handling.
        reader = csv.DictReader(handle, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
        missing = {text_column, label_column} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} has no column(s) {sorted(missing)}; header is {reader.fieldnames}")
        return [Example(row[text_column].strip(), int(row[label_column])) for row in reader]


@dataclass(frozen=True)
class HoldOut:
    """How the validation slice is carved from a training file (recorded in each model card)."""

    size: int = 1000
    seed: int = 13
    sentences_only: bool = False  # only rows that end like a sentence (. ! ?)
    min_words: int = 0
    exclude_overlap: bool = False  # drop training phrases (3+ words) found inside a held-out text
    # Only rows no other row contains: SST-2's whole sentences, not the clauses cut from them
    # (a clause ending in "." is sentence-like, but training on the sentence around it leaks its label).
    whole_sentences: bool = False
    overlap_min_words: int = 3  # the shortest training phrase that counts as overlap
    calibration_size: int = 0  # rows of the held-out slice kept apart for temperature fitting / model selection
    # "clauses": the held-out rows that are clauses of longer rows calibrate, the whole sentences are the test
    calibration: str = "sample"

    def to_dict(self) -> dict:
        return asdict(self)


def split_holdout(rows: list[Example], holdout: HoldOut) -> tuple[list[Example], list[Example]]:
    """(train, held_out): the held-out rows, and every row overlapping them, never reach training.

    SST-2's training file holds whole sentences and the labelled phrases cut from them;
    with ``exclude_overlap`` every phrase of three or more words that occurs inside a
    held-out sentence is removed from training too, so the accuracy measures text the
    model has not seen in part either. (Single words and pairs are kept: "good" in a
    held-out sentence is vocabulary, not leakage.)
    """
    candidates = [
        i
        for i, row in enumerate(rows)
        if len(row.text.split()) >= holdout.min_words and (not holdout.sentences_only or SENTENCE_END.search(row.text))
    ]
    if holdout.whole_sentences:
        inside = contained_rows([row.text for row in rows], candidates)
        candidates = [i for i in candidates if i not in inside]
    if len(candidates) < holdout.size:
        raise ValueError(f"only {len(candidates)} rows qualify for a held-out slice of {holdout.size}")
    chosen = set(random.Random(holdout.seed).sample(candidates, holdout.size))
    held_out = [rows[i] for i in sorted(chosen)]
    haystack = "\n".join(f" {row.text} " for row in held_out) if holdout.exclude_overlap else ""

    def overlaps(text: str) -> bool:
        return bool(haystack) and len(text.split()) >= holdout.overlap_min_words and f" {text} " in haystack

    train = [row for i, row in enumerate(rows) if i not in chosen and not overlaps(row.text)]
    return train, held_out


def contained_rows(texts: list[str], candidates: list[int]) -> set[int]:
    """The candidates whose text occurs inside another, longer row (a clause of a bigger sentence).

    Only rows that share the candidate's rarest word can contain it, so each check
    scans a short posting list instead of the whole file.
    """
    postings: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        for word in set(text.split()):
            postings.setdefault(word, []).append(i)
    inside = set()
    for i in candidates:
        words = texts[i].split()
        needle = f" {texts[i]} "
        rarest = min(set(words), key=lambda w: len(postings[w]))
        if any(j != i and len(texts[j]) > len(texts[i]) and needle in f" {texts[j]} " for j in postings[rarest]):
            inside.add(i)
    return inside


def split_three(rows: list[Example], holdout: HoldOut) -> tuple[list[Example], list[Example], list[Example]]:
    """(train, calibration, test) of one labelled file, as a model card's record describes them."""
    train, held_out = split_holdout(rows, holdout)
    if holdout.calibration == "clauses":
        texts = [row.text for row in rows]
        index = {text: i for i, text in enumerate(texts)}
        inside = contained_rows(texts, [index[row.text] for row in held_out])
        clauses = [row for row in held_out if index[row.text] in inside]
        return train, clauses, [row for row in held_out if index[row.text] not in inside]
    return (train, *calibration_split(held_out, holdout.calibration_size, holdout.seed))


def calibration_split(held_out: list[Example], size: int, seed: int) -> tuple[list[Example], list[Example]]:
    """(calibration, test): a seeded sample of the held-out rows for fitting, the rest for reporting."""
    if not size:
        return [], held_out
    chosen = set(random.Random(seed + 1).sample(range(len(held_out)), size))
    return ([row for i, row in enumerate(held_out) if i in chosen],
            [row for i, row in enumerate(held_out) if i not in chosen])


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
