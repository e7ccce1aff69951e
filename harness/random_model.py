"""A DistilBERT classifier with random weights, of any size: ``python -m harness.random_model OUT_DIR``.

Its answers are NOT meaningful: it exists so that the serving stack can be tested and
measured without a trained model. The tests build tiny ones (the defaults: 2 layers,
32 wide); ``make bench`` builds a full-size one (``DistilBertConfig()``'s sizes), the
compute of the production DistilBERT SST-2. The real bundled models come from
``training.train``. It lives with the bench, not in the predictor package, because
nothing that serves needs it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

SENTIMENT_LABELS = ("NEGATIVE", "POSITIVE")


def build_random_model(
    out_dir: Path,
    labels: Sequence[str] = SENTIMENT_LABELS,
    multi_label: bool = False,
    dim: int = 32,
    layers: int = 2,
    max_positions: int = 512,
    heads: int = 2,
    seed: int = 0,
) -> Path:
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizer

    from modelbuild.files import encoder_dir

    tokenizer = DistilBertTokenizer.from_pretrained(encoder_dir())
    config = DistilBertConfig(
        vocab_size=tokenizer.vocab_size,
        dim=dim,
        hidden_dim=dim * 4,
        n_layers=layers,
        n_heads=heads,
        max_position_embeddings=max_positions,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type="multi_label_classification" if multi_label else "single_label_classification",
    )
    torch.manual_seed(seed)
    model = DistilBertForSequenceClassification(config)
    with torch.no_grad():  # random init gives near-uniform scores; spread them so tests see distinct labels
        model.pre_classifier.weight.mul_(20.0)
        model.classifier.weight.mul_(20.0)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    print(f"demo model (random weights, answers NOT meaningful) -> {build_random_model(args.out_dir)}")


if __name__ == "__main__":
    main()
