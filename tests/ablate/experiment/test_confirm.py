"""The confirm stage: top-K distinct configurations re-run on fresh paired seeds, linked to their search.

The synthetic tests plant a search with known true effects (one configuration is only lucky: its search value
is high, its true accuracy low) and run the real confirmation — plan, design, exact queue, record, analysis —
with each run replaced by a cheap deterministic function of the switches and the seed. The last tests run a
real smoke-fidelity search and its confirmation through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from ablate_testing.planted import BEST, CASE, LUCKY, SECOND, SOURCE, planted_search, run_confirmation

from ablate import record
from ablate.analysis import confirmation, tidy
from ablate.execution import queue
from ablate.execution.storages import open_storage
from ablate.experiment import confirm

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/confirm.db"


def test_confirmation_recovers_the_true_best_and_flags_the_lucky_one(url: str) -> None:
    source = planted_search(url)
    study = run_confirmation(url, source, top=3, seeds=8)
    definition = record.read_definition(study)
    a = confirmation.analyse(tidy.design_frame(study), definition, value="test_accuracy")
    rows = {tuple(sorted(r["changes"].items())): r for _, r in a.rows.iterrows()}
    best = rows[tuple(sorted(BEST.items()))]
    lucky = rows[tuple(sorted(LUCKY.items()))]
    second = rows[tuple(sorted(SECOND.items()))]

    assert len(a.rows) == 3  # the duplicate of BEST is skipped: three distinct configurations
    assert [lucky["rank"], best["rank"], second["rank"]] == [1, 2, 3]
    assert a.best == best["variant"]  # the true best among the top K, although the search ranked it second
    assert best["confirmed"] and second["confirmed"]
    assert best["verdict_vs_default"] == "better"
    assert not lucky["confirmed"] and lucky["verdict_vs_benchmark"] == "worse"
    assert lucky["winners_curse_val"] == pytest.approx(0.96 - 0.88, abs=0.006)  # the winner's curse, measured
    assert abs(best["winners_curse_val"]) < 0.01
    assert a.tau == pytest.approx(-1 / 3)  # search order L, B, S; truth B, S, L


def test_confirmation_seeds_never_meet_the_search_and_the_studies_point_at_each_other(url: str) -> None:
    source = planted_search(url)
    study = run_confirmation(url, source, top=2, seeds=5)
    used = confirm.search_seeds(source)
    ran = {int(s) for s in tidy.design_frame(study)["seed"]}
    assert used == {0, 1}
    assert ran == set(range(1000, 1005)) and not ran & used
    link = record.confirmation_source(record.read_definition(study))
    assert link["study"] == SOURCE and link["seed_offset"] == 1000 and link["search_seeds"] == [0, 1]
    assert record.confirmations_of(optuna.load_study(study_name=SOURCE, storage=url)) == [study.study_name]
    assert queue.counts(study)["COMPLETE"] == 4 * 5  # 2 configurations + default CGI + benchmark, 5 seeds


def _storage_state(url: str) -> dict:
    st = open_storage(url, heartbeat_interval=None, create=False)
    out = {}
    for s in optuna.get_all_study_summaries(st, include_best_trial=False):
        study = optuna.load_study(study_name=s.study_name, storage=st)
        out[s.study_name] = (len(study.trials), json.dumps(study.user_attrs, sort_keys=True, default=str))
    return out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["confirm", "nope", "--top", "2", "--seeds", "3"], "no study named 'nope'"),
        (["confirm", SOURCE, "--top", "0", "--seeds", "3"], "'--top': Input should be greater than or equal to 1"),
        (["confirm", SOURCE, "--top", "2", "--seeds", "1"], "'--seeds': Input should be greater than or equal to 2"),
        (["confirm", "confirm-top2-search", "--top", "2", "--seeds", "3"], "is itself a confirmation"),
        (["confirm", "--top", "2"], "name one or more"),
        (["study", "--case", CASE, "--fidelity", "smoke", "--confirm", "-1"], "'--confirm': Input should be"),
        (["study", "--case", CASE, "--fidelity", "smoke", "--confirm", "2", "--confirm-seeds", "1"], "--confirm-seeds"),
        (["seeds", "--sd", "-1", "--delta", "0.01"], "'--sd': Input should be greater than 0"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_storage_unchanged(env: Path, run_cli, argv: list[str], message: str) -> None:
    url = f"sqlite:///{env}/bad.db"
    source = planted_search(url)
    run_confirmation(url, source, top=2, seeds=2)
    before = _storage_state(url)
    r = run_cli(*argv, "--storage", url) if argv[0] != "seeds" else run_cli(*argv)
    assert r.code == 2, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.err
    assert _storage_state(url) == before


def test_confirm_on_a_real_smoke_search_resumes_and_reports(env: Path, run_cli) -> None:
    url = f"sqlite:///{env}/real.db"
    r = run_cli("study", "--case", CASE, "--fidelity", "smoke", "--sampler", "random", "--trials", 3, "--storage", url)
    assert r.code == 0, r.err
    search = f"sensitivity-{CASE}-smoke"
    name = f"confirm-top2-{search}"
    r = run_cli("confirm", search, "--top", 2, "--seeds", 2, "--storage", url)
    assert r.code == 0, r.err
    assert "Kendall τ" in r.out
    study = optuna.load_study(study_name=name, storage=url)
    assert queue.counts(study)["COMPLETE"] == len(study.trials) == 4 * 2  # at most 4 variants (2 + default + bnn)
    df = tidy.design_frame(study)
    assert set(df["seed"]) == {1000, 1001} and set(df["variant"]).issuperset({"no transfer"})
    assert not set(df["seed"]) & confirm.search_seeds(optuna.load_study(study_name=search, storage=url))

    r = run_cli("confirm", search, "--top", 2, "--seeds", 3, "--storage", url)  # resume with one more seed
    assert r.code == 0, r.err
    study = optuna.load_study(study_name=name, storage=url)
    assert len(study.trials) == 4 * 3 and set(tidy.design_frame(study)["seed"]) == {1000, 1001, 1002}

    r = run_cli("report", name, "--storage", url, "--out", env / "rep", "--format", "md,json", "--no-dashboard")
    assert r.code == 0, r.err
    doc = json.loads((env / "rep" / f"{name}.json").read_text())
    titles = [s["title"] for s in doc["sections"]]
    assert titles[0] == "Confirmation" and "Provenance" in titles
    assert set(doc["metadata"]["provenance"]) == {name, search}
    assert "winner's curse" in (env / "rep" / f"{name}.md").read_text()
    r = run_cli("seeds", name, "--storage", url, "--sims", 200)
    assert r.code == 0, r.err


def test_seeds_for_power_is_one_figure_in_every_table_of_the_report(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A confirmation's summary table and its comparison tables give one comparison's seeds for power 0.8 as
    one figure (they said "more than 200" and "≈ 761" for the same comparison): the simulated exact test, and
    past its 200-seed search the noncentral t's uncapped answer, in both."""
    from ablate_testing import planted

    from ablate.analysis import power
    from ablate.report.confirm import confirm_report_sections

    # every CGI configuration is the benchmark + 0.1 pp, with ±2 pp alternating by seed: Δ far below its SD
    monkeypatch.setattr(planted, "true_value", lambda technique, s: 0.92 + (0.0 if technique == "bnn" else 0.001))
    monkeypatch.setattr(planted, "noise", lambda technique, s, seed: 0.0 if technique == "bnn" else 0.02 * (-1) ** seed)
    study = run_confirmation(url, planted_search(url), top=3, seeds=6)
    _kind, sections, _df = confirm_report_sections(study, metric="test_accuracy", alpha=0.05, rope=None, fig_dir=None)
    summary = sections[0].tables[0].data.set_index("configuration")["seeds for power 0.8"]
    (vs_benchmark,) = [s.tables[0] for s in sections if s.title.endswith("no-transfer benchmark")]
    verdicts = vs_benchmark.data.set_index("variant")["verdict"]
    rows = vs_benchmark.numeric.set_index("variant")
    assert len(summary) == 3
    for variant, shown in summary.items():
        t_n = power.t_seeds(rows.loc[variant, "delta"], rows.loc[variant, "delta_sd"], m=3)
        assert t_n is not None and t_n > power.N_MAX
        assert shown == f"more than {power.N_MAX}, ≈ {t_n} by the noncentral t"
        assert verdicts[variant] == f"inconclusive (seeds for power 0.8: {shown})"
