"""The trial queue: every trial a worker runs was enqueued first, so totals are exact with any worker count.

Optuna's ``study.optimize(n_trials=N)`` counts per process and creates a fresh trial whenever the queue is
empty, so N workers overshoot and a designed study can run a point twice. Here the coordinator enqueues
exactly what must run — design points, or for a sampled study N empty *tickets* whose parameters the
sampler fills in when a worker pops them — and workers only ever pop from that queue (Optuna's atomic
WAITING → RUNNING transition), never create trials. A failed sampled trial is replaced by a fresh ticket,
a stale one (killed worker) is failed and re-queued by Optuna's ``RetryHeartbeatStaleTrialCallback``, so a
study ends with exactly its total of finished trials.

The Optuna internals it needs (the atomic claim of a waiting trial, the heartbeat thread, a trial's storage
id) are reached through :mod:`ablate.execution._optuna_compat`.

SQLite has no row locks. Optuna's claim reads the trial (``SELECT ... FOR UPDATE``, which SQLite ignores, and
which pysqlite runs before it opens a transaction) and then writes RUNNING, so two processes can both read
WAITING and both claim one trial: both then run it, and the slower one's result cannot be stored
(``UpdateFinishedTrialError``). Every state change this module makes on a SQLite file therefore happens under
one exclusive file lock beside the database (:func:`transitions`); PostgreSQL and MariaDB lock the row, and
journal storages order every change in their log.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import logging
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from ablate import record
from ablate.execution._optuna_compat import (
    backend_of,
    grace_period_of,
    heartbeat_enabled,
    heartbeat_thread,
    pop_waiting_trial_id,
    stale_trial_ids,
    storage_of,
    trial_id_of,
)
from ablate.experiment.designs import DesignPoint
from ablate.record import FAIL_REASON, KEY, TICKET, waiting_point

try:
    import fcntl
except ImportError:  # Windows: no flock; SQLite with several worker processes is then unprotected
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("ablate.execution.queue")

_YEAR_S = 365 * 24 * 3600.0
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
PENDING = (TrialState.WAITING, TrialState.RUNNING)
TICKET_ATTR = TICKET


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state name (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``, ``WAITING``)."""
    out = {s.name: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] += 1
    return out


def enqueue_points(study: optuna.Study, points: Iterable[DesignPoint]) -> int:
    """Enqueue every design point not already finished, running or waiting; return how many were added.

    What runs travels in the trial's record; its coordinates are also Optuna params for the dashboard
    (:func:`ablate.record.waiting_point`).
    """
    present = {t.user_attrs.get(KEY) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, *PENDING))}
    added, points = 0, list(points)
    span = {n: list(dict.fromkeys(getattr(p.point(), n) for p in points)) for n in ("case", "variant", "seed")}
    for point in points:
        if point.key in present:
            continue
        study.add_trial(waiting_point(point.point(), cases=span["case"], variants=span["variant"], seeds=span["seed"]))
        present.add(point.key)
        added += 1
    return added


def top_up_tickets(study: optuna.Study, total: int) -> int:
    """Enqueue empty tickets until finished + pending trials reach ``total``; return how many were added."""
    c = counts(study)
    need = total - sum(c[s.name] for s in FINISHED + PENDING)
    for _ in range(max(0, need)):
        study.enqueue_trial({}, user_attrs={TICKET_ATTR: True})
    return max(0, need)


@dataclass
class WorkerStats:
    completed: int = 0
    pruned: int = 0
    failed: int = 0
    replaced: int = 0
    skipped_duplicates: int = 0
    lost: int = 0
    reasons: list[str] = field(default_factory=list)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def _sqlite_lock_path(storage: BaseStorage) -> str | None:
    """The lock file of a SQLite database file (None for any other storage, or an in-memory database)."""
    backend = backend_of(storage)
    if not isinstance(backend, RDBStorage) or backend.engine.dialect.name != "sqlite":
        return None
    database = backend.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}.queue.lock"


