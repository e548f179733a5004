"""Transient database errors, the retry policy, and the retrying RDB storage."""

from __future__ import annotations

import functools
import logging
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy
import sqlalchemy.exc
from optuna.exceptions import StorageInternalError
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from ablate.errors import StorageError
from ablate.execution import _optuna_compat as compat
from ablate.execution.storages.urls import StorageSpec, _one_line, _password_of, mask_url

_logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_C = TypeVar("_C", bound=type[RDBStorage])
# --------------------------------------------------------------------------------------------------
# Transient errors and the retrying RDB storage
# --------------------------------------------------------------------------------------------------

_TRANSIENT_PATTERNS = (
    "server closed the connection",
    "terminating connection",
    "connection already closed",
    "connection was closed",
    "connection is closed",
    "connection is lost",
    "connection reset",
    "connection refused",
    "could not connect",
    "could not receive data",
    "could not send data",
    "broken pipe",
    "ssl syscall",
    "ssl connection has been closed",
    "lost connection",
    "server has gone away",
    "can't connect to mysql",
    "deadlock",
    "lock wait timeout",
    "could not serialize access",
    "database is locked",
    "the database system is starting up",
    "the database system is shutting down",
    "cannot connect now",
)
_PERMANENT_PATTERNS = (
    "no such table",
    "no such column",
    "does not exist",
    "unknown database",
    "access denied",
    "authentication failed",
    "readonly database",
    "read-only",
)
# MySQL: 1205 lock wait timeout, 1213 deadlock, 2003 can't connect, 2006 gone away, 2013 lost.
_MYSQL_TRANSIENT_CODES = frozenset({1205, 1213, 2003, 2006, 2013})


def _is_storage_layer(exc: BaseException) -> bool:
    if isinstance(exc, StorageInternalError | sqlalchemy.exc.SQLAlchemyError):
        return True
    module = type(exc).__module__ or ""
    return module.split(".", 1)[0] in ("psycopg", "psycopg2", "pymysql", "sqlite3")


def _is_transient_one(exc: BaseException) -> bool:
    if isinstance(exc, sqlalchemy.exc.DisconnectionError):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_TRANSIENT_CODES:
        return True
    message = str(exc).lower()
    if any(p in message for p in _TRANSIENT_PATTERNS):
        return True
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return not any(p in message for p in _PERMANENT_PATTERNS)
    return False


def is_transient_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a database error worth retrying: a dropped / invalidated connection, a
    deadlock or lock timeout, or another SQLAlchemy ``OperationalError`` / ``InterfaceError``.

    Optuna wraps SQLAlchemy errors in ``StorageInternalError``, so the cause/context chain is
    searched.  Only storage-layer exceptions qualify: an ``UpdateFinishedTrialError``, ``KeyError``
    etc. is never transient, whatever its context.
    """
    if not _is_storage_layer(exc):
        return False
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if _is_transient_one(current):
            return True
        stack.extend((current.__cause__, current.__context__, getattr(current, "orig", None)))
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt k (k >= 1) waits ``min(max_delay, base_delay * 2**(k-1))``
    scaled by a random factor in [0.5, 1]; at most ``attempts`` tries in all.

    A full server (:func:`is_server_full`) is waited out apart from those tries: a long backoff from
    ``full_base_delay`` to ``full_max_delay`` with full jitter (a random factor in [0, 1], so that many
    workers turned away together do not come back together), for up to ``full_wait`` seconds in all.

    A storage call of a storage that was open (not a first connect) whose transient error outlasts the tries,
    as when the database server restarts, goes on trying every ``max_delay`` (jittered) for up to ``down_wait``
    seconds more: a worker rides out a restart instead of failing its trial or exiting."""

    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 3.0
    full_wait: float = 900.0
    full_base_delay: float = 1.0
    full_max_delay: float = 30.0
    down_wait: float = 120.0

    def delay(self, retry: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (retry - 1)) * random.uniform(0.5, 1.0)

    def full_delay(self, retry: int) -> float:
        return min(self.full_max_delay, self.full_base_delay * 2 ** (retry - 1)) * random.uniform(0.0, 1.0)


