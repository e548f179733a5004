"""Opening a storage: engine settings per backend, local files, journals, heartbeats."""

from __future__ import annotations

import logging
import warnings
from typing import Any, TypeVar

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback

from ablate.errors import StorageError
from ablate.execution import _optuna_compat as compat
from ablate.execution import connections
from ablate.execution.storages.reachability import _check_local
from ablate.execution.storages.retries import RetryingRDBStorage, _connect_retrying, _unreachable
from ablate.execution.storages.urls import (
    CONNECT_TIMEOUT_S,
    DEFAULT_APPLICATION_NAME,
    POOL_RECYCLE_S,
    SQLITE_BUSY_TIMEOUT_S,
    StorageSpec,
    _one_line,
    _split_redis_prefix,
    parse_storage,
)

_logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_C = TypeVar("_C", bound=type[RDBStorage])
# --------------------------------------------------------------------------------------------------
# Opening
# --------------------------------------------------------------------------------------------------


def _rdb_engine_kwargs(spec: StorageSpec, workers: int) -> dict[str, Any]:
    url = sqlalchemy.engine.make_url(spec.url)
    query = set(url.query)
    # A worker is one process: its thread holds a connection only while it talks to the storage (Optuna's
    # session is closed after each call), and the running trial's heartbeat thread briefly holds another. So
    # the pool keeps one idle connection and opens the others on demand (closed again when given back): a
    # process holds 1 connection between calls and at most 2 + workers at once, whatever the pool could hold.
    pool = {"pool_size": 1, "max_overflow": workers + 2}
    if spec.kind == "sqlite":
        connect_args: dict[str, Any] = {}
        if "timeout" not in query:
            connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_S  # wait on the file lock, don't fail
        kwargs: dict[str, Any] = {"connect_args": connect_args}
        if spec.path is not None:  # file database: QueuePool; :memory: uses SingletonThreadPool
            kwargs.update(pool)
        return kwargs
    connect_args = {}
    if "connect_timeout" not in query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    if spec.kind == "postgresql":
        if "application_name" not in query:
            connect_args["application_name"] = DEFAULT_APPLICATION_NAME
        # TCP keepalives notice a dead server / NAT drop during long trials.
        for key, value in (
            ("keepalives", 1),
            ("keepalives_idle", 30),
            ("keepalives_interval", 10),
            ("keepalives_count", 5),
        ):
            if key not in query:
                connect_args[key] = value
    return {
        "pool_pre_ping": True,
        "pool_recycle": POOL_RECYCLE_S,
        "pool_timeout": 60,
        "connect_args": connect_args,
        **pool,
    }


def _prepare_local_file(spec: StorageSpec, create: bool) -> None:
    path = spec.path
    if path is None:
        return
    if not path.exists():
        if not create:
            raise StorageError(
                f"cannot open storage {spec.masked()!r}: {str(path)!r} does not exist; "
                "check the path, or let ablate create the storage"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                _one_line(
                    f"cannot open storage {spec.masked()!r}: cannot create directory "
                    f"{str(path.parent)!r} ({exc.strerror or exc}); choose a writable location"
                )
            ) from None
    _check_local(spec)


