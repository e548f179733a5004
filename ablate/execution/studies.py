"""Create or resume a study, fill its queue, and run workers over it (in-process or as processes).

A plan (:mod:`ablate.execution.plans`: a :class:`DesignPlan` or a :class:`SensitivityPlan`) is plain,
picklable data: everything a worker process on any machine needs to join the same study. Names are derived
from what the study measures, so the same command resumes it:

* sampled sensitivity studies: ``sensitivity-{case}-{fidelity}``
* designed ablations: ``ablation-{ofat|factorial}-{case}-{fidelity}``
* the paper's tables: ``table1-{fidelity}``, ``table2-{fidelity}`` (all four cases in one study)
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning

from ablate import record
from ablate.errors import AblateError
from ablate.execution import connections, provenance, queue
from ablate.execution.plans import (
    MEDIAN_WARMUP_STEPS,
    PRUNERS,
    SAMPLERS,
    WILCOXON_P_THRESHOLD,
    WILCOXON_STARTUP_STEPS,
    DesignPlan,
    SensitivityPlan,
    StudyPlan,
    min_one_sided_p,
    pruning_warning,
)
from ablate.execution.storages import is_transient_error, open_storage, parse_storage
from ablate.experiment.names import check_new_study_name

JOIN_POLL_S = 2.0
__all__ = [  # the plans live in ablate.execution.plans; running them is this module's
    "MEDIAN_WARMUP_STEPS",
    "PRUNERS",
    "SAMPLERS",
    "WILCOXON_P_THRESHOLD",
    "WILCOXON_STARTUP_STEPS",
    "DesignPlan",
    "Outcome",
    "SensitivityPlan",
    "StudyPlan",
    "check_new_names",
    "execute",
    "list_studies",
    "make_pruner",
    "make_sampler",
    "min_one_sided_p",
    "open_study",
    "prepare",
    "pruning_warning",
]


def make_sampler(plan: StudyPlan, worker: int = 0) -> optuna.samplers.BaseSampler:
    return plan.sampler(worker)


def make_pruner(plan: StudyPlan) -> optuna.pruners.BasePruner:
    return plan.pruner()


def check_new_names(url: str, names: Iterable[str]) -> None:
    """Refuse, before anything is written, a new study name the storage's other studies make ambiguous on some
    backend (:func:`ablate.experiment.names.check_new_study_name`). A storage that does not exist yet holds no
    name to collide with and is not created here."""
    try:
        storage = open_storage(url, heartbeat_interval=None, create=False)
    except AblateError:
        return
    try:
        existing = optuna.get_all_study_names(storage)
    finally:
        connections.release(storage)
    for name in names:
        check_new_study_name(name, existing)


def open_study(plan: StudyPlan, *, worker: int = 0, create: bool = True) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own progress display says what happens
    storage = open_storage(
        plan.storage,
        workers=max(1, plan.workers),
        heartbeat_interval=plan.heartbeat_interval,
        grace_period=plan.grace_period,
        wait=plan.join_wait if plan.join else 0.0,  # a joiner waits for a restarting server, as for its study
    )
    sampler, pruner = make_sampler(plan, worker), make_pruner(plan)
    if create:
        check_new_study_name(plan.name, optuna.get_all_study_names(storage))  # before the study is written
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


def _await_study(plan: StudyPlan, log: Callable[..., Any]) -> optuna.Study:
    """``--join``: the study once its coordinator has created it and enqueued work, waiting up to ``join_wait`` s.

    A joiner never creates a study: one that started before its coordinator (a SLURM array starts its tasks
    together) would otherwise create an empty study, find nothing to do and exit 0. The first enqueued trial
    is the signal, because the coordinator writes the study's definition before it enqueues.
    """
    storage = open_storage(
        plan.storage,
        workers=max(1, plan.workers),
        heartbeat_interval=plan.heartbeat_interval,
        grace_period=plan.grace_period,
        wait=plan.join_wait,
    )
    deadline = time.monotonic() + plan.join_wait
    told = False
    while True:
        with contextlib.suppress(KeyError):
            try:
                study = optuna.load_study(study_name=plan.name, storage=storage)
                ready = bool(study.get_trials(deepcopy=False))
            except Exception as exc:  # a server restarting while we wait: wait it out too, up to the deadline
                if not is_transient_error(exc) or time.monotonic() >= deadline:
                    raise
                ready = False
            if ready:
                connections.release(storage)  # only to wait with: the worker's own storage follows
                return open_study(plan, create=False)
        if time.monotonic() >= deadline:
            raise AblateError(
                f"--join: no study {plan.name!r} with a queue in {plan.storage} after {plan.join_wait:g} s; "
                "start its coordinator first (the same command without --join, e.g. with --workers 0)"
            )
        if not told:
            log(f"--join: waiting up to {plan.join_wait:g} s for study {plan.name!r} to be created and queued")
            told = True
        time.sleep(min(JOIN_POLL_S, max(0.0, deadline - time.monotonic())))


def prepare(plan: StudyPlan, log: Callable[..., Any] = print) -> tuple[optuna.Study, int]:
    """Create or resume the study, check it is the same experiment, and fill its queue (``--join``: only wait)."""
    study = _await_study(plan, log) if plan.join else open_study(plan)
    record.write_definition(study, provenance.stamp(study, plan.definition(), plan))
    if plan.join:
        return study, 0
    return study, plan.fill(study)


def worker_device(device: str, worker: int) -> str:
    """``--device cuda`` with several visible GPUs: worker i runs on GPU i mod N (an explicit cuda:K stays)."""
    if device != "cuda":
        return device
    import torch

    count = torch.cuda.device_count()
    return f"cuda:{worker % count}" if count > 1 else device


def build_objective(plan: StudyPlan, log: Callable[..., Any], worker: int = 0) -> Callable[[optuna.Trial], float]:
    return plan.objective(worker_device(plan.device, worker), log)


@contextlib.contextmanager
def sigterm_as_interrupt(children: list[Any] | None = None) -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while inside: the running trial is failed with its reason, the command exits 130.

    Schedulers (SLURM, Kubernetes, systemd) stop jobs with SIGTERM, and they signal the coordinator (worker 0)
    as often as a spawned worker. A terminal's Ctrl-C reaches every process of the group by itself; SIGTERM
    reaches only its target, so the coordinator passes it on to its live ``children``. Outside the main thread
    no handler can be installed and nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        for child in children or ():
            if child.is_alive():
                child.terminate()  # SIGTERM: the child's own handler fails its trial
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def worker_main(plan: StudyPlan, worker: int, threads: int) -> None:
    """Entry point of one worker process: its own connection, threads and sampler stream."""
    import torch

    with sigterm_as_interrupt(), contextlib.suppress(KeyboardInterrupt):
        torch.set_num_threads(threads)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        logging.basicConfig(level=logging.WARNING, format=f"[worker {worker}] %(message)s")
        study = open_study(plan, worker=worker, create=False)
        deadline = time.time() + plan.timeout if plan.timeout else None
        queue.work(
            study,
            build_objective(plan, log=lambda *a, **k: None, worker=worker),
            deadline=deadline,
            replace_failed=plan.replace_failed,
            batch=plan.batch,
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
    procs: list[Any] = []
    # SIGTERM to this process (worker 0) ends like Ctrl-C: trial FAIL, exit 130. The storages opened for the study
    # give their connections back when it ends (the returned study reconnects if it is used again).
    with sigterm_as_interrupt(procs), connections.released():
        return _execute(plan, procs, on_progress, log)


def _execute(
    plan: StudyPlan, procs: list[Any], on_progress: Callable[[dict[str, Any]], None] | None, log: Callable[..., Any]
) -> Outcome:
    start = time.time()
    study, added = prepare(plan, log)
    if plan.workers == 0:
        return Outcome(study, queue.counts(study), added, time.time() - start)
    deadline = start + plan.timeout if plan.timeout else None
    import torch

    # Workers 1..N-1 are spawned processes; worker 0 is this process, so the coordinator works too and the
    # children's start-up (importing torch, loading MNIST: seconds) overlaps with useful work.
    ctx = mp.get_context("spawn")
    procs.extend(ctx.Process(target=worker_main, args=(plan, i, plan.threads)) for i in range(1, plan.workers))
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
                replace_failed=plan.replace_failed,
                batch=plan.batch,
                on_trial=(lambda _t: on_progress(progress_info(study))) if on_progress else None,
            )
        ]
        connections.release(study)  # the queue is empty: free this worker's connections for the others' last trials
        while any(p.is_alive() for p in procs):
            if on_progress is not None:
                on_progress(progress_info(study))
                connections.release(study)
            time.sleep(0.5)
    except KeyboardInterrupt:
        for p in procs:  # they got the SIGINT or SIGTERM too; give them time to record their trials as FAIL
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
