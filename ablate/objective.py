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
from crossgen.runner import RunResult, load_run_tasks, run, run_many


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

    def _config(self, trial: optuna.Trial) -> RunConfig:
        point = record.read_point(trial.user_attrs)
        return RunConfig(
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

    def _write(self, trial: optuna.Trial, config: RunConfig, result: RunResult) -> float:
        run_result = seed_result(result)
        record.write_run(trial, config.switch_values(self.registry), run_result, result.stages)
        if "generators" in result.artefacts:
            record.write_generators(trial, result.artefacts["generators"])
        record.write_diagnostics(trial, result.artefacts)
        return run_result.val_accuracy

    def __call__(self, trial: optuna.Trial) -> float:
        config = self._config(trial)
        return self._write(trial, config, run(config, tasks=self.cache.get(self.fidelity), log=self.cache.log))

    def run_batch(self, trials: list[optuna.Trial]) -> list[float | Exception]:
        """Several design points at once, their fits stacked (:func:`crossgen.runner.run_many`); each trial
        gets its own record, value or failure."""
        out: list[float | Exception] = []
        configs: list[RunConfig] = []
        for trial in trials:
            try:
                configs.append(self._config(trial))
            except Exception as exc:  # a bad point fails its own trial only
                out.append(exc)
                configs.append(None)  # type: ignore[arg-type]
            else:
                out.append(0.0)
        runnable = [c for c in configs if c is not None]
        results = iter(run_many(runnable, tasks=self.cache.get(self.fidelity), log=self.cache.log))
        for i, (trial, config) in enumerate(zip(trials, configs, strict=True)):
            if config is None:
                continue
            result = next(results)
            out[i] = result if isinstance(result, Exception) else self._write(trial, config, result)
        return out


@dataclass
class SensitivityObjective:
    """A sampled configuration evaluated on ``seeds`` fixed seeds; returns the mean validation accuracy.

    With several seeds each seed's accuracy is reported with step = seed index, which is what Optuna's
    WilcoxonPruner compares between trials (seed-wise instance pruning); a pruned trial returns the mean of
    the seeds it ran, as the WilcoxonPruner documentation recommends, and is marked ``pruned_after``. With
    one seed, the target's validation accuracy is reported every epoch for median / hyperband pruning.

    ``stack``: the trial's seeds (and the benchmarks of seeds not yet cached) train as stacked replicas in
    one call. The pruner still sees the seeds one by one and decides as it would unstacked, so the record is
    the same; the seeds after a prune were computed anyway and are dropped, as an unstacked trial never
    ran them (stacking saves more than pruning does there).
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
    stack: bool = False

    def _benchmark_config(self, seed: int) -> RunConfig:
        return RunConfig(
            case=self.case,
            technique="bnn",
            seed=seed,
            fidelity=self.fidelity,
            device=self.device,
            record_curve=self.curves,
            **self.registry.configs(self.base, self.fidelity),
        )

    def _store_benchmark(self, study: optuna.Study, result: RunResult) -> dict[str, Any]:
        run_result = seed_result(result)
        cached: dict[str, Any] = {"val_accuracy": run_result.val_accuracy, "test_accuracy": run_result.test_accuracy}
        if run_result.curve:
            cached["curve"] = run_result.curve
        record.store_benchmark(study, self.case, result.seed, cached)
        return cached

    def benchmark(self, study: optuna.Study, seed: int) -> dict[str, float]:
        """The no-transfer BNN on this case and seed, computed once per study and kept on it."""
        cached = record.cached_benchmark(study, self.case, seed)
        if cached is None:
            config = self._benchmark_config(seed)
            cached = self._store_benchmark(study, run(config, tasks=self.cache.get(self.fidelity), log=self.cache.log))
        return cached

    def _stacked(
        self, trial: optuna.Trial, configs: list[RunConfig], hook: Callable[[int, float], None] | None
    ) -> list[RunResult]:
        """Every seed of the trial, and each seed's benchmark not yet cached, as one stacked call."""
        missing = [i for i in range(self.seeds) if record.cached_benchmark(trial.study, self.case, i) is None]
        benchmarks = [self._benchmark_config(i) for i in missing]
        hooks = [hook, *[None] * (len(configs) - 1 + len(benchmarks))]
        results = run_many(
            [*configs, *benchmarks], tasks=self.cache.get(self.fidelity), on_target_epoch=hooks, log=self.cache.log
        )
        for result in results[len(configs) :]:
            if not isinstance(result, Exception):
                self._store_benchmark(trial.study, result)
        for result in results[: len(configs)]:
            if isinstance(result, Exception):
                raise result
        return results[: len(configs)]  # type: ignore[return-value]

    def __call__(self, trial: optuna.Trial) -> float:
        values = {**self.base, **self.space.sample(trial)}
        configs = self.registry.configs(values, self.fidelity)
        started = RunConfig(case=self.case, technique="cgi", fidelity=self.fidelity, **configs)
        record.write_started(trial, self.case, started.switch_values(self.registry))
        per_seed: list[record.SeedResult] = []
        stages: dict[str, float] = {}
        pruned_after = None
        configs = [
            RunConfig(
                case=self.case,
                technique="cgi",
                seed=index,
                fidelity=self.fidelity,
                device=self.device,
                record_generators=False,
                record_curve=self.curves,
                **configs,
            )
            for index in range(self.seeds)
        ]
        hook = self._epoch_hook(trial) if self.seeds == 1 else None
        stacked = self._stacked(trial, configs, hook) if self.stack else None
        for index, config in enumerate(configs):
            if stacked is not None:  # all seeds ran together; the pruner still sees them one by one
                result = stacked[index]
            else:
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
