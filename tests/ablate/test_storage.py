"""Tests of ablate.storage: URL forms, opening every kind of storage, fail-fast and retries.

Server tests (``@pytest.mark.server``) need PostgreSQL, MariaDB/MySQL and Redis on 127.0.0.1 (override
with ABLATE_TEST_POSTGRES_URL / ABLATE_TEST_MYSQL_URL / ABLATE_TEST_REDIS_URL).  They skip when the
server is down, but fail under CI=true.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import psycopg
import pytest
import sqlalchemy
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState
from servers import require_server

from ablate import storage as st
from ablate.errors import AblateError, StorageError

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

POSTGRES_URL = os.environ.get("ABLATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("ABLATE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("ABLATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

FAST_RETRIES = st.RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)


def _require(url: str) -> None:
    parsed = sqlalchemy.engine.make_url(url)
    default_port = {"postgresql": 5432, "mysql": 3306, "redis": 6379}[parsed.get_backend_name()]
    require_server(parsed.host or "127.0.0.1", parsed.port or default_port)


def _unique(name: str) -> str:
    return f"ablate-test-{name}-{uuid.uuid4().hex[:10]}"


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + "&".join(f"{k}={v}" for k, v in params.items())


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    trial.set_user_attr("note", "ok")
    trial.report(x, step=0)
    return x * x


def _transient_error(message: str = "server closed the connection unexpectedly") -> StorageInternalError:
    """What a dropped connection looks like from RDBStorage: StorageInternalError from OperationalError."""
    error = StorageInternalError("An exception is raised during the commit.")
    error.__cause__ = sqlalchemy.exc.OperationalError("COMMIT", {}, psycopg.OperationalError(message))
    return error


# --------------------------------------------------------------------------------------------------
# Parsing, precedence, masking
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected_url", "kind"),
    [
        ("sqlite:///studies/runs/ablate.db", "sqlite:///studies/runs/ablate.db", "sqlite"),
        ("sqlite:////tmp/abs/ablate.db", "sqlite:////tmp/abs/ablate.db", "sqlite"),
        ("sqlite:///:memory:", "sqlite:///:memory:", "sqlite"),
        ("  sqlite:///x.db  ", "sqlite:///x.db", "sqlite"),
        ("postgresql://u:p@db.example:5432/abl", "postgresql://u:p@db.example:5432/abl", "postgresql"),
        ("postgresql+psycopg://u@h/abl", "postgresql+psycopg://u@h/abl", "postgresql"),
        ("postgres://u@h/abl", "postgresql://u@h/abl", "postgresql"),
        ("mysql://root@127.0.0.1:3306/test", "mysql+pymysql://root@127.0.0.1:3306/test", "mysql"),
        ("mysql+pymysql://root@h/test", "mysql+pymysql://root@h/test", "mysql"),
        ("mariadb://root@h/test", "mysql+pymysql://root@h/test", "mysql"),
        ("studies/runs/x.log", "studies/runs/x.log", "journal-file"),
        ("runs/x.journal", "runs/x.journal", "journal-file"),
        ("./x", "./x", "journal-file"),
        ("/abs/path/x", "/abs/path/x", "journal-file"),
        ("~/x.log", "~/x.log", "journal-file"),
        ("journal:///abs/path.log", "/abs/path.log", "journal-file"),
        ("journal:rel/journal", "journal:rel/journal", "journal-file"),
        ("file:rel/x.log", "rel/x.log", "journal-file"),
        ("file:///abs/x", "/abs/x", "journal-file"),
        ("journal:/abs/x.db", "journal:/abs/x.db", "journal-file"),
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379", "journal-redis"),
        ("redis://:pw@h:6379/2?prefix=abl", "redis://:pw@h:6379/2?prefix=abl", "journal-redis"),
        ("rediss://h/0", "rediss://h/0", "journal-redis"),
    ],
)
def test_parse_accepted_forms(url: str, expected_url: str, kind: str) -> None:
    spec = st.parse_storage(url)
    assert (spec.url, spec.kind) == (expected_url, kind)
    assert st.parse_storage(spec.url) == spec  # the normalised URL reads back the same


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "foo://bar",
        "http://example.com/db",
        "sqlite://",
        "sqlite:///",
        "sqlite://host/x.db",
        "postgresql://h",
        "postgresql://u:p@h:notaport/db",
        "postgresql+asyncpg://u@h/db",
        "postgresql+nosuchdriver://u@h/db",
        "mysql+mysqldb://root@h/test",
        "redis://",
        "redis://h/zero",
        "redis://h/0?password_file=x",
        "studies/runs/x",
        "ablate.db",
        "/abs/ablate.sqlite",
        "journal:",
        "file:",
        "runs/",
    ],
)
def test_parse_rejected_forms(url: str) -> None:
    with pytest.raises(StorageError) as info:
        st.parse_storage(url)
    message = str(info.value)
    assert "\n" not in message
    assert "sqlite:///PATH.db" in message and "redis://" in message  # lists the accepted forms
    assert isinstance(info.value, AblateError)


def test_plain_sqlite_path_gets_a_hint() -> None:
    with pytest.raises(StorageError, match=r"sqlite:///runs/ablate\.db"):
        st.parse_storage("runs/ablate.db")


def test_rejection_masks_the_password() -> None:
    with pytest.raises(StorageError) as info:
        st.parse_storage("foo://user:hunter2@host/db")
    assert "hunter2" not in str(info.value)
    assert "foo://user:***@host/db" in str(info.value)


def test_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    assert st.resolve_url(None) == st.default_storage_url()
    assert st.parse_storage(None) == st.StorageSpec(st.default_storage_url(), "sqlite")

    monkeypatch.setenv("OPTUNA_STORAGE", "redis://127.0.0.1:6379/1")
    assert st.resolve_url(None) == "redis://127.0.0.1:6379/1"
    assert st.parse_storage(None).kind == "journal-redis"
    assert st.resolve_url("runs/x.log") == "runs/x.log"  # explicit beats the environment
    with pytest.raises(StorageError):
        st.parse_storage("")  # an explicit empty URL is an error, not "use the default"

    monkeypatch.setenv("OPTUNA_STORAGE", "  ")
    assert st.resolve_url(None) == st.default_storage_url()


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:s3cret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u:s%40cret@h/db", "postgresql://u:***@h/db"),
        ("mysql+pymysql://root:p@ss:w/rd@h/test", "mysql+pymysql://root:***@h/test"),  # unparseable
        ("redis://:s3cret@h:6379/0?prefix=a", "redis://:***@h:6379/0?prefix=a"),
        (
            "postgresql://u@h/db?password=s3cret&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("studies/runs/x.log", "studies/runs/x.log"),
    ],
)
def test_password_masking(url: str, masked: str) -> None:
    assert st.mask_url(url) == masked
    assert st.StorageSpec(url, "postgresql").masked() == masked


# --------------------------------------------------------------------------------------------------
# Local storages
# --------------------------------------------------------------------------------------------------


def test_sqlite_creates_parent_dirs_and_round_trips(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "ablate.db"
    url = f"sqlite:///{db}"
    storage = st.open_storage(url, workers=4)
    assert db.parent.is_dir()
    assert isinstance(storage, st.RetryingRDBStorage)
    assert st.is_heartbeat_capable(storage)
    assert storage.engine.pool.size() == 1  # one idle connection kept: the connection budget (docs/distributed.md)
    assert storage.engine.pool._max_overflow == 4 + 2  # the rest opened on demand, closed when given back
    assert storage.get_heartbeat_stale_trial_callback() is not None

    study = optuna.create_study(storage=storage, study_name="s")
    assert st.is_heartbeat_capable(study._storage)  # also behind Optuna's caching layer
    study.optimize(_objective, n_trials=3)
    storage.engine.dispose()

    again = st.open_storage(url, create=False)
    trials = optuna.load_study(study_name="s", storage=again).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert trials[0].user_attrs == {"note": "ok"} and 0 in trials[0].intermediate_values
    again.engine.dispose()


def test_sqlite_without_heartbeat(tmp_path: Path) -> None:
    storage = st.open_storage(f"sqlite:///{tmp_path}/x.db", heartbeat_interval=None)
    assert not st.is_heartbeat_capable(storage)
    storage.engine.dispose()


def test_sqlite_missing_file_with_create_false(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        st.open_storage(f"sqlite:///{tmp_path}/missing/x.db", create=False)
    assert not (tmp_path / "missing").exists()


def test_sqlite_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    url = f"sqlite:///{blocker}/sub/x.db"
    with pytest.raises(StorageError) as info:
        st.check_reachable(st.parse_storage(url))
    assert "not a directory" in str(info.value)
    with pytest.raises(StorageError) as info:
        st.open_storage(url)
    assert "\n" not in str(info.value) and "cannot create directory" in str(info.value)


def test_journal_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "journals" / "run.log"
    storage = st.open_storage(str(path))
    assert path.is_file()
    assert isinstance(storage, optuna.storages.JournalStorage)
    assert not st.is_heartbeat_capable(storage)
    study = optuna.create_study(storage=storage, study_name="j")
    study.optimize(_objective, n_trials=3)

    for url in (str(path), f"journal:{path}", f"file://{path}"):
        reloaded = optuna.load_study(study_name="j", storage=st.open_storage(url, create=False))
        assert [t.state for t in reloaded.trials] == [TrialState.COMPLETE] * 3
    optuna.delete_study(study_name="j", storage=storage)
    assert optuna.get_all_study_names(st.open_storage(str(path))) == []


def test_journal_file_missing_with_create_false(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        st.open_storage(str(tmp_path / "nope.log"), create=False)


def test_open_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        st.open_storage(f"sqlite:///{tmp_path}/x.db", workers=0)
    with pytest.raises(ValueError):
        st.open_storage(f"sqlite:///{tmp_path}/x.db", heartbeat_interval=0)


# --------------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------------


def _server_round_trip(url: str) -> None:
    _require(url)
    name = _unique("rt")
    storage = st.open_storage(url, workers=2)
    assert isinstance(storage, st.RetryingRDBStorage) and st.is_heartbeat_capable(storage)
    study = optuna.create_study(storage=storage, study_name=name)
    try:
        study.optimize(_objective, n_trials=3)
        reloaded = optuna.load_study(study_name=name, storage=storage)
        assert [t.state for t in reloaded.trials] == [TrialState.COMPLETE] * 3
        assert all(t.user_attrs == {"note": "ok"} for t in reloaded.trials)
    finally:
        optuna.delete_study(study_name=name, storage=storage)
        storage.engine.dispose()


@pytest.mark.server
def test_postgresql_round_trip() -> None:
    _server_round_trip(POSTGRES_URL)


@pytest.mark.server
def test_mysql_round_trip() -> None:
    _server_round_trip(MYSQL_URL)


@pytest.mark.server
def test_redis_journal_round_trip() -> None:
    import redis

    parts = sqlalchemy.engine.make_url(REDIS_URL)
    require_server(parts.host or "127.0.0.1", parts.port or 6379)
    prefix = _unique("redis")
    url = _with_query(REDIS_URL, prefix=prefix)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        storage = st.open_storage(url)
        assert isinstance(storage, optuna.storages.JournalStorage)
        assert not st.is_heartbeat_capable(storage)
        study = optuna.create_study(storage=storage, study_name="r")
        study.optimize(_objective, n_trials=3)
        reloaded = optuna.load_study(study_name="r", storage=st.open_storage(url))
        assert [t.state for t in reloaded.trials] == [TrialState.COMPLETE] * 3
        assert client.exists(f"{prefix}:log_number")  # the keys are namespaced by the prefix
        optuna.delete_study(study_name="r", storage=storage)
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://root:hunter2@127.0.0.1:1/test",
        "mysql://root:hunter2@127.0.0.1:1/test",
        "redis://:hunter2@127.0.0.1:1/0",
    ],
)
def test_unreachable_server_fails_fast(url: str) -> None:
    for attempt in (lambda: st.check_reachable(st.parse_storage(url)), lambda: st.open_storage(url)):
        started = time.monotonic()
        with pytest.raises(StorageError) as info:
            attempt()
        assert time.monotonic() - started < 5.0
        message = str(info.value)
        assert "\n" not in message
        assert "hunter2" not in message and ":***@127.0.0.1:1" in message
        assert "refused" in message.lower()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dashboard_studies(url: str, hide: Path) -> list[str]:
    """Study names served by a real ``optuna-dashboard URL`` process, started as a user would by hand.

    ``hide`` shadows psycopg2, so that the URL must open with the driver ablate installs (psycopg 3)."""
    (hide / "psycopg2").mkdir()
    (hide / "psycopg2" / "__init__.py").write_text("raise ImportError('psycopg2 hidden by the test')\n")
    port = _free_port()
    command = [str(Path(sys.executable).with_name("optuna-dashboard")), url, "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(hide)}
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        try:
            deadline = time.monotonic() + 120  # a wait for start-up, not a timing assertion
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10) as response:
                        return [s["study_name"] for s in json.load(response)["study_summaries"]]
                except OSError:
                    time.sleep(0.5)
            proc.terminate()
            pytest.fail(f"optuna-dashboard did not serve {url}: {proc.communicate(timeout=30)[1][-2000:]}")
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    raise AssertionError("unreachable")


@pytest.mark.server
def test_the_postgresql_url_given_to_ablate_opens_in_plain_optuna_and_the_dashboard(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/test"
    _require(url)
    assert st.parse_storage(url).url == url  # what ablate stores and prints is what the user typed
    storage = st.open_storage(url, heartbeat_interval=None)
    assert storage.engine.dialect.driver == "psycopg"
    name = _unique("plain")
    study = optuna.create_study(study_name=name, storage=storage)
    try:
        study.optimize(_objective, n_trials=2)
        plain = optuna.load_study(study_name=name, storage=url)  # a plain URL string: Optuna's own RDBStorage
        assert [t.state for t in plain.trials] == [TrialState.COMPLETE] * 2
        assert name in _dashboard_studies(url, tmp_path)
    finally:
        optuna.delete_study(study_name=name, storage=storage)
        storage.engine.dispose()


@pytest.mark.server
@pytest.mark.parametrize("base", [POSTGRES_URL, MYSQL_URL])
def test_missing_database(base: str) -> None:
    _require(base)
    url = str(sqlalchemy.engine.make_url(base).set(database="ablate_no_such_db").render_as_string(False))
    with pytest.raises(StorageError, match="ablate_no_such_db") as info:
        st.open_storage(url)
    assert "create the database" in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------------
# Transient failures against a real PostgreSQL
# --------------------------------------------------------------------------------------------------


def _admin_connection() -> psycopg.Connection:
    url = sqlalchemy.engine.make_url(POSTGRES_URL)
    return psycopg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database, autocommit=True
    )


def _terminate(where: str, *params: object) -> int:
    """Terminate the matching backends (waiting up to 5 s for each to exit); how many."""
    with _admin_connection() as connection, connection.cursor() as cursor:
        cursor.execute(
            f"SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND {where}",
            params,
        )
        return sum(1 for (ok,) in cursor.fetchall() if ok)


@pytest.fixture
def pg_study() -> Iterator[tuple[st.RetryingRDBStorage, optuna.Study, str]]:
    _require(POSTGRES_URL)
    app = _unique("app")
    url = _with_query(POSTGRES_URL, application_name=app)  # so that we only kill our own connections
    storage = st.open_storage(url, workers=2, heartbeat_interval=None)  # ask/tell: no heartbeats
    assert isinstance(storage, st.RetryingRDBStorage)
    storage.retry_policy = st.RetryPolicy(attempts=5, base_delay=0.05, max_delay=0.2)
    name = _unique("study")
    study = optuna.create_study(storage=storage, study_name=name)
    yield storage, study, app
    optuna.delete_study(study_name=name, storage=storage)
    storage.engine.dispose()


@pytest.mark.server
def test_postgresql_survives_terminated_connections(pg_study) -> None:
    storage, study, app = pg_study
    study.optimize(_objective, n_trials=1)
    running = study.ask()
    running.suggest_float("x", -1.0, 1.0)

    database = sqlalchemy.engine.make_url(POSTGRES_URL).database
    killed = _terminate("datname = %s AND application_name = %s", database, app)
    assert killed >= 1  # the pooled connections of this storage were really dropped

    study.tell(running, 0.25)
    study.optimize(_objective, n_trials=1)
    trials = storage.get_all_trials(study._study_id)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert trials[1].values == [0.25]


@pytest.mark.server
def test_postgresql_retries_a_connection_killed_mid_operation(pg_study, caplog) -> None:
    storage, study, _ = pg_study
    trial = study.ask()
    trial.suggest_float("x", -1.0, 1.0)
    kills = {"armed": 0, "done": 0}

    def kill_after_pre_ping(dbapi_connection, _record, _proxy) -> None:
        # The checkout event fires after pool_pre_ping, so the pool cannot hide this drop.
        if kills["armed"]:
            kills["armed"] -= 1
            kills["done"] += _terminate("pid = %s", dbapi_connection.info.backend_pid)

    sqlalchemy.event.listen(storage.engine, "checkout", kill_after_pre_ping)
    try:
        with caplog.at_level(logging.WARNING, logger="ablate.storage"):
            kills["armed"] = 1
            assert storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [0.5])
            kills["armed"] = 1
            trials = storage.get_all_trials(study._study_id)
    finally:
        sqlalchemy.event.remove(storage.engine, "checkout", kill_after_pre_ping)
    assert kills["done"] == 2
    assert "transient storage error in set_trial_state_values" in caplog.text
    assert "transient storage error in get_all_trials" in caplog.text
    assert "terminating connection" in caplog.text or "server closed the connection" in caplog.text
    assert [(t.state, t.values) for t in trials] == [(TrialState.COMPLETE, [0.5])]


@pytest.mark.server
@pytest.mark.parametrize("how", ["check_reachable", "open_storage"])
def test_a_connection_killed_while_opening_is_retried_not_refused(how: str, caplog) -> None:
    """A worker that starts while connections are being terminated (the chaos soak's conn_kill, an
    administrator's pg_terminate_backend) must connect again, not exit 2 as if its URL were wrong."""
    _require(POSTGRES_URL)
    app = _unique("opening")
    url = _with_query(POSTGRES_URL, application_name=app)
    kills = {"armed": 1, "done": 0}

    def kill_first_checkout(dbapi_connection, _record, _proxy) -> None:
        info = getattr(dbapi_connection, "info", None)  # psycopg's ConnectionInfo
        if kills["armed"] and info is not None and info.parameter_status("application_name") == app:
            kills["armed"] -= 1
            kills["done"] += _terminate("pid = %s", dbapi_connection.info.backend_pid)

    sqlalchemy.event.listen(sqlalchemy.pool.Pool, "checkout", kill_first_checkout)
    try:
        with caplog.at_level(logging.WARNING, logger="ablate.storage"):
            if how == "check_reachable":
                st.check_reachable(st.parse_storage(url))
            else:
                storage = st.open_storage(url, heartbeat_interval=None)
                storage.engine.dispose()
    finally:
        sqlalchemy.event.remove(sqlalchemy.pool.Pool, "checkout", kill_first_checkout)
    assert kills["done"] == 1
    assert "transient error while connecting" in caplog.text


# --------------------------------------------------------------------------------------------------
# Retry logic, unit level (SQLite; failures injected)
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_storage(tmp_path: Path) -> Iterator[st.RetryingRDBStorage]:
    storage = st.open_storage(f"sqlite:///{tmp_path}/unit.db", heartbeat_interval=None)
    assert isinstance(storage, st.RetryingRDBStorage)
    storage.retry_policy = FAST_RETRIES
    yield storage
    storage.engine.dispose()


def _flaky(monkeypatch: pytest.MonkeyPatch, name: str, *, apply_first: bool, failures: int = 1) -> list:
    """Make RDBStorage.<name> fail transiently ``failures`` times: after applying (the commit
    reached the database but its answer was lost) or before (nothing happened)."""
    real = getattr(RDBStorage, name)
    calls: list = []

    def flaky(self, *args, **kwargs):
        calls.append(args)
        if len(calls) <= failures:
            if apply_first:
                real(self, *args, **kwargs)
            raise _transient_error()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RDBStorage, name, flaky)
    return calls


