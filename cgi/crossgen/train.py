"""Fit loops (deterministic and variational) and evaluation, over tensors already in memory.

No DataLoader: a minibatch is an index slice of a seeded permutation, which is both the fastest route on a
CPU and bit-for-bit reproducible. Every random draw goes through an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from crossgen.bnn import BayesianMLP, ElboGradient
from crossgen.errors import ConfigError
from crossgen.nets import MLP

EpochCallback = Callable[[int, float], None]
"""Called after each epoch with (epoch index, mean training loss); may raise to stop training."""


class DivergenceError(RuntimeError):
    """Training produced a NaN or infinite loss: the run is failed with this reason, not silently kept."""


@dataclass
class FitHistory:
    """Mean training loss per epoch (for a BNN, -ELBO / N)."""

    losses: list[float] = field(default_factory=list)


BF16_CPU_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16")
"""CPU flags (Linux /proc/cpuinfo) of bf16 matrix units: oneDNN runs bf16 matmuls natively on these.

Without them oneDNN emulates bf16, and a bf16 matmul of our shapes was slower than fp32 (784→400 at batch
128, one thread: 0.94 ms against 0.74 with AVX-512 alone, 2.96 ms with AVX2; 0.18 ms with avx512_bf16).
"""


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags, or none where /proc/cpuinfo does not exist (not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def bf16_matmul_units(device: torch.device | str = "cpu", flags: frozenset[str] | None = None) -> str | None:
    """What runs bf16 matmuls natively on ``device`` (a CPU flag, or ``cuda``), or None where nothing does."""
    device = torch.device(device)
    if device.type == "cuda":
        return "cuda" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None
    if device.type != "cpu":
        return None
    flags = cpu_flags() if flags is None else flags
    return next((flag for flag in BF16_CPU_FLAGS if flag in flags), None)


def require_precision(precision: str, device: torch.device | str = "cpu", flags: frozenset[str] | None = None) -> None:
    """Refuse bf16, in one line, where the hardware would emulate it (slower than fp32, so never worth it)."""
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"precision={precision!r} is not one of fp32, bf16")
    if precision == "bf16" and bf16_matmul_units(device, flags) is None:
        where = "this CPU has neither " + " nor ".join(BF16_CPU_FLAGS) if torch.device(device).type == "cpu" else device
        raise ConfigError(f"precision=bf16 needs bf16 matrix units ({where}); use precision=fp32")


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
    optimizer: str = "adam",
) -> FitHistory:
    """The one minibatch loop: Adam (or plain SGD) for ``epochs`` seeded permutations of the training set.

    ``batch_grad(indices)`` returns the minibatch's loss and leaves its gradient in each parameter's
    ``.grad`` (by autograd, or written out as :class:`ElboGradient` does).

    ``epoch_value`` turns the epoch's mean minibatch loss into what is logged (a BNN adds its KL / N);
    a non-finite value ends the run with :class:`DivergenceError` rather than training on garbage.
    """
    if optimizer == "sgd":  # plain SGD: each step moves a weight by lr x its gradient (no per-weight scaling)
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=lr)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, fused=True)
    else:
        raise ConfigError(f"optimizer={optimizer!r} is not one of adam, sgd")
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
    precision: str = "fp32",
) -> FitHistory:
    """Adam on cross-entropy (or ``loss_fn(net, xb, yb, idx)``, used by distillation).

    ``precision="bf16"`` trains with bf16 matmuls (:class:`~crossgen.nets.Bf16Linear`); the loss, the
    gradients, Adam and the weights stay fp32, and so does everything outside this loop (evaluation).
    """
    require_precision(precision, x.device)

    def batch_grad(idx: torch.Tensor) -> torch.Tensor:
        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
        loss = F.cross_entropy(net(xb), yb) if loss_fn is None else loss_fn(net, xb, yb, idx)
        net.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    net.train()
    with net.precision(precision):
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
    precision: str = "fp32",
    optimizer: str = "adam",
    kl_weight: float = 1.0,
) -> FitHistory:
    """Stochastic variational inference: Adam on -ELBO/N with local reparameterisation and analytic KL.

    ``generator`` orders the minibatches (CPU); ``noise`` draws the reparameterisation noise and must live
    on the model's device (default: ``generator``). The logged value per epoch is -ELBO/N ≈ the mean
    minibatch NLL over the epoch + the KL at its end / N. ``precision="bf16"``: bf16 matmuls in the step
    (:class:`ElboGradient`), fp32 for the rest, including the logged KL.
    """
    require_precision(precision, x.device)
    noise = generator if noise is None else noise
    n_total = x.shape[0]
    elbo_grad = ElboGradient(bnn, precision, kl_weight=kl_weight)

    def epoch_value(mean_nll: float) -> float:
        with torch.no_grad():
            return mean_nll + kl_weight * bnn.kl().item() / n_total

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
        optimizer=optimizer,
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
