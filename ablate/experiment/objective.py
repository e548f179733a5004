"""Optuna objectives: a trial becomes the method's run requests, runs over seeds, and a validation accuracy.

The value returned to Optuna is always *validation* accuracy. Test accuracy, per-seed results, stage
timings and the transfer gain go into the trial record (:mod:`ablate.record`) — reported, never optimised.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from ablate import record
from ablate.experiment.space import Space
from ablate.method import EpochHook, Method, Outcome, Preset, Request


def seed_result(result: Outcome, benchmark: dict[str, float] | None = None) -> record.SeedResult:
    return record.SeedResult(
        seed=result.seed,
        val_accuracy=record.exact(result.val_accuracy, result.n_val),
        test_accuracy=record.exact(result.test_accuracy, result.n_test),
        seconds=result.seconds,
        n_val=result.n_val,
        n_test=result.n_test,
        benchmark=benchmark,
        curve=record.exact_curve(result.curve, result.n_val, result.n_test),
    )


def finished_elsewhere_is_not_a_failure() -> contextlib.suppress:
    """A trial a stale check finished while its run was still writing (a database outage longer than the grace
    period): the record cannot be written, but the value is still returned, so the queue keeps it as a
    discarded-result note (:func:`ablate.execution.queue._finish`) instead of failing with nothing kept."""
    return contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError)


def resolved(method: Method, preset: Preset, values: dict[str, Any]) -> dict[str, Any]:
    """Every switch's value a run takes: the defaults, then the preset's, then ``values`` (what a record stores)."""
    return method.switches().complete({**preset.switches, **values})


@dataclass
class DesignObjective:
    """One enqueued design point = one run. The point is read from the trial's record."""

    method: Method
    preset: Preset
    device: str = "cpu"
    curves: bool = True
    stack: bool = False
    log: Callable[..., Any] = print

    def _request(self, trial: optuna.Trial) -> Request:
        point = record.read_point(trial.user_attrs)
        return Request(
            case=point.case,
            variant=point.technique,
            seed=point.seed,
            switches=resolved(self.method, self.preset, point.switches),
            preset=self.preset,
            device=self.device,
            curve=self.curves,
            details=True,
        )

    def _write(self, trial: optuna.Trial, request: Request, result: Outcome) -> float:
        run_result = seed_result(result)
        with finished_elsewhere_is_not_a_failure():
            record.write_run(trial, dict(request.switches), run_result, result.stages)
            if result.generators is not None:
                record.write_generators(trial, result.generators)
            record.write_diagnostics(trial, result.diagnostics)
        return run_result.val_accuracy

    def __call__(self, trial: optuna.Trial) -> float:
        (result,) = self.run_batch([trial])
        if isinstance(result, Exception):
            raise result
        return result

    def run_batch(self, trials: list[optuna.Trial]) -> list[float | Exception]:
        """Several design points at once (the method may stack them); each trial gets its own record, value or
        failure."""
        out: list[float | Exception] = []
        requests: list[Request | None] = []
        for trial in trials:
            try:
                requests.append(self._request(trial))
            except Exception as exc:  # a bad point fails its own trial only
                out.append(exc)
                requests.append(None)
            else:
                out.append(0.0)
        runnable = [r for r in requests if r is not None]
        results = iter(self.method.run(runnable, stack=self.stack, log=self.log))
        for i, (trial, request) in enumerate(zip(trials, requests, strict=True)):
            if request is None:
                continue
            result = next(results)
            out[i] = result if isinstance(result, Exception) else self._write(trial, request, result)
        return out