def _new_trial(storage: st.RetryingRDBStorage, state: TrialState = TrialState.RUNNING) -> int:
    study_id = storage.create_new_study([StudyDirection.MINIMIZE], _unique("unit"))
    template = optuna.trial.create_trial(state=state) if state == TrialState.WAITING else None
    return storage.create_new_trial(study_id, template_trial=template)


def test_finishing_a_trial_whose_commit_was_lost_is_not_applied_twice(sqlite_storage, monkeypatch) -> None:
    trial_id = _new_trial(sqlite_storage)
    calls = _flaky(monkeypatch, "set_trial_state_values", apply_first=True)
    assert sqlite_storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [1.5]) is True
    assert len(calls) == 1  # the read-back saw COMPLETE/[1.5]: no second (failing) update
    trial = sqlite_storage.get_trial(trial_id)
    assert (trial.state, trial.values) == (TrialState.COMPLETE, [1.5])


def test_finishing_a_trial_retries_when_nothing_was_applied(sqlite_storage, monkeypatch) -> None:
    trial_id = _new_trial(sqlite_storage)
    calls = _flaky(monkeypatch, "set_trial_state_values", apply_first=False, failures=2)
    assert sqlite_storage.set_trial_state_values(trial_id, TrialState.FAIL) is True
    assert len(calls) == 3
    assert sqlite_storage.get_trial(trial_id).state == TrialState.FAIL


