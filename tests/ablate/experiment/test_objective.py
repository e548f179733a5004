"""Unit tests of the experiment layer: the space, the two objectives and the study plan.

Real Optuna studies in memory and real smoke-fidelity runs; what is checked is the contract between the
layers: what an objective reads from a trial, what it writes into the record, what a plan stores.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from ablate import record
from ablate.errors import AblateError
from ablate.execution.studies import DesignPlan
from ablate.experiment.designs import load_ablation_design
from ablate.experiment.objective import DesignObjective, SensitivityObjective
from ablate.experiment.presets import load_fidelity
from ablate.experiment.space import load_space
from ablate.methods.cgi import CGIMethod
from crossgen.config import REGISTRY, RunConfig
from crossgen.runner import run

CASE = "T2M1_T1M2"


@pytest.fixture(scope="module")
def smoke():
    return load_fidelity("smoke")


@pytest.fixture(scope="module")
def method():
    """One CGI method for the module: it loads the smoke tasks once, as a worker process does."""
    return CGIMethod()


def _tasks(method, preset):
    return method.tasks(preset, log=lambda *a: None)


def _fid(method, preset):
    return method.fidelity(preset)


def _space(tmp_path: Path, text: str):
    path = tmp_path / "space.toml"
    path.write_text(text)
    return load_space(path)


# ------------------------------------------------------------------------------------------------ space
def test_space_samples_in_file_order_and_respects_conditions(tmp_path: Path) -> None:
    space = _space(
        tmp_path,
        '[params.generator]\ntype = "categorical"\nchoices = ["gmm", "gaussian"]\n'
        '[params.K]\ntype = "int"\nlow = 1\nhigh = 4\nwhen = { generator = "gmm" }\n',
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        values = space.sample(trial)
        assert ("K" in values) == (values["generator"] == "gmm")
        seen.add(values["generator"])
        study.tell(trial, 0.0)
    assert seen == {"gmm", "gaussian"}
    assert space.to_dicts()[1]["when"] == {"generator": "gmm"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[params.K]\ntype = "float"\nlow = 1\nhigh = 4\n', "does not fit the switch"),
        ('[params.transfer]\ntype = "categorical"\nchoices = ["mu", "sigma"]\n', "transfer='sigma'"),
        ('[params.K]\ntype = "int"\nlow = 0\nhigh = 4\n', "K=0"),
        ('[params.K]\ntype = "int"\nlow = 1\nhigh = 4\nwhen = { generator = "gmm" }\n', "defined before it"),
        ('[params.nope]\ntype = "int"\nlow = 1\nhigh = 4\n', "not a switch"),
    ],
)
def test_space_refuses_what_the_switch_refuses(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AblateError, match=message) as info:
        _space(tmp_path, text)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------ objectives
def test_design_objective_runs_the_enqueued_point_and_records_it(smoke, method) -> None:
    design = load_ablation_design("ofat")
    point = next(p for p in design.points([CASE], 1) if p.variant.label == "transfer=mu")
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({}, user_attrs=record.point_attrs(point.point()))
    trial = study.ask()
    value = DesignObjective(method, smoke, curves=True, log=lambda *a: None)(trial)
    study.tell(trial, value)
    rec = record.read_trial(study.trials[0])
    expected = run(
        RunConfig(case=CASE, technique="cgi", fidelity=_fid(method, smoke), **REGISTRY.configs({"transfer": "mu"})),
        tasks=_tasks(method, smoke),
        log=lambda *a: None,
    )
    # the exact fraction correct/n (schema 3), not torch's float32 (0.9480968713760376 for 274/289)
    correct = round(expected.val_accuracy * expected.n_val)
    assert value == correct / expected.n_val == rec.seeds[0].val_accuracy == study.trials[0].value
    assert value == pytest.approx(expected.val_accuracy, abs=1e-7) and value != expected.val_accuracy
    assert rec.seeds[0].test_accuracy == round(expected.test_accuracy * expected.n_test) / expected.n_test
    assert rec.config["transfer"] == "mu" and rec.config["M"] == 2000  # resolved, not just the override
    assert len(rec.seeds[0].curve["val"]) == smoke.values["epochs"] and rec.seeds[0].n_test == expected.n_test
    assert "mean_log_sigma" in rec.attrs["diagnostics"]


def test_design_objective_refuses_a_trial_without_a_point(smoke, method) -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    with pytest.raises(AblateError, match="no design point"):
        DesignObjective(method, smoke, log=lambda *a: None)(trial)


def test_sensitivity_objective_averages_seeds_and_caches_the_benchmark(tmp_path: Path, smoke, method) -> None:
    space = _space(tmp_path, '[params.transfer]\ntype = "categorical"\nchoices = ["mu"]\n')
    objective = SensitivityObjective(
        method, case=CASE, preset=smoke, space=space, seeds=2, base={"M": 300}, curves=False, log=lambda *a: None
    )
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    rec = record.read_trial(study.trials[0])
    assert rec.config["M"] == 300 and rec.config["transfer"] == "mu"
    assert [s.seed for s in rec.seeds] == [0, 1]
    assert study.trials[0].value == pytest.approx(sum(s.val_accuracy for s in rec.seeds) / 2)
    bench = record.cached_benchmark(study, CASE, 1)
    assert rec.seeds[1].benchmark == bench
    alone = run(
        RunConfig(case=CASE, technique="bnn", seed=1, fidelity=_fid(method, smoke), **REGISTRY.configs({"M": 300})),
        tasks=_tasks(method, smoke),
        log=lambda *a: None,
    )
    assert bench["val_accuracy"] == round(alone.val_accuracy * alone.n_val) / alone.n_val


# ------------------------------------------------------------------------------------------------ the plan
def test_plan_definition_stores_what_reports_need(smoke) -> None:
    design = load_ablation_design("ofat").with_base({"init_log_sigma": -2.3})
    plan = DesignPlan(name="p", storage="sqlite:///:memory:", fidelity=smoke, design=design, cases=(CASE,), seeds=3)
    definition = plan.definition()
    assert definition.kind == "design" and definition.cases == (CASE,) and definition.seeds == 3
    assert definition.fidelity["name"] == "smoke"
    assert {v["label"] for v in definition.design["variants"]} >= {"full", "no transfer"}
    assert all(v["switches"]["init_log_sigma"] == -2.3 for v in definition.design["variants"])
    assert [s["name"] for s in definition.switches] == list(REGISTRY.names())
    assert plan.total == len(design.variants) * 3


def test_a_preset_with_switches_is_the_base_of_every_run(smoke, method) -> None:
    import dataclasses

    switches = {"init_log_sigma": -2.3, "transfer": "mu"}
    preset = dataclasses.replace(smoke, values={**smoke.values, "switches": switches})
    design = load_ablation_design("ofat")
    study = optuna.create_study(direction="maximize")
    for label in ("full", "no transfer", "transfer=mu"):
        point = next(p for p in design.points([CASE], 1) if p.variant.label == label)
        study.enqueue_trial({}, user_attrs=record.point_attrs(point.point()))
    study.optimize(DesignObjective(method, preset, curves=False, log=lambda *a: None), n_trials=3)
    recs = {r.variant: r for r in map(record.read_trial, study.trials)}
    assert {r.config["init_log_sigma"] for r in recs.values()} == {-2.3}
    assert recs["full"].config["transfer"] == "mu"  # the preset's reading, unless the design flips it
    assert recs["full"].seeds[0].val_accuracy == recs["transfer=mu"].seeds[0].val_accuracy


# ------------------------------------------------------------------------------------------------ stacked
def test_a_batch_of_design_points_stacked_records_each_point_as_its_own_run(smoke, method) -> None:
    """run_batch: every trial gets its own point's record (a mix-up of points or seeds would show), with
    values within a few examples of the unstacked reference (stacking changes rounding only)."""
    design = load_ablation_design("ofat")
    labels = ("full", "no transfer", "transfer=mu")
    points = [p for p in design.points([CASE], 2) if p.variant.label in labels]
    stacked, alone = optuna.create_study(direction="maximize"), optuna.create_study(direction="maximize")
    for study in (stacked, alone):
        for point in points:
            study.enqueue_trial({}, user_attrs=record.point_attrs(point.point()))
    trials = [stacked.ask() for _ in points]
    objective = DesignObjective(method, smoke, curves=False, stack=True, log=lambda *a: None)
    values = objective.run_batch(trials)
    for trial, value in zip(trials, values, strict=True):
        stacked.tell(trial, value)
    alone.optimize(DesignObjective(method, smoke, curves=False, log=lambda *a: None), n_trials=len(points))
    a = {(r.variant, r.seeds[0].seed): r for r in map(record.read_trial, alone.trials)}
    b = {(r.variant, r.seeds[0].seed): r for r in map(record.read_trial, stacked.trials)}
    assert set(a) == set(b) and len(a) == len(points) == 6
    for key, ra in a.items():
        rb = b[key]
        assert rb.config == ra.config
        assert abs(rb.seeds[0].val_accuracy - ra.seeds[0].val_accuracy) <= 3 / ra.seeds[0].n_val, key


def test_a_bad_point_in_a_batch_fails_only_its_own_trial(smoke, method) -> None:
    design = load_ablation_design("ofat")
    point = next(p for p in design.points([CASE], 1) if p.variant.label == "no transfer")
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({}, user_attrs=record.point_attrs(point.point()))
    good, bad = study.ask(), study.ask()  # the second has no design point
    values = DesignObjective(method, smoke, curves=False, log=lambda *a: None).run_batch([good, bad])
    assert isinstance(values[0], float) and isinstance(values[1], AblateError)


def test_a_stacked_sensitivity_trial_records_what_the_unstacked_one_does(
    tmp_path: Path, smoke, method, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeds and their benchmarks in one stacked call (no run of its own), recorded as the unstacked trial is."""
    import crossgen.runner

    space = _space(tmp_path, '[params.transfer]\ntype = "categorical"\nchoices = ["mu"]\n')
    records = []
    alone: list[RunConfig] = []
    for stack in (False, True):
        if stack:
            monkeypatch.setattr(crossgen.runner, "run", lambda config, **kw: alone.append(config) or run(config, **kw))
        objective = SensitivityObjective(
            method, CASE, smoke, space, seeds=3, base={"M": 300}, curves=False, stack=stack, log=lambda *a: None
        )
        study = optuna.create_study(direction="maximize")
        study.optimize(objective, n_trials=1)
        records.append((study, record.read_trial(study.trials[0])))
    (s_off, off), (s_on, on) = records
    assert [s.seed for s in on.seeds] == [0, 1, 2] and on.config == off.config
    for a, b in zip(off.seeds, on.seeds, strict=True):
        assert abs(a.val_accuracy - b.val_accuracy) <= 3 / a.n_val
        assert abs(a.benchmark["val_accuracy"] - b.benchmark["val_accuracy"]) <= 3 / a.n_val
    assert all(record.cached_benchmark(s_on, CASE, i) is not None for i in range(3))  # stored once, stacked
    assert alone == []


