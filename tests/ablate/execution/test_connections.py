"""The connection budget (ablate/execution/connections.py, ablate/execution/storages/), against a real PostgreSQL.

* One process that runs many ``ablate`` commands holds no connection once each has ended (it held every
  command's pool until garbage collection: 2, 4, 6, ... connections).
* A full server is waited out, not a reason to exit 2: under a role whose ``CONNECTION LIMIT`` is lower than the
  workers need, a multi-worker study finishes with exact totals and every worker exits 0.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from ablate import cli
from ablate.errors import StorageError
from ablate.execution import storages as st
from ablate.execution.storages import retries

pytestmark = [
    pytest.mark.server,
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]

ROOT = Path(__file__).resolve().parents[3]
ADMIN = os.environ.get("ABLATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _held(pid: int, port: int = 5432) -> int:
    """TCP connections ``pid`` has open to ``port`` (from /proc, as scripts/chaos.py finds a worker's)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from chaos import client_ports

    return len(client_ports(pid, port))


def _admin(sql: str) -> None:
    engine = sqlalchemy.create_engine(ADMIN, poolclass=sqlalchemy.pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


@pytest.fixture
def limited_role(require_server) -> Iterator[tuple[str, str]]:  # noqa: ANN001
    """A login role with its own database; the test sets its CONNECTION LIMIT. Dropped afterwards."""
    require_server("127.0.0.1", 5432)
    name = f"ablate_limit_{uuid.uuid4().hex[:8]}"
    _admin(f"CREATE ROLE {name} LOGIN")
    _admin(f"CREATE DATABASE {name} OWNER {name}")
    url = sqlalchemy.engine.make_url(ADMIN).set(username=name, password=None, database=name)
    try:
        yield name, url.render_as_string(hide_password=False)
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        _admin(f"DROP ROLE IF EXISTS {name}")


def _quiet_main(argv: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            cli.main(argv)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    assert code == 0, (argv, err.getvalue())
    return code


def test_a_process_running_many_commands_holds_no_connection_between_them(limited_role) -> None:  # noqa: ANN001
    _, url = limited_role
    common = ["--fidelity", "smoke", "--storage", url, "--no-curves"]
    commands = [
        ["study", "--case", "T1M1_T2M2", "--trials", "2", "--sampler", "random", "--pruner", "none", "--workers", "1"],
        ["studies", "--storage", url],
        ["ablation", "--case", "T1M1_T2M2", "--seeds", "1", "--workers", "0"],
        ["report", "sensitivity-T1M1_T2M2-smoke", "--storage", url, "--no-dashboard", "--format", "json"],
    ]
    held = []
    for argv in commands * 2:
        extra = common if argv[0] in ("study", "ablation") else []
        out = ["--out", str(Path(os.environ.get("TMPDIR", "/tmp")) / f"conn-report-{uuid.uuid4().hex}")]
        _quiet_main([*argv, *extra, *(out if argv[0] == "report" else [])])
        held.append(_held(os.getpid()))
    assert held == [0] * len(held), held


def test_a_full_server_is_waited_out_not_refused(limited_role, caplog) -> None:  # noqa: ANN001
    """A role at its CONNECTION LIMIT: opening a storage waits (logging why) until connections are given back.

    Opening takes two connections at once (Optuna checks its schema version while a session is open), so the
    role is allowed two and both are taken first."""
    role, url = limited_role
    _admin(f"ALTER ROLE {role} CONNECTION LIMIT 2")
    hog = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    held = [hog.connect(), hog.connect()]  # the role's every slot
    told = threading.Event()

    class Tell(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "has no connection free" in record.getMessage():
                told.set()

    def give_back() -> None:
        told.wait()
        for conn in held:  # only once the opener has been turned away and said so
            conn.close()

    handler = Tell()
    logging.getLogger("ablate.execution.storages").addHandler(handler)
    helper = threading.Thread(target=give_back)
    helper.start()
    try:
        with caplog.at_level(logging.WARNING, logger="ablate.execution.storages"):
            storage = st.open_storage(url, heartbeat_interval=None)
        study = optuna.create_study(study_name="after-the-wait", storage=storage)
        assert study.study_name == "after-the-wait"
    finally:
        told.set()
        helper.join()
        logging.getLogger("ablate.execution.storages").removeHandler(handler)
        hog.dispose()
    assert "too many connections for role" in caplog.text, caplog.text
    assert "waiting" in caplog.text


def test_the_full_server_wait_ends_and_then_says_so_in_one_line(limited_role) -> None:  # noqa: ANN001
    """Waiting is bounded: past ``full_wait`` the error is the usual one line (here with no wait at all)."""
    role, url = limited_role
    _admin(f"ALTER ROLE {role} CONNECTION LIMIT 0")
    spec = st.parse_storage(url)
    with pytest.raises(StorageError, match="too many connections for role"):
        retries._connect_retrying(spec, lambda: st.RetryingRDBStorage(url), st.RetryPolicy(full_wait=0.0))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_workers_under_a_role_connection_limit_finish_with_exact_totals(limited_role, tmp_path: Path) -> None:  # noqa: ANN001
    """Three workers, a role allowed two connections (a worker holds one, and two while its heartbeat writes)."""
    role, url = limited_role
    _admin(f"ALTER ROLE {role} CONNECTION LIMIT 2")
    argv = [sys.executable, "-m", "ablate.cli", "study", "--case", "T1M1_T2M2", "--fidelity", "smoke"]
    argv += ["--trials", "6", "--sampler", "random", "--pruner", "none", "--workers", "3", "--heartbeat", "2"]
    argv += ["--storage", url, "--study-name", "limited", "--no-curves"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", "ABLATE_ARTIFACTS_DIR": str(tmp_path)}
    r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "has no connection free" in r.stderr, r.stderr[-3000:]  # the limit did bite
    assert "error" not in r.stderr.lower() and "Traceback" not in r.stderr, r.stderr[-3000:]
    study = optuna.load_study(study_name="limited", storage=st.open_storage(url, heartbeat_interval=None))
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states.count(TrialState.COMPLETE) == 6 and len(states) == 6, states


def test_a_storage_that_was_open_rides_out_a_server_that_is_down_for_longer_than_its_tries() -> None:
    """A restart refuses connections for seconds: past the 5 tries, retried calls go on for ``down_wait``."""
    refused = sqlalchemy.create_engine("postgresql://postgres@127.0.0.1:1/test", poolclass=sqlalchemy.pool.NullPool)
    calls = 0

    def call() -> str:
        nonlocal calls
        calls += 1
        if calls <= 8:  # down for 8 calls: more than the 5 tries
            refused.connect()
        return "back"

    policy = st.RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.01, down_wait=1.0)
    assert retries._call_with_retries(call, policy, st.is_transient_error, lambda *a: None, ride_out=True) == "back"
    assert calls == 9
    calls = 0
    with pytest.raises(sqlalchemy.exc.OperationalError):  # a first connect (no ride_out) says so after the tries
        retries._call_with_retries(call, policy, st.is_transient_error, lambda *a: None)
    assert calls == 5


def test_a_refused_first_connection_is_waited_for_only_when_asked() -> None:
    """open_storage(wait=S): a database that refuses the first connection (restarting) is tried again for S
    seconds before the one-line error; without wait (a coordinator) the refusal is the error at once. Nothing
    listens on the port, so both end refused; what differs is when."""
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://postgres@127.0.0.1:{port}/test"
    started = time.monotonic()
    with pytest.raises(StorageError, match="refused"):
        st.open_storage(url)
    at_once = time.monotonic() - started
    started = time.monotonic()
    with pytest.raises(StorageError, match="refused"):
        st.open_storage(url, wait=3.0)
    assert at_once < 2.5 <= time.monotonic() - started
