"""Without transfer: the target model trained from scratch (the benchmark of both tables)."""

from __future__ import annotations

from collections.abc import Generator

from crossgen.data import Task
from crossgen.nets import MLP
from crossgen.techniques.base import (
    AnyFitRequest,
    Context,
    Fit,
    FitRequest,
    LossFn,
    MLPFitRequest,
    Outcome,
    bnn_outcome,
    fit_target_bnn,
    mlp_outcome,
    new_bnn,
    new_mlp,
    target_epoch_hook,
)
from crossgen.train import accuracy_deterministic


def fit_target_mlp(
    ctx: Context, net: MLP, task: Task, history: dict[str, list[float]], loss_fn: LossFn | None = None
) -> Fit:
    """Train a target MLP on ``task`` (pixels, or a source's features) with the target epoch budget."""
    fid = ctx.config.fidelity
    hook = target_epoch_hook(ctx, lambda: accuracy_deterministic(net, task.val.x, task.val.y))
    history["target"] = yield MLPFitRequest(
        net,
        task.train.x,
        task.train.y,
        epochs=fid.epochs,
        lr=fid.lr,
        batch_size=fid.batch_size,
        generator=ctx.generator("target_train"),
        what="target MLP",
        stage="target_training",
        timer=ctx.timer,
        precision=ctx.config.regime.precision,
        loss_fn=loss_fn,
        on_epoch=hook,
    )
    return history["target"]


def fit_source_mlp(ctx: Context, net: MLP, history: dict[str, list[float]]) -> Fit:
    fid = ctx.config.fidelity
    history["source"] = yield MLPFitRequest(
        net,
        ctx.source.train.x,
        ctx.source.train.y,
        epochs=fid.source_epochs,
        lr=fid.lr,
        batch_size=fid.batch_size,
        generator=ctx.generator("source_train"),
        what="source MLP",
        stage="source_training",
        timer=ctx.timer,
        precision=ctx.config.regime.precision,
    )
    return history["source"]


def none(ctx: Context) -> Generator[AnyFitRequest, list[float], Outcome]:
    """Experiment 1 benchmark: a deterministic target MLP from scratch."""
    history: dict[str, list[float]] = {}
    net = new_mlp(ctx, "target")
    yield from fit_target_mlp(ctx, net, ctx.target, history)
    return mlp_outcome(net, history)


def bnn(ctx: Context) -> Generator[FitRequest, list[float], Outcome]:
    """Experiment 2 benchmark: a target BNN from its standard initialisation."""
    history: dict[str, list[float]] = {}
    model = new_bnn(ctx, "target")
    yield from fit_target_bnn(ctx, model, history)
    return bnn_outcome(ctx, model, history)
