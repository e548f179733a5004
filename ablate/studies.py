"""Create or resume a study, fill its queue, and run workers over it (in-process or as processes).

A :class:`StudyPlan` is plain, picklable data: everything a worker process on any machine needs to join
the same study. Names are derived from what the study measures, so the same command resumes it:

* sampled sensitivity studies: ``sensitivity-{case}-{fidelity}``
* designed ablations: ``ablation-{ofat|factorial}-{case}-{fidelity}``
* the paper's tables: ``table1-{fidelity}``, ``table2-{fidelity}`` (all four cases in one study)
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning

from ablate import provenance, queue, record
from ablate.designs import Design, DesignPoint
from ablate.objective import DesignObjective, SensitivityObjective, TaskCache
from ablate.space import Space
from ablate.storage import open_storage, parse_storage
from crossgen.config import REGISTRY, Fidelity, Registry

SAMPLERS = ("tpe", "random", "qmc", "grid")
PRUNERS = ("none", "median", "wilcoxon", "hyperband")


@dataclass(frozen=True)
class StudyPlan:
    """What to run, where, and how; validated by the CLI before any storage is opened."""

    name: str
    storage: str
    fidelity: Fidelity
    kind: str  # "design" | "sensitivity"
    # designed studies
    design: Design | None = None
    cases: tuple[str, ...] = ()
    seeds: int = 1
    # sampled studies
    case: str | None = None
    space: Space | None = None
    trials: int = 0
    sampler: str = "tpe"
    pruner: str = "none"
    sampler_seed: int = 0
    # execution
    workers: int = 1
    join: bool = False
    timeout: float | None = None
    heartbeat_interval: int | None = 60
    grace_period: int | None = None
    device: str = "cpu"
    data_dir: str | None = None
    threads: int = 1
    base: dict[str, Any] = field(default_factory=dict)  # switch values every run of a sampled study shares
    curves: bool = True  # learning curves in every record (costs ~8% of a quick run; see docs/benchmarks.md)
    registry: Registry = REGISTRY

    @property
    def total(self) -> int:
        if self.kind == "design":
            assert self.design is not None
            return len(self.design.points(list(self.cases), self.seeds))
        return self.trials

    def points(self) -> list[DesignPoint]:
        assert self.design is not None
        return self.design.points(list(self.cases), self.seeds)

    def definition(self) -> record.Definition:
        """What the study stores at creation; reports read it instead of the definition files."""
        common = {
            "name": self.name,
            "fidelity": asdict(self.fidelity),
            "switches": record.switch_declarations(self.registry),
        }
        if self.kind == "sensitivity":
            assert self.space is not None and self.case is not None
            return record.Definition(
                kind="sensitivity",
                case=self.case,
                seeds=self.seeds,
                space=self.space.to_dicts(),
                extra={"sampler": self.sampler, "pruner": self.pruner, "base": dict(self.base)},
                **common,
            )
        assert self.design is not None
        return record.Definition(
            kind="design", design=self.design.to_dict(), cases=tuple(self.cases), seeds=self.seeds, **common
        )


def make_sampler(plan: StudyPlan, worker: int = 0) -> optuna.samplers.BaseSampler:
    seed = plan.sampler_seed + worker  # distinct streams per worker, reproducible per worker index
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        if plan.kind == "design" or plan.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if plan.sampler == "tpe":
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, constant_liar=plan.workers > 1, n_startup_trials=10
            )
        if plan.sampler == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
        assert plan.space is not None
        return optuna.samplers.GridSampler(plan.space.grid(), seed=seed)


def make_pruner(plan: StudyPlan) -> optuna.pruners.BasePruner:
    if plan.kind == "design" or plan.pruner == "none":
        return optuna.pruners.NopPruner()
    if plan.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if plan.pruner == "wilcoxon":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=2)
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=plan.fidelity.epochs)


def open_study(plan: StudyPlan, *, worker: int = 0, create: bool = True) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own progress display says what happens
    storage = open_storage(
        plan.storage,
        workers=max(1, plan.workers),
        heartbeat_interval=plan.heartbeat_interval,
        grace_period=plan.grace_period,
    )
    sampler, pruner = make_sampler(plan, worker), make_pruner(plan)
    if create:
        study = optuna.create_study(
            study_name=plan.name,
            storage=storage,
            direction="maximize",
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
        with warnings.catch_warnings():  # experimental since Optuna 3.2; the dashboard's axes say what the value is
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.set_metric_names(["val_accuracy"])
    else:
        study = optuna.load_study(study_name=plan.name, storage=storage, sampler=sampler, pruner=pruner)
    return study


def prepare(plan: StudyPlan) -> tuple[optuna.Study, int]:
    """Create or resume the study, check it is the same experiment, and fill its queue."""
    study = open_study(plan)
    record.write_definition(study, provenance.stamp(study, plan.definition(), plan))
    if plan.join:
        return study, 0
    if plan.kind == "design":
        added = queue.enqueue_points(study, plan.points())
    else:
        added = queue.top_up_tickets(study, plan.trials)
    return study, added


def build_objective(plan: StudyPlan, log: Callable[..., Any]) -> Callable[[optuna.Trial], float]:
    cache = TaskCache(data_dir=plan.data_dir, log=log)
    if plan.kind == "design":
        assert plan.design is not None
        return DesignObjective(
            plan.fidelity, device=plan.device, cache=cache, registry=plan.registry, curves=plan.curves
        )
    assert plan.space is not None and plan.case is not None
    return SensitivityObjective(
        case=plan.case,
        fidelity=plan.fidelity,
        space=plan.space,
        seeds=plan.seeds,
        base=plan.base,
        device=plan.device,
        cache=cache,
        registry=plan.registry,
        curves=plan.curves,
    )


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def worker_main(plan: StudyPlan, worker: int, threads: int) -> None:
    """Entry point of one worker process: its own connection, threads and sampler stream."""
    import torch

    signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.basicConfig(level=logging.WARNING, format=f"[worker {worker}] %(message)s")
    study = open_study(plan, worker=worker, create=False)
    deadline = time.time() + plan.timeout if plan.timeout else None
    with contextlib.suppress(KeyboardInterrupt):
        queue.work(
            study,
            build_objective(plan, log=lambda *a, **k: None),
            deadline=deadline,
            replace_failed=plan.kind == "sensitivity",
        )


@dataclass
class Outcome:
    study: optuna.Study
    counts: dict[str, int]
    added: int
    seconds: float
    stats: list[queue.WorkerStats] = field(default_factory=list)


def execute(
    plan: StudyPlan,
    *,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    log: Callable[..., Any] = print,
) -> Outcome:
    """Prepare the study and run ``plan.workers`` workers until its queue is done (or the timeout)."""
    parse_storage(plan.storage)
    start = time.time()
    study, added = prepare(plan)
    if plan.workers == 0:
        return Outcome(study, queue.counts(study), added, time.time() - start)
    deadline = start + plan.timeout if plan.timeout else None
    import torch

    # Workers 1..N-1 are spawned processes; worker 0 is this process, so the coordinator works too and the
    # children's start-up (importing torch, loading MNIST: seconds) overlaps with useful work.
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=worker_main, args=(plan, i, plan.threads)) for i in range(1, plan.workers)]
    for p in procs:
        p.start()
    study.sampler = make_sampler(plan, 0)
    torch.set_num_threads(plan.threads)
    try:
        stats = [
            queue.work(
                study,
                build_objective(plan, log=log),
                deadline=deadline,
                replace_failed=plan.kind == "sensitivity",
                on_trial=(lambda _t: on_progress(progress_info(study))) if on_progress else None,
            )
        ]
        while any(p.is_alive() for p in procs):  # the queue is empty: wait for the others' last trials
            if on_progress is not None:
                on_progress(progress_info(study))
            time.sleep(0.5)
    except KeyboardInterrupt:
        for p in procs:  # they got the same SIGINT; give them time to record their trials as FAIL
            p.join(timeout=30)
        raise
    for p in procs:
        p.join()
    return Outcome(study, queue.counts(study), added, time.time() - start, stats)


def progress_info(study: optuna.Study) -> dict[str, Any]:
    """Trial counts by state plus the best value so far (None before the first COMPLETE trial)."""
    info: dict[str, Any] = dict(queue.counts(study))
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    info["best"] = max((t.value for t in done if t.value is not None), default=None)
    return info


def list_studies(storage_url: str) -> list[dict[str, Any]]:
    storage = open_storage(storage_url, heartbeat_interval=None, create=False)
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        c = queue.counts(study)
        best = None
        with contextlib.suppress(ValueError):
            best = study.best_value
        rows.append({"study": summary.study_name, **c, "best_value": best, "kind": record.kind_of(study)})
    return rows
