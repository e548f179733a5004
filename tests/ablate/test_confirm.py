"""The confirm stage: top-K distinct configurations re-run on fresh paired seeds, linked to their search.

The synthetic tests plant a search with known true effects (one configuration is only lucky: its search value
is high, its true accuracy low) and run the real confirmation — plan, design, exact queue, record, analysis —
with each run replaced by a cheap deterministic function of the switches and the seed. The last tests run a
real smoke-fidelity search and its confirmation through the CLI.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ablate import confirm, queue, record, studies, tidy
from ablate.presets import load_fidelity
from ablate.space import load_space
from ablate.storage import open_storage
from crossgen.config import REGISTRY

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

CASE = "T1M1_T2M2"
SOURCE = "search"
BENCHMARK_TRUE = 0.92
# (switches, planted search value): the truth is `true_value`; "lucky" is searched high but is truly poor
LUCKY = {"init": "random", "M": 100}
BEST = {"transfer": "mu"}
SECOND = {"transfer": "mu", "M": 100}
PLANTED = [
    (LUCKY, 0.960),
    (BEST, 0.945),
    ({**BEST, "bootstrap": "uniform"}, 0.944),  # the same configuration as BEST: must not be confirmed twice
    (SECOND, 0.935),
    ({"init": "random", "M": 500}, 0.900),
    ({}, 0.905),
]


def true_value(technique: str, s: dict) -> float:
    """The planted truth: transfer=mu +3 pp, M >= 1000 +1 pp, init=random -3 pp over 0.91; no transfer 0.92."""
    if technique == "bnn":
        return BENCHMARK_TRUE
    v = 0.91 + (0.03 if s["transfer"] == "mu" else 0.0) + (0.01 if s["M"] >= 1000 else 0.0)
    return v - (0.03 if s["init"] == "random" else 0.0)


def noise(technique: str, s: dict, seed: int) -> float:
    """Per seed a shared offset (pairing removes it) plus a small per-configuration jitter, both deterministic."""
    h = hashlib.sha256(json.dumps([technique, s, seed], sort_keys=True, default=str).encode()).digest()
    shared = ((seed * 7919) % 11 - 5) * 0.002
    return shared + (h[0] / 255 - 0.5) * 0.004


def fake_objective(trial: optuna.Trial) -> float:
    """The design objective with the training replaced by the planted truth (the record is the real one)."""
    point = record.read_point(trial.user_attrs)
    config = confirm.canonical("cgi", point.switches) if point.technique == "cgi" else dict(point.switches)
    full = {s.name: s.default for s in REGISTRY.switches} | config
    val = true_value(point.technique, full) + noise(point.technique, full, point.seed)
    result = record.SeedResult(point.seed, val, val - 0.002, 0.01)
    record.write_run(trial, full, result, {"target_training": 0.01})
    return val


def planted_search(url: str, name: str = SOURCE, *, provenance: dict | None = None) -> optuna.Study:
    """A finished 2-seed sensitivity study whose trials carry the planted values (no training)."""
    study = optuna.create_study(study_name=name, storage=open_storage(url), direction="maximize")
    fid = load_fidelity("smoke")
    definition = record.Definition(
        kind="sensitivity",
        name=name,
        fidelity=asdict(fid),
        switches=record.switch_declarations(),
        case=CASE,
        seeds=2,
        space=load_space().to_dicts(),
        extra={record.PROVENANCE: provenance} if provenance else {},
    )
    record.write_definition(study, definition)
    defaults = {s.name: s.default for s in REGISTRY.switches}
    for switches, value in PLANTED:
        config = defaults | switches
        seeds = [asdict(record.SeedResult(s, value, value - 0.001, 0.01)) for s in (0, 1)]
        attrs = {"schema": record.SCHEMA, "case": CASE, "config": config, "seeds": seeds, "seeds_run": 2}
        attrs["test_accuracy"] = value - 0.001
        study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=value, user_attrs=attrs))
    for seed in (0, 1):
        record.store_benchmark(study, CASE, seed, {"val_accuracy": 0.92, "test_accuracy": 0.918})
    return study


def run_confirmation(url: str, source: optuna.Study, top: int, seeds: int) -> optuna.Study:
    """The real plan, design, definition, link and exact queue; the fake objective does the runs."""
    conf = confirm.plan(source, top=top, seeds=seeds)
    plan = studies.StudyPlan(
        name=conf.name,
        storage=url,
        fidelity=conf.fidelity,
        kind="design",
        design=conf.design,
        cases=(conf.case,),
        seeds=seeds,
        workers=0,
    )
    study = studies.open_study(plan)
    confirm.create(study, source, conf, plan)
    outcome = studies.execute(plan)  # workers=0: only fills the queue
    assert outcome.added == plan.total
    queue.work(outcome.study, fake_objective)
    return outcome.study


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/confirm.db"


def test_confirmation_recovers_the_true_best_and_flags_the_lucky_one(url: str) -> None:
    source = planted_search(url)
    study = run_confirmation(url, source, top=3, seeds=8)
    definition = record.read_definition(study)
    a = confirm.analyse(tidy.design_frame(study), definition, value="test_accuracy")
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
        (["confirm", SOURCE, "--top", "0", "--seeds", "3"], "--top 0 must be >= 1"),
        (["confirm", SOURCE, "--top", "2", "--seeds", "1"], "--seeds 1 must be >= 2"),
        (["confirm", "confirm-top2-search", "--top", "2", "--seeds", "3"], "is itself a confirmation"),
        (["confirm", "--top", "2"], "name one or more"),
        (["study", "--case", CASE, "--fidelity", "smoke", "--confirm", "-1"], "--confirm -1 must be >= 0"),
        (["study", "--case", CASE, "--fidelity", "smoke", "--confirm", "2", "--confirm-seeds", "1"], "--confirm-seeds"),
        (["seeds", "--sd", "-1", "--delta", "0.01"], "--sd -1.0 must be > 0"),
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