def test_retry_does_not_hide_a_trial_finished_differently(sqlite_storage, monkeypatch) -> None:
    trial_id = _new_trial(sqlite_storage)
    real = RDBStorage.set_trial_state_values
    calls: list = []

    def reaped_meanwhile(self, tid, state, values=None):
        calls.append(state)
        if len(calls) == 1:
            real(self, tid, TrialState.FAIL)  # e.g. failed by the stale-trial reaper meanwhile
            raise _transient_error()
        return real(self, tid, state, values)

    monkeypatch.setattr(RDBStorage, "set_trial_state_values", reaped_meanwhile)
    with pytest.raises(UpdateFinishedTrialError):
        sqlite_storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [1.0])
    assert len(calls) == 2  # the read-back saw FAIL, so the update was retried and refused


def test_claim_with_lost_commit_is_not_reported_as_ours(sqlite_storage, monkeypatch, caplog) -> None:
    trial_id = _new_trial(sqlite_storage, TrialState.WAITING)
    calls = _flaky(monkeypatch, "set_trial_state_values", apply_first=True)
    with caplog.at_level(logging.WARNING, logger="ablate.storage"):
        assert sqlite_storage.set_trial_state_values(trial_id, TrialState.RUNNING) is False
    assert len(calls) == 1
    assert "may have claimed it" in caplog.text


