"""Every use of a private Optuna name, in one place (checked against optuna 5.0.0).

Optuna has no public API for some things a shared trial queue and a retrying storage need. Each helper
here names one such use and says why it is needed; when Optuna changes, this is the only module to
fix, and ``tests/ablate/execution/test_optuna_compat.py`` fails first (no other module of ``ablate`` may touch a
private Optuna name). The names below have been stable since Optuna 3.

* ``Study._storage`` / ``FrozenTrial._trial_id``: the storage-level calls of the queue (claim, heartbeat,
  repair) take the storage and a trial id; ``Study`` and ``FrozenTrial`` do not expose them.
* ``Study._pop_waiting_trial_id``: Optuna's atomic WAITING -> RUNNING claim, the only way to pop a queued
  trial without ``Study.ask`` creating a fresh one when the queue is empty.
* ``optuna.storages._heartbeat``: whether a storage beats, and the heartbeat thread ``Study.optimize``
  runs around a trial, needed because the queue runs its trials itself.
* ``_CachedStorage._backend``: the grace period lives on the ``RDBStorage`` under Optuna's cache.
* ``RDBStorage._get_stale_trial_ids``: which RUNNING trials stopped beating, by the database's own clock, so
  that the queue can record why it fails them and ``recover`` never fails a trial that still beats.
* The names of ``RDBStorage``'s methods, private leaves included: Optuna's caching layer calls the
  private ``_get_trials``, ``_get_best_trial_id``, ``_set_trial_param``, ``_get_stale_trial_ids`` and
  ``_create_new_trial`` rather than the public methods, so a wrapper must override those.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeatThread, get_heartbeat_thread, is_heartbeat_enabled

__all__ = [
    "RDB_IDEMPOTENT_WRITES",
    "backend_of",
    "RDB_NOT_RETRIABLE",
    "RDB_READS",
    "grace_period_of",
    "heartbeat_enabled",
    "heartbeat_thread",
    "operation_name",
    "pop_waiting_trial_id",
    "stale_trial_ids",
    "storage_of",
    "trial_id_of",
]

#: ``RDBStorage`` methods that only read (no side effects: safe to retry).
RDB_READS: tuple[str, ...] = (
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_trial_param",
    "get_trial_id_from_study_id_trial_number",
    "get_trial",
    "_get_trials",  # behind get_all_trials and the cache
    "_get_best_trial_id",  # behind get_best_trial
    "_get_stale_trial_ids",  # behind fail_stale_trials
)

#: ``RDBStorage`` writes that are upserts in optuna 5.0 (writing the same value twice is a no-op), or that
#: ignore the unique-constraint error of a second identical insert (``_set_trial_param``).
RDB_IDEMPOTENT_WRITES: tuple[str, ...] = (
    "set_study_user_attr",
    "set_study_system_attr",
    "_set_trial_param",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
)

#: Writes that must never be retried blindly: a retry after a commit that reached the server adds a second
#: trial / raises ``DuplicatedStudyError``. ``set_trial_state_values`` and ``record_heartbeat`` are retried
#: with their own checks in ``ablate.execution.storages``.
RDB_NOT_RETRIABLE: tuple[str, ...] = ("create_new_trial", "_create_new_trial", "create_new_study", "delete_study")

_PUBLIC_NAMES = {"_get_trials": "get_all_trials", "_get_best_trial_id": "get_best_trial"}


def operation_name(method: str) -> str:
    """The public storage operation behind an ``RDBStorage`` method name (for log messages)."""
    return _PUBLIC_NAMES.get(method, method.lstrip("_"))


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage under ``study`` (Optuna's caching wrapper for an RDB storage)."""
    return study._storage


def trial_id_of(trial: optuna.trial.FrozenTrial | optuna.Trial) -> int:
    """The storage's id of ``trial`` (not its number): what every storage call takes."""
    return trial._trial_id


def pop_waiting_trial_id(study: optuna.Study) -> int | None:
    """Claim one WAITING trial of ``study`` (WAITING -> RUNNING, atomic per trial); None when none is left."""
    return study._pop_waiting_trial_id()


def heartbeat_enabled(storage: BaseStorage) -> bool:
    """Whether ``storage`` records heartbeats: it implements Optuna's heartbeat protocol (RDB storages, also
    behind the caching wrapper) and has a heartbeat interval."""
    return is_heartbeat_enabled(storage)


def heartbeat_thread(trial_id: int, storage: BaseStorage) -> BaseHeartbeatThread:
    """A context manager that beats for ``trial_id`` every interval while a trial runs (a no-op thread when
    ``storage`` has no heartbeats), as ``Study.optimize`` does around its trials."""
    return get_heartbeat_thread(trial_id, storage)


def grace_period_of(storage: BaseStorage) -> float:
    """Seconds without a heartbeat after which Optuna fails a trial (its default: twice the interval)."""
    backend: Any = getattr(storage, "_backend", storage)
    interval = backend.get_heartbeat_interval() or 60
    return float(getattr(backend, "grace_period", None) or 2 * interval)


def backend_of(storage: BaseStorage) -> BaseStorage:
    """The storage under Optuna's caching wrapper (``storage`` itself when it has none)."""
    return getattr(storage, "_backend", storage)


def stale_trial_ids(study: optuna.Study, grace_s: float | None = None) -> list[int]:
    """Ids of ``study``'s RUNNING trials whose last heartbeat is more than ``grace_s`` seconds old (default: the
    storage's grace period), by the database's clock; trials that never beat are not among them. Empty for a
    storage without heartbeats (journal) or, with ``grace_s=None``, one opened without a heartbeat interval.

    Optuna reads the grace period from the storage, so an explicit ``grace_s`` is set on it for this one read
    (``recover`` uses its own ``--stale-after``); that is safe in a process that runs no trial meanwhile.
    """
    backend: Any = backend_of(study._storage)
    if not isinstance(backend, optuna.storages.RDBStorage):
        return []
    if grace_s is None:
        if backend.heartbeat_interval is None:
            return []
        return list(study._storage._get_stale_trial_ids(study._study_id))
    saved = (backend.heartbeat_interval, backend.grace_period)
    backend.heartbeat_interval, backend.grace_period = saved[0] or 1, grace_s
    try:
        return list(backend._get_stale_trial_ids(study._study_id))
    finally:
        backend.heartbeat_interval, backend.grace_period = saved
