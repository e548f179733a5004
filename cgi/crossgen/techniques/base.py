"""What every technique receives and returns, and the small pieces they share."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from crossgen.bnn import BayesianMLP
from crossgen.config import RunConfig
from crossgen.data import Split, Task
from crossgen.nets import MLP, layer_sizes
from crossgen.seeding import torch_generator
from crossgen.train import accuracy_bnn, accuracy_deterministic, fit_bnn, fit_deterministic

TargetEpochCallback = Callable[[int, float], None]
"""Called with (epoch, validation accuracy) after each target epoch; may raise to stop the run (pruning)."""

STAGE_ORDER: dict[str, int] = {"target_warmup": 0, "source_training": 1, "target_training": 2}
"""The order in which a run reaches its SVI stages: a stacked scheduler runs earlier stages first, so that
every run's target training (the benchmark's and every CGI variant's) can wait for one common stack."""


@dataclass
class StageTimer:
    """Wall time per named stage, accumulated (a stage entered twice adds up)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


@dataclass
class Context:
    """One run's inputs: configuration, the two tasks (already on the device), a timer, callbacks."""

    config: RunConfig
    source: Task
    target: Task
    device: torch.device
    timer: StageTimer
    on_target_epoch: TargetEpochCallback | None = None

    def generator(self, stream: str, *, device: bool = False) -> torch.Generator:
        """A fresh generator for ``stream``; ``device=True`` puts it where sampling noise is drawn."""
        where = str(self.device) if device else "cpu"
        return torch_generator(self.config.seed, stream, where)


@dataclass
class Outcome:
    """A trained target model, seen through the one thing a run needs: accuracy on a split."""

    accuracy: Callable[[torch.Tensor, torch.Tensor], float]
    history: dict[str, list[float]] = field(default_factory=dict)
    artefacts: dict[str, Any] = field(default_factory=dict)


def new_mlp(ctx: Context, which: str, n_in: int | None = None, aux_classes: int | None = None) -> MLP:
    """A deterministic MLP for the source or target side, initialised from that side's init stream."""
    case = ctx.config.case_spec
    task = ctx.source if which == "source" else ctx.target
    model = case.source_model if which == "source" else case.target_model
    sizes = layer_sizes(model, n_in or task.n_features, task.n_classes, ctx.config.fidelity.width, bayesian=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.generator(f"{which}_init").initial_seed())
        net = MLP(sizes, aux_classes=aux_classes)
    return net.to(ctx.device)


def new_bnn(ctx: Context, which: str) -> BayesianMLP:
    """A Bayesian MLP for the source or target side, initialised from that side's init stream."""
    case = ctx.config.case_spec
    task = ctx.source if which == "source" else ctx.target
    model = case.source_model if which == "source" else case.target_model
    cfg = ctx.config.bnn
    sizes = layer_sizes(
        model, task.n_features, task.n_classes, ctx.config.fidelity.width, bayesian=True, depth=cfg.depth
    )
    bnn = BayesianMLP(
        sizes,
        prior_sigma=cfg.prior_sigma,
        init_log_sigma=cfg.init_log_sigma,
        jitter=cfg.init_log_sigma_jitter,
        generator=ctx.generator(f"{which}_init"),
        name=f"{which}_bnn",
    )
    return bnn.to(ctx.device)


def target_epoch_hook(ctx: Context, accuracy: Callable[[], float]) -> Callable[[int, float], None] | None:
    """Adapt the run's (epoch, val accuracy) callback to a fit loop's (epoch, loss) callback."""
    if ctx.on_target_epoch is None:
        return None
    callback = ctx.on_target_epoch

    def hook(epoch: int, _loss: float) -> None:
        callback(epoch, accuracy())

    return hook


def mlp_outcome(net: MLP, history: dict[str, list[float]], **artefacts: Any) -> Outcome:
    return Outcome(lambda x, y: accuracy_deterministic(net, x, y), history, dict(artefacts))


def bnn_outcome(ctx: Context, bnn: BayesianMLP, history: dict[str, list[float]], **artefacts: Any) -> Outcome:
    def accuracy(x: torch.Tensor, y: torch.Tensor) -> float:
        gen = ctx.generator("eval", device=True)
        return accuracy_bnn(bnn, x, y, samples=ctx.config.fidelity.eval_samples, generator=gen)

    return Outcome(accuracy, history, dict(artefacts))


@dataclass
class FitRequest:
    """One SVI fit a technique asks for: everything :func:`~crossgen.train.fit_bnn` takes, plus its stage.

    Techniques that train BNNs are generators: they ``yield`` a request and receive the per-epoch losses
    back. Whoever drives them decides how it runs: :meth:`run` alone (the unstacked reference, bit-for-bit
    what every stored result was made with), or stacked with other runs' requests of the same
    :meth:`key` (:func:`crossgen.stack.fit_bnn_stacked`).
    """

    bnn: BayesianMLP
    x: torch.Tensor
    y: torch.Tensor
    epochs: int
    lr: float
    batch_size: int
    generator: torch.Generator
    noise: torch.Generator
    what: str
    stage: str
    timer: StageTimer
    precision: str = "fp32"
    optimizer: str = "adam"
    kl_weight: float = 1.0
    on_epoch: Callable[[int, float], None] | None = None

    def settings(self) -> dict[str, Any]:
        """The fit's settings that every replica of a stack must share."""
        return {
            "epochs": self.epochs,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "precision": self.precision,
            "optimizer": self.optimizer,
            "kl_weight": self.kl_weight,
        }

    def run(self) -> list[float]:
        """The fit on its own, under the stage timer."""
        with self.timer(self.stage):
            return fit_bnn(
                self.bnn,
                self.x,
                self.y,
                generator=self.generator,
                noise=self.noise,
                on_epoch=self.on_epoch,
                what=self.what,
                **self.settings(),
            ).losses


