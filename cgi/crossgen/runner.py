"""run(RunConfig) -> RunResult: load the tasks, call the technique, evaluate, time every stage.

run_many(configs) runs several at once, their BNN fits trained as stacked replicas (:mod:`crossgen.stack`) and
their deterministic MLP fits likewise (:mod:`crossgen.stack_mlp`).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from crossgen.config import RunConfig
from crossgen.data import Split, Task, load_tasks
from crossgen.stack import Replica, fit_bnn_stacked, stack_key
from crossgen.stack_mlp import MLPReplica, fit_deterministic_stacked, mlp_stack_key
from crossgen.techniques import TECHNIQUE_FUNCTIONS, Context
from crossgen.techniques.base import (
    STAGE_ORDER,
    AnyFitRequest,
    FitRequest,
    MLPFitRequest,
    Outcome,
    StageTimer,
    TargetEpochCallback,
)

CGI_OVERHEAD_STAGES = ("bootstrap", "initialisation", "generator_fit", "sampling")
"""The stages CGI adds on top of training two BNNs (what ``cgi_overhead_fraction`` measures)."""


@dataclass(frozen=True)
class RunResult:
    """Everything one run measured. ``to_dict`` gives the JSON the CLI prints and Optuna stores."""

    case: str
    technique: str
    seed: int
    fidelity: str
    val_accuracy: float
    test_accuracy: float
    seconds: float
    stages: dict[str, float]
    n_val: int = 0
    n_test: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    artefacts: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, artefacts: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not artefacts:
            out.pop("artefacts")
        return out


def load_run_tasks(config: RunConfig, log: Any = print) -> dict[str, Task]:
    """The two tasks at the run's fidelity (callers running many configs load once and pass them in)."""
    fid = config.fidelity
    data_dir = Path(config.data_dir) if config.data_dir else None
    return load_tasks(fid.data, data_dir, max_train=fid.max_train, max_eval=fid.max_eval, log=log)


def _to_device(task: Task, device: torch.device) -> Task:
    if device.type == "cpu":
        return task

    def move(split: Split) -> Split:
        return Split(split.x.to(device), split.y.to(device))

    return replace(task, train=move(task.train), val=move(task.val), test=move(task.test))


@dataclass
class _Run:
    """One run in flight: its context, its technique (a generator while it trains) and its clock."""

    config: RunConfig
    ctx: Context
    steps: Generator[AnyFitRequest, list[float], Outcome] | None
    seconds: float = 0.0
    request: AnyFitRequest | None = None
    outcome: Outcome | None = None
    error: BaseException | None = None

    def advance(self, send: Callable[[], AnyFitRequest]) -> None:
        """Run the technique up to its next fit request (or its end), timing it as this run's own work."""
        start = time.perf_counter()
        try:
            self.request = send()
        except StopIteration as stop:
            self.request, self.outcome = None, stop.value
        except Exception as exc:
            self.request, self.error = None, exc
        finally:
            self.seconds += time.perf_counter() - start


def _start(
    config: RunConfig, tasks: dict[str, Task], on_target_epoch: TargetEpochCallback | None, moved: dict[str, Task]
) -> _Run:
    device = torch.device(config.device)
    case = config.case_spec
    for name in (case.source_task, case.target_task):
        if name not in moved:
            moved[name] = _to_device(tasks[name], device)
    ctx = Context(
        config=config,
        source=moved[case.source_task],
        target=moved[case.target_task],
        device=device,
        timer=StageTimer(),
        on_target_epoch=on_target_epoch,
    )
    start = time.perf_counter()
    technique = TECHNIQUE_FUNCTIONS[config.technique](ctx)
    if inspect.isgenerator(technique):
        run_ = _Run(config, ctx, technique, seconds=time.perf_counter() - start)
        run_.advance(lambda: next(technique))
        return run_
    return _Run(config, ctx, None, seconds=time.perf_counter() - start, outcome=technique)


def _result(run_: _Run) -> RunResult:
    """Evaluate a trained run's target on validation and test (validation selects; test is only reported)."""
    ctx, outcome = run_.ctx, run_.outcome
    assert outcome is not None
    start = time.perf_counter()
    with ctx.timer("evaluation"):
        val = outcome.accuracy(ctx.target.val.x, ctx.target.val.y)
        test = outcome.accuracy(ctx.target.test.x, ctx.target.test.y)
    run_.seconds += time.perf_counter() - start
    return RunResult(
        case=run_.config.case,
        technique=run_.config.technique,
        seed=run_.config.seed,
        fidelity=run_.config.fidelity.name,
        val_accuracy=val,
        test_accuracy=test,
        seconds=run_.seconds,
        stages=dict(ctx.timer.seconds),
        n_val=len(ctx.target.val),
        n_test=len(ctx.target.test),
        history=outcome.history,
        artefacts=outcome.artefacts,
        config=run_.config.to_dict(),
    )


def run(
    config: RunConfig,
    *,
    tasks: dict[str, Task] | None = None,
    on_target_epoch: TargetEpochCallback | None = None,
    log: Any = print,
) -> RunResult:
    """Run one technique on one case with one seed and evaluate the target on validation and test.

    Validation accuracy is what studies optimise; test accuracy is only ever reported. Every fit runs on
    its own (unstacked): this is the reference path, bit-for-bit what every stored result was made with.
    """
    if tasks is None:
        tasks = load_run_tasks(config, log=log)
    run_ = _start(config, tasks, on_target_epoch, {})
    while run_.request is not None:
        _fit_alone(run_)
    if run_.error is not None:
        raise run_.error
    return _result(run_)


