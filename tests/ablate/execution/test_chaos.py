"""The chaos soak (scripts/chaos.py) in small: faults together and repeatedly, then nothing lost or run twice.

The full soak runs 10 minutes per storage (docs/distributed.md, "Chaos soak"); here 15-20 s of chaos plus the
drain, on SQLite and PostgreSQL, with real worker processes, real signals and, on PostgreSQL, connections
killed on the server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from ablate_testing.servers import require_server
from optuna.trial import TrialState

from ablate import record
from ablate.analysis import tidy
from ablate.execution.storages import open_storage

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

ROOT = Path(__file__).resolve().parents[3]
PG = "postgresql://postgres@127.0.0.1:5432/test"


def _soak(tmp_path: Path, url: str, seed: int, duration: int) -> tuple[subprocess.CompletedProcess[str], dict]:
    numbers = tmp_path / "soak.json"
    argv = [sys.executable, str(ROOT / "scripts" / "chaos.py"), "--storage", url, "--duration", str(duration)]
    argv += ["--mean-interval", "2.5", "--seed", str(seed), "--seeds", "1", "--trials", "6", "--grace", "6"]
    argv += ["--workdir", str(tmp_path / "work"), "--json", str(numbers)]
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=280)
    return r, (json.loads(numbers.read_text()) if numbers.exists() else {})


def _assert_held(r: subprocess.CompletedProcess[str], numbers: dict) -> None:
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    checks = [line for line in r.stdout.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert len(checks) == 8 and all(line.startswith("PASS ") for line in checks), out
    assert r.stdout.rstrip().endswith("8 passed, 0 failed"), out
    assert numbers["lost"] == 0 and numbers["duplicates"] == 0 and numbers["discarded"] == 0
    assert numbers["faults"].get("sigkill", 0) >= 1, numbers  # the chaos did happen
    assert numbers["completed"] >= 18  # 12 design points + 6 sampled trials, at least once round


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_soak_on_sqlite_loses_nothing_and_runs_nothing_twice(tmp_path: Path) -> None:
    r, numbers = _soak(tmp_path, f"sqlite:///{tmp_path}/chaos.db", seed=1, duration=15)
    _assert_held(r, numbers)


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.timeout(300)
def test_soak_on_postgresql_loses_nothing_and_runs_nothing_twice(tmp_path: Path) -> None:
    require_server("127.0.0.1", 5432)
    r, numbers = _soak(tmp_path, PG, seed=10, duration=20)
    _assert_held(r, numbers)
    assert numbers["faults"].get("conn_kill", 0) >= 1, numbers


def test_a_trial_killed_between_its_metrics_still_reads_and_reports(tmp_path: Path) -> None:
    """A worker killed inside ``record.write_run`` leaves val_accuracy without test_accuracy on a trial that
    is then failed as stale; the report's state table reads every trial, so this broke ``ablate report``
    (found by the soak)."""
    study = optuna.create_study(
        storage=open_storage(f"sqlite:///{tmp_path}/cut.db", heartbeat_interval=None), study_name="cut"
    )
    trial = study.ask()
    for key, value in {"design_key": "k", "case": "T1M1_T2M2", "variant": "full", "seed": 0}.items():
        trial.set_user_attr(key, value)
    trial.set_user_attr("val_accuracy", 0.9)  # ... and the worker died here
    study.tell(trial, state=TrialState.FAIL)

    rec = record.read_trial(study.trials[0])
    assert rec.seeds[0].val_accuracy == 0.9 and rec.seeds[0].test_accuracy is None
    counts = tidy.state_counts(study)
    assert counts.to_dict("records") == [
        {"case": "T1M1_T2M2", "variant": "full", "state": "FAIL", "n": 1, "fail reasons": ""}
    ]


def test_restart_server_is_refused_where_there_is_no_server_to_restart(tmp_path: Path) -> None:
    """``--restart-server`` (the db_restart fault) stops a PostgreSQL or MariaDB server; on SQLite it is an
    error at once, before any study or worker is made."""
    argv = [sys.executable, str(ROOT / "scripts" / "chaos.py"), "--storage", f"sqlite:///{tmp_path}/c.db"]
    argv += ["--duration", "1", "--restart-server", "--workdir", str(tmp_path / "work")]
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--restart-server needs PostgreSQL or MariaDB" in r.stderr
    assert not (tmp_path / "c.db").exists()


def test_a_worker_refused_by_a_stopped_server_is_told_apart() -> None:
    """The exit check names workers that exited 2 because a db_restart had the server down when they opened
    the storage (ablate's one-line error for a refused connection, PostgreSQL's and MariaDB's wording)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("chaos_script", ROOT / "scripts" / "chaos.py")
    assert spec is not None and spec.loader is not None
    chaos = importlib.util.module_from_spec(spec)
    sys.modules["chaos_script"] = chaos  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(chaos)
    finally:
        del sys.modules["chaos_script"]
    pg = (
        "error: cannot open storage 'postgresql://postgres@127.0.0.1:5432/test': connection failed: connection to "
        'server at "127.0.0.1", port 5432 failed: Connection refused; check that the server is running'
    )
    my = "error: cannot open storage 'mysql://root@127.0.0.1/test': (2003, \"Can't connect to MySQL server on ...\")"
    assert chaos._refused(pg) and chaos._refused(my)
    assert not chaos._refused("error: cannot open storage 'postgresql://x/y': password authentication failed")
    assert not chaos._refused("Traceback (most recent call last): ConnectionRefusedError")
    assert "db_restart" in chaos.KINDS