# The server (or the role, or the user) has no connection slot free: wait, it is not a bad URL.
_FULL_PATTERNS = (
    "too many clients",  # PostgreSQL max_connections
    "too many connections",  # PostgreSQL role/database CONNECTION LIMIT; MySQL 1040
    "remaining connection slots are reserved",  # PostgreSQL superuser_reserved_connections
    "max_user_connections",  # MySQL 1203 (a user's limit)
)
_MYSQL_FULL_CODES = frozenset({1040, 1203})


def is_server_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) says the database server has no connection slot free for us.

    PostgreSQL: ``sorry, too many clients already``, ``too many connections for role "…"`` (``ALTER ROLE …
    CONNECTION LIMIT``) or ``… for database``, and the slots reserved for superusers; MariaDB/MySQL: error
    1040 (``Too many connections``) and 1203 (``max_user_connections``)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        args = getattr(current, "args", ())
        if args and isinstance(args[0], int) and args[0] in _MYSQL_FULL_CODES:
            return True
        if any(p in str(current).lower() for p in _FULL_PATTERNS):
            return True
        stack.extend((current.__cause__, current.__context__, getattr(current, "orig", None)))
    return False


# A refused connection means nothing listens there: say so at once instead of backing off.
_REFUSED_PATTERNS = (
    "connection refused",
    "could not connect",
    "can't connect to mysql",
    "could not translate host name",
    "name or service not known",
    "timeout expired",
)


def _worth_reconnecting(exc: BaseException) -> bool:
    """Whether a failed connect is worth another try: the server answered, then dropped the connection
    (a killed backend, a server starting up or shutting down), and not a refusal or a bad URL."""
    return is_transient_error(exc) and not any(p in str(exc).lower() for p in _REFUSED_PATTERNS)


def _call_with_retries(
    func: Callable[[], _T],
    policy: RetryPolicy,
    worth_retrying: Callable[[BaseException], bool],
    before_retry: Callable[[int, BaseException, float], None],
    *,
    ride_out: bool = False,
) -> _T:
    """Call ``func`` until it returns, an exception not ``worth_retrying`` escapes, or ``policy``'s tries
    are spent (the last exception escapes); ``before_retry(try, exc, delay)`` runs before each backoff.
    A full server is waited out with ``policy``'s long backoff for up to ``policy.full_wait`` seconds,
    without spending a try; with ``ride_out``, a transient error that outlasts the tries is tried again for
    up to ``policy.down_wait`` seconds more (a server restarting under a storage that was open).

    The one retry loop of this module: connecting and every retried storage call differ only in what
    they retry and what they say."""
    attempt = 1
    full = 0
    waited_full = waited_down = 0.0
    while True:
        try:
            return func()
        except Exception as exc:
            if _is_storage_layer(exc) and is_server_full(exc) and waited_full < policy.full_wait:
                full += 1  # a full server is waited out apart from the tries: it is no fault of this call
                delay = min(policy.full_delay(full), policy.full_wait - waited_full)
                before_retry(attempt, exc, delay)
                time.sleep(delay)
                waited_full += delay
                continue
            if not worth_retrying(exc):
                raise
            delay = policy.delay(min(attempt, policy.attempts))
            if attempt >= policy.attempts:  # the tries are spent: ride out a server that is down (restarting)?
                if not ride_out or delay <= 0 or waited_down >= policy.down_wait:
                    raise
                waited_down += delay
            before_retry(attempt, exc, delay)
            time.sleep(delay)
            attempt += 1


def _say_full(where: str, what: str, delay: float, reason: str) -> None:
    _logger.warning(
        "the database server of %s has no connection free (%s), waiting %.1f s before %s again; "
        "see docs/distributed.md, Connections, to size max_connections for your workers",
        where,
        reason,
        delay,
        what,
    )


