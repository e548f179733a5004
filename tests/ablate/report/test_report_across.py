"""Confirmations of several cases are joined in one report, under one Holm family over every comparison."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
from ablate_testing.planted import planted_search, run_confirmation
from statsmodels.stats.multitest import multipletests

from ablate.analysis import stats, tidy
from ablate.report.across import shared_changes

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
CASES = ("T2M2_T1M1", "T1M1_T2M2")


@pytest.fixture
def confirmed(env: Path) -> tuple[str, list[str]]:
    """Two planted searches (tests/_support/ablate_testing/planted.py), each confirmed on 5 fresh seeds: its best
    configuration, transfer=mu, is +3 pp on every seed, so its raw p is 2/2^5 and Holm's family size shows."""
    url = f"sqlite:///{env}/a.db"
    names = []
    for case in CASES:
        source = planted_search(url, f"search-{case}", case=case)
        names.append(run_confirmation(url, source, top=2, seeds=5).study_name)
    return url, names


def test_two_confirmations_are_joined_under_holm_over_every_comparison(env: Path, run_cli, confirmed) -> None:
    url, names = confirmed
    r = run_cli("report", *names, "--storage", url, "--out", env / "rep", "--format", "md,json", "--no-dashboard")
    assert r.code == 0, r.err
    folder = env / "rep" / "confirm-across-cases-smoke"
    doc = json.loads((folder / "confirm-across-cases-smoke.json").read_text())
    assert [s["title"] for s in doc["sections"]][:3] == ["Across cases", "Per case", "All configurations"]
    rows = pd.read_csv(folder / "confirm-across-cases-smoke-configurations.csv")
    assert list(dict.fromkeys(rows["case"])) == list(CASES) and len(rows) == 4

    # the family: each configuration vs its own case's benchmark, computed here from the stored runs
    raw = []
    for case, name in zip(CASES, names, strict=True):
        df = tidy.design_frame(optuna.load_study(study_name=name, storage=url))
        table = stats.ablation_table(
            df[df["variant"].isin([*rows.loc[rows.case == case, "configuration"], "no transfer"])],
            reference="no transfer",
            n_examples="n_test",
        ).frame.set_index("variant")
        raw += [table.loc[v, "p"] for v in rows.loc[rows.case == case, "configuration"]]
    assert rows["p"].tolist() == pytest.approx(raw)
    assert rows["p_holm_all"].tolist() == pytest.approx(multipletests(raw, method="holm")[1].tolist())
    assert (rows["p_holm_all"] >= rows["p_holm_in_case"] - 1e-12).all()  # a larger family is never less strict
    mu = rows[rows["changes"] == str({"transfer": "mu"})]
    assert len(mu) == 2 and (mu["p"] == 2 / 2**5).all() and (mu["p_holm_in_case"] == 0.125).all()
    assert (mu["p_holm_all"] == 0.25).all()  # Holm over 4: what the per-case reports (0.125) do not show

    # the answer names, for every case, the configuration with the best confirmed validation accuracy
    text = doc["sections"][0]["text"]
    best = rows.loc[rows.groupby("case")["confirmed_val"].idxmax()]
    per_case = next(t for t in doc["sections"][1]["tables"])["rows"]
    assert [r["best confirmed (validation)"] for r in per_case] == [
        best.set_index("case").loc[c, "configuration"] for c in CASES
    ]
    assert "Holm over all 4 comparisons" in text and "2 cases" in text
    assert text.endswith("of every case sets: transfer=mu.")  # the planted winner of both cases
    shown = (folder / "confirm-across-cases-smoke.md").read_text()
    assert shown.index("## Across cases") < shown.index("## Per case") < shown.index("## Provenance")

    # one case alone is its own confirmation report: nothing to join
    r = run_cli("report", names[0], "--storage", url, "--out", env / "one", "--no-dashboard")
    assert r.code == 0, r.err
    assert "confirm-across-cases" not in r.out and not list(env.glob("one/*across*"))


def test_shared_changes_are_the_settings_every_winner_has() -> None:
    best = pd.DataFrame(
        {"changes": [{"transfer": "mu", "M": "100"}, {"transfer": "mu", "M": "500"}, {"transfer": "mu", "K": "1"}]}
    )
    assert shared_changes(best) == {"transfer": "mu"}
    assert shared_changes(best.iloc[[0, 1]].assign(changes=[{"M": "100"}, {"transfer": "mu"}])) == {}


def test_every_report_reads_each_study_definition_once(env: Path, confirmed, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report flows one way: its study's stored definition is read once, at the top, and handed down (it was
    read nine times along one report's path), for each confirmation's report and for the joint one."""
    from ablate import record
    from ablate.report.reports import write_reports

    url, names = confirmed
    studies = [optuna.load_study(study_name=n, storage=url) for n in names]
    reads: list[str] = []
    real = record.read_definition

    def counted(study: optuna.Study) -> record.Definition:
        reads.append(study.study_name)
        return real(study)

    monkeypatch.setattr(record, "read_definition", counted)
    written = write_reports(studies, env / "rep", formats=("md",), publish=False)
    assert [w.name for w in written] == [*names, "confirm-across-cases-smoke"]
    # once for its own report, once to group the confirmations by fidelity, once for the joint report
    assert reads == [names[0], names[1], *names, *names], reads
