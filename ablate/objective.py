"""Optuna objectives: a trial becomes RunConfigs, runs over seeds, and a validation accuracy.

The value returned to Optuna is always *validation* accuracy. Test accuracy, per-seed results, stage
timings and the transfer gain go into the trial record (:mod:`ablate.record`) — reported, never optimised.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from ablate import record
from ablate.space import Space
from crossgen.config import CASES, REGISTRY, Fidelity, Registry, RunConfig
from crossgen.data import Task
from crossgen.runner import RunResult, load_run_tasks, run


def seed_result(result: RunResult, benchmark: dict[str, float] | None = None) -> record.SeedResult:
    curve = None
    if "curve_val" in result.history:
        curve = {"val": result.history["curve_val"], "test": result.history["curve_test"]}
    return record.SeedResult(
        seed=result.seed,
        val_accuracy=record.exact(result.val_accuracy, result.n_val),
        test_accuracy=record.exact(result.test_accuracy, result.n_test),
        seconds=result.seconds,
        n_val=result.n_val,
        n_test=result.n_test,
        benchmark=benchmark,
        curve=record.exact_curve(curve, result.n_val, result.n_test),
    )


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
    """One enqueued design point = one run. The point is read from the trial's record."""

    fidelity: Fidelity
    device: str = "cpu"
    cache: TaskCache = field(default_factory=TaskCache)
    registry: Registry = REGISTRY
    curves: bool = True

    def __call__(self, trial: optuna.Trial) -> float:
        point = record.read_point(trial.user_attrs)
        config = RunConfig(
            case=point.case,
            technique=point.technique,
            seed=point.seed,
            fidelity=self.fidelity,
            device=self.device,
            data_dir=self.cache.data_dir,
            record_generators=True,
            record_curve=self.curves,
            **self.registry.configs(point.switches, self.fidelity),
        )
        result = run(config, tasks=self.cache.get(self.fidelity), log=self.cache.log)
        run_result = seed_result(result)
        record.write_run(trial, config.switch_values(self.registry), run_result, result.stages)
        if "generators" in result.artefacts:
            record.write_generators(trial, result.artefacts["generators"])
        record.write_diagnostics(trial, result.artefacts)
        return run_result.val_accuracy


@dataclass
class SensitivityObjective:
    """A sampled configuration evaluated on ``seeds`` fixed seeds; returns the mean validation accuracy.

    With several seeds each seed's accuracy is reported with step = seed index, which is what Optuna's
    WilcoxonPruner compares between trials (seed-wise instance pruning); a pruned trial returns the mean of
    the seeds it ran, as the WilcoxonPruner documentation recommends, and is marked ``pruned_after``. With
    one seed, the target's validation accuracy is reported every epoch for median / hyperband pruning.
    """

    case: str
    fidelity: Fidelity
    space: Space
    seeds: int = 1
    base: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    cache: TaskCache = field(default_factory=TaskCache)
    registry: Registry = REGISTRY
    curves: bool = True

    def benchmark(self, study: optuna.Study, seed: int) -> dict[str, float]:
        """The no-transfer BNN on this case and seed, computed once per study and kept on it."""
        cached = record.cached_benchmark(study, self.case, seed)
        if cached is None:
            config = RunConfig(
                case=self.case,
                technique="bnn",
                seed=seed,
                fidelity=self.fidelity,
                device=self.device,
                record_curve=self.curves,
                **self.registry.configs(self.base, self.fidelity),
            )
            result = run(config, tasks=self.cache.get(self.fidelity), log=self.cache.log)
            run_result = seed_result(result)
            cached = {"val_accuracy": run_result.val_accuracy, "test_accuracy": run_result.test_accuracy}
            if run_result.curve:
                cached["curve"] = run_result.curve
            record.store_benchmark(study, self.case, seed, cached)
        return cached

    def __call__(self, trial: optuna.Trial) -> float:
        values = {**self.base, **self.space.sample(trial)}
        configs = self.registry.configs(values, self.fidelity)
        started = RunConfig(case=self.case, technique="cgi", fidelity=self.fidelity, **configs)
        record.write_started(trial, self.case, started.switch_values(self.registry))
        per_seed: list[record.SeedResult] = []
        stages: dict[str, float] = {}
        pruned_after = None
        for index in range(self.seeds):
            config = RunConfig(
                case=self.case,
                technique="cgi",
                seed=index,
                fidelity=self.fidelity,
                device=self.device,
                record_generators=False,
                record_curve=self.curves,
                **configs,
            )
            hook = self._epoch_hook(trial) if self.seeds == 1 else None
            result = run(config, tasks=self.cache.get(self.fidelity), on_target_epoch=hook, log=self.cache.log)
            per_seed.append(seed_result(result, self.benchmark(trial.study, index)))
            for k, v in result.stages.items():
                stages[k] = stages.get(k, 0.0) + v
            if self.seeds > 1:
                trial.report(result.val_accuracy, step=index)
                if index < self.seeds - 1 and trial.should_prune():
                    pruned_after = len(per_seed)
                    break
        mean_stages = {k: v / len(per_seed) for k, v in stages.items()}
        record.write_sampled(trial, per_seed, mean_stages, pruned_after)
        return statistics.fmean(r.val_accuracy for r in per_seed)

    @staticmethod
    def _epoch_hook(trial: optuna.Trial) -> Callable[[int, float], None]:
        def hook(epoch: int, accuracy: float) -> None:
            trial.report(accuracy, step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at target epoch {epoch}")

        return hook
