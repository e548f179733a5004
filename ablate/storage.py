"""Optuna storage URLs: parsing, opening (with retries on transient errors) and reachability checks.

Accepted storage forms (anything else is a :class:`~ablate.errors.StorageError`):

* ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (also ``sqlite:///:memory:``).
  The parent directory is created on demand when ``create=True``.
* ``postgresql://USER[:PASS]@HOST[:PORT]/DB``: kept as given, so SQLAlchemy (>= 2.1) picks psycopg 3, the
  driver ablate installs, and the same URL works in ``optuna.load_study`` and ``optuna-dashboard``.
  ``postgres://`` is rewritten to ``postgresql://``; an explicit driver (``postgresql+psycopg2://``) is
  accepted when it is installed.  The database must already exist.
* ``mysql://USER[:PASS]@HOST[:PORT]/DB`` or ``mysql+pymysql://...`` (``mysql://``, ``mariadb://``
  and ``mariadb+pymysql://`` are rewritten to ``mysql+pymysql://``: PyMySQL is the driver installed).
* a journal file (Optuna ``JournalStorage`` + ``JournalFileBackend``): ``journal:PATH`` or
  ``file:PATH`` (``journal:///abs/x.log`` and ``file:///abs/x.log`` name ``/abs/x.log``), or a plain
  path that ends in ``.log`` / ``.journal`` or starts with ``/``, ``./``, ``../`` or ``~``.
  A plain path ending in ``.db`` / ``.sqlite`` / ``.sqlite3`` is rejected with a hint to write
  ``sqlite:///PATH`` instead.
* ``redis://[[USER]:PASS@]HOST[:PORT][/DB][?prefix=NAME]`` (or ``rediss://`` for TLS): a journal
  storage on Redis (``JournalRedisBackend``); ``prefix`` namespaces the keys (default ``""``, the
  same keys plain Optuna and optuna-dashboard use: ``<prefix>:log_number``, ``<prefix>:log:<n>``,
  ``<prefix>:snapshot``).

RDB storages are returned as :class:`RetryingRDBStorage`, an ``optuna.storages.RDBStorage`` subclass
that retries reads and idempotent writes on transient database errors (dropped connections,
deadlocks, lock timeouts); see that class for exactly what is retried and why.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.exceptions import ExperimentalWarning, StorageInternalError
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from ablate import _optuna_compat as compat
from ablate import connections
from ablate.errors import StorageError
from ablate.presets import default_storage_url

__all__ = [
    "RetryPolicy",
    "RetryingRDBStorage",
    "StorageSpec",
    "check_reachable",
    "is_heartbeat_capable",
    "is_server_full",
    "is_transient_error",
    "mask_url",
    "open_storage",
    "parse_storage",
    "resolve_url",
]

ENV_VAR = "OPTUNA_STORAGE"

KINDS = ("sqlite", "postgresql", "mysql", "journal-file", "journal-redis")
SERVER_KINDS = ("postgresql", "mysql", "journal-redis")

ACCEPTED_FORMS = (
    "sqlite:///PATH.db, postgresql://USER[:PASS]@HOST[:PORT]/DB, mysql://USER[:PASS]@HOST[:PORT]/DB, "
    "redis://HOST[:PORT][/DB][?prefix=NAME], or a journal file (PATH.log, PATH.journal, journal:PATH)"
)

_JOURNAL_SUFFIXES = (".log", ".journal")
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_PLAIN_PATH_PREFIXES = ("/", "./", "../", "~")

# Aliases SQLAlchemy would not open with the installed drivers (``mysql://`` means MySQLdb to it).
_SCHEME_REWRITES = {
    "postgres": "postgresql",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "mariadb+pymysql": "mysql+pymysql",
}
_RDB_KINDS = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql"}  # SQLAlchemy backend -> kind
_QUERY_SECRETS = ("password", "passwd", "pwd")

# Connection parameters used for every pooled RDB connection (the URL's query string wins).
CONNECT_TIMEOUT_S = 10
SQLITE_BUSY_TIMEOUT_S = 60
POOL_RECYCLE_S = 1800
DEFAULT_APPLICATION_NAME = "ablate"

_logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_C = TypeVar("_C", bound=type[RDBStorage])


# --------------------------------------------------------------------------------------------------
# URL handling
# --------------------------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """``url`` with its password (userinfo or ``?password=`` query) replaced by ``***``: safe for logs.

    SQLAlchemy renders the URL; a string it cannot parse (an unencoded ``@`` in the password, a bad
    port) keeps only the user name of everything before its last ``@``, and a path stays as it is.
    """
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        head, sep, rest = url.partition("://")
        userinfo, at, hostpart = rest.rpartition("@")
        return f"{head}{sep}{userinfo.split(':', 1)[0]}:***@{hostpart}" if sep and at else url
    hidden = {key: "***" for key in parsed.query if key.lower() in _QUERY_SECRETS}
    return parsed.update_query_dict(hidden).render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def _password_of(url: str) -> str | None:
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return None
    in_query = [value for key, value in parsed.query.items() if key.lower() in _QUERY_SECRETS]
    return parsed.password or next((v if isinstance(v, str) else v[0] for v in in_query), None)


@dataclass(frozen=True)
class StorageSpec:
    """A validated storage location.  ``url`` is normalised and can be passed to :func:`open_storage`."""

    url: str
    kind: str  # one of KINDS

    def masked(self) -> str:
        """The URL with any password replaced by ``***`` (safe for logs and error messages)."""
        return mask_url(self.url)

    @property
    def is_server(self) -> bool:
        return self.kind in SERVER_KINDS

    @property
    def path(self) -> Path | None:
        """The local file of a ``sqlite`` or ``journal-file`` storage (None for servers / ``:memory:``)."""
        if self.kind == "journal-file":
            return Path(_journal_path(self.url)).expanduser()
        if self.kind == "sqlite":
            database = sqlalchemy.engine.make_url(self.url).database
            if not database or database == ":memory:" or database.startswith("file:"):
                return None
            return Path(database)
        return None

    def __str__(self) -> str:
        return self.masked()


def resolve_url(url: str | None) -> str:
    """The storage URL to use: an explicit ``url`` (even ``""``) wins, then a non-empty
    ``$OPTUNA_STORAGE``, then :func:`ablate.presets.default_storage_url`."""
    if url is not None:
        return url
    env = os.environ.get(ENV_VAR, "").strip()
    return env or default_storage_url()


def _reject(url: str, reason: str) -> StorageError:
    return StorageError(_one_line(f"storage {mask_url(url)!r}: {reason}; use one of {ACCEPTED_FORMS}"))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def parse_storage(url: str | None) -> StorageSpec:
    """Validate the form of a storage URL (no I/O) and classify it.

    ``None`` resolves through :func:`resolve_url`.  Raises :class:`StorageError` for anything that is
    not one of the accepted forms (see the module docstring).
    """
    raw = resolve_url(url)
    text = raw.strip()
    if not text:
        raise _reject(raw, "the storage URL is empty")

    lowered = text.lower()
    if lowered.startswith(("journal:", "file:")):
        path = text.split(":", 1)[1]
        if path.startswith("//"):
            path = path[2:]
        if not path.strip() or path.endswith(("/", os.sep)):
            raise _reject(text, "a journal file URL needs a file path, e.g. journal:studies/runs/x.log")
        return StorageSpec(url=_journal_url(path), kind="journal-file")

    if "://" not in text:
        return _parse_plain_path(text)

    scheme, rest = text.split("://", 1)
    scheme = scheme.lower()
    if scheme in ("redis", "rediss"):
        return _parse_redis(text)
    scheme = _SCHEME_REWRITES.get(scheme, scheme)
    text = f"{scheme}://{rest}"
    try:
        parsed = sqlalchemy.engine.make_url(text)
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
        raise _reject(text, f"malformed URL ({_one_line(str(exc))})") from None
    kind = _RDB_KINDS.get(parsed.get_backend_name())
    if kind is None:
        raise _reject(text, f"unsupported scheme {scheme + '://'!r}")
    _check_driver(text, parsed)
    if kind == "sqlite":
        if parsed.host or parsed.username or parsed.port:
            raise _reject(text, "a SQLite URL has no host: write sqlite:///relative.db or sqlite:////abs.db")
        if not parsed.database:
            raise _reject(text, "a SQLite URL needs a file name, e.g. sqlite:///studies/runs/ablate.db")
    elif not parsed.database:
        raise _reject(text, f"a {kind} URL needs a database name after the host, e.g. .../test")
    return StorageSpec(url=text, kind=kind)


def _check_driver(text: str, parsed: sqlalchemy.engine.URL) -> None:
    """The URL's driver is known to SQLAlchemy, synchronous (Optuna's storage is) and installed."""
    try:
        dialect = parsed.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:
        raise _reject(text, f"unknown driver {parsed.drivername!r}") from None
    if dialect.is_async:
        raise _reject(text, f"driver {parsed.drivername!r} is asynchronous; Optuna needs a synchronous one")
    try:
        dialect.import_dbapi()
    except ImportError:
        raise _reject(text, f"driver {parsed.drivername!r} is not installed (psycopg and PyMySQL are)") from None


def _parse_plain_path(text: str) -> StorageSpec:
    lowered = text.lower()
    if lowered.endswith(_SQLITE_SUFFIXES):
        raise _reject(text, f"a plain path is read as a journal file; for SQLite write 'sqlite:///{text}'")
    if lowered.endswith(_JOURNAL_SUFFIXES) or text.startswith(_PLAIN_PATH_PREFIXES):
        if text.endswith(("/", os.sep)):
            raise _reject(text, "a journal file path must name a file, not a directory")
        return StorageSpec(url=_journal_url(text), kind="journal-file")
    raise _reject(text, "not a URL and not a journal file path (.log / .journal, or starting with / ./ ~)")


def _is_plain_journal_path(path: str) -> bool:
    lowered = path.lower()
    return (
        "://" not in path
        and not lowered.startswith(("journal:", "file:"))
        and not lowered.endswith(_SQLITE_SUFFIXES)
        and (lowered.endswith(_JOURNAL_SUFFIXES) or path.startswith(_PLAIN_PATH_PREFIXES))
    )


def _journal_url(path: str) -> str:
    """Canonical URL of a journal file: the plain path when it reads back as one, else ``journal:PATH``."""
    if _is_plain_journal_path(path):
        return path
    return ("journal://" if path.startswith("//") else "journal:") + path


def _journal_path(url: str) -> str:
    if url.lower().startswith(("journal:", "file:")):
        path = url.split(":", 1)[1]
        return path[2:] if path.startswith("//") else path
    return url


def _parse_redis(text: str) -> StorageSpec:
    try:
        parts = urlsplit(text)
        _ = parts.port  # validates the port
    except ValueError as exc:
        raise _reject(text, f"malformed Redis URL ({exc})") from None
    if not parts.hostname:
        raise _reject(text, "a Redis URL needs a host, e.g. redis://127.0.0.1:6379/0")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise _reject(text, f"the Redis database must be a number, got {db!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    unknown = sorted({key for key, _ in query if key != "prefix"})
    if unknown:
        raise _reject(text, f"unsupported Redis URL parameter(s) {', '.join(unknown)} (only 'prefix')")
    return StorageSpec(url=text, kind="journal-redis")


def _split_redis_prefix(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((value for key, value in query if key == "prefix"), "")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


# --------------------------------------------------------------------------------------------------
# Reachability
# --------------------------------------------------------------------------------------------------


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


def check_reachable(spec: StorageSpec, timeout: float = 5.0) -> None:
    """Fail fast with a one-line :class:`StorageError` when the storage cannot be used.

    Servers (PostgreSQL, MySQL, Redis): one connection with a ``timeout``-second connect timeout
    (PostgreSQL rounds up to whole seconds, minimum 2), which also detects a missing database, bad
    credentials or a bad Redis database number.  Local files: the file, or the nearest existing
    ancestor directory it would be created in, must be writable.  Creates nothing.
    """
    if spec.kind in ("sqlite", "journal-file"):
        _check_local(spec)
        return
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


def _connect_retrying(spec: StorageSpec, func: Callable[[], _T], policy: RetryPolicy | None = None) -> _T:
    """Run ``func`` (a first connection to ``spec``'s server), retrying dropped connections with
    ``policy``'s backoff; any other failure, or the last one, is the one-line :class:`StorageError`.

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

    try:
        return _call_with_retries(func, policy, _worth_reconnecting, say)
    except (sqlalchemy.exc.SQLAlchemyError, StorageInternalError) as exc:
        raise _unreachable(spec, exc) from None


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
        return _open_rdb(spec, workers, heartbeat_interval, grace_period)


def _open_rdb(
    spec: StorageSpec, workers: int, heartbeat_interval: int | None, grace_period: int | None
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
