"""Stacked replicas: R Bayesian MLPs of one shape trained as one model with a leading replica axis.

Why: one SVI step of a BNN of our sizes is a handful of small kernels, so on a GPU (and, at small widths,
on a CPU) launch and Python overhead set the pace, not arithmetic. Stacking the R runs of a trial (its
seeds, and the variants that share a shape and a budget) turns R small matmuls into one batched matmul
(``bmm``) and R optimiser steps into one.

What each replica keeps, so that it stays the run it stands for:

* its own parameters (a slice of the stacked tensors; the replica's :class:`~crossgen.bnn.BayesianMLP`
  keeps working, its parameters are views of its slice);
* its own minibatch order (a permutation drawn from its own generator each epoch) and its own
  reparameterisation noise (drawn from its own generator, layer by layer in the order of the unstacked
  step), so its random numbers are those of its unstacked run;
* its own labels (a shuffled-label source differs from the true one only in ``y``);
* its own epoch log, divergence check and epoch callback (a replica that diverges or whose callback
  raises, e.g. to prune, stops alone; the others go on).

What all replicas of one stack share (:func:`stack_key`): layer sizes, the inputs ``x``, epochs, batch
size, learning rate, optimiser, precision, KL weight and prior σ. Runs that differ there form separate
stacks.

Numerics: a batched matmul rounds differently from R separate ones, so a stacked replica matches its
unstacked run to float tolerance over the first steps and then drifts as any two float orders do.
Unstacked training (:func:`crossgen.train.fit_bnn`) stays the reference and is bit-for-bit what every
stored result was made with; docs/benchmarks.md shows the equivalence study.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from crossgen.bnn import BF16, BayesianMLP
from crossgen.errors import ConfigError
from crossgen.train import DivergenceError, require_precision

EpochCallback = Callable[[int, float], None]


@dataclass
class Replica:
    """One run's share of a stacked fit: its model, data labels, random streams and epoch callback."""

    bnn: BayesianMLP
    y: torch.Tensor
    generator: torch.Generator
    noise: torch.Generator
    on_epoch: EpochCallback | None = None
    what: str = "bnn"
    losses: list[float] = field(default_factory=list)
    error: BaseException | None = None


def stack_key(bnn: BayesianMLP, x: torch.Tensor, **settings: Any) -> tuple:
    """What replicas must share to train in one stack (shapes, inputs, budget, optimiser, numerics)."""
    return (
        tuple(bnn.sizes),
        bnn.prior_sigma,
        x.data_ptr(),
        tuple(x.shape),
        str(x.device),
        tuple(sorted(settings.items())),
    )


class StackedBNN:
    """The stacked parameters of R Bayesian MLPs, bound back into each replica as views.

    Each layer ``i`` holds ``w_loc[i]`` (R, out, in), ``w_log_sigma[i]`` (R, out, in), ``b_loc[i]`` (R, out)
    and ``b_log_sigma[i]`` (R, out). Building copies the replicas' current values in; afterwards every
    replica parameter *is* its slice, so evaluating, extracting weight points or logging the KL of a replica
    reads the stacked values directly, during and after training.
    """

    def __init__(self, bnns: Sequence[BayesianMLP]) -> None:
        first = bnns[0]
        for bnn in bnns[1:]:
            if bnn.sizes != first.sizes or bnn.prior_sigma != first.prior_sigma:
                raise ValueError("every replica of a stack needs the same layer sizes and prior σ")
        self.bnns = list(bnns)
        self.sizes = list(first.sizes)
        self.prior_sigma = first.prior_sigma
        self.n = len(bnns)
        self.w_loc: list[torch.nn.Parameter] = []
        self.w_log_sigma: list[torch.nn.Parameter] = []
        self.b_loc: list[torch.nn.Parameter] = []
        self.b_log_sigma: list[torch.nn.Parameter] = []
        for i in range(len(first.layers)):
            for name, out in (
                ("w_loc", self.w_loc),
                ("w_log_sigma", self.w_log_sigma),
                ("b_loc", self.b_loc),
                ("b_log_sigma", self.b_log_sigma),
            ):
                stacked = torch.stack([getattr(b.layers[i], name).detach() for b in bnns]).contiguous()
                param = torch.nn.Parameter(stacked)
                param.grad = torch.zeros_like(stacked)
                out.append(param)
                for r, bnn in enumerate(bnns):
                    getattr(bnn.layers[i], name).data = param.data[r]

    def parameters(self) -> list[torch.nn.Parameter]:
        return [*self.w_loc, *self.w_log_sigma, *self.b_loc, *self.b_log_sigma]

    @property
    def n_layers(self) -> int:
        return len(self.w_loc)


