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

from ablate.execution.storages.opening import is_heartbeat_capable, open_storage
from ablate.execution.storages.reachability import check_reachable
from ablate.execution.storages.retries import RetryingRDBStorage, RetryPolicy, is_server_full, is_transient_error
from ablate.execution.storages.urls import StorageSpec, mask_url, parse_storage, resolve_url

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