def test_stacking_auto_follows_the_measurements() -> None:
    from ablate.execution import stacking

    cgi = CGIMethod()
    assert stacking.resolve("auto", "cuda", cgi) and stacking.resolve("auto", "cuda:1", cgi)
    assert not stacking.resolve("auto", "cpu", cgi)
    assert stacking.resolve("on", "cpu", cgi) and not stacking.resolve("off", "cuda", cgi)
    assert stacking.why("auto", "cpu", cgi).startswith("unstacked") and "GPU" in stacking.why("auto", "cuda", cgi)
    assert stacking.batch_size(80, 2) == 40 and stacking.batch_size(1000, 1) == stacking.MAX_BATCH
    assert stacking.batch_size(3, 8) == 1


def test_a_stacked_design_plan_claims_batches_and_says_so_in_provenance(smoke) -> None:
    design = load_ablation_design("ofat")
    common = {"name": "p", "storage": "sqlite:///:memory:", "design": design, "cases": (CASE,)}
    plan = DesignPlan(fidelity=smoke, seeds=4, workers=2, stack="on", **common)
    assert plan.stacked and plan.batch == -(-plan.total // 2)
    assert DesignPlan(fidelity=smoke, seeds=4, **common).batch == 1  # auto on a CPU: the reference path
    assert plan.stacking_note.startswith("stacked")


def test_the_stacking_benchmark_times_both_paths_on_the_same_runs(smoke, method) -> None:
    from ablate.methods.cgi import bench

    config = RunConfig(case=CASE, technique="cgi", fidelity=_fid(method, smoke))
    out = bench.stacking_benchmark(_tasks(method, smoke), config, seeds=2)
    assert out["stacked_runs"] == 4 and out["fidelity"] == "smoke"
    assert out["stacked_over_unstacked_per_run"] == pytest.approx(
        out["stacked_seconds_per_run"] / out["unstacked_seconds_per_run"]
    )


def test_a_run_whose_trial_went_stale_while_writing_keeps_its_value_in_the_discarded_note(smoke) -> None:
    """A database outage longer than the grace period: a stale check fails the trial while its run writes its
    record (the 10-minute db_restart soaks lost 8 values this way, noted as FAIL None). The record cannot be
    written, but the value reaches the queue, which keeps it as the discarded-result note."""
    from ablate.execution import queue
    from ablate.method import Outcome

    class Instant(CGIMethod):  # CGI's declarations; a run that takes no time, finished elsewhere meanwhile
        def run(self, requests, *, stack=False, log=print):
            for r in requests:
                study._storage.set_trial_state_values(trials[r.seed]._trial_id, state=optuna.trial.TrialState.FAIL)
            return [Outcome(r.seed, 0.75, 0.5, 4, 4, 0.0) for r in requests]

    design = load_ablation_design("ofat")
    point = next(p for p in design.points([CASE], 1) if p.variant.label == "full")
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({}, user_attrs=record.point_attrs(point.point()))
    trials: dict[int, optuna.Trial] = {}

    def objective(trial: optuna.Trial) -> float:
        trials[0] = trial
        return DesignObjective(Instant(), smoke, curves=False, log=lambda *a: None)(trial)

    stats = queue.work(study, objective)
    assert stats.lost == 1
    [note] = record.discarded_results(study)
    assert (note["state"], note["value"], note["stored_state"]) == ("COMPLETE", 0.75, "FAIL")
