"""Fit loops (deterministic and variational) and evaluation, over tensors already in memory.

No DataLoader: a minibatch is an index slice of a seeded permutation, which is both the fastest route on a
CPU and bit-for-bit reproducible. Every random draw goes through an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from crossgen.bnn import BayesianMLP, ElboGradient
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


def _adam_epochs(
    params: Iterable[torch.nn.Parameter],
    batch_grad: Callable[[torch.Tensor], torch.Tensor],
    *,
    n: int,
    device: torch.device,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    epoch_value: Callable[[float], float],
    on_epoch: EpochCallback | None,
    what: str,
) -> FitHistory:
    """The one minibatch loop: Adam for ``epochs`` seeded permutations of the training set.

    ``batch_grad(indices)`` returns the minibatch's loss and leaves its gradient in each parameter's
    ``.grad`` (by autograd, or written out as :class:`ElboGradient` does).

    ``epoch_value`` turns the epoch's mean minibatch loss into what is logged (a BNN adds its KL / N);
    a non-finite value ends the run with :class:`DivergenceError` rather than training on garbage.
    """
    opt = torch.optim.Adam(params, lr=lr, fused=True)
    history = FitHistory()
    for epoch in range(epochs):
        total = torch.zeros((), device=device)
        batches = _batches(n, batch_size, generator)
        for idx in batches:
            loss = batch_grad(idx.to(device))
            opt.step()
            total += loss.detach()
        value = epoch_value((total / len(batches)).item())
        if not math.isfinite(value):
            raise DivergenceError(f"{what}: non-finite loss ({value}) in epoch {epoch}")
        history.losses.append(value)
        if on_epoch is not None:
            on_epoch(epoch, value)
    return history


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

    def batch_grad(idx: torch.Tensor) -> torch.Tensor:
        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
        loss = F.cross_entropy(net(xb), yb) if loss_fn is None else loss_fn(net, xb, yb, idx)
        net.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    net.train()
    history = _adam_epochs(
        net.parameters(),
        batch_grad,
        n=x.shape[0],
        device=x.device,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        generator=generator,
        epoch_value=lambda mean: mean,
        on_epoch=on_epoch,
        what=what,
    )
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
    on the model's device (default: ``generator``). The logged value per epoch is -ELBO/N ≈ the mean
    minibatch NLL over the epoch + the KL at its end / N.
    """
    noise = generator if noise is None else noise
    n_total = x.shape[0]
    elbo_grad = ElboGradient(bnn)

    def epoch_value(mean_nll: float) -> float:
        with torch.no_grad():
            return mean_nll + bnn.kl().item() / n_total

    return _adam_epochs(
        bnn.parameters(),
        lambda idx: elbo_grad.step(x, y, idx, n_total, noise),
        n=n_total,
        device=x.device,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        generator=generator,
        epoch_value=epoch_value,
        on_epoch=on_epoch,
        what=what,
    )


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