@contextlib.contextmanager
def transitions(storage: BaseStorage) -> Iterator[None]:
    """Hold the study's state-change lock: on a SQLite file, an exclusive ``flock`` of ``<db>.queue.lock``.

    Claiming, finishing and failing trials read the trial and then write it. On SQLite two processes can
    interleave those steps (see the module docstring); under this lock they cannot. Other storages lock the
    row or serialise through their log, so this is a no-op there.
    """
    path = _sqlite_lock_path(storage)
    if path is None or fcntl is None:
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def claim(study: optuna.Study) -> int | None:
    """Claim one WAITING trial (WAITING -> RUNNING) for this worker alone; None when the queue is empty."""
    with transitions(storage_of(study)):
        return pop_waiting_trial_id(study)


def _fail_and_requeue(
    study: optuna.Study, trial_id: int, reason: str, retry: Callable[[optuna.Study, FrozenTrial], None] | None
) -> bool:
    """Fail a RUNNING trial with ``reason`` and re-queue a clean copy through ``retry``; False if it was finished.

    The reason is written first: a finished trial accepts no more attributes. Call under :func:`transitions`.
    """
    storage = storage_of(study)
    try:
        storage.set_trial_user_attr(trial_id, FAIL_REASON, reason)
        if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # it finished meanwhile: not stale after all
    if retry is not None:
        failed = copy.deepcopy(storage.get_trial(trial_id))
        failed.user_attrs.pop(FAIL_REASON, None)  # the re-queued copy starts clean
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            retry(study, failed)
    return True


def _fail_stale(study: optuna.Study) -> None:
    """Optuna's ``fail_stale_trials``, but each failed trial says why, and on SQLite under the lock.

    Optuna fails a stale trial without a reason; its re-queued copy (the storage's stale-trial callback)
    is the same as Optuna's.
    """
    storage = storage_of(study)
    if not heartbeat_enabled(storage) or not stale_trial_ids(study):
        return
    reason = f"stale: no heartbeat for more than {grace_period_of(storage):g} s (worker killed, paused or cut off)"
    retry = storage.get_heartbeat_stale_trial_callback()  # type: ignore[attr-defined]
    with transitions(storage):
        for trial_id in stale_trial_ids(study):  # again under the lock: another worker may have failed them
            _fail_and_requeue(study, trial_id, reason, retry)


def _is_finished_elsewhere(exc: BaseException) -> bool:
    if isinstance(exc, optuna.exceptions.UpdateFinishedTrialError):
        return True
    return isinstance(exc, ValueError) and "cannot tell a" in str(exc).lower()  # Study.tell's wording


def _finish(
    study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None, reason: str | None
) -> bool:
    """Record a trial's end; False when someone else already finished it (nothing is overwritten).

    With atomic claims that only happens when a stale check failed this trial while it still ran: its worker
    was cut off or paused for longer than the grace period, or ``recover`` was given too short a
    ``--stale-after``. The first recorded state stands (its re-queued copy runs the point again); this
    worker's result is kept as a note on the study (:func:`ablate.record.write_discarded`), not lost.
    """
    storage = storage_of(study)
    try:
        with transitions(storage):
            if storage.get_trial(trial_id_of(trial)).state.is_finished():  # checked before any write
                raise optuna.exceptions.UpdateFinishedTrialError(f"trial {trial.number} is already finished")
            if reason is not None:
                trial.set_user_attr(FAIL_REASON, reason)
            if state == TrialState.COMPLETE:
                study.tell(trial, value)
            else:
                study.tell(trial, state=state)
        return True
    except Exception as exc:
        if not _is_finished_elsewhere(exc):
            raise
    stored = storage.get_trial(trial_id_of(trial))
    note = {
        "trial": trial.number,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "state": state.name,
        "value": value,
        "reason": reason,
        "stored_state": stored.state.name,
        "stored_reason": stored.user_attrs.get(FAIL_REASON),
        "at": dt.datetime.now().isoformat(timespec="seconds"),
    }
    log.warning(
        "trial %d was already finished elsewhere (%s); this worker's result (%s %s) is kept as study note %s",
        trial.number,
        stored.state.name,
        state.name,
        value,
        record.DISCARDED,
    )
    record.write_discarded(study, trial.number, note)
    return False


ORPHAN_REASON = "orphaned: claimed but never started (its worker stopped between the claim and the first heartbeat)"


