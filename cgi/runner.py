"""run(RunConfig) -> RunResult: load the tasks, call the technique, evaluate, time every stage."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from crossgen.config import RunConfig
from crossgen.data import Split, Task, load_tasks
from crossgen.techniques import TECHNIQUE_FUNCTIONS, Context
from crossgen.techniques.base import StageTimer, TargetEpochCallback

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


def run(
    config: RunConfig,
    *,
    tasks: dict[str, Task] | None = None,
    on_target_epoch: TargetEpochCallback | None = None,
    log: Any = print,
) -> RunResult:
    """Run one technique on one case with one seed and evaluate the target on validation and test.

    Validation accuracy is what studies optimise; test accuracy is only ever reported.
    """
    start = time.perf_counter()
    device = torch.device(config.device)
    if tasks is None:
        tasks = load_run_tasks(config, log=log)
    case = config.case_spec
    timer = StageTimer()
    ctx = Context(
        config=config,
        source=_to_device(tasks[case.source_task], device),
        target=_to_device(tasks[case.target_task], device),
        device=device,
        timer=timer,
        on_target_epoch=on_target_epoch,
    )
    outcome = TECHNIQUE_FUNCTIONS[config.technique](ctx)
    with timer("evaluation"):
        val = outcome.accuracy(ctx.target.val.x, ctx.target.val.y)
        test = outcome.accuracy(ctx.target.test.x, ctx.target.test.y)
    return RunResult(
        case=config.case,
        technique=config.technique,
        seed=config.seed,
        fidelity=config.fidelity.name,
        val_accuracy=val,
        test_accuracy=test,
        seconds=time.perf_counter() - start,
        stages=dict(timer.seconds),
        n_val=len(ctx.target.val),
        n_test=len(ctx.target.test),
        history=outcome.history,
        artefacts=outcome.artefacts,
        config=config.to_dict(),
    )
