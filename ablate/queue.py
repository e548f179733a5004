"""The trial queue: every trial a worker runs was enqueued first, so totals are exact with any worker count.

Optuna's ``study.optimize(n_trials=N)`` counts per process and creates a fresh trial whenever the queue is
empty, so N workers overshoot and a designed study can run a point twice. Here the coordinator enqueues
exactly what must run — design points, or for a sampled study N empty *tickets* whose parameters the
sampler fills in when a worker pops them — and workers only ever pop from that queue (Optuna's atomic
WAITING → RUNNING transition), never create trials. A failed sampled trial is replaced by a fresh ticket,
a stale one (killed worker) is failed and re-queued by Optuna's ``RetryHeartbeatStaleTrialCallback``, so a
study ends with exactly its total of finished trials.

The Optuna internals it needs (the atomic claim of a waiting trial, the heartbeat thread, a trial's storage
id) are reached through :mod:`ablate._optuna_compat`.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from ablate._optuna_compat import (
    grace_period_of,
    heartbeat_enabled,
    heartbeat_thread,
    pop_waiting_trial_id,
    storage_of,
    trial_id_of,
)
from ablate.designs import DesignPoint
from ablate.record import FAIL_REASON, KEY, TICKET, point_attrs

log = logging.getLogger("ablate.queue")

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

    The point travels only in the trial's record (no Optuna parameters), so what runs and what the report
    reads are one value.
    """
    present = {t.user_attrs.get(KEY) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, *PENDING))}
    added = 0
    for point in points:
        if point.key in present:
            continue
        study.enqueue_trial({}, user_attrs=point_attrs(point.point()), skip_if_exists=False)
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