def test_claim_retries_when_nothing_was_applied(sqlite_storage, monkeypatch) -> None:
    trial_id = _new_trial(sqlite_storage, TrialState.WAITING)
    calls = _flaky(monkeypatch, "set_trial_state_values", apply_first=False)
    assert sqlite_storage.set_trial_state_values(trial_id, TrialState.RUNNING) is True
    assert len(calls) == 2
    assert sqlite_storage.get_trial(trial_id).state == TrialState.RUNNING


@pytest.mark.parametrize("via", ["storage", "study"])
def test_a_trial_whose_creation_committed_is_not_created_again(sqlite_storage, monkeypatch, via: str) -> None:
    """create_new_trial commits, then its answer is lost (a transient error): a retry would add a second trial
    that nothing can detect, so the error reaches the caller and the study holds exactly one trial.

    The fault is injected around RDBStorage's real ``_create_new_trial`` (behind both ``create_new_trial`` and
    ``Study.ask`` through Optuna's cache), after its commit: Optuna's own retry loop inside it is not the
    subject here."""
    name = _unique("create")
    study_id = sqlite_storage.create_new_study([StudyDirection.MINIMIZE], name)
    calls = _flaky(monkeypatch, "_create_new_trial", apply_first=True)
    with pytest.raises(StorageInternalError):
        if via == "storage":
            sqlite_storage.create_new_trial(study_id)
        else:
            optuna.load_study(study_name=name, storage=sqlite_storage).ask()
    assert len(calls) == 1
    assert len(RDBStorage.get_all_trials(sqlite_storage, study_id)) == 1


