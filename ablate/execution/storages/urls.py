"""Storage URLs: the accepted forms, parsing into a :class:`StorageSpec`, and masking passwords."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy
import sqlalchemy.exc
from optuna.storages import RDBStorage

from ablate.errors import StorageError
from ablate.experiment.presets import default_storage_url

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
    ``$OPTUNA_STORAGE``, then :func:`ablate.experiment.presets.default_storage_url`."""
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
