"""Optuna objectives: a trial becomes RunConfigs, runs over seeds, and a validation accuracy.

The value returned to Optuna is always *validation* accuracy. Test accuracy, per-seed results, stage
timings and the transfer gain are user attributes — reported, never optimised.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from ablate.space import Space
from crossgen.config import CASES, CGI_CHOICES, TECHNIQUES, CGIConfig, Fidelity, RunConfig
from crossgen.data import Task
from crossgen.runner import RunResult, load_run_tasks, run

RESULT_ATTRS = ("val_accuracy", "test_accuracy", "seconds")


def _suggest_design_params(trial: optuna.Trial, technique: str) -> None:
    """Record a design trial's enqueued parameters under fixed, study-wide distributions."""
    trial.suggest_categorical("case", list(CASES))
    trial.suggest_categorical("technique", list(TECHNIQUES))
    trial.suggest_int("seed", 0, 1_000_000)
    if technique == "cgi":
        for name in ("init", "generator", "scope", "bootstrap", "transfer"):
            trial.suggest_categorical(name, list(CGI_CHOICES[name]))
        trial.suggest_int("M", 1, 10_000_000, log=True)
        trial.suggest_int("K", 1, 10_000, log=True)


def _record(trial: optuna.Trial, result: RunResult, prefix: str = "") -> None:
    trial.set_user_attr(f"{prefix}val_accuracy", result.val_accuracy)
    trial.set_user_attr(f"{prefix}test_accuracy", result.test_accuracy)
    trial.set_user_attr(f"{prefix}seconds", round(result.seconds, 4))
    if not prefix:
        trial.set_user_attr("stages", {k: round(v, 4) for k, v in result.stages.items()})


@dataclass
class TaskCache:
    """Tasks loaded once per worker process and fidelity (the MNIST arrays are the expensive part)."""

    data_dir: str | None = None
    log: Callable[..., Any] = print
    _tasks: dict[str, dict[str, Task]] = field(default_factory=dict)

    def get(self, fidelity: Fidelity) -> dict[str, Task]:
        if fidelity.name not in self._tasks:
            cfg = RunConfig(case=CASES[0], technique="none", fidelity=fidelity, data_dir=self.data_dir)
            self._tasks[fidelity.name] = load_run_tasks(cfg, log=self.log)
        return self._tasks[fidelity.name]


@dataclass
class DesignObjective:
    """One enqueued design point = one run. The point lives in the trial's user attributes."""

    fidelity: Fidelity
    base_cgi: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    cache: TaskCache = field(default_factory=TaskCache)

    def __call__(self, trial: optuna.Trial) -> float:
        attrs = trial.user_attrs
        if "design_key" not in attrs:
            raise RuntimeError("this trial carries no design point (was it created outside `ablate`?)")
        technique = attrs["technique"]
        _suggest_design_params(trial, technique)
        cgi = CGIConfig(**json.loads(attrs.get("cgi_overrides", "{}")))
        config = RunConfig(
            case=attrs["case"],
            technique=technique,
            seed=int(attrs["seed"]),
            fidelity=self.fidelity,
            cgi=cgi,
            device=self.device,
            data_dir=self.cache.data_dir,
            record_generators=True,
        )
        result = run(config, tasks=self.cache.get(self.fidelity), log=self.cache.log)
        _record(trial, result)
        if "generators" in result.artefacts:
            trial.set_user_attr("generators", _compact_generators(result.artefacts["generators"]))
        return result.val_accuracy


def _compact_generators(summaries: dict[str, dict]) -> dict[str, dict]:
    keep = ("kind", "n_components", "weights", "means", "converged", "bic", "warnings")
    return {name: {k: s.get(k) for k in keep} for name, s in summaries.items()}


@dataclass
class SensitivityObjective:
    """A sampled CGI configuration evaluated on ``seeds`` fixed seeds; returns the mean validation accuracy.

    With several seeds each seed's accuracy is reported with step = seed index, which is what Optuna's
    WilcoxonPruner compares between trials (seed-wise instance pruning); a pruned trial returns the mean of
    the seeds it ran, as the WilcoxonPruner documentation recommends, and is marked ``pruned_after``. With
    one seed, the target's validation accuracy is reported every epoch for median / hyperband pruning.
    """

    case: str
    fidelity: Fidelity
    space: Space
    seeds: int = 1
    base_cgi: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    cache: TaskCache = field(default_factory=TaskCache)

    def benchmark(self, trial: optuna.Trial, seed: int) -> dict[str, float]:
        """The no-transfer BNN on this case and seed, computed once per study and kept in its user attrs."""
        key = f"benchmark:{self.case}:{seed}"
        cached = trial.study.user_attrs.get(key)
        if cached is None:
            config = RunConfig(case=self.case, technique="bnn", seed=seed, fidelity=self.fidelity, device=self.device)
            result = run(config, tasks=self.cache.get(self.fidelity), log=self.cache.log)
            cached = {"val_accuracy": result.val_accuracy, "test_accuracy": result.test_accuracy}
            trial.study.set_user_attr(key, cached)  # deterministic: a concurrent duplicate writes the same
        return cached

    def __call__(self, trial: optuna.Trial) -> float:
        values = self.space.sample(trial)
        cgi = CGIConfig(**{**self.base_cgi, **values})
        trial.set_user_attr("case", self.case)
        trial.set_user_attr("cgi", json.dumps({k: getattr(cgi, k) for k in cgi.__dataclass_fields__}))
        per_seed: list[RunResult] = []
        gains_val, gains_test = [], []
        pruned = False
        for index in range(self.seeds):
            config = RunConfig(
                case=self.case,
                technique="cgi",
                seed=index,
                fidelity=self.fidelity,
                cgi=cgi,
                device=self.device,
                record_generators=False,
            )
            hook = self._epoch_hook(trial) if self.seeds == 1 else None
            result = run(config, tasks=self.cache.get(self.fidelity), on_target_epoch=hook, log=self.cache.log)
            per_seed.append(result)
            _record(trial, result, prefix=f"seed{index}:")
            bench = self.benchmark(trial, index)
            gains_val.append(result.val_accuracy - bench["val_accuracy"])
            gains_test.append(result.test_accuracy - bench["test_accuracy"])
            if self.seeds > 1:
                trial.report(result.val_accuracy, step=index)
                if index < self.seeds - 1 and trial.should_prune():
                    pruned = True
                    break
        trial.set_user_attr("seeds_run", len(per_seed))
        if pruned:
            trial.set_user_attr("pruned_after", len(per_seed))
        trial.set_user_attr("test_accuracy", statistics.fmean(r.test_accuracy for r in per_seed))
        trial.set_user_attr("transfer_gain", statistics.fmean(gains_val))
        trial.set_user_attr("transfer_gain_test", statistics.fmean(gains_test))
        stages: dict[str, float] = {}
        for r in per_seed:
            for k, v in r.stages.items():
                stages[k] = stages.get(k, 0.0) + v / len(per_seed)
        trial.set_user_attr("stages", {k: round(v, 4) for k, v in stages.items()})
        return statistics.fmean(r.val_accuracy for r in per_seed)

    @staticmethod
    def _epoch_hook(trial: optuna.Trial) -> Callable[[int, float], None]:
        def hook(epoch: int, accuracy: float) -> None:
            trial.report(accuracy, step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at target epoch {epoch}")

        return hook
