"""A planted sensitivity search and its real confirmation, with each run replaced by a deterministic function.

Shared by the confirm and the across-case report tests: the plan, design, definition, link, exact queue and
record are the real ones; only training is replaced by the planted truth (transfer=mu +3 pp, M >= 1000 +1 pp,
init=random -3 pp over 0.91; the benchmark 0.92), so effects and p-values are known in advance.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import optuna
from optuna.trial import TrialState

from ablate import record
from ablate.execution import queue, studies
from ablate.execution.plans import ConfirmationPlan
from ablate.execution.storages import open_storage
from ablate.experiment import confirm
from ablate.experiment.presets import load_fidelity
from ablate.experiment.space import load_space
from ablate.methods.cgi import CGIMethod
from crossgen.config import REGISTRY

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
    config = CGIMethod().resolve("cgi", point.switches) if point.technique == "cgi" else dict(point.switches)
    full = {s.name: s.default for s in REGISTRY.switches} | config
    val = true_value(point.technique, full) + noise(point.technique, full, point.seed)
    result = record.SeedResult(point.seed, val, val - 0.002, 0.01)
    record.write_run(trial, full, result, {"target_training": 0.01})
    return val


def planted_search(url: str, name: str = SOURCE, *, provenance: dict | None = None, case: str = CASE) -> optuna.Study:
    """A finished 2-seed sensitivity study whose trials carry the planted values (no training)."""
    study = optuna.create_study(study_name=name, storage=open_storage(url), direction="maximize")
    fid = load_fidelity("smoke")
    definition = record.Definition(
        kind="sensitivity",
        name=name,
        fidelity=fid.as_dict(),
        switches=CGIMethod().switches().declarations(),
        case=case,
        seeds=2,
        space=load_space().to_dicts(),
        extra={record.PROVENANCE: provenance} if provenance else {},
    )
    record.write_definition(study, definition)
    defaults = {s.name: s.default for s in REGISTRY.switches}
    for switches, value in PLANTED:
        config = defaults | switches
        seeds = [asdict(record.SeedResult(s, value, value - 0.001, 0.01)) for s in (0, 1)]
        attrs = {"schema": record.SCHEMA, "case": case, "config": config, "seeds": seeds, "seeds_run": 2}
        attrs["test_accuracy"] = value - 0.001
        study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=value, user_attrs=attrs))
    for seed in (0, 1):
        record.store_benchmark(study, case, seed, {"val_accuracy": 0.92, "test_accuracy": 0.918})
    return study


def run_confirmation(url: str, source: optuna.Study, top: int, seeds: int) -> optuna.Study:
    """The real plan, design, definition, link and exact queue; the fake objective does the runs."""
    conf = confirm.plan(source, top=top, seeds=seeds)
    plan = ConfirmationPlan(
        name=conf.name,
        storage=url,
        fidelity=conf.fidelity,
        design=conf.design,
        cases=(conf.case,),
        seeds=seeds,
        workers=0,
        link=conf.link,
    )
    study = studies.open_study(plan)
    confirm.create(study, source, plan)
    outcome = studies.execute(plan)  # workers=0: only fills the queue
    assert outcome.added == plan.total
    queue.work(outcome.study, fake_objective)
    return outcome.study
