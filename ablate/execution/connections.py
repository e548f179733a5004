"""The connection budget: a storage that is no longer used gives its database connections back.

The SQLAlchemy engine of every RDB storage :func:`ablate.execution.storages.open_storage` opens is noted here (weakly).
:func:`released` disposes the engines of the storages opened inside it when it ends, so one process that runs
many commands (a notebook, scripts/findings.py, a worker that runs ``--then`` commands in turn) holds no more
than one command's connections, instead of every command's until garbage collection. ``ablate``'s command line
runs every command inside it, and :func:`ablate.execution.studies.execute` every study.

A disposed engine is not broken: a study still held opens a connection again when it is next used.

This module imports nothing heavy, so the command line can use it before it knows what it will run.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from typing import Any

_OPEN: weakref.WeakSet[Any] = weakref.WeakSet()
_LOCK = threading.Lock()


def note(storage: Any) -> None:
    """Remember the engine of an opened storage until it is released or collected.

    The engine, not the storage: a command's storage is freed as soon as the command returns, while its engine
    (held in reference cycles by SQLAlchemy) keeps its pooled connections open until the garbage collector runs.
    """
    with _LOCK:
        _OPEN.add(storage.engine)


def release(storage: Any) -> None:
    """Close the pooled connections of ``storage`` (an RDB storage, Optuna's caching wrapper of one, or a study).

    Anything without an engine (journal storages) is left alone."""
    storage = getattr(storage, "_storage", storage)  # an optuna.Study
    storage = getattr(storage, "_backend", storage)  # optuna's _CachedStorage
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def open_count() -> int:
    """How many noted engines are still alive (released ones included: a disposed engine stays usable)."""
    with _LOCK:
        return len(_OPEN)


@contextlib.contextmanager
def released() -> Iterator[None]:
    """Release every storage opened inside this block when it ends (normally, on an error, or on Ctrl-C)."""
    with _LOCK:
        before = weakref.WeakSet(_OPEN)
    try:
        yield
    finally:
        with _LOCK:
            opened = [s for s in _OPEN if s not in before]
        for engine in opened:
            with contextlib.suppress(Exception):  # releasing must never hide what ended the block
                engine.dispose()
