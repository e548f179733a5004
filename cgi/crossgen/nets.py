"""Deterministic MLPs for Experiment 1 and the layer-count reading shared by both experiments."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from crossgen.errors import ConfigError

BF16 = torch.bfloat16

HIDDEN_LAYERS: dict[tuple[str, bool], int] = {
    ("M1", False): 5,  # Experiment 1: "five hidden layers"
    ("M2", False): 1,  # Experiment 1: "one hidden layer"
    ("M1", True): 4,  # Experiment 2: "a five layer BNN" = five weight layers = four hidden layers
    ("M2", True): 2,  # Experiment 2: "a three layer BNN" = three weight layers = two hidden layers
}
"""Hidden-layer counts by (model, bayesian) under the default reading. docs/method.md explains it."""

BNN_HIDDEN_BY_DEPTH: dict[str, dict[str, int]] = {
    "weight_layers": {"M1": 4, "M2": 2},  # five / three weight layers (the default)
    "unit_layers": {"M1": 3, "M2": 1},  # five / three layers of units, input and output included
    "hidden_layers": {"M1": 5, "M2": 3},  # five / three hidden layers
}
"""Experiment 2's "five layer / three layer" BNNs under each reading of the ``depth`` switch."""


def layer_sizes(
    model: str, n_in: int, n_out: int, width: int, *, bayesian: bool, depth: str = "weight_layers"
) -> list[int]:
    """Return [n_in, width, ..., width, n_out] for model M1 or M2."""
    try:
        hidden = BNN_HIDDEN_BY_DEPTH[depth][model] if bayesian else HIDDEN_LAYERS[(model, False)]
    except KeyError:
        raise ConfigError(f"model={model!r} must be M1 or M2") from None
    return [n_in, *([width] * hidden), n_out]


def middle_layer_index(n_hidden: int) -> int:
    """Index (0-based, among hidden layers) of the 'mid-level' features: the middle hidden layer.

    For five hidden layers that is the third; for one hidden layer it is that layer.
    """
    return (n_hidden - 1) // 2


class Bf16Linear(torch.autograd.Function):
    """``x Wᵀ + b`` with bf16 matmuls (fp32 accumulation) and fp32 everything else, for training in bf16.

    Why not ``torch.autocast``: it casts around every op and returns bf16 activations, so ReLU, the loss
    and the gradients' bookkeeping run in bf16 with casts in between. Here each operand is cast once (the
    input and the weight in the forward, the output gradient in the backward; the casts saved for the
    backward are the forward's), the bias, the output and all gradients are fp32, and the master weight is
    never touched: Adam updates fp32 parameters.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor):
        x16, w16 = x.to(BF16), w.to(BF16)
        ctx.save_for_backward(x16, w16)
        return torch.add(b, torch.mm(x16, w16.t()))

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, g: torch.Tensor):  # type: ignore[override]
        x16, w16 = ctx.saved_tensors
        g16 = g.to(BF16)
        g_x = torch.mm(g16, w16).float() if ctx.needs_input_grad[0] else None
        return g_x, torch.mm(g16.t(), x16).float(), g.sum(0)


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
        self.bf16 = False

    @contextmanager
    def precision(self, precision: str) -> Iterator[None]:
        """Within the block, every layer runs as :class:`Bf16Linear` if ``precision`` is bf16 (training only)."""
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision={precision!r} must be fp32 or bf16")
        previous, self.bf16 = self.bf16, precision == "bf16"
        try:
            yield
        finally:
            self.bf16 = previous

    def _linear(self, layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        return Bf16Linear.apply(x, layer.weight, layer.bias) if self.bf16 else layer(x)

    def trunk(self, x: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """Hidden activations after hidden layer ``upto`` (default: the last one)."""
        last = len(self.hidden) - 1 if upto is None else upto
        for i, layer in enumerate(self.hidden):
            x = torch.relu(self._linear(layer, x))
            if i == last:
                break
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._linear(self.head, self.trunk(x))

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        assert self.aux_head is not None
        return self._linear(self.head, h), self._linear(self.aux_head, h)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Mid-level features: activations of the middle hidden layer."""
        return self.trunk(x, middle_layer_index(len(self.hidden)))
