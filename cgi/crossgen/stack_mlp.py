"""Stacked replicas of deterministic MLPs (Experiment 1): R MLPs of one shape trained as one model.

The deterministic counterpart of :mod:`crossgen.stack`: each layer's weights are held as (R, out, in) and
its biases as (R, out), every replica's :class:`~crossgen.nets.MLP` keeps working on views of its slice,
the forward is one ``baddbmm`` per layer for all replicas, autograd does the backward (the loss is the sum
over replicas of each replica's mean cross-entropy, so each replica's gradient is its own) and one fused
Adam steps all of them.

What each replica keeps, so that it stays the run it stands for: its own parameters, its own minibatch
order (a permutation from its own generator each epoch, as :func:`crossgen.train.fit_deterministic`
draws it), its own labels, its own inputs where they differ (the ``feature`` technique's target trains on
its own source's features: ``x`` of shape (R, N, d)), its own epoch log, divergence check and epoch
callback (a replica that diverges or whose callback raises stops alone, its model frozen where it
stopped; the others train on).

What all replicas of one stack share (:func:`mlp_stack_key`): layer sizes, the input shape, epochs, batch
size, learning rate and precision. Fits with a custom loss (distillation's student) never stack.

Numerics: as for BNNs, a batched matmul rounds differently from R separate ones, so a replica matches its
unstacked run to float tolerance over the first steps and then drifts as any two float orders do;
:func:`crossgen.train.fit_deterministic` stays the bit-for-bit reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from crossgen.nets import BF16, MLP
from crossgen.train import DivergenceError, require_precision

EpochCallback = Callable[[int, float], None]


@dataclass
class MLPReplica:
    """One run's share of a stacked deterministic fit: its model, labels, minibatch stream and callback."""

    net: MLP
    y: torch.Tensor
    generator: torch.Generator
    on_epoch: EpochCallback | None = None
    what: str = "mlp"
    losses: list[float] = field(default_factory=list)
    error: BaseException | None = None


def mlp_stack_key(net: MLP, x: torch.Tensor, **settings: Any) -> tuple:
    """What MLP replicas must share to train in one stack. Inputs need the same shape, not the same values:
    replicas whose ``x`` differ (a ``feature`` target on its own source's features) stack as (R, N, d)."""
    return (
        "mlp",
        tuple(net.sizes),
        tuple(x.shape),
        str(x.dtype),
        str(x.device),
        tuple(sorted(settings.items())),
    )