def open_storage(
    url: str | None,
    *,
    workers: int = 1,
    heartbeat_interval: int | None = 60,
    grace_period: int | None = None,
    create: bool = True,
    wait: float = 0.0,
) -> BaseStorage:
    """Open the storage named by ``url`` (``None``: ``$OPTUNA_STORAGE``, then the default SQLite file).

    * RDB URLs give a :class:`RetryingRDBStorage` (pool sized for ``workers`` threads, pre-ping,
      connect timeouts; SQLite waits up to 60 s on a locked file), with heartbeats every
      ``heartbeat_interval`` seconds (``None`` disables them; ``grace_period`` defaults to twice the
      interval in Optuna) and ``RetryHeartbeatStaleTrialCallback(max_retry=3)``, so a trial whose
      worker died is failed and re-queued as ``WAITING`` up to 3 times.
    * Journal files and Redis give an ``optuna.storages.JournalStorage`` (no heartbeats: the
      heartbeat arguments are ignored).
    * ``create`` only concerns local files: with ``True`` a missing SQLite / journal file and its
      parent directories are created; with ``False`` a missing file is a :class:`StorageError`.
      Server databases are never created.
    * ``wait``: seconds a database server that refuses the first connection is waited for (``--join``
      workers, whose server may be restarting); by default a refusal is the one-line error at once.

    Raises :class:`StorageError` (one line, password masked) for a bad URL, an unreachable server,
    a missing database or an unwritable location.  Pass the result to ``optuna.create_study`` /
    ``optuna.load_study`` (``storage=``); Optuna adds its own caching layer over an RDB storage.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if heartbeat_interval is not None and heartbeat_interval <= 0:
        raise ValueError(f"heartbeat_interval must be a positive number of seconds or None, got {heartbeat_interval}")
    if grace_period is not None and grace_period <= 0:
        raise ValueError(f"grace_period must be a positive number of seconds or None, got {grace_period}")

    spec = parse_storage(url)
    if spec.kind in ("sqlite", "journal-file"):
        _prepare_local_file(spec, create)
    # A server is not probed here: the connection the storage opens anyway fails with the same one-line
    # error. The CLI probes once with check_reachable, before it prints anything.

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeat & journal APIs are "experimental"
        if spec.kind == "journal-file":
            return _open_journal_file(spec)
        if spec.kind == "journal-redis":
            return _open_journal_redis(spec)
        return _open_rdb(spec, workers, heartbeat_interval, grace_period, wait)


def _open_rdb(
    spec: StorageSpec, workers: int, heartbeat_interval: int | None, grace_period: int | None, wait: float = 0.0
) -> RetryingRDBStorage:
    try:
        storage = _connect_retrying(
            spec,
            lambda: RetryingRDBStorage(
                spec.url,
                engine_kwargs=_rdb_engine_kwargs(spec, workers),
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=(
                    RetryHeartbeatStaleTrialCallback(max_retry=3) if heartbeat_interval is not None else None
                ),
            ),
            wait=wait,
        )
        connections.note(storage)  # released when the command or study that opened it ends
        return storage
    except RuntimeError as exc:
        if "schema" not in str(exc):
            raise
        raise StorageError(
            _one_line(
                f"cannot open storage {spec.masked()!r}: its Optuna schema does not match optuna "
                f"{optuna.__version__}; run `optuna storage upgrade --storage URL` or update optuna"
            )
        ) from None


def _open_journal_file(spec: StorageSpec) -> BaseStorage:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = spec.path
    assert path is not None
    try:
        return JournalStorage(JournalFileBackend(str(path)))
    except (OSError, ValueError) as exc:
        raise StorageError(
            _one_line(
                f"cannot open storage {spec.masked()!r}: {exc}; check that the file is an Optuna journal and readable"
            )
        ) from None


def _open_journal_redis(spec: StorageSpec) -> BaseStorage:
    import redis
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalRedisBackend

    plain_url, prefix = _split_redis_prefix(spec.url)
    try:
        return JournalStorage(JournalRedisBackend(plain_url, prefix=prefix))
    except (redis.exceptions.RedisError, ValueError) as exc:
        raise _unreachable(spec, exc) from None


def is_heartbeat_capable(storage: BaseStorage) -> bool:
    """Whether heartbeats run for trials on ``storage``: it implements Optuna's heartbeat protocol
    (RDB storages, also behind Optuna's caching wrapper) *and* a heartbeat interval is set.  When
    True, a trial whose worker died is failed after the grace period (and re-queued by the
    callback :func:`open_storage` installs); when False, such a trial stays ``RUNNING``."""
    return compat.heartbeat_enabled(storage)