LossFn = Callable[[MLP, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss_fn(net, xb, yb, idx)``: a custom minibatch loss (distillation's)."""


@dataclass
class MLPFitRequest:
    """One deterministic fit a technique asks for: everything :func:`~crossgen.train.fit_deterministic`
    takes, plus its stage.

    Served as :class:`FitRequest` is: :meth:`run` alone (the unstacked reference, bit-for-bit what every
    stored result was made with), or stacked with other runs' requests of the same :meth:`stack_key`
    (:func:`crossgen.stack_mlp.fit_deterministic_stacked`). A fit with a custom ``loss_fn`` (distillation's
    student) always runs alone.
    """

    net: MLP
    x: torch.Tensor
    y: torch.Tensor
    epochs: int
    lr: float
    batch_size: int
    generator: torch.Generator
    what: str
    stage: str
    timer: StageTimer
    precision: str = "fp32"
    loss_fn: LossFn | None = None
    on_epoch: Callable[[int, float], None] | None = None

    def settings(self) -> dict[str, Any]:
        """The fit's settings that every replica of a stack must share."""
        return {"epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size, "precision": self.precision}

    def stackable(self) -> bool:
        return self.loss_fn is None and self.net.aux_head is None

    def run(self) -> list[float]:
        """The fit on its own, under the stage timer."""
        with self.timer(self.stage):
            return fit_deterministic(
                self.net,
                self.x,
                self.y,
                generator=self.generator,
                loss_fn=self.loss_fn,
                on_epoch=self.on_epoch,
                what=self.what,
                **self.settings(),
            ).losses


AnyFitRequest = FitRequest | MLPFitRequest
"""What a technique's generator may yield."""

Fit = Generator[AnyFitRequest, list[float], list[float]]
"""A fit as a technique writes it: ``losses = yield from fit_bnn_on(...)`` (or an MLP fit)."""


def fit_bnn_on(
    ctx: Context,
    bnn: BayesianMLP,
    task: Task,
    *,
    epochs: int,
    stream: str,
    stage: str,
    what: str,
    on_epoch: Callable[[int, float], None] | None = None,
) -> Fit:
    """SVI of ``bnn`` on ``task`` under the stage timer, with the minibatch and noise streams of ``stream``."""
    losses = yield FitRequest(
        bnn,
        task.train.x,
        task.train.y,
        epochs=epochs,
        lr=ctx.config.bnn_lr,
        batch_size=ctx.config.fidelity.batch_size,
        generator=ctx.generator(f"{stream}_train"),
        noise=ctx.generator(f"{stream}_noise", device=True),
        what=what,
        stage=stage,
        timer=ctx.timer,
        precision=ctx.config.regime.precision,
        optimizer=ctx.config.regime.optimizer,
        kl_weight=ctx.config.regime.kl_weight,
        on_epoch=on_epoch,
    )
    return losses


def source_task(ctx: Context) -> Task:
    """The source task as the source model sees it: with ``source_labels="shuffled"``, its training labels
    permuted by a seeded stream (a control: the source then learns nothing it could transfer)."""
    if ctx.config.cgi.source_labels == "true":
        return ctx.source
    train = ctx.source.train
    perm = torch.randperm(len(train), generator=ctx.generator("source_labels")).to(train.y.device)
    return replace(ctx.source, train=Split(train.x, train.y[perm]))


def fit_target_bnn(ctx: Context, bnn: BayesianMLP, history: dict[str, list[float]]) -> Fit:
    """Train the target BNN for the run's epoch budget (shared by the benchmark and CGI).

    With ``record_curve`` the target's validation and test accuracy after every epoch go into
    ``history["curve_val"]`` / ``history["curve_test"]`` (learning curves: with a constant learning rate,
    epoch k of a long run is a k-epoch run). Each evaluation uses a fresh eval stream, so the last epoch's
    values equal the run's final accuracies and training is untouched.
    """
    fid = ctx.config.fidelity
    tgt = ctx.target

    def acc(split: Split) -> float:
        gen = ctx.generator("eval", device=True)
        return accuracy_bnn(bnn, split.x, split.y, samples=fid.eval_samples, generator=gen)

    report = target_epoch_hook(ctx, lambda: acc(tgt.val))
    on_epoch = report
    if ctx.config.record_curve:
        curve_val: list[float] = history.setdefault("curve_val", [])
        curve_test: list[float] = history.setdefault("curve_test", [])

        def on_epoch(epoch: int, loss: float) -> None:
            curve_val.append(acc(tgt.val))
            curve_test.append(acc(tgt.test))
            if ctx.on_target_epoch is not None:
                ctx.on_target_epoch(epoch, curve_val[-1])

    history["target"] = yield from fit_bnn_on(
        ctx,
        bnn,
        tgt,
        epochs=ctx.config.target_epochs,
        stream="target",
        stage="target_training",
        what="target BNN",
        on_epoch=on_epoch,
    )
    return history["target"]
