"""What a careful reader of a report (and of `ablate report`'s errors) expects: failed trials with their
reasons, nothing left behind by a misspelt study name, and numbers written as what they are."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from ablate import record
from ablate.methods.cgi import CGIMethod

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

STUDY = "sensitivity-T2M1_T1M2-smoke"


@pytest.fixture
def searched(env: Path, run_cli) -> str:
    url = f"sqlite:///{env / 'r.db'}"
    r = run_cli("study", "--case", "T2M1_T1M2", "--trials", 3, "--seeds", 2, "--fidelity", "smoke", "--storage", url)
    assert r.code == 0, r.err
    return url


def test_failed_trials_are_listed_with_their_reasons(env: Path, run_cli, searched: str) -> None:
    study = optuna.load_study(study_name=STUDY, storage=searched)
    reason = "ValueError: the generator saw no points (planted)"
    for _ in range(2):
        study.add_trial(
            create_trial(state=TrialState.FAIL, user_attrs={"case": "T2M1_T1M2", record.FAIL_REASON: reason})
        )
    r = run_cli("report", STUDY, "--storage", searched, "--out", env / "rep", "--format", "md,json")
    assert r.code == 0, r.err
    md = (env / "rep" / f"{STUDY}.md").read_text()
    excluded = md.split("Trials not in this report", 1)[1]
    assert "fail reasons" in excluded and f"{reason} (×2)" in excluded


def test_a_misspelt_study_leaves_no_report_folder(env: Path, run_cli, searched: str) -> None:
    r = run_cli("report", "sensitivity-T2M1_T1M2-smok", "--storage", searched, "--out", env / "nothing")
    assert r.code == 2 and r.err.startswith("error: no study named") and len(r.err.splitlines()) == 1
    assert not (env / "nothing").exists()


def test_a_study_ablate_cannot_read_stops_the_report_before_any_is_written(env: Path, run_cli, searched: str) -> None:
    """`ablate report GOOD OTHER`, where plain Optuna made OTHER: one line, exit 2, and neither report written
    nor GOOD's note published (GOOD's report was written first, then the error came)."""
    optuna.create_study(study_name="plain", storage=searched)
    r = run_cli("report", STUDY, "plain", "--storage", searched, "--out", env / "rep")
    assert r.code == 2 and r.err.startswith("error: study 'plain' was not made by ablate"), r.err
    assert len(r.err.splitlines()) == 1
    assert not (env / "rep").exists()
    storage = optuna.storages.get_storage(searched)
    attrs = storage.get_study_system_attrs(storage.get_study_id_from_name(STUDY))
    assert not [k for k in attrs if "note" in k], attrs  # optuna-dashboard keeps a note in dashboard:note_* keys


def test_design_studies_read_well_in_plain_optuna(env: Path, run_cli) -> None:
    """The dashboard plots and filters by case, variant and seed (params); `optuna studies` rows are short;
    accuracies are exact fractions; K is written as an integer in -runs.csv."""
    import csv
    import shutil
    import subprocess
    import sys

    url, name = f"sqlite:///{env / 'o.db'}", "ablation-ofat-T2M1_T1M2-smoke"
    r = run_cli("ablation", "--case", "T2M1_T1M2", "--seeds", 2, "--fidelity", "smoke", "--storage", url)
    assert r.code == 0, r.err
    study = optuna.load_study(study_name=name, storage=url)
    frame = study.trials_dataframe()
    assert {"params_case", "params_variant", "params_seed"} <= set(frame.columns)
    for t in study.trials:
        assert t.params == {k: t.user_attrs[k] for k in record.POINT_PARAMS}
        n = t.user_attrs["n_eval"]["val"]
        assert t.value * n == round(t.value * n) and t.value == round(t.value * n) / n

    exe = shutil.which("optuna", path=str(Path(sys.executable).parent))
    assert exe
    listed = subprocess.run([exe, "studies", "--storage", url], capture_output=True, text=True, check=True).stdout
    assert name in listed and max(len(line) for line in listed.splitlines()) < 400, listed[:500]

    r = run_cli("report", name, "--storage", url, "--out", env / "rep", "--format", "md", "--no-dashboard")
    assert r.code == 0, r.err
    with (env / "rep" / f"{name}-runs.csv").open() as f:
        ks = {row["K"] for row in csv.DictReader(f)}
    assert ks and all(k == "" or k.isdigit() for k in ks), ks


def test_a_busy_dashboard_port_is_one_line(env: Path, run_cli, searched: str) -> None:
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = run_cli("dashboard", "--storage", searched, "--port", port)
    assert r.code == 2 and r.out == "", (r.out, r.err)
    assert r.err.startswith(f"error: --port {port}: cannot listen") and len(r.err.splitlines()) == 1


def test_reports_name_a_switch_as_optuna_and_the_files_do() -> None:
    """covariance_type, not the CLI flag's covariance-type: the name in Optuna's params, --set and spaces."""
    from ablate import record
    from ablate.report.study import switch_info
    from crossgen.config import REGISTRY

    definition = record.Definition(
        kind="sensitivity", name="s", fidelity={}, switches=CGIMethod(REGISTRY).switches().declarations()
    )
    labels, _, _ = switch_info(definition)
    assert labels["covariance_type"] == "covariance_type" and labels["lam"] == "lam"
    assert all(label == name for name, label in labels.items())
