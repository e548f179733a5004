"""Whether a storage can be reached, checked before anything is written (one line, exit 2)."""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy
import sqlalchemy.exc
from optuna.storages import RDBStorage

from ablate.errors import StorageError
from ablate.execution.storages.retries import _REFUSED_PATTERNS, _connect_retrying, _unreachable
from ablate.execution.storages.urls import StorageSpec, _split_redis_prefix

_logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_C = TypeVar("_C", bound=type[RDBStorage])
# --------------------------------------------------------------------------------------------------
# Reachability
# --------------------------------------------------------------------------------------------------


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_local(spec: StorageSpec) -> None:
    path = spec.path
    if path is None:
        return
    if path.is_dir():
        raise StorageError(f"cannot open storage {spec.masked()!r}: {str(path)!r} is a directory; name a file instead")
    target = path if path.exists() else _nearest_existing(path.parent)
    if not target.is_dir() and target != path:
        raise StorageError(
            f"cannot open storage {spec.masked()!r}: {str(target)!r} is not a directory; "
            "choose another path for the storage file"
        )
    directory = path.parent if path.exists() else target
    if not os.access(directory, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StorageError(
            f"cannot open storage {spec.masked()!r}: {str(directory)!r} is not writable; "
            "choose a writable location for the storage file"
        )


def check_reachable(spec: StorageSpec, timeout: float = 5.0, *, wait: float = 0.0) -> None:
    """Fail fast with a one-line :class:`StorageError` when the storage cannot be used.

    ``wait``: seconds a refused or unanswered connection is waited out (a server restarting, a worker started
    before its database): ``--join`` workers pass their ``--join-wait``, so a restart never ends them with exit
    2; everything else refuses at once, since there a refusal is most often a wrong URL.

    Servers (PostgreSQL, MySQL, Redis): one connection with a ``timeout``-second connect timeout
    (PostgreSQL rounds up to whole seconds, minimum 2), which also detects a missing database, bad
    credentials or a bad Redis database number.  Local files: the file, or the nearest existing
    ancestor directory it would be created in, must be writable.  Creates nothing.
    """
    if spec.kind in ("sqlite", "journal-file"):
        _check_local(spec)
        return
    deadline = time.monotonic() + wait
    delay, told = 0.5, False
    while True:
        try:
            return _check_server(spec, timeout)
        except StorageError as exc:
            left = deadline - time.monotonic()
            if left <= 0 or not any(p in str(exc).lower() for p in _REFUSED_PATTERNS):
                raise
            if not told:
                _logger.warning("%s; waiting up to %.0f s for the server", exc, left)
                told = True
            time.sleep(min(delay, left))
            delay = min(delay * 2, 10.0)


def _check_server(spec: StorageSpec, timeout: float) -> None:
    if spec.kind == "journal-redis":
        import redis

        plain_url, _ = _split_redis_prefix(spec.url)
        client = redis.Redis.from_url(plain_url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        except redis.exceptions.RedisError as exc:
            raise _unreachable(spec, exc) from None
        finally:
            client.close()
        return

    if spec.kind == "postgresql":
        connect_args: dict[str, Any] = {"connect_timeout": max(2, math.ceil(timeout))}
    else:
        connect_args = {"connect_timeout": max(0.1, timeout)}
    engine = sqlalchemy.create_engine(spec.url, poolclass=sqlalchemy.pool.NullPool, connect_args=connect_args)

    def probe() -> None:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    try:
        _connect_retrying(spec, probe)
    finally:
        engine.dispose()