@dataclass
class SensitivityObjective:
    """A sampled configuration of the method's reference variant evaluated on ``seeds`` fixed seeds; returns
    the mean validation accuracy.

    With several seeds each seed's accuracy is reported with step = seed index, which is what Optuna's
    WilcoxonPruner compares between trials (seed-wise instance pruning); a pruned trial returns the mean of
    the seeds it ran, as the WilcoxonPruner documentation recommends, and is marked ``pruned_after``. With
    one seed, the target's validation accuracy is reported every epoch for median / hyperband pruning.

    Each seed is paired with the method's baseline on the same seed, computed once per study and kept on it.

    ``stack``: the trial's seeds (and the baselines of seeds not yet cached) go to the method in one call. The
    pruner still sees the seeds one by one and decides as it would unstacked, so the record is the same; the
    seeds after a prune were computed anyway and are dropped, as an unstacked trial never ran them.
    """

    method: Method
    case: str
    preset: Preset
    space: Space
    seeds: int = 1
    base: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    curves: bool = True
    stack: bool = False
    log: Callable[..., Any] = print

    def _request(self, variant: str, seed: int, values: dict[str, Any], hook: EpochHook | None = None) -> Request:
        return Request(
            case=self.case,
            variant=variant,
            seed=seed,
            switches=resolved(self.method, self.preset, values),
            preset=self.preset,
            device=self.device,
            curve=self.curves,
            details=False,
            on_epoch=hook,
        )

    def _store_benchmark(self, study: optuna.Study, result: Outcome) -> dict[str, Any]:
        run_result = seed_result(result)
        cached: dict[str, Any] = {"val_accuracy": run_result.val_accuracy, "test_accuracy": run_result.test_accuracy}
        if run_result.curve:
            cached["curve"] = run_result.curve
        record.store_benchmark(study, self.case, result.seed, cached)
        return cached

    def _one(self, request: Request) -> Outcome:
        (result,) = self.method.run([request], stack=False, log=self.log)
        if isinstance(result, Exception):
            raise result
        return result

    def benchmark(self, study: optuna.Study, seed: int) -> dict[str, float]:
        """The baseline on this case and seed, computed once per study and kept on it."""
        cached = record.cached_benchmark(study, self.case, seed)
        if cached is None:
            cached = self._store_benchmark(study, self._one(self._request(self.method.baseline, seed, self.base)))
        return cached

    def _stacked(self, trial: optuna.Trial, requests: list[Request]) -> list[Outcome]:
        """Every seed of the trial, and each seed's baseline not yet cached, as one call."""
        missing = [i for i in range(self.seeds) if record.cached_benchmark(trial.study, self.case, i) is None]
        baselines = [self._request(self.method.baseline, i, self.base) for i in missing]
        results = self.method.run([*requests, *baselines], stack=True, log=self.log)
        for result in results[len(requests) :]:
            if not isinstance(result, Exception):
                self._store_benchmark(trial.study, result)
        for result in results[: len(requests)]:
            if isinstance(result, Exception):
                raise result
        return results[: len(requests)]  # type: ignore[return-value]

    def __call__(self, trial: optuna.Trial) -> float:
        values = {**self.base, **self.space.sample(trial)}
        record.write_started(trial, self.case, resolved(self.method, self.preset, values))
        per_seed: list[record.SeedResult] = []
        stages: dict[str, float] = {}
        pruned_after = None
        hook = self._epoch_hook(trial) if self.seeds == 1 else None
        requests = [
            self._request(self.method.reference, index, values, hook if index == 0 else None)
            for index in range(self.seeds)
        ]
        stacked = self._stacked(trial, requests) if self.stack else None
        for index, request in enumerate(requests):
            result = stacked[index] if stacked is not None else self._one(request)
            per_seed.append(seed_result(result, self.benchmark(trial.study, index)))
            for k, v in result.stages.items():
                stages[k] = stages.get(k, 0.0) + v
            if self.seeds > 1:
                trial.report(result.val_accuracy, step=index)
                if index < self.seeds - 1 and trial.should_prune():
                    pruned_after = len(per_seed)
                    break
        mean_stages = {k: v / len(per_seed) for k, v in stages.items()}
        with finished_elsewhere_is_not_a_failure():
            record.write_sampled(trial, per_seed, mean_stages, pruned_after)
        return statistics.fmean(r.val_accuracy for r in per_seed)

    @staticmethod
    def _epoch_hook(trial: optuna.Trial) -> EpochHook:
        def hook(epoch: int, accuracy: float) -> None:
            trial.report(accuracy, step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at target epoch {epoch}")

        return hook
