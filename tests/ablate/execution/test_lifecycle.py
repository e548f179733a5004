"""What the docs promise about a command's life: SIGTERM ends it like Ctrl-C, ``--join`` waits for its
coordinator, a pruner that cannot act says so, and Optuna's experimental warnings we chose stay quiet.

Real processes where a signal or stderr is the point (``python -m ablate.cli``), in-process calls otherwise;
everything at the ``smoke`` fidelity (scikit-learn's digits, no download).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from ablate_testing.presets_slow import slow_studies_dir
from optuna.trial import TrialState

from ablate.execution import queue
from ablate.execution.storages import open_storage
from ablate.execution.studies import pruning_warning

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

CASE = "T1M1_T2M2"


def _process_env(tmp_path: Path, studies: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "ABLATE_ARTIFACTS_DIR": str(tmp_path / "artifacts"), "COLUMNS": "250"}
    env.pop("OPTUNA_STORAGE", None)
    env.pop("PYTHONWARNINGS", None)
    if studies is not None:
        env["ABLATE_STUDIES_DIR"] = str(studies)
    return env


def _training(path: Path) -> list[int]:
    """Numbers of RUNNING trials of the journal that recorded their configuration (they are training)."""
    if not path.exists():
        return []
    storage = open_storage(str(path), create=False)
    studies = storage.get_all_studies()
    if not studies:
        return []
    trials = storage.get_all_trials(studies[0]._study_id, deepcopy=False)
    return [t.number for t in trials if t.state == TrialState.RUNNING and "config" in t.user_attrs]


# --------------------------------------------------------------------------------------------------
# SIGTERM to the coordinator (worker 0) and, through it, to its spawned workers
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_to_the_coordinator_fails_running_trials_with_a_reason_and_exits_130(
    tmp_path: Path, workers: int
) -> None:
    studies = slow_studies_dir(tmp_path)
    path = tmp_path / "journal.log"
    argv = ["study", "--case", CASE, "--trials", "6", "--seeds", "2", "--pruner", "none", "--sampler", "random"]
    argv += ["--fidelity", "slow", "--workers", str(workers), "--storage", str(path)]
    log = tmp_path / "coordinator.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ablate.cli", *argv],
            cwd=tmp_path,
            env=_process_env(tmp_path, studies),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 200
        while len(running := _training(path)) < workers:
            if proc.poll() is not None:
                pytest.fail(
                    f"the study ended ({proc.returncode}) before a trial could be interrupted:\n{log.read_text()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"never {workers} trials training at once:\n{log.read_text()}")
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # the coordinator itself, as a scheduler does; not its process group
        assert proc.wait(timeout=120) == 130, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    Path(f"{path}.lock").unlink(missing_ok=True)  # should the signal have landed inside a journal write

    study = optuna.load_study(
        study_name=f"sensitivity-{CASE}-slow", storage=open_storage(str(path), heartbeat_interval=None, create=False)
    )
    by_number = {t.number: t for t in study.trials}
    for number in running:
        assert by_number[number].state == TrialState.FAIL
        assert by_number[number].user_attrs[queue.FAIL_REASON].startswith("interrupted")
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert "interrupted" in log.read_text()


# --------------------------------------------------------------------------------------------------
# --join
# --------------------------------------------------------------------------------------------------

JOIN = ["study", "--case", CASE, "--trials", "2", "--fidelity", "smoke", "--sampler", "random"]


def test_join_on_a_missing_study_refuses_in_one_line_and_creates_nothing(env: Path, run_cli) -> None:
    url = f"sqlite:///{env}/join.db"
    r = run_cli(*JOIN, "--join", "--join-wait", 0, "--storage", url)
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert lines[-1].startswith("error: --join: no study 'sensitivity-T1M1_T2M2-smoke'"), r.err
    assert "Traceback" not in r.err
    assert optuna.get_all_study_names(open_storage(url, create=False)) == []

    r = run_cli(*JOIN, "--join", "--join-wait", -1, "--storage", url)
    refusal = "error: Invalid value for '--join-wait': Input should be greater than or equal to 0"
    assert r.code == 2 and r.err.strip() == refusal


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_joiner_started_before_its_coordinator_waits_and_works_the_queue(env: Path, run_cli) -> None:
    url = f"sqlite:///{env}/join.db"
    log = env / "joiner.log"
    with open(log, "w") as fh:
        joiner = subprocess.Popen(
            [sys.executable, "-m", "ablate.cli", *JOIN, "--join", "--join-wait", "240", "--storage", url],
            cwd=env,
            env=_process_env(env),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while "waiting up to 240 s" not in log.read_text():  # the joiner is up and has found nothing
            assert joiner.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        r = run_cli(*JOIN, "--workers", 0, "--storage", url)  # the coordinator: create and enqueue only
        assert r.code == 0, r.err
        assert joiner.wait(timeout=200) == 0, log.read_text()
    finally:
        if joiner.poll() is None:
            joiner.kill()
            joiner.wait()
    study = optuna.load_study(study_name="sensitivity-T1M1_T2M2-smoke", storage=open_storage(url, create=False))
    c = queue.counts(study)
    assert c["COMPLETE"] == 2 and c["WAITING"] == c["RUNNING"] == c["FAIL"] == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_joiner_whose_server_is_down_waits_for_it_instead_of_exiting_2(env: Path, run_cli) -> None:
    """A database restarting (the chaos soak's db_restart fault) must not end a --join worker as if its URL were
    wrong: it waits out the refused connection within --join-wait. A private redis-server on a free port stands
    for the database, started only after the joiner has said it is waiting; without --join the same URL is
    refused at once (exit 2)."""
    import shutil
    import socket

    server_bin = shutil.which("redis-server")
    if server_bin is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    assert run_cli(*JOIN, "--storage", url).code == 2  # a coordinator: a refusal is a wrong URL, said at once
    log = env / "joiner.log"
    server = None
    with open(log, "w") as fh:
        joiner = subprocess.Popen(
            [sys.executable, "-m", "ablate.cli", *JOIN, "--join", "--join-wait", "240", "--storage", url],
            cwd=env,
            env=_process_env(env),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while "waiting up to" not in log.read_text():  # refused, and waiting for the server
            assert joiner.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        server = subprocess.Popen(
            [server_bin, "--port", str(port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
        )
        time.sleep(1.0)
        r = run_cli(*JOIN, "--workers", 0, "--storage", url)  # the coordinator, once the server is up
        assert r.code == 0, r.err
        assert joiner.wait(timeout=200) == 0, log.read_text()
        study = optuna.load_study(study_name="sensitivity-T1M1_T2M2-smoke", storage=open_storage(url, create=False))
        c = queue.counts(study)
        assert c["COMPLETE"] == 2 and c["WAITING"] == c["RUNNING"] == c["FAIL"] == 0
    finally:
        for proc in (joiner, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------------------------------
# A pruner that cannot prune says so
# --------------------------------------------------------------------------------------------------


def _wilcoxon_prunes_after(n: int) -> bool:
    """Whether ablate's WilcoxonPruner prunes a trial worse than the best on each of ``n`` seeds (the best case)."""
    from ablate.execution.plans import SensitivityPlan
    from ablate.execution.studies import make_pruner
    from ablate.experiment.space import load_space
    from ablate.method import Preset

    plan = SensitivityPlan(
        name="p",
        storage="",
        fidelity=Preset("smoke"),
        case="T1M1_T2M2",
        space=load_space(),
        trials=1,
        pruner_name="wilcoxon",
    )
    study = optuna.create_study(direction="maximize", pruner=make_pruner(plan))
    steps = range(n + 1)
    study.add_trial(
        optuna.trial.create_trial(value=0.9, intermediate_values={s: 0.9 for s in steps}, state=TrialState.COMPLETE)
    )
    trial = study.ask()
    for s in range(n):
        trial.report(0.5 - 0.01 * s, step=s)  # worse on every seed, by distinct margins: the smallest p there is
    return trial.should_prune()


@pytest.mark.parametrize("seeds", [2, 3, 4, 5, 6])
def test_the_wilcoxon_warning_agrees_with_what_the_pruner_does(seeds: int) -> None:
    # the objective consults the pruner after seeds 1..N-1; the last consultation sees N-1 seeds
    can_prune = _wilcoxon_prunes_after(seeds - 1)
    assert (pruning_warning("wilcoxon", seeds) is None) == can_prune
    assert can_prune == (seeds >= 5)


def test_median_with_two_seeds_cannot_prune_and_says_so() -> None:
    assert "--seeds 3 or more" in (pruning_warning("median", 2) or "")
    assert pruning_warning("median", 3) is None
    assert pruning_warning("none", 2) is None


def test_study_warns_in_one_line_when_its_pruner_cannot_act(env: Path, run_cli) -> None:
    url = f"sqlite:///{env}/prune.db"
    base = ["study", "--case", CASE, "--trials", "1", "--fidelity", "smoke", "--workers", "0", "--storage", url]
    r = run_cli(*base, "--seeds", "3")
    assert r.code == 0, r.err
    warnings = [line for line in r.err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: --pruner wilcoxon cannot prune with --seeds 3: the smallest exact one-sided p after 2 seeds is "
        "0.25, never below its threshold 0.1; pruning needs --seeds 5 or more"
    ]
    r = run_cli(*base, "--seeds", "5", "--study-name", "five")
    assert r.code == 0, r.err
    assert "warning:" not in r.err


# --------------------------------------------------------------------------------------------------
# Optuna's ExperimentalWarning for the features we chose
# --------------------------------------------------------------------------------------------------


def test_recover_prints_no_experimental_warning(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    study = optuna.create_study(study_name="s", storage=open_storage(str(path)))
    study.ask()  # one RUNNING trial to recover
    proc = subprocess.run(
        [sys.executable, "-m", "ablate.cli", "recover", "--stale-after", "0.001", "--storage", str(path)],
        cwd=tmp_path,
        env=_process_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "re-queued 1 stale trial" in proc.stdout
    assert proc.stderr == ""


def test_an_interrupt_that_ends_generated_code_still_exits_130_under_python_m(tmp_path: Path) -> None:
    """CPython marks a KeyboardInterrupt that ends a *string* exec or eval (a dataclass's or namedtuple's generated
    methods) as unhandled even when it is caught, and under ``python -m`` then ends the process by SIGINT (-2)
    instead of the 130 the command chose: a SIGTERM that lands in such code did that, 1 time in about 15."""
    (tmp_path / "interrupting.py").write_text(
        "from ablate_digits import DigitsPipeline\n\n\n"
        "class Interrupting(DigitsPipeline):  # the generic run command (CGI has its own)\n"
        "    def run(self, *args, **kwargs):\n"
        "        exec('raise KeyboardInterrupt', {})\n"
    )
    env = {**_process_env(tmp_path), "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    argv = ["--method", "interrupting:Interrupting", "run", "--case", "clean", "--technique", "pipeline"]
    r = subprocess.run(
        [sys.executable, "-m", "ablate.cli", *argv], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert (r.returncode, r.stderr.strip().splitlines()[-1]) == (130, "interrupted"), r.stderr
