"""What a careful reader of a report (and of `ablate report`'s errors) expects: failed trials with their
reasons, nothing left behind by a misspelt study name, and numbers written as what they are."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from ablate import record

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