class StackedBf16Linear(torch.autograd.Function):
    """:class:`~crossgen.nets.Bf16Linear` over a replica axis: ``x Wᵀ + b`` per replica with bf16 matmuls
    (fp32 accumulation), fp32 bias, output and gradients; the same casts, batched."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor):
        x16, w16 = x.to(BF16), w.to(BF16)
        ctx.save_for_backward(x16, w16)
        return torch.add(b[:, None, :], torch.bmm(x16, w16.transpose(1, 2)))

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, g: torch.Tensor):  # type: ignore[override]
        x16, w16 = ctx.saved_tensors
        g16 = g.to(BF16)
        g_x = torch.bmm(g16, w16).float() if ctx.needs_input_grad[0] else None
        return g_x, torch.bmm(g16.transpose(1, 2), x16).float(), g.sum(1)


def _layers(net: MLP) -> list[nn.Linear]:
    return [*net.hidden, net.head]


class StackedMLP:
    """The stacked parameters of R MLPs, bound back into each replica as views.

    Layer ``i`` (hidden layers, then the head) holds ``weights[i]`` (R, out, in) and ``biases[i]`` (R, out).
    Building copies the replicas' current values in; afterwards every replica parameter *is* its slice, so
    evaluating a replica or extracting its features reads the stacked values, during and after training.
    """

    def __init__(self, nets: Sequence[MLP]) -> None:
        first = nets[0]
        for net in nets:
            if net.sizes != first.sizes:
                raise ValueError("every replica of a stack needs the same layer sizes")
            if net.aux_head is not None:
                raise ValueError("an MLP with an auxiliary head (distillation) does not stack")
        self.nets = list(nets)
        self.sizes = list(first.sizes)
        self.n = len(nets)
        self.weights: list[nn.Parameter] = []
        self.biases: list[nn.Parameter] = []
        per_net = [_layers(net) for net in nets]
        for i in range(len(per_net[0])):
            for name, out in (("weight", self.weights), ("bias", self.biases)):
                stacked = torch.stack([getattr(layers[i], name).detach() for layers in per_net]).contiguous()
                param = nn.Parameter(stacked)
                out.append(param)
                for r, layers in enumerate(per_net):
                    getattr(layers[i], name).data = param.data[r]

    def parameters(self) -> list[nn.Parameter]:
        return [*self.weights, *self.biases]

    def forward(self, x: torch.Tensor, *, bf16: bool = False) -> torch.Tensor:
        """Logits (R, B, classes) of each replica on its own minibatch ``x`` (R, B, d)."""
        last = len(self.weights) - 1
        h = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = StackedBf16Linear.apply(h, w, b) if bf16 else torch.baddbmm(b[:, None, :], h, w.transpose(1, 2))
            if i < last:
                h = torch.relu(h)
        return h


def _freeze(net: MLP) -> None:
    """Unbind a stopped replica from the stack: its model keeps the values it stopped with."""
    for p in net.parameters():
        p.data = p.data.clone()


def fit_deterministic_stacked(
    replicas: Sequence[MLPReplica],
    x: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    precision: str = "fp32",
) -> list[MLPReplica]:
    """Adam on cross-entropy for every replica at once, each with its own labels, order and (optionally) inputs.

    ``x`` is shared, shape (N, d), or each replica's own, shape (R, N, d). The per-replica counterpart of
    :func:`crossgen.train.fit_deterministic` (without ``loss_fn``): the same minibatch loop, fused Adam,
    logged value (mean minibatch loss per epoch) and divergence check, per replica. A replica whose loss
    turns non-finite is stopped with :class:`~crossgen.train.DivergenceError` in ``error``; one whose
    callback raises is stopped with that exception; a stopped replica's model keeps its values at the
    stop; the others train on. Returns ``replicas`` with ``losses`` and ``error`` filled in.
    """
    if not replicas:
        return []
    require_precision(precision, x.device)
    n_rep = len(replicas)
    if x.dim() == 3:
        if x.shape[0] != n_rep:
            raise ValueError(f"x of shape {tuple(x.shape)} has {x.shape[0]} replicas' inputs, not {n_rep}")
        n_total = x.shape[1]
        flat = x.reshape(n_rep * n_total, x.shape[2])
        offsets: torch.Tensor | None = (torch.arange(n_rep, device=x.device) * n_total)[:, None]
    else:
        n_total, flat, offsets = x.shape[0], x, None
    ys = torch.stack([r.y.to(x.device) for r in replicas])
    if ys.shape != (n_rep, n_total):
        raise ValueError(f"labels of shape {tuple(ys.shape)} do not match {n_total} inputs per replica")
    stack = StackedMLP([r.net for r in replicas])
    opt = torch.optim.Adam(stack.parameters(), lr=lr, fused=True)
    bf16 = precision == "bf16"
    n_batches = math.ceil(n_total / batch_size)
    active = [r.error is None for r in replicas]
    for r, replica in enumerate(replicas):
        replica.net.train()
        if not active[r]:
            _freeze(replica.net)
    for epoch in range(epochs):
        if not any(active):
            break
        # each replica's own permutation (as crossgen.train._batches draws it), moved once per epoch
        order = torch.stack([torch.randperm(n_total, generator=r.generator) for r in replicas]).to(x.device)
        total = torch.zeros(n_rep, device=x.device)
        for b in range(n_batches):
            idx = order[:, b * batch_size : (b + 1) * batch_size]
            rows = idx if offsets is None else idx + offsets
            xb = flat.index_select(0, rows.reshape(-1)).view(n_rep, idx.shape[1], -1)
            logits = stack.forward(xb, bf16=bf16)
            losses = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), ys.gather(1, idx).reshape(-1), reduction="none"
            )
            losses = losses.view(n_rep, -1).mean(1)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            opt.step()
            total += losses.detach()
        means = (total / n_batches).tolist()
        for r, replica in enumerate(replicas):
            if not active[r]:
                continue
            value = means[r]
            if not math.isfinite(value):
                replica.error = DivergenceError(f"{replica.what}: non-finite loss ({value}) in epoch {epoch}")
            else:
                replica.losses.append(value)
                if replica.on_epoch is not None:
                    try:
                        replica.on_epoch(epoch, value)
                    except Exception as exc:  # pruning or a failed evaluation stops this replica alone
                        replica.error = exc
            if replica.error is not None:
                active[r] = False
                _freeze(replica.net)
    for replica in replicas:
        replica.net.eval()
    return list(replicas)
