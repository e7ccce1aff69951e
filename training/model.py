"""The model being trained: built from its base (whole, or a LoRA adapter), and its logits on token ids."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from modelbuild.files import resolve_base


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