class StackedElboGradient:
    """:class:`~crossgen.bnn.ElboGradient` over a replica axis: the same written-out gradient, batched.

    ``step(x, ys, idx, noises)`` takes each replica's minibatch ``x[idx[r]], ys[r][idx[r]]``, draws each
    replica's noise from its own generator (layer by layer, as the unstacked step does), writes ∇(-ELBO / N)
    of every replica into the stacked ``.grad`` and returns the replicas' mean NLLs, shape (R,).
    ``precision="bf16"``: the matmuls read bf16 copies of their operands (fp32 accumulation); parameters,
    noise, softmax, KL terms and Adam stay fp32.
    """

    def __init__(self, stack: StackedBNN, n_total: int, precision: str = "fp32", kl_weight: float = 1.0) -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision={precision!r} must be fp32 or bf16")
        self.stack = stack
        self.bf16 = precision == "bf16"
        self.s = kl_weight / n_total  # the KL's weight per example
        self.cs2 = self.s / stack.prior_sigma**2  # 2cs

    def _mm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.bf16:
            return torch.bmm(a.to(BF16), b.to(BF16)).float()
        return torch.bmm(a, b)

    @torch.no_grad()
    def step(
        self, x: torch.Tensor, ys: torch.Tensor, idx: torch.Tensor, noises: Sequence[torch.Generator]
    ) -> torch.Tensor:
        st = self.stack
        n_rep, batch = idx.shape
        last = st.n_layers - 1
        xb = x.index_select(0, idx.reshape(-1)).view(n_rep, batch, -1)
        yb = ys.gather(1, idx)
        s, cs2 = self.s, self.cs2

        inputs, squares, eps_all, w_vars, b_vars = [], [], [], [], []
        h = xb
        for i in range(st.n_layers):
            n_out = st.sizes[i + 1]
            eps = torch.empty(n_rep, batch, n_out, device=x.device, dtype=x.dtype)
            for r in range(n_rep):
                torch.randn(batch, n_out, generator=noises[r], out=eps[r])
            w_var = torch.mul(st.w_log_sigma[i], 2).exp_()
            b_var = torch.mul(st.b_log_sigma[i], 2).exp_()
            h_sq = h * h
            if self.bf16:
                std = self._mm(h_sq, w_var.transpose(1, 2)).add_(b_var[:, None, :]).sqrt_()
                out = self._mm(h, st.w_loc[i].transpose(1, 2)).add_(st.b_loc[i][:, None, :]).addcmul_(std, eps)
            else:
                std = torch.baddbmm(b_var[:, None, :], h_sq, w_var.transpose(1, 2)).sqrt_()
                out = torch.baddbmm(st.b_loc[i][:, None, :], h, st.w_loc[i].transpose(1, 2)).addcmul_(std, eps)
            eps.div_(std)  # ε/√var = 2 ∂out/∂var
            if i < last:
                out.clamp_min_(0)
            inputs.append(h)
            squares.append(h_sq)
            eps_all.append(eps)
            w_vars.append(w_var)
            b_vars.append(b_var)
            h = out

        log_p = torch.log_softmax(h, 2)
        loss = -log_p.gather(2, yb[:, :, None]).squeeze(2).mean(1)
        g = log_p.exp_()
        g.scatter_add_(2, yb[:, :, None], torch.full((n_rep, batch, 1), -1.0, device=x.device, dtype=x.dtype))
        g.div_(batch)

        for i in range(last, -1, -1):
            h, w_var = inputs[i], w_vars[i]
            g_var2 = eps_all[i].mul_(g)  # 2 ∂L/∂var
            if i > 0:  # ∂L/∂h = g μ + 2h ⊙ (∂L/∂var σ²), through the ReLU
                g_h = self._mm(g, st.w_loc[i])
                g_h.addcmul_(self._mm(g_var2, w_var), h).mul_(h > 0)
            if self.bf16:
                torch.add(self._mm(g.transpose(1, 2), h), st.w_loc[i], alpha=cs2, out=st.w_loc[i].grad)
                torch.add(self._mm(g_var2.transpose(1, 2), squares[i]), cs2, out=st.w_log_sigma[i].grad)
            else:
                torch.baddbmm(st.w_loc[i], g.transpose(1, 2), h, beta=cs2, out=st.w_loc[i].grad)
                torch.bmm(g_var2.transpose(1, 2), squares[i], out=st.w_log_sigma[i].grad).add_(cs2)
            torch.add(g.sum(1), st.b_loc[i], alpha=cs2, out=st.b_loc[i].grad)
            st.w_log_sigma[i].grad.mul_(w_var).sub_(s)
            torch.sum(g_var2, 1, out=st.b_log_sigma[i].grad).add_(cs2).mul_(b_vars[i]).sub_(s)
            if i > 0:
                g = g_h
        return loss


