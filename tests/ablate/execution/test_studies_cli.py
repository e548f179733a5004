"""End-to-end tests of `ablate study`, `ablate ablation`, `ablate studies` and `ablate recover`.

Everything runs at the ``smoke`` fidelity (scikit-learn's digits, no download). Commands are called
in-process through ``ablate.cli.main`` where possible; the fault tests kill a real ``python -m ablate.cli``
process with SIGKILL in the middle of a trial. Server-backed tests (``@pytest.mark.server``) need PostgreSQL,
MariaDB and Redis on 127.0.0.1; they skip when a server is down, but fail under CI=true.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from ablate_testing.presets_slow import slow_studies_dir
from optuna.trial import FrozenTrial, TrialState

from ablate import record
from ablate.analysis.tidy import design_frame
from ablate.execution import queue
from ablate.execution.storages import open_storage
from ablate.experiment.designs import load_ablation_design
from crossgen.config import REGISTRY

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

CASE = "T1M1_T2M2"
SENSITIVITY = f"sensitivity-{CASE}-smoke"
SMALL_STUDY = ["study", "--case", CASE, "--fidelity", "smoke", "--sampler", "random"]

POSTGRES_URL = os.environ.get("ABLATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("ABLATE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("ABLATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url, heartbeat_interval=None, create=False))


def _finished(c: dict[str, int]) -> int:
    return c["COMPLETE"] + c["PRUNED"]


def _url(tmp_path: Path, kind: str) -> str:
    return f"sqlite:///{tmp_path}/studies.db" if kind == "sqlite" else str(tmp_path / "studies.log")


def _snapshot(trials: list[FrozenTrial]) -> dict[int, tuple]:
    return {t.number: (t.state, t.value, t.params, t.user_attrs) for t in trials}


# --------------------------------------------------------------------------------------------------
# 1-3: sampled sensitivity studies
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_small_study_has_exact_total_attrs_and_resumes(env: Path, run_cli, kind: str) -> None:
    url = _url(env, kind)
    r = run_cli(*SMALL_STUDY, "--trials", 4, "--storage", url)
    assert r.code == 0, r.err

    study = _load(url, SENSITIVITY)
    c = queue.counts(study)
    assert _finished(c) == 4 and c["FAIL"] == c["WAITING"] == c["RUNNING"] == 0
    assert len(study.trials) == 4

    bench = record.cached_benchmark(study, CASE, 0)
    assert {"val_accuracy", "test_accuracy"} <= set(bench)
    definition = record.read_definition(study)
    assert definition.kind == "sensitivity" and definition.case == CASE
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert complete
    for t in complete:
        a = t.user_attrs
        rec = record.read_trial(t)
        for key in ("test_accuracy", "transfer_gain", "transfer_gain_test", "stages", "seeds_run", "config"):
            assert key in a, key
        assert set(rec.config) == set(REGISTRY.names())
        assert len(rec.seeds) == 1 and rec.case == CASE and a[queue.TICKET_ATTR] is True
        assert rec.seeds[0].val_accuracy == pytest.approx(t.value)
        assert rec.seeds[0].benchmark == bench and rec.seeds[0].n_test > 0
        assert a["test_accuracy"] == pytest.approx(rec.seeds[0].test_accuracy)
        assert a["transfer_gain"] == pytest.approx(t.value - bench["val_accuracy"])
        assert a["transfer_gain_test"] == pytest.approx(a["test_accuracy"] - bench["test_accuracy"])
        assert 0.0 <= t.value <= 1.0 and 0.0 <= a["test_accuracy"] <= 1.0
        assert isinstance(a["stages"], dict) and "target_training" in a["stages"]
        assert {"init", "generator", "scope", "M", "bootstrap", "transfer"} <= set(t.params)
    before = _snapshot(study.trials)

    # Resuming with a larger total adds only the difference; the first 4 trials are untouched.
    r = run_cli(*SMALL_STUDY, "--trials", 6, "--storage", url)
    assert r.code == 0, r.err
    study = _load(url, SENSITIVITY)
    c = queue.counts(study)
    assert _finished(c) == 6 and len(study.trials) == 6 and c["WAITING"] == c["RUNNING"] == 0
    assert [t.number for t in study.trials] == list(range(6))
    after = _snapshot(study.trials)
    assert {n: after[n] for n in before} == before

    # The same total again adds nothing.
    r = run_cli(*SMALL_STUDY, "--trials", 6, "--storage", url)
    assert r.code == 0, r.err
    assert _snapshot(_load(url, SENSITIVITY).trials) == after

    # `ablate studies` lists it with its counts.
    r = run_cli("studies", "--storage", url)
    assert r.code == 0, r.err
    row = next(line for line in r.out.splitlines() if SENSITIVITY in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]][:7] == [
        SENSITIVITY,
        "sensitivity",
        str(c["COMPLETE"]),
        str(c["PRUNED"]),
        "0",
        "0",
        "0",
    ]


def test_seeds_are_reported_as_steps_and_averaged(env: Path, run_cli) -> None:
    url = _url(env, "sqlite")
    r = run_cli(*SMALL_STUDY, "--trials", 2, "--seeds", 2, "--storage", url)
    assert r.code == 0, r.err

    study = _load(url, SENSITIVITY)
    assert record.read_definition(study).seeds == 2
    for seed in (0, 1):
        assert {"val_accuracy", "test_accuracy"} <= set(record.cached_benchmark(study, CASE, seed))
    trials = study.trials
    assert len(trials) == 2 and all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        a = t.user_attrs
        seeds = record.read_trial(t).seeds
        per_seed = [seeds[0].val_accuracy, seeds[1].val_accuracy]
        assert sorted(t.intermediate_values) == [0, 1]
        assert [t.intermediate_values[0], t.intermediate_values[1]] == pytest.approx(per_seed)
        assert t.value == pytest.approx(sum(per_seed) / 2)
        assert a["seeds_run"] == 2 and "pruned_after" not in a
        assert a["test_accuracy"] == pytest.approx((seeds[0].test_accuracy + seeds[1].test_accuracy) / 2)


def test_two_workers_share_one_sqlite_storage_with_the_exact_total(env: Path, run_cli) -> None:
    url = _url(env, "sqlite")
    r = run_cli(*SMALL_STUDY, "--trials", 6, "--workers", 2, "--storage", url)
    assert r.code == 0, r.err

    study = _load(url, SENSITIVITY)
    c = queue.counts(study)
    assert _finished(c) == 6
    assert c["WAITING"] == c["RUNNING"] == c["FAIL"] == 0
    assert len(study.trials) == 6
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 6  # distinct sampler streams per worker


# --------------------------------------------------------------------------------------------------
# 4: designed ablation
# --------------------------------------------------------------------------------------------------


def test_ofat_ablation_runs_every_point_exactly_once(env: Path, run_cli) -> None:
    url = _url(env, "sqlite")
    argv = ["ablation", "--case", CASE, "--seeds", 2, "--fidelity", "smoke", "--storage", url]
    points = load_ablation_design("ofat").points([CASE], 2)
    expected = {p.key for p in points}

    r = run_cli(*argv, "--workers", 2)
    assert r.code == 0, r.err
    name = f"ablation-ofat-{CASE}-smoke"
    study = _load(url, name)
    c = queue.counts(study)
    assert c["COMPLETE"] == len(points) and c["FAIL"] == c["WAITING"] == c["RUNNING"] == 0
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    per_key = collections.Counter(t.user_attrs["design_key"] for t in complete)
    assert set(per_key.values()) == {1}
    assert set(per_key) == expected
    by_key = {p.key: p for p in points}
    for t in complete:
        p = by_key[t.user_attrs["design_key"]]
        rec = record.read_trial(t)
        assert (rec.variant, rec.seed, rec.technique) == (p.variant.label, p.seed, p.variant.technique)
        # the point's coordinates are params for the dashboard, a view of the record (what runs is read there)
        assert t.params == {"case": p.case, "variant": p.variant.label, "seed": p.seed}
        assert t.value == pytest.approx(t.user_attrs["val_accuracy"])
    frame = design_frame(study)
    assert len(frame) == len(points) and set(frame["seed"]) == {0, 1}
    before = _snapshot(study.trials)

    # Rerunning adds nothing and runs nothing (one in-process worker: no process start-up to pay for).
    r = run_cli(*argv, "--workers", 1)
    assert r.code == 0, r.err
    assert _snapshot(_load(url, name).trials) == before


# --------------------------------------------------------------------------------------------------
# 5: a worker killed with SIGKILL in the middle of a trial
# --------------------------------------------------------------------------------------------------


def _slow_study_argv(url: str) -> list[str]:
    # --seeds 2 (no per-epoch reports) keeps storage writes rare, so the kill lands inside training, not
    # while the journal file's lock is held.
    return [
        "study",
        "--case",
        CASE,
        "--trials",
        "3",
        "--seeds",
        "2",
        "--pruner",
        "none",
        "--sampler",
        "random",
        "--fidelity",
        "slow",
        "--workers",
        "1",
        "--heartbeat",
        "1",
        "--grace",
        "3",
        "--storage",
        url,
    ]


def _sqlite_progress(path: Path) -> tuple[int, list[int]]:
    """(COMPLETE trials, numbers of RUNNING trials that sent a heartbeat and are training).

    A trial is training once it recorded its sampled configuration (user attr ``config``): all its parameters
    are stored, and the next storage write comes only after the first seed's run.
    """
    if not path.exists():
        return 0, []
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            complete = con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
            running = con.execute(
                "SELECT t.number FROM trials t WHERE t.state = 'RUNNING'"
                " AND EXISTS (SELECT 1 FROM trial_heartbeats h WHERE h.trial_id = t.trial_id)"
                " AND EXISTS (SELECT 1 FROM trial_user_attributes a WHERE a.trial_id = t.trial_id AND a.key = 'config')"
            ).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:  # schema not created yet, or a writer holds the lock
        return 0, []
    return complete, [n for (n,) in running]


def _journal_progress(path: Path) -> tuple[int, list[int]]:
    """(COMPLETE trials, numbers of RUNNING trials that are training: see _sqlite_progress)."""
    if not path.exists():
        return 0, []
    storage = open_storage(str(path), create=False)
    studies = storage.get_all_studies()
    if not studies:
        return 0, []
    trials = storage.get_all_trials(studies[0]._study_id, deepcopy=False)
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return complete, [t.number for t in trials if t.state == TrialState.RUNNING and "config" in t.user_attrs]


def _start_and_kill_mid_trial(tmp_path: Path, url: str, studies: Path, progress) -> int:
    """Start the study as a real process; SIGKILL it while a trial runs (after one completed)."""
    env = {**os.environ, "ABLATE_STUDIES_DIR": str(studies), "ABLATE_ARTIFACTS_DIR": str(tmp_path / "artifacts")}
    env.pop("OPTUNA_STORAGE", None)
    log = tmp_path / "worker.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ablate.cli", *_slow_study_argv(url)],
            cwd=tmp_path,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            complete, running = progress()
            if complete >= 1 and running:
                break
            if proc.poll() is not None:
                pytest.fail(f"the worker exited ({proc.returncode}) before a trial could be killed:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no running trial to kill:\n{log.read_text()}")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return running[0]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_killed_worker_on_sqlite_is_retried_by_heartbeat(env: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    studies = slow_studies_dir(env)
    db = env / "fault.db"
    url = f"sqlite:///{db}"
    killed = _start_and_kill_mid_trial(env, url, studies, lambda: _sqlite_progress(db))

    name = f"sensitivity-{CASE}-slow"
    study = _load(url, name)
    running = study.get_trials(states=(TrialState.RUNNING,))
    assert [t.number for t in running] == [killed]
    killed_params = running[0].params
    done_before = {t.number: (t.value, t.params, t.user_attrs) for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert done_before

    monkeypatch.setenv("ABLATE_STUDIES_DIR", str(studies))
    r = run_cli(*_slow_study_argv(url))  # the same command, in-process
    assert r.code == 0, r.err

    study = _load(url, name)
    trials = study.trials
    c = queue.counts(study)
    assert c["COMPLETE"] == 3 and c["WAITING"] == c["RUNNING"] == 0
    assert trials[killed].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1
    assert retries[0].state == TrialState.COMPLETE and retries[0].params == killed_params
    assert c["FAIL"] == 1 and len(trials) == 4
    for number, (value, params, attrs) in done_before.items():
        assert trials[number].state == TrialState.COMPLETE
        assert (trials[number].value, trials[number].params, trials[number].user_attrs) == (value, params, attrs)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_killed_worker_on_journal_is_recovered_and_resumed(env: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    studies = slow_studies_dir(env)
    path = env / "fault.log"
    killed = _start_and_kill_mid_trial(env, str(path), studies, lambda: _journal_progress(path))
    # Should the kill have landed inside a journal write, Optuna breaks the dead writer's lock only after
    # 30 s; break it now (nothing else writes to this file).
    Path(f"{path}.lock").unlink(missing_ok=True)

    name = f"sensitivity-{CASE}-slow"
    study = _load(str(path), name)
    running = study.get_trials(states=(TrialState.RUNNING,))
    assert [t.number for t in running] == [killed]  # no heartbeats: it stays RUNNING
    killed_params = running[0].params
    done_before = {t.number: (t.value, t.params, t.user_attrs) for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert done_before

    time.sleep(0.2)  # older than --stale-after
    r = run_cli("recover", "--stale-after", 0.1, "--storage", path)
    assert r.code == 0, r.err
    study = _load(str(path), name)
    trials = study.trials
    assert trials[killed].state == TrialState.FAIL
    assert trials[killed].user_attrs[queue.FAIL_REASON].startswith("stale")
    copies = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(copies) == 1 and copies[0].state == TrialState.WAITING and copies[0].params == killed_params

    monkeypatch.setenv("ABLATE_STUDIES_DIR", str(studies))
    r = run_cli(*_slow_study_argv(str(path)))
    assert r.code == 0, r.err
    study = _load(str(path), name)
    trials = study.trials
    c = queue.counts(study)
    assert c["COMPLETE"] == 3 and c["FAIL"] == 1 and c["WAITING"] == c["RUNNING"] == 0
    assert copies[0].number < len(trials) and trials[copies[0].number].state == TrialState.COMPLETE
    for number, (value, params, attrs) in done_before.items():
        assert (trials[number].value, trials[number].params, trials[number].user_attrs) == (value, params, attrs)


# --------------------------------------------------------------------------------------------------
# 6: bad input
# --------------------------------------------------------------------------------------------------

BROKEN_TOML = '[params.init\ntype = "categorical"\n'
NOT_A_SWITCH = '[params.learning_rate]\ntype = "float"\nlow = 0.001\nhigh = 0.1\n'
DB = "{db}"  # replaced by a tmp SQLite URL

BAD_INPUT = [
    ("unknown-case", ["study", "--case", "T9M9", "--fidelity", "smoke", "--storage", DB]),
    ("unknown-sampler", [*SMALL_STUDY[:5], "--sampler", "annealing", "--storage", DB]),
    ("unknown-pruner", [*SMALL_STUDY, "--pruner", "patient", "--storage", DB]),
    ("wilcoxon-one-seed", [*SMALL_STUDY, "--pruner", "wilcoxon", "--seeds", "1", "--storage", DB]),
    ("malformed-space", [*SMALL_STUDY, "--space", "{tmp}/broken.toml", "--storage", DB]),
    ("space-not-a-switch", [*SMALL_STUDY, "--space", "{tmp}/lr.toml", "--storage", DB]),
    ("missing-space", [*SMALL_STUDY, "--space", "{tmp}/nowhere.toml", "--storage", DB]),
    ("unreachable-storage", [*SMALL_STUDY, "--storage", "postgresql://postgres@127.0.0.1:1/test"]),
    ("unknown-scheme", [*SMALL_STUDY, "--storage", "foo://x"]),
    ("plain-sqlite-path", [*SMALL_STUDY, "--storage", "{tmp}/plain.db"]),
    ("trials-0", [*SMALL_STUDY, "--trials", "0", "--storage", DB]),
    ("trials-not-int", [*SMALL_STUDY, "--trials", "many", "--storage", DB]),
    ("seeds-0", [*SMALL_STUDY, "--seeds", "0", "--storage", DB]),
    ("workers-negative", [*SMALL_STUDY, "--workers", "-1", "--storage", DB]),
    ("heartbeat-0", [*SMALL_STUDY, "--heartbeat", "0", "--storage", DB]),
    ("timeout-0", [*SMALL_STUDY, "--timeout", "0", "--storage", DB]),
    ("unknown-fidelity", ["study", "--case", CASE, "--fidelity", "enormous", "--storage", DB]),
    ("grace-0", [*SMALL_STUDY, "--grace", "0", "--storage", DB]),
    ("sampler-seed-negative", [*SMALL_STUDY, "--sampler-seed", "-1", "--storage", DB]),
    ("unknown-device", [*SMALL_STUDY, "--device", "tpu", "--timeout", "1", "--storage", DB]),
    ("ablation-unknown-design", ["ablation", "--case", CASE, "--design", "latin", "--storage", DB]),
    ("ablation-unknown-case", ["ablation", "--case", "nope", "--fidelity", "smoke", "--storage", DB]),
    ("ablation-seeds-0", ["ablation", "--case", CASE, "--seeds", "0", "--fidelity", "smoke", "--storage", DB]),
    ("ablation-grace-0", ["ablation", "--case", CASE, "--grace", "0", "--fidelity", "smoke", "--storage", DB]),
    ("run-unknown-technique", ["run", "--case", CASE, "--technique", "magic", "--fidelity", "smoke"]),
    ("reproduce-table3", ["reproduce", "table3", "--fidelity", "smoke", "--storage", DB]),
    ("recover-stale-after-0", ["recover", "--stale-after", "0", "--storage", DB]),
    ("studies-unknown-scheme", ["studies", "--storage", "foo://x"]),
]


def _bad_input_params():
    for name, argv in BAD_INPUT:
        yield pytest.param(argv, "fresh", id=f"{name}-fresh")
        if DB in argv:
            yield pytest.param(argv, "existing", id=f"{name}-existing")


def _existing_storage(url: str) -> dict[str, int]:
    storage = open_storage(url, heartbeat_interval=None)
    study = optuna.create_study(study_name=SENSITIVITY, storage=storage, direction="maximize")
    study.add_trial(optuna.create_trial(state=TrialState.COMPLETE, value=0.5))
    study.enqueue_trial({}, user_attrs={queue.TICKET_ATTR: True})
    return _study_counts(url)


def _study_counts(url: str) -> dict[str, int]:
    storage = open_storage(url, heartbeat_interval=None, create=False)
    return {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}


@pytest.mark.parametrize(("argv", "storage_state"), list(_bad_input_params()))
def test_bad_input_is_one_error_line_and_leaves_the_storage_alone(
    env: Path, run_cli, argv: list[str], storage_state: str
) -> None:
    (env / "broken.toml").write_text(BROKEN_TOML)
    (env / "lr.toml").write_text(NOT_A_SWITCH)
    db = env / "bad.db"
    url = f"sqlite:///{db}"
    before = _existing_storage(url) if storage_state == "existing" else None
    files_before = sorted(p.name for p in env.iterdir())

    r = run_cli(*[a.replace(DB, url).replace("{tmp}", str(env)) for a in argv])

    assert r.code == 2, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("error:")
    assert "Traceback" not in r.err + r.out
    assert sorted(p.name for p in env.iterdir()) == files_before  # nothing created (no sqlite file, no runs/)
    if before is not None:
        assert _study_counts(url) == before


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([*SMALL_STUDY, "--trials", "0"], id="trials-0"),
        pytest.param([*SMALL_STUDY, "--storage", "foo://x"], id="unknown-scheme"),
    ],
)
def test_bad_input_in_a_real_process(tmp_path: Path, argv: list[str]) -> None:
    db = tmp_path / "bad.db"
    if "--storage" not in argv:
        argv = [*argv, "--storage", f"sqlite:///{db}"]
    env = {**os.environ, "ABLATE_ARTIFACTS_DIR": str(tmp_path / "artifacts")}
    proc = subprocess.run(
        [sys.executable, "-m", "ablate.cli", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# 8: server-backed storages
# --------------------------------------------------------------------------------------------------


def _server_of(url: str) -> tuple[str, int]:
    if url.startswith("redis"):
        parsed = sqlalchemy.engine.make_url(url.split("?", 1)[0])
        return parsed.host or "127.0.0.1", parsed.port or 6379
    parsed = sqlalchemy.engine.make_url(url)
    return parsed.host or "127.0.0.1", parsed.port or {"postgresql": 5432, "mysql": 3306}[parsed.get_backend_name()]


@pytest.mark.server
@pytest.mark.timeout(300)
@pytest.mark.parametrize("base", [POSTGRES_URL, MYSQL_URL, REDIS_URL], ids=["postgresql", "mariadb", "redis"])
def test_small_study_on_a_server_with_four_workers(env: Path, run_cli, require_server, base: str) -> None:
    require_server(*_server_of(base))
    unique = f"ablate-test-cli-{uuid.uuid4().hex[:10]}"
    url = f"{base}{'&' if '?' in base else '?'}prefix={unique}" if base.startswith("redis") else base
    try:
        r = run_cli(*SMALL_STUDY, "--trials", 8, "--workers", 4, "--storage", url, "--study-name", unique)
        assert r.code == 0, r.err
        study = _load(url, unique)
        c = queue.counts(study)
        assert _finished(c) == 8 and c["WAITING"] == c["RUNNING"] == c["FAIL"] == 0
        assert len(study.trials) == 8
        assert record.cached_benchmark(study, CASE, 0) is not None
    finally:
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=unique, storage=open_storage(url, heartbeat_interval=None))
        if base.startswith("redis"):
            import redis

            client = redis.Redis.from_url(base.split("?", 1)[0])
            try:
                for key in client.scan_iter(match=f"{unique}*"):
                    client.delete(key)
            finally:
                client.close()


@pytest.mark.server
@pytest.mark.timeout(300)
def test_ofat_ablation_shared_by_four_workers_on_postgresql(env: Path, run_cli, require_server) -> None:
    require_server(*_server_of(POSTGRES_URL))
    unique = f"ablate-test-ofat-{uuid.uuid4().hex[:10]}"
    try:
        r = run_cli(
            "ablation",
            "--case",
            CASE,
            "--seeds",
            2,
            "--fidelity",
            "smoke",
            "--workers",
            4,
            "--storage",
            POSTGRES_URL,
            "--study-name",
            unique,
        )
        assert r.code == 0, r.err
        study = _load(POSTGRES_URL, unique)
        keys = [t.user_attrs["design_key"] for t in study.get_trials(states=(TrialState.COMPLETE,))]
        expected = {p.key for p in load_ablation_design("ofat").points([CASE], 2)}
        assert sorted(keys) == sorted(expected)  # each variant x seed exactly once
        assert queue.counts(study)["WAITING"] == queue.counts(study)["RUNNING"] == 0
    finally:
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=unique, storage=open_storage(POSTGRES_URL, heartbeat_interval=None))
