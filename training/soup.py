"""Average the weights of several fine-tuned models into one (a model soup): ``python -m training.soup``.

    python -m training.soup --out SOUP STAGE2 FULL_A FULL_A/epoch-1 FULL_B
    python -m training.soup --greedy --holdout_of ../shared/data/sst2/train.tsv --out SOUP STAGE2 FULL_A ...

Models fine-tuned from one pretrained encoder (same architecture, same labels, the
word embeddings frozen at the base's values) stay close enough in weight space that
their average is itself a good model (Wortsman et al., "Model soups", ICML 2022): on
the bundled sentiment slices a soup scored at or above the mean of its ingredients and
as well as their mean-softmax ensemble, at the price of one model where an ensemble
costs one forward pass per member (BENCHMARKS.md, "Model soups").

``--greedy`` orders the ingredients by their accuracy on the calibration slice recorded
in the first training.json among them (an ``epoch-N`` checkpoint has none) and keeps
each only if the soup's calibration accuracy does not fall. The test slice is never
used to choose, so it stays a fair measure of the result; both are printed and
recorded in the soup's training.json. Greedy is only as good as the calibration slice
is like the traffic: the sentiment clauses are not, and greedy overfitted them.

Tensors that are equal in every ingredient (the frozen embeddings) are copied bit for
bit, so ``python -m modelbuild.bake --pack SOUP`` still finds them equal to the base's.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from modelbuild.layout import MODEL_CARD, TRAINING_RECORD
from modelbuild.restore import COPIED, FP32_WEIGHTS
from training.card import machine, model_card
from training.data import Example
from training.evaluate import add_slice_source, recorded_slices
from training.record import add_decisions


def load_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / FP32_WEIGHTS))


def average(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform average of ``states``; a tensor equal in all of them is kept as it is."""
    names = set(states[0])
    for state in states[1:]:
        if set(state) != names or any(state[n].shape != states[0][n].shape for n in names):
            raise ValueError("the ingredients differ in their tensors: a soup needs one architecture and label set")
    out = {}
    for name, first in states[0].items():
        if all(torch.equal(first, state[name]) for state in states[1:]):
            out[name] = first
        else:
            out[name] = (sum(state[name].double() for state in states) / len(states)).to(first.dtype)
    return out


class Scorer:
    """fp32 accuracy of a set of weights on labelled rows, in one model object reloaded per call."""

    def __init__(self, model_dir: Path, rows: dict[str, list[Example]]):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        self.pad_id = tokenizer.pad_token_id
        max_length = json.loads((Path(model_dir) / TRAINING_RECORD).read_text()).get("max_length", 128)
        self.rows = {name: (tokenizer([e.text for e in examples], truncation=True, max_length=max_length)["input_ids"],
                            np.array([e.label for e in examples])) for name, examples in rows.items()}

    def __call__(self, weights: dict[str, torch.Tensor], name: str) -> float:
        from training.model import predict_logits

        self.model.load_state_dict(weights)
        ids, labels = self.rows[name]
        return round(float((predict_logits(self.model, ids, self.pad_id).argmax(-1) == labels).mean()), 4)


def greedy(models: list[Path], states: dict[Path, dict], alone: dict[Path, float], score) -> list[Path]:
    """Wortsman et al.'s greedy soup on the calibration slice (``alone``: each model's own accuracy there)."""
    ordered = sorted(models, key=lambda m: -alone[m])
    kept, best = [ordered[0]], alone[ordered[0]]
    for model in ordered[1:]:
        accuracy = score(average([states[m] for m in [*kept, model]]), "calibration")
        print(f"{model}: alone {alone[model]:.4f}, in the soup {accuracy:.4f} ({'kept' if accuracy >= best else 'left out'})",
              flush=True)
        if accuracy >= best:
            kept, best = [*kept, model], accuracy
    return kept


def write_soup(recorded: Path, weights: dict[str, torch.Tensor], out_dir: Path, soup: dict) -> dict:
    """A full model directory: an ingredient's config, tokenizer and record, the averaged weights."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        shutil.copy2(recorded / name, out_dir / name)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(out_dir / FP32_WEIGHTS), metadata={"format": "pt"})
    record = json.loads((recorded / TRAINING_RECORD).read_text())
    for stale in ("evaluation", "ci_sample", "stages"):
        record.pop(stale, None)
    record |= {
        "soup": soup,
        "epochs": [],
        "validation_accuracy": soup.get("test_accuracy"),
        "train_seconds": soup["seconds"],
        "threads": torch.get_num_threads(),
        "machine": machine(),
        "started_at": soup["started_at"],
        "stored_as": "a full model",
        "command": "python -m training.soup " + shlex.join(sys.argv[1:]),
    }
    add_decisions(record, model_choice=["calibration"] if soup["greedy"] else [])  # greedy chooses; uniform does not
    (out_dir / TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    (out_dir / MODEL_CARD).write_text(model_card(record))
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.soup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="+", help="model directories fine-tuned from one encoder")
    parser.add_argument("--out", type=Path, required=True, help="where the averaged model is written")
    parser.add_argument("--greedy", action="store_true", help="keep an ingredient only if calibration accuracy holds")
    source = add_slice_source(parser)
    source.required = False
    args = parser.parse_args(argv)
    if args.greedy and not (args.holdout_of or args.validation_of):
        parser.error("--greedy needs --holdout_of or --validation_of: it chooses on the calibration slice")
    # the labels, data and slices come from a training run's record (an epoch-N checkpoint has none)
    recorded = next((m for m in args.models if (m / TRAINING_RECORD).is_file()), None)
    if recorded is None:
        parser.error(f"no ingredient has a {TRAINING_RECORD}: name at least one directory training.train wrote")
    started, started_at = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    states = {model: load_weights(model) for model in args.models}
    score, alone = None, {}
    if args.holdout_of or args.validation_of:
        calibration, test = recorded_slices(argparse.Namespace(**vars(args), model_dir=recorded))
        score = Scorer(recorded, {"calibration": calibration, "test": test})
        alone = {model: score(states[model], "calibration") for model in args.models}
    kept = greedy(args.models, states, alone, score) if args.greedy else args.models
    weights = average([states[m] for m in kept])
    soup = {"ingredients": [str(m) for m in args.models], "kept": [str(m) for m in kept], "greedy": args.greedy,
            "started_at": started_at}
    if score:
        soup |= {"ingredients_calibration_accuracy": {str(m): a for m, a in alone.items()},
                 "calibration_accuracy": score(weights, "calibration"), "test_accuracy": score(weights, "test")}
    soup["seconds"] = round(time.perf_counter() - started, 1)
    write_soup(recorded, weights, args.out, soup)
    print(f"soup of {len(kept)} of {len(args.models)} models written to {args.out}"
          + (f": calibration {soup['calibration_accuracy']:.4f}, test {soup['test_accuracy']:.4f}" if score else ""),
          flush=True)


if __name__ == "__main__":
    main()