def _connect_retrying(
    spec: StorageSpec, func: Callable[[], _T], policy: RetryPolicy | None = None, *, wait: float = 0.0
) -> _T:
    """Run ``func`` (a first connection to ``spec``'s server), retrying dropped connections with
    ``policy``'s backoff, and refused ones for up to ``wait`` seconds (a server restarting under a ``--join``
    worker); any other failure, or the last one, is the one-line :class:`StorageError`.

    Why: a worker that starts while an administrator (or the chaos test) terminates connections must
    not exit with status 2 as if its URL were wrong."""
    policy = policy or RetryPolicy()

    def say(attempt: int, exc: BaseException, delay: float) -> None:
        if is_server_full(exc):
            _say_full(spec.masked(), "connecting", delay, _db_reason(exc, _password_of(spec.url)))
            return
        _logger.warning(
            "transient error while connecting to %s (try %d of %d), retrying in %.2f s: %s",
            spec.masked(),
            attempt,
            policy.attempts,
            delay,
            _db_reason(exc, _password_of(spec.url)),
        )

    deadline, told = time.monotonic() + wait, False
    while True:
        try:
            return _call_with_retries(func, policy, _worth_reconnecting, say)
        except (sqlalchemy.exc.SQLAlchemyError, StorageInternalError) as exc:
            left = deadline - time.monotonic()
            if left <= 0 or not any(p in str(exc).lower() for p in _REFUSED_PATTERNS):
                raise _unreachable(spec, exc) from None
            if not told:
                _logger.warning("%s refused the connection; waiting up to %.0f s for it", spec.masked(), left)
                told = True
            time.sleep(min(2.0, left))


def _same_values(stored: Sequence[float] | None, wanted: Sequence[float] | None) -> bool:
    if wanted is None:
        return True
    if stored is None or len(stored) != len(wanted):
        return False
    return all(a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(stored, wanted, strict=True))