def _adopt_orphans(study: optuna.Study, running: list[FrozenTrial], told: set[int]) -> None:
    """Fail and re-queue RUNNING trials that never beat and started more than a grace period ago.

    Optuna only fails trials whose *last* heartbeat is old; a trial whose worker died between claiming it and
    its first heartbeat has none and would stay RUNNING forever (and this worker would wait on it). A live
    trial beats as soon as its run starts, so one without any beat after a whole grace period is an orphan:
    it is failed with that reason and re-queued at once (one grace period, not two). Says once per trial
    what this worker is waiting for.
    """
    storage = storage_of(study)
    grace = grace_period_of(storage)
    beating = set(stale_trial_ids(study, -_YEAR_S))  # every trial with a heartbeat, however recent
    now = dt.datetime.now()
    retry = storage.get_heartbeat_stale_trial_callback()  # type: ignore[attr-defined]
    orphans = [
        t
        for t in running
        if trial_id_of(t) not in beating
        and t.datetime_start is not None
        and (now - t.datetime_start).total_seconds() > grace
    ]
    if orphans:
        with transitions(storage):
            for t in orphans:
                _fail_and_requeue(study, trial_id_of(t), ORPHAN_REASON, retry)
    gone = {t.number for t in orphans}
    new = [t.number for t in running if t.number not in told and t.number not in gone]
    if new:
        shown = ", ".join(f"#{n}" for n in new[:5]) + (f" and {len(new) - 5} more" if len(new) > 5 else "")
        log.warning(
            "waiting for %d running trial(s) of other workers (%s; one that never beats is re-queued after %g s)",
            len(new),
            shown,
            grace,
        )
        told.update(new)


def _is_duplicate(study: optuna.Study, trial: optuna.Trial) -> bool:
    key = trial.user_attrs.get(KEY)
    if key is None:
        return False
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return any(t.user_attrs.get(KEY) == key for t in done)


BatchObjective = Callable[[list[optuna.Trial]], list[float | Exception]]
"""Runs several claimed trials at once (stacked replicas) and returns each one's value or the exception that
ended it, in order. An objective that has a ``run_batch`` attribute of this type can be given ``batch > 1``."""


def _outcome(result: float | Exception | None) -> tuple[TrialState, float | None, str | None]:
    """A trial's end from what its objective returned or raised."""
    if isinstance(result, optuna.TrialPruned):
        return TrialState.PRUNED, None, None
    if isinstance(result, Exception):
        return TrialState.FAIL, None, _one_line(result)
    if result is None or not math.isfinite(result):
        return TrialState.FAIL, None, f"objective returned a non-finite value ({result})"
    return TrialState.COMPLETE, result, None


def _claim_batch(study: optuna.Study, size: int, claimed: list[int]) -> None:
    """Claim up to ``size`` WAITING trials into ``claimed`` (appended as each claim lands, so an interrupt
    between two claims still knows every trial this worker holds)."""
    while len(claimed) < size:
        trial_id = claim(study)
        if trial_id is None:
            return
        claimed.append(trial_id)


def _record_end(
    study: optuna.Study,
    trial: optuna.Trial,
    result: float | Exception | None,
    stats: WorkerStats,
    replace_failed: bool,
    max_replacements: int,
) -> None:
    """Finish one trial from its objective's result and count it (a failed sampled trial gets a new ticket)."""
    state, value, reason = _outcome(result)
    if reason is not None:
        stats.reasons.append(reason)
        log.warning("trial %d failed: %s", trial.number, reason)
    if not _finish(study, trial, state, value, reason):
        stats.lost += 1
    elif state == TrialState.COMPLETE:
        stats.completed += 1
    elif state == TrialState.PRUNED:
        stats.pruned += 1
    else:
        stats.failed += 1
        if replace_failed and stats.replaced < max_replacements:
            study.enqueue_trial({}, user_attrs={TICKET_ATTR: True, "replaces": trial.number})
            stats.replaced += 1


def _release(study: optuna.Study, trial_ids: Iterable[int], reason: str) -> None:
    """Fail claimed trials that will not finish here, each with ``reason`` (already finished ones are left)."""
    storage = storage_of(study)
    with transitions(storage):
        for trial_id in trial_ids:
            _fail_and_requeue(study, trial_id, reason, None)