def test_every_retried_method_is_an_rdb_storage_method() -> None:
    from ablate import _optuna_compat as compat

    for name in (*compat.RDB_READS, *compat.RDB_IDEMPOTENT_WRITES):
        assert getattr(st.RetryingRDBStorage, name) is not getattr(RDBStorage, name), name
    for name in compat.RDB_NOT_RETRIABLE:
        assert getattr(st.RetryingRDBStorage, name) is getattr(RDBStorage, name), name


def test_reads_and_idempotent_writes_are_retried(sqlite_storage, monkeypatch) -> None:
    trial_id = _new_trial(sqlite_storage)
    attr_calls = _flaky(monkeypatch, "set_trial_user_attr", apply_first=True)
    sqlite_storage.set_trial_user_attr(trial_id, "k", [1, 2])
    read_calls = _flaky(monkeypatch, "get_trial", apply_first=False, failures=2)
    assert sqlite_storage.get_trial(trial_id).user_attrs == {"k": [1, 2]}
    assert (len(attr_calls), len(read_calls)) == (2, 3)


def test_retries_give_up_after_the_policy(sqlite_storage, monkeypatch) -> None:
    trial_id = _new_trial(sqlite_storage)
    calls = _flaky(monkeypatch, "get_trial", apply_first=False, failures=99)
    with pytest.raises(StorageInternalError):
        sqlite_storage.get_trial(trial_id)
    assert len(calls) == FAST_RETRIES.attempts