def _retried(name: str) -> Callable[..., Any]:
    """A method that runs ``RDBStorage.<name>`` under :meth:`RetryingRDBStorage._retry`.

    The base method is looked up at each call rather than bound once, so that a patched or instrumented
    ``RDBStorage`` (fault injection in the tests) is the one retried.
    """
    label = compat.operation_name(name)

    def method(self: RetryingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return self._retry(label, lambda: getattr(RDBStorage, name)(self, *args, **kwargs))

    return functools.wraps(getattr(RDBStorage, name))(method)  # AttributeError at import if Optuna renamed it


def _retrying(names: Sequence[str]) -> Callable[[_C], _C]:
    """Class decorator: override each of ``names`` with its retried version."""

    def decorate(cls: _C) -> _C:
        for name in names:
            setattr(cls, name, _retried(name))
        return cls

    return decorate


@_retrying((*compat.RDB_READS, *compat.RDB_IDEMPOTENT_WRITES))
class RetryingRDBStorage(RDBStorage):
    """``RDBStorage`` that retries transient database errors (see :func:`is_transient_error`).

    What is retried (up to ``retry_policy.attempts`` tries, exponential backoff with jitter), and why
    it is safe:

    * every read (``compat.RDB_READS``: study/trial getters, ``_get_trials`` behind ``get_all_trials``
      and the cached storage, ``_get_best_trial_id``, ``_get_stale_trial_ids``): no side effects.
    * idempotent writes (``compat.RDB_IDEMPOTENT_WRITES``): study/trial user and system attributes and
      intermediate values (upserts: writing the same value twice is a no-op), ``set_trial_param`` (a
      second insert of the same param hits the unique constraint, which Optuna ignores for this method).
    * ``record_heartbeat``, which once the retries are spent logs and returns instead of raising, so
      that the heartbeat thread survives to beat again at the next interval.
    * ``set_trial_state_values`` is not idempotent (a retry after a commit that did reach the
      server would raise ``UpdateFinishedTrialError``, or report a lost claim), so before each retry
      the trial is read back: if it already has the target finished state and values, the earlier
      attempt committed and ``True`` is returned.  For a claim (``RUNNING`` from ``WAITING``): a
      trial still ``WAITING`` is claimed again; a trial already ``RUNNING`` may have been claimed by
      the lost attempt or by another worker, which cannot be told apart, so ``False`` is returned
      (never two workers on one trial) and a warning names the trial, which may stay ``RUNNING``.

    Not retried here (``compat.RDB_NOT_RETRIABLE``): ``create_new_trial`` (Optuna already retries it 5
    times, with random sleeps, on any ``StorageInternalError``; a retry after a commit that reached the
    server would add a second trial, which nothing can detect), ``create_new_study`` (a retry after a
    lost commit would raise ``DuplicatedStudyError``), ``delete_study`` and schema upgrades.
    """

    def __init__(self, url: str, *, retry_policy: RetryPolicy | None = None, **kwargs: Any) -> None:
        self.retry_policy = retry_policy or RetryPolicy()
        try:
            super().__init__(url, **kwargs)
        except BaseException:
            # A storage that could not be opened gives back the connection it got: left to the garbage
            # collector, it would hold a slot of a full server while the next try waits for one.
            engine = getattr(self, "engine", None)
            if engine is not None:
                engine.dispose()
            raise

    def _retry(self, what: str, func: Callable[[], _T]) -> _T:
        def say(attempt: int, exc: BaseException, delay: float) -> None:
            if is_server_full(exc):
                _say_full(mask_url(self.url), what, delay, _db_reason(exc, _password_of(self.url)))
                return
            _logger.warning(
                "transient storage error in %s (try %d of %d), retrying in %.2f s: %s",
                what,
                attempt,
                self.retry_policy.attempts,
                delay,
                _db_reason(exc, _password_of(self.url)),
            )

        return _call_with_retries(func, self.retry_policy, is_transient_error, say, ride_out=True)

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self._retry("record_heartbeat", lambda: RDBStorage.record_heartbeat(self, trial_id))
        except Exception as exc:
            if not is_transient_error(exc):
                raise
            _logger.error(
                "could not record the heartbeat of trial id %d (will try again at the next interval): %s",
                trial_id,
                _db_reason(exc, _password_of(self.url)),
            )

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        tries = 0

        def attempt() -> bool:
            nonlocal tries
            tries += 1
            if tries > 1:  # an earlier attempt failed transiently and may have committed
                current = RDBStorage.get_trial(self, trial_id)
                if state == TrialState.RUNNING:
                    if current.state == TrialState.RUNNING:
                        _logger.warning(
                            "trial %d was claimed (WAITING -> RUNNING) but the connection was lost "
                            "during the commit; not running it here, as another worker may have "
                            "claimed it. If none did, it stays RUNNING: re-enqueue its parameters.",
                            current.number,
                        )
                        return False
                elif current.state == state and _same_values(current.values, values):
                    return True
            return RDBStorage.set_trial_state_values(self, trial_id, state, values)

        return self._retry("set_trial_state_values", attempt)


# ---------------------------------------------------------------------------------------- error messages
def _db_reason(exc: BaseException, password: str | None) -> str:
    """A short, one-line, password-free reason from a driver / SQLAlchemy / redis exception."""
    while isinstance(exc, StorageInternalError) and exc.__cause__ is not None:
        exc = exc.__cause__  # Optuna's wrapper says "invalid data in the commit" whatever happened
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    if len(args) >= 2 and isinstance(args[0], int) and isinstance(args[1], str):  # PyMySQL
        text = f"{args[1]} (MySQL error {args[0]})"
    else:
        lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
        text = lines[0] if lines else type(orig).__name__
    text = re.sub(r"^(FATAL|ERROR):\s*", "", text)
    if password:
        text = text.replace(password, "***")
    text = _one_line(text).rstrip(".")
    return text if len(text) <= 300 else text[:297] + "..."


def _hint(reason: str, kind: str) -> str:
    low = reason.lower()
    if any(p in low for p in ("authentication", "access denied", "password", 'role "', "noauth")):
        return "check the user name and password in the URL"
    if "does not exist" in low or "unknown database" in low:
        if kind == "postgresql":
            return "create the database first (createdb NAME) or fix the database name in the URL"
        return "create the database first (CREATE DATABASE name) or fix the database name in the URL"
    if "db index is out of range" in low:
        return "use a Redis database number the server has (usually 0-15)"
    return "check that the server is running and that host and port in the URL are right"


def _unreachable(spec: StorageSpec, exc: BaseException) -> StorageError:
    reason = _db_reason(exc, _password_of(spec.url))
    return StorageError(_one_line(f"cannot open storage {spec.masked()!r}: {reason}; {_hint(reason, spec.kind)}"))