def work(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    deadline: float | None = None,
    replace_failed: bool = False,
    max_replacements: int = 50,
    poll_s: float = 1.0,
    on_trial: Callable[[FrozenTrial], None] | None = None,
    batch: int = 1,
) -> WorkerStats:
    """Pop and run queued trials until the queue is empty (and no trial it could inherit is running).

    ``replace_failed`` (sampled studies) enqueues a fresh ticket for every failed trial, so failures do not
    eat into the total; designed points are deterministic and are not re-run after a genuine failure.
    ``batch > 1`` (with an objective that has ``run_batch``, :data:`BatchObjective`) claims up to that many
    trials at once and runs them together, each with its own heartbeat and its own end.

    KeyboardInterrupt (Ctrl-C, or SIGTERM turned into it) at any point after a claim fails every trial this
    worker holds with its reason and re-raises: none is left RUNNING without a heartbeat, the storage stays
    consistent, and rerunning the command resumes.
    """
    stats = WorkerStats()
    storage = storage_of(study)
    heartbeat = heartbeat_enabled(storage)
    adopted: set[int] = set()
    run_batch: BatchObjective | None = getattr(objective, "run_batch", None) if batch > 1 else None
    while deadline is None or time.time() < deadline:
        _fail_stale(study)
        claimed: list[int] = []
        ended: set[int] = set()
        try:
            _claim_batch(study, batch if run_batch is not None else 1, claimed)
            if not claimed:
                running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if heartbeat and running:
                    _adopt_orphans(study, running, adopted)
                    time.sleep(poll_s)  # a stale one will be failed and re-queued; a live one will finish
                    continue
                break
            trials = []
            for trial_id in claimed:
                trial = optuna.Trial(study, trial_id)  # the sampler's before_trial runs here
                if _is_duplicate(study, trial):
                    reason = "duplicate design point: already complete in this study"
                    _finish(study, trial, TrialState.FAIL, None, reason)
                    ended.add(trial_id)
                    stats.skipped_duplicates += 1
                else:
                    trials.append(trial)
            if not trials:
                continue
            with contextlib.ExitStack() as beats:
                for trial in trials:
                    beats.enter_context(heartbeat_thread(trial_id_of(trial), storage))
                if run_batch is not None:
                    results = run_batch(trials)
                else:
                    try:
                        results = [objective(trials[0])]
                    except KeyboardInterrupt:
                        raise
                    except Exception as exc:  # a failed run must not end the study: record why and go on
                        results = [exc]
            for trial, result in zip(trials, results, strict=True):
                _record_end(study, trial, result, stats, replace_failed, max_replacements)
                ended.add(trial_id_of(trial))
                if on_trial is not None:
                    on_trial(storage.get_trial(trial_id_of(trial)))
        except KeyboardInterrupt:
            _release(study, [t for t in claimed if t not in ended], "interrupted (Ctrl-C / SIGTERM)")
            raise
    return stats


def recover(study: optuna.Study, *, stale_after: float, now: dt.datetime | None = None) -> list[int]:
    """Fail RUNNING trials stale for more than ``stale_after`` seconds and re-queue a copy of each.

    For storages without heartbeats (journal file / Redis) a killed worker's trial stays RUNNING forever;
    this is the manual repair, and there a trial counts as stale when it *started* more than ``stale_after``
    seconds ago. On RDB storages a trial whose worker is alive beats, so there only a trial whose last
    heartbeat is that old (or that never beat and started that long ago) is failed: ``recover`` never takes
    a trial from a live worker. The copy is re-queued through Optuna's own RetryHeartbeatStaleTrialCallback,
    so it carries the same parameters and design attributes. Returns the numbers of the repaired trials.
    """
    now = now or dt.datetime.now()
    repaired = []
    retry = RetryHeartbeatStaleTrialCallback()
    storage = storage_of(study)
    reason = f"stale: recovered after {stale_after:g} s"
    with transitions(storage):
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        beats = isinstance(backend_of(storage), RDBStorage)
        if beats:
            stale = set(stale_trial_ids(study, stale_after))
            beating = set(stale_trial_ids(study, -_YEAR_S))  # every trial with a heartbeat, however recent
        for t in running:
            trial_id = trial_id_of(t)
            started = t.datetime_start or now
            old = (now - started).total_seconds() >= stale_after
            if beats and trial_id in beating:
                old = trial_id in stale
            if old and _fail_and_requeue(study, trial_id, reason, retry):
                repaired.append(t.number)
    return repaired