def test_non_transient_errors_are_not_retried(sqlite_storage, monkeypatch) -> None:
    trial_id = _new_trial(sqlite_storage)
    sqlite_storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [1.0])
    calls = _flaky(monkeypatch, "set_trial_user_attr", apply_first=False, failures=0)
    with pytest.raises(UpdateFinishedTrialError):
        sqlite_storage.set_trial_user_attr(trial_id, "late", 1)
    assert len(calls) == 1


def test_heartbeat_survives_a_database_outage(sqlite_storage, monkeypatch, caplog) -> None:
    trial_id = _new_trial(sqlite_storage)
    calls = _flaky(monkeypatch, "record_heartbeat", apply_first=False, failures=99)
    with caplog.at_level(logging.ERROR, logger="ablate.storage"):
        sqlite_storage.record_heartbeat(trial_id)  # logs instead of killing the heartbeat thread
    assert len(calls) == FAST_RETRIES.attempts
    assert "could not record the heartbeat" in caplog.text


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_transient_error(), True),
        (_transient_error("terminating connection due to administrator command"), True),
        (sqlalchemy.exc.OperationalError("SELECT", {}, Exception((1213, "Deadlock found"))), True),
        (sqlalchemy.exc.OperationalError("SELECT", {}, Exception("database is locked")), True),
        (sqlalchemy.exc.DisconnectionError("gone"), True),
        (sqlalchemy.exc.OperationalError("SELECT", {}, Exception("no such table: trials")), False),
        (sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key")), False),
        (UpdateFinishedTrialError("finished"), False),
        (KeyError("no trial"), False),
        (ValueError("server closed the connection"), False),  # not a storage-layer error
    ],
)
def test_transient_error_classification(error: BaseException, transient: bool) -> None:
    assert st.is_transient_error(error) is transient


def test_mysql_error_codes_are_transient() -> None:
    import pymysql

    for code in (1205, 1213, 2006, 2013):
        orig = pymysql.err.OperationalError(code, "boom")
        wrapped = StorageInternalError("commit failed")
        wrapped.__cause__ = sqlalchemy.exc.OperationalError("COMMIT", {}, orig)
        assert st.is_transient_error(wrapped)
    assert not st.is_transient_error(
        sqlalchemy.exc.ProgrammingError("SELECT", {}, pymysql.err.ProgrammingError(1146, "no table"))
    )


def test_require_server_skips_normally_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_server("127.0.0.1", 1)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        require_server("127.0.0.1", 1)
