"""Fit loops (deterministic and variational) and evaluation, over tensors already in memory.

No DataLoader: a minibatch is an index slice of a seeded permutation, which is both the fastest route on a
CPU and bit-for-bit reproducible. Every random draw goes through an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from crossgen.bnn import BayesianMLP
from crossgen.nets import MLP

EpochCallback = Callable[[int, float], None]
"""Called after each epoch with (epoch index, mean training loss); may raise to stop training."""


class DivergenceError(RuntimeError):
    """Training produced a NaN or infinite loss: the run is failed with this reason, not silently kept."""


@dataclass
class FitHistory:
    """Mean training loss per epoch (for a BNN, -ELBO / N)."""

    losses: list[float] = field(default_factory=list)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    return list(torch.randperm(n, generator=generator).split(batch_size))


def _check(loss: torch.Tensor, what: str, epoch: int) -> None:
    if not torch.isfinite(loss):
        raise DivergenceError(f"{what}: non-finite loss ({loss.item()}) in epoch {epoch}")


def fit_deterministic(
    net: MLP,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    loss_fn: Callable[[MLP, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    on_epoch: EpochCallback | None = None,
    what: str = "mlp",
) -> FitHistory:
    """Adam on cross-entropy (or ``loss_fn(net, xb, yb, idx)``, used by distillation)."""
    opt = torch.optim.Adam(net.parameters(), lr=lr, fused=True)
    history = FitHistory()
    net.train()
    for epoch in range(epochs):
        total = torch.zeros(())
        batches = _batches(x.shape[0], batch_size, generator)
        for idx in batches:
            idx = idx.to(x.device)
            xb, yb = x[idx], y[idx]
            loss = F.cross_entropy(net(xb), yb) if loss_fn is None else loss_fn(net, xb, yb, idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        mean = (total / len(batches)).item()
        _check(torch.tensor(mean), what, epoch)
        history.losses.append(mean)
        if on_epoch is not None:
            on_epoch(epoch, mean)
    net.eval()
    return history


def fit_bnn(
    bnn: BayesianMLP,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    noise: torch.Generator | None = None,
    on_epoch: EpochCallback | None = None,
    what: str = "bnn",
) -> FitHistory:
    """Stochastic variational inference: Adam on -ELBO/N with local reparameterisation and analytic KL.

    ``generator`` orders the minibatches (CPU); ``noise`` draws the reparameterisation noise and must live
    on the model's device (default: ``generator``).
    """
    noise = generator if noise is None else noise
    opt = torch.optim.Adam(bnn.parameters(), lr=lr, fused=True)
    history = FitHistory()
    n_total = x.shape[0]
    for epoch in range(epochs):
        total = torch.zeros(())
        batches = _batches(n_total, batch_size, generator)
        for idx in batches:
            idx = idx.to(x.device)
            loss = bnn.training_loss(x[idx], y[idx], n_total, noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        with torch.no_grad():  # -ELBO/N ≈ mean minibatch NLL over the epoch + KL at its end / N
            mean = (total / len(batches)).item() + bnn.kl().item() / n_total
        if not math.isfinite(mean):
            raise DivergenceError(f"{what}: non-finite ELBO ({mean}) in epoch {epoch}")
        history.losses.append(mean)
        if on_epoch is not None:
            on_epoch(epoch, mean)
    return history


@torch.no_grad()
def accuracy_deterministic(net: MLP, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    return (net(x).argmax(-1) == y).float().mean().item()


@torch.no_grad()
def accuracy_bnn(
    bnn: BayesianMLP, x: torch.Tensor, y: torch.Tensor, *, samples: int, generator: torch.Generator
) -> float:
    """Accuracy of the posterior predictive mean (``samples`` weight draws)."""
    probs = bnn.predict_proba(x, samples=samples, generator=generator)
    return (probs.argmax(-1) == y).float().mean().item()