def run_many(
    configs: Sequence[RunConfig],
    *,
    tasks: dict[str, Task] | None = None,
    on_target_epoch: Sequence[TargetEpochCallback | None] | None = None,
    max_stack: int | None = None,
    log: Any = print,
) -> list[RunResult | Exception]:
    """Run every configuration, training their fits as stacked replicas where they can share a stack.

    All runs advance in lockstep: each runs its technique up to its next fit, the waiting fits are grouped
    by what a stack must share (:func:`_key`: sizes, inputs, budget, optimiser, numerics), and the group of
    the earliest stage (warm-up, source, target) runs first as one stacked model
    (:func:`crossgen.stack.fit_bnn_stacked` for BNNs, :func:`crossgen.stack_mlp.fit_deterministic_stacked`
    for Experiment 1's MLPs), in chunks of ``max_stack``. So a trial's seeds share their source stack, and
    the benchmark and every CGI variant of a seed share the target stack (they share the target's data and
    order); ``none``, ``feature`` and ``distill`` share their source stack and ``none`` / ``feature`` their
    target stacks (a ``feature`` target on each replica's own features). Distillation's student (a custom
    loss) trains on its own.

    Returns one entry per configuration, in order: its :class:`RunResult`, or the exception that ended it
    (a diverged replica, a pruned one, a failed generator fit); one run's failure never stops another.
    A run's ``stages`` and ``seconds`` hold its share of each stacked fit (the stack's time / its replicas).
    """
    if not configs:
        return []
    if tasks is None:
        tasks = load_run_tasks(configs[0], log=log)
    hooks = list(on_target_epoch) if on_target_epoch is not None else [None] * len(configs)
    moved: dict[str, dict[str, Task]] = {}
    runs = [_start(c, tasks, h, moved.setdefault(c.device, {})) for c, h in zip(configs, hooks, strict=True)]
    while True:
        waiting = [r for r in runs if r.request is not None]
        if not waiting:
            break
        groups: dict[tuple, list[_Run]] = {}
        for r in waiting:
            assert r.request is not None
            groups.setdefault(_key(r.request), []).append(r)
        group = min(groups.values(), key=lambda g: (STAGE_ORDER.get(g[0].request.stage, 99), -len(g)))
        size = max_stack or len(group)
        for first in range(0, len(group), size):
            chunk = group[first : first + size]
            if len(chunk) == 1:  # a stack of one is the unstacked reference fit, bit for bit
                _fit_alone(chunk[0])
            else:
                _fit_stack(chunk)
    return [r.error if r.error is not None else _result(r) for r in runs]


def _key(request: AnyFitRequest) -> tuple:
    """What a request must share with others to train in one stack with them (a unique key: never)."""
    if isinstance(request, MLPFitRequest):
        if not request.stackable():
            return ("alone", id(request))
        return mlp_stack_key(request.net, request.x, **request.settings())
    return stack_key(request.bnn, request.x, **request.settings())


def _fit_alone(run_: _Run) -> None:
    """One fit on its own (:meth:`FitRequest.run`); the run advances with its losses or its error."""
    assert run_.request is not None and run_.steps is not None
    steps = run_.steps
    start = time.perf_counter()
    try:
        losses = run_.request.run()
    except Exception as exc:
        run_.seconds += time.perf_counter() - start
        run_.advance(lambda exc=exc: steps.throw(exc))
    else:
        run_.seconds += time.perf_counter() - start
        run_.advance(lambda: steps.send(losses))


def _fit_stack(chunk: list[_Run]) -> None:
    """One stacked fit of the chunk's waiting requests; each run then advances with its losses or error."""
    requests = [r.request for r in chunk]
    first = requests[0]
    assert first is not None
    replicas: list[Replica] | list[MLPReplica]
    start = time.perf_counter()
    try:
        if isinstance(first, MLPFitRequest):
            mlps = [q for q in requests if isinstance(q, MLPFitRequest)]
            replicas = [MLPReplica(q.net, q.y, q.generator, on_epoch=q.on_epoch, what=q.what) for q in mlps]
            fit_deterministic_stacked(replicas, _stacked_inputs([q.x for q in mlps]), **first.settings())
        else:
            bnns = [q for q in requests if isinstance(q, FitRequest)]
            replicas = [Replica(q.bnn, q.y, q.generator, q.noise, on_epoch=q.on_epoch, what=q.what) for q in bnns]
            fit_bnn_stacked(replicas, first.x, **first.settings())
    except Exception as exc:  # a failure of the stack as a whole (a bad setting) ends each of its runs
        for replica in replicas:
            replica.error = exc
    share = (time.perf_counter() - start) / len(chunk)
    for r, q, replica in zip(chunk, requests, replicas, strict=True):
        assert q is not None
        q.timer.seconds[q.stage] = q.timer.seconds.get(q.stage, 0.0) + share
        r.seconds += share
        if replica.error is not None:
            r.advance(lambda r=r, e=replica.error: r.steps.throw(e))
        else:
            r.advance(lambda r=r, losses=replica.losses: r.steps.send(losses))


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype


def _stacked_inputs(xs: list[torch.Tensor]) -> torch.Tensor:
    """The replicas' inputs: one shared (N, d) tensor where they all train on it, else (R, N, d)."""
    if all(_same_tensor(x, xs[0]) for x in xs[1:]):
        return xs[0]
    return torch.stack(xs)
