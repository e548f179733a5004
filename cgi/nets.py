"""Deterministic MLPs for Experiment 1 and the layer-count reading shared by both experiments."""

from __future__ import annotations

import torch
from torch import nn

from crossgen.errors import ConfigError

HIDDEN_LAYERS: dict[tuple[str, bool], int] = {
    ("M1", False): 5,  # Experiment 1: "five hidden layers"
    ("M2", False): 1,  # Experiment 1: "one hidden layer"
    ("M1", True): 4,  # Experiment 2: "a five layer BNN" = five weight layers = four hidden layers
    ("M2", True): 2,  # Experiment 2: "a three layer BNN" = three weight layers = two hidden layers
}
"""Hidden-layer counts by (model, bayesian). docs/method.md explains the reading."""


def layer_sizes(model: str, n_in: int, n_out: int, width: int, *, bayesian: bool) -> list[int]:
    """Return [n_in, width, ..., width, n_out] for model M1 or M2."""
    try:
        hidden = HIDDEN_LAYERS[(model, bayesian)]
    except KeyError:
        raise ConfigError(f"model={model!r} must be M1 or M2") from None
    return [n_in, *([width] * hidden), n_out]


def middle_layer_index(n_hidden: int) -> int:
    """Index (0-based, among hidden layers) of the 'mid-level' features: the middle hidden layer.

    For five hidden layers that is the third; for one hidden layer it is that layer.
    """
    return (n_hidden - 1) // 2


class MLP(nn.Module):
    """ReLU MLP with PyTorch's default (fan-in uniform) initialisation and an optional auxiliary head.

    The auxiliary head serves knowledge distillation across label spaces: it has the teacher's class
    count and is trained to match the teacher; only the main head is ever evaluated.
    """

    def __init__(self, sizes: list[int], *, aux_classes: int | None = None) -> None:
        super().__init__()
        self.sizes = list(sizes)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-2], sizes[1:-1], strict=True))
        self.head = nn.Linear(sizes[-2], sizes[-1])
        self.aux_head = nn.Linear(sizes[-2], aux_classes) if aux_classes else None

    def trunk(self, x: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """Hidden activations after hidden layer ``upto`` (default: the last one)."""
        last = len(self.hidden) - 1 if upto is None else upto
        for i, layer in enumerate(self.hidden):
            x = torch.relu(layer(x))
            if i == last:
                break
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        assert self.aux_head is not None
        return self.head(h), self.aux_head(h)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Mid-level features: activations of the middle hidden layer."""
        return self.trunk(x, middle_layer_index(len(self.hidden)))