def _fail_stale(study: optuna.Study) -> None:
    if heartbeat_enabled(storage_of(study)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            fail_stale_trials(study)


def _finish(
    study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None, reason: str | None
) -> bool:
    """Record a trial's end; False when someone else already finished it (nothing is overwritten).

    That happens when a stale-trial check failed this trial while it was still running (a worker paused
    longer than the grace period), or when two workers raced for one queued trial on a storage without row
    locks. The first recorded result stands; this one is discarded with a warning instead of crashing.
    """
    try:
        if reason is not None:
            trial.set_user_attr(FAIL_REASON, reason)
        if state == TrialState.COMPLETE:
            study.tell(trial, value)
        else:
            study.tell(trial, state=state)
        return True
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("trial %d was already finished elsewhere; this worker's result is discarded", trial.number)
        return False
    except ValueError as exc:  # Study.tell's wording for an already-finished trial
        if "cannot tell a" not in str(exc).lower():
            raise
        log.warning("trial %d was already finished elsewhere; this worker's result is discarded", trial.number)
        return False


def _adopt_orphans(study: optuna.Study, running: list[FrozenTrial], adopted: set[int]) -> None:
    """Give one heartbeat to RUNNING trials older than the grace period.

    Optuna only fails trials whose *last* heartbeat is old; a trial whose worker died between popping it
    and its first heartbeat has none and would stay RUNNING forever (and this worker would wait on it).
    One recorded beat makes it an ordinary stale trial, failed and re-queued after one more grace period.
    A live trial already beats every interval, so the extra beat changes nothing for it.
    """
    storage = storage_of(study)
    grace = grace_period_of(storage)
    now = dt.datetime.now()
    for t in running:
        if trial_id_of(t) in adopted or t.datetime_start is None:
            continue
        if (now - t.datetime_start).total_seconds() > grace:
            storage.record_heartbeat(trial_id_of(t))
            adopted.add(trial_id_of(t))


def _is_duplicate(study: optuna.Study, trial: optuna.Trial) -> bool:
    key = trial.user_attrs.get(KEY)
    if key is None:
        return False
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return any(t.user_attrs.get(KEY) == key for t in done)


def work(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    deadline: float | None = None,
    replace_failed: bool = False,
    max_replacements: int = 50,
    poll_s: float = 1.0,
    on_trial: Callable[[FrozenTrial], None] | None = None,
) -> WorkerStats:
    """Pop and run queued trials until the queue is empty (and no trial it could inherit is running).

    ``replace_failed`` (sampled studies) enqueues a fresh ticket for every failed trial, so failures do not
    eat into the total; designed points are deterministic and are not re-run after a genuine failure.
    KeyboardInterrupt (Ctrl-C, or SIGTERM turned into it) fails the running trial with its reason and
    re-raises: the storage stays consistent and rerunning the command resumes.
    """
    stats = WorkerStats()
    storage = storage_of(study)
    heartbeat = heartbeat_enabled(storage)
    adopted: set[int] = set()
    while deadline is None or time.time() < deadline:
        _fail_stale(study)
        trial_id = pop_waiting_trial_id(study)
        if trial_id is None:
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if heartbeat and running:
                _adopt_orphans(study, running, adopted)
                time.sleep(poll_s)  # a stale one will be failed and re-queued; a live one will finish
                continue
            break
        trial = optuna.Trial(study, trial_id)
        if _is_duplicate(study, trial):
            trial.set_user_attr(FAIL_REASON, "duplicate design point: already complete in this study")
            study.tell(trial, state=TrialState.FAIL)
            stats.skipped_duplicates += 1
            continue
        state, value, reason = TrialState.COMPLETE, None, None
        with heartbeat_thread(trial_id, storage):
            try:
                value = objective(trial)
                if value is None or not math.isfinite(value):
                    state, reason = TrialState.FAIL, f"objective returned a non-finite value ({value})"
            except optuna.TrialPruned:
                state = TrialState.PRUNED
            except KeyboardInterrupt:
                _finish(study, trial, TrialState.FAIL, None, "interrupted (Ctrl-C / SIGTERM)")
                raise
            except Exception as exc:  # a failed run must not end the study: record why and go on
                state, reason = TrialState.FAIL, _one_line(exc)
        if reason is not None:
            stats.reasons.append(reason)
            log.warning("trial %d failed: %s", trial.number, reason)
        if not _finish(study, trial, state, value, reason):
            stats.lost += 1
            continue
        if state == TrialState.COMPLETE:
            stats.completed += 1
        elif state == TrialState.PRUNED:
            stats.pruned += 1
        else:
            stats.failed += 1
            if replace_failed and stats.replaced < max_replacements:
                study.enqueue_trial({}, user_attrs={TICKET_ATTR: True, "replaces": trial.number})
                stats.replaced += 1
        if on_trial is not None:
            on_trial(storage.get_trial(trial_id))
    return stats


def recover(study: optuna.Study, *, stale_after: float, now: dt.datetime | None = None) -> list[int]:
    """Fail RUNNING trials started more than ``stale_after`` seconds ago and re-queue a copy of each.

    For storages without heartbeats (journal file / Redis) a killed worker's trial stays RUNNING forever;
    this is the manual repair. It re-queues through Optuna's own RetryHeartbeatStaleTrialCallback, so the
    copy carries the same parameters and design attributes. Returns the numbers of the repaired trials.
    """
    now = now or dt.datetime.now()
    repaired = []
    retry = RetryHeartbeatStaleTrialCallback()
    storage = storage_of(study)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = t.datetime_start or now
        if (now - started).total_seconds() < stale_after:
            continue
        trial_id = trial_id_of(t)
        try:  # the reason first: a finished trial accepts no more attributes
            storage.set_trial_user_attr(trial_id, FAIL_REASON, f"stale: recovered after {stale_after:g} s")
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # it finished meanwhile: not stale after all
        failed = copy.deepcopy(storage.get_trial(trial_id))
        failed.user_attrs.pop(FAIL_REASON, None)  # the re-queued copy starts clean
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            retry(study, failed)
        repaired.append(t.number)
    return repaired