def fit_bnn_stacked(
    replicas: Sequence[Replica],
    x: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    precision: str = "fp32",
    optimizer: str = "adam",
    kl_weight: float = 1.0,
) -> list[Replica]:
    """SVI of every replica at once, each on ``x`` with its own labels, order and noise.

    The per-replica counterpart of :func:`crossgen.train.fit_bnn`: the same minibatch loop, Adam (or SGD),
    logged value (-ELBO/N ≈ mean minibatch NLL + KL / N) and divergence check, per replica. A replica whose
    loss turns non-finite is stopped with :class:`~crossgen.train.DivergenceError` in ``error``; one whose
    callback raises is stopped with that exception; the others train on. Returns ``replicas`` with
    ``losses`` and ``error`` filled in.
    """
    if not replicas:
        return []
    require_precision(precision, x.device)
    n_total = x.shape[0]
    stack = StackedBNN([r.bnn for r in replicas])
    ys = torch.stack([r.y.to(x.device) for r in replicas])
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(stack.parameters(), lr=lr)
    elif optimizer == "adam":
        opt = torch.optim.Adam(stack.parameters(), lr=lr, fused=True)
    else:
        raise ConfigError(f"optimizer={optimizer!r} is not one of adam, sgd")
    grad = StackedElboGradient(stack, n_total, precision, kl_weight)
    noises = [r.noise for r in replicas]
    active = [r.error is None for r in replicas]
    for epoch in range(epochs):
        if not any(active):
            break
        # each replica's own permutation, moved to the device once per epoch (one copy, not one per step)
        order = torch.stack([torch.randperm(n_total, generator=r.generator) for r in replicas]).to(x.device)
        total = torch.zeros(len(replicas), device=x.device)
        n_batches = math.ceil(n_total / batch_size)
        for b in range(n_batches):
            idx = order[:, b * batch_size : (b + 1) * batch_size].contiguous()
            total += grad.step(x, ys, idx, noises)
            opt.step()
        means = (total / n_batches).tolist()
        for r, replica in enumerate(replicas):
            if not active[r]:
                continue
            with torch.no_grad():
                value = means[r] + kl_weight * replica.bnn.kl().item() / n_total
            if not math.isfinite(value):
                replica.error = DivergenceError(f"{replica.what}: non-finite loss ({value}) in epoch {epoch}")
                active[r] = False
                continue
            replica.losses.append(value)
            if replica.on_epoch is not None:
                try:
                    replica.on_epoch(epoch, value)
                except Exception as exc:  # pruning or a failed evaluation stops this replica alone
                    replica.error = exc
                    active[r] = False
    return list(replicas)
