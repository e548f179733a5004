"""The kinds of study, as types: what each one stores, how it fills its queue, samples, prunes and runs a trial.

A plan is plain, picklable data: everything a worker process on any machine needs to join the same study.
:class:`StudyPlan` holds how a study is executed (storage, workers, device, heartbeats), the same for every
kind; :class:`DesignPlan` (an ablation, a paper table; :class:`ConfirmationPlan` a confirmation) and
:class:`SensitivityPlan` (a sampled search) add what is studied and answer, each in its own way, the questions
execution asks: the definition the study stores, the total, how the queue is filled, the sampler, the pruner,
the objective and whether a failed trial is replaced. Why types and not one record with a ``kind`` field:
each kind's fields are required where they matter (a design plan without a design cannot be built), and a new
kind is a new class, not a new branch in every function that reads a plan.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

import optuna
from optuna.exceptions import ExperimentalWarning

from ablate import record
from ablate.errors import AblateError
from ablate.execution import queue, stacking
from ablate.experiment.designs import Design, DesignPoint
from ablate.experiment.names import check_definition_size, check_study_name
from ablate.experiment.objective import DesignObjective, SensitivityObjective
from ablate.experiment.space import Space
from ablate.method import Method, Preset, load_method

SAMPLERS = ("tpe", "random", "qmc", "grid")
PRUNERS = ("none", "median", "wilcoxon", "hyperband")
WILCOXON_P_THRESHOLD = 0.1  # prunes when the exact one-sided p < this
WILCOXON_STARTUP_STEPS = 2  # compares from this many seeds on
MEDIAN_WARMUP_STEPS = 1  # with seeds as steps: from the second seed on


@dataclass(frozen=True, kw_only=True)
class StudyPlan:
    """How a study is executed, whatever it studies; validated by the CLI, and its name here, before any storage is
    opened. On its own it names a study and carries execution settings (a confirmation inherits its search's);
    a study is run from one of its kinds, :class:`DesignPlan` or :class:`SensitivityPlan`."""

    kind: ClassVar[str] = ""
    name: str
    storage: str
    fidelity: Preset
    seeds: int = 1
    workers: int = 1
    join: bool = False
    join_wait: float = 300.0  # --join: seconds to wait for the coordinator to create the study and fill its queue
    timeout: float | None = None
    heartbeat_interval: int | None = 60
    grace_period: int | None = None
    device: str = "cpu"
    threads: int = 1
    curves: bool = True  # learning curves in every record (costs ~8% of a quick run; see docs/benchmarks.md)
    stack: str = "auto"  # --stack: runs of a trial as stacked replicas (ablate.execution.stacking)
    method: Method = field(default_factory=load_method)

    def __post_init__(self) -> None:
        """A name or a definition that some supported storage cannot hold is refused here, before any is opened."""
        check_study_name(self.name)
        if self.kind:
            check_definition_size(self.name, asdict(self.definition()))

    def execution(self) -> dict[str, Any]:
        """The execution settings (every field of this base class but ``name``, ``fidelity`` and ``seeds``), for a
        plan of another kind that runs the same way: a confirmation runs as its search did."""
        return {f.name: getattr(self, f.name) for f in fields(StudyPlan) if f.name not in ("name", "fidelity", "seeds")}

    @property
    def stacked(self) -> bool:
        return stacking.resolve(self.stack, self.device, self.method)

    @property
    def stacking_note(self) -> str:
        return stacking.why(self.stack, self.device, self.method)

    # what each kind answers ------------------------------------------------------------------------------------
    @property
    def total(self) -> int:
        """Finished trials the study holds when it is done."""
        raise NotImplementedError(f"{type(self).__name__} plans execution only; run a DesignPlan or SensitivityPlan")

    @property
    def batch(self) -> int:
        """Trials a worker claims at once."""
        return 1

    @property
    def replace_failed(self) -> bool:
        """Whether a failed trial is replaced by a fresh one (sampled studies), or stays failed (designed points)."""
        return False

    def definition(self) -> record.Definition:
        """What the study stores at creation; reports read it instead of the definition files."""
        raise NotImplementedError(f"{type(self).__name__} plans execution only; run a DesignPlan or SensitivityPlan")

    def fill(self, study: optuna.Study) -> int:
        """Put the study's work in its queue (idempotent); how many trials were added."""
        raise NotImplementedError(f"{type(self).__name__} plans execution only; run a DesignPlan or SensitivityPlan")

    def sampler(self, worker: int = 0) -> optuna.samplers.BaseSampler:
        """Worker ``worker``'s sampler: enqueued points are run as given, so a random sampler, seeded per worker."""
        return optuna.samplers.RandomSampler(seed=worker)

    def pruner(self) -> optuna.pruners.BasePruner:
        return optuna.pruners.NopPruner()

    def objective(self, device: str, log: Callable[..., Any]) -> Callable[[optuna.Trial], float]:
        raise NotImplementedError(f"{type(self).__name__} plans execution only; run a DesignPlan or SensitivityPlan")

    def _common(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fidelity": self.fidelity.as_dict(),
            "switches": self.method.switches().declarations(),
        }


@dataclass(frozen=True, kw_only=True)
class DesignPlan(StudyPlan):
    """A designed study: every point of ``design`` on ``cases`` × ``seeds``, enqueued once and run as given (an
    ablation, a paper table, a confirmation)."""

    kind: ClassVar[str] = "design"
    design: Design
    cases: tuple[str, ...]

    def points(self) -> list[DesignPoint]:
        return self.design.points(list(self.cases), self.seeds)

    @property
    def total(self) -> int:
        return len(self.points())

    @property
    def batch(self) -> int:
        """Design points a worker claims at once (1 unstacked; stacked, the worker's share in batches)."""
        return stacking.batch_size(self.total, self.workers) if self.stacked else 1

    def definition(self) -> record.Definition:
        return record.Definition(
            kind="design", design=self.design.to_dict(), cases=tuple(self.cases), seeds=self.seeds, **self._common()
        )

    def fill(self, study: optuna.Study) -> int:
        return queue.enqueue_points(study, self.points())

    def objective(self, device: str, log: Callable[..., Any]) -> Callable[[optuna.Trial], float]:
        return DesignObjective(
            self.method, self.fidelity, device=device, curves=self.curves, stack=self.stacked, log=log
        )


@dataclass(frozen=True, kw_only=True)
class ConfirmationPlan(DesignPlan):
    """A confirmation: a design study of a search's best configurations, the default and the baseline on fresh
    seeds, whose definition also stores ``link``, what it confirms (the search, its seeds and candidates:
    :func:`ablate.experiment.confirm.plan`). Reports find it by that link (``record.study_kind``)."""

    link: Mapping[str, Any]

    @property
    def source(self) -> str:
        """The name of the search this confirms."""
        return str(self.link["study"])

    def definition(self) -> record.Definition:
        design = super().definition()
        return replace(design, extra={**design.extra, record.CONFIRMS: dict(self.link)})


@dataclass(frozen=True, kw_only=True)
class SensitivityPlan(StudyPlan):
    """A sampled search over ``space`` on one case: ``trials`` configurations, each the mean of ``seeds`` seeds,
    proposed by ``sampler`` and pruned by ``pruner``; ``base`` holds switch values every run shares."""

    kind: ClassVar[str] = "sensitivity"
    case: str
    space: Space
    trials: int
    sampler_name: str = "tpe"
    pruner_name: str = "none"
    sampler_seed: int = 0
    base: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.trials

    @property
    def replace_failed(self) -> bool:
        return True

    def definition(self) -> record.Definition:
        return record.Definition(
            kind="sensitivity",
            case=self.case,
            seeds=self.seeds,
            space=self.space.to_dicts(),
            extra={"sampler": self.sampler_name, "pruner": self.pruner_name, "base": dict(self.base)},
            **self._common(),
        )

    def fill(self, study: optuna.Study) -> int:
        return queue.top_up_tickets(study, self.trials)

    def sampler(self, worker: int = 0) -> optuna.samplers.BaseSampler:
        seed = self.sampler_seed + worker  # distinct streams per worker, reproducible per worker index
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            if self.sampler_name == "random":
                return optuna.samplers.RandomSampler(seed=seed)
            if self.sampler_name == "tpe":
                return optuna.samplers.TPESampler(
                    seed=seed, multivariate=True, group=True, constant_liar=self.workers > 1, n_startup_trials=10
                )
            if self.sampler_name == "qmc":
                return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
            return optuna.samplers.GridSampler(self.space.grid(), seed=seed)

    def pruner(self) -> optuna.pruners.BasePruner:
        if self.pruner_name == "none":
            return optuna.pruners.NopPruner()
        if self.pruner_name == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=MEDIAN_WARMUP_STEPS)
        if self.pruner_name == "wilcoxon":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                return optuna.pruners.WilcoxonPruner(
                    p_threshold=WILCOXON_P_THRESHOLD, n_startup_steps=WILCOXON_STARTUP_STEPS
                )
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=int(self.fidelity.values.get("epochs", 1)))

    def objective(self, device: str, log: Callable[..., Any]) -> Callable[[optuna.Trial], float]:
        return SensitivityObjective(
            method=self.method,
            case=self.case,
            preset=self.fidelity,
            space=self.space,
            seeds=self.seeds,
            base=self.base,
            device=device,
            curves=self.curves,
            stack=self.stacked,
            log=log,
        )


def min_one_sided_p(n: int) -> float:
    """The smallest exact one-sided Wilcoxon signed-rank p with ``n`` paired seeds (every difference one sign)."""
    from scipy import stats

    return float(stats.wilcoxon(range(1, n + 1), alternative="greater", method="exact").pvalue)


def pruning_warning(pruner: str, seeds: int) -> str | None:
    """Why ``pruner`` can never prune a trial of ``seeds`` seeds (one line), or None when it can.

    With seeds as steps the objective consults the pruner after seeds 1..N-1 (after the last one, pruning
    saves nothing). WilcoxonPruner prunes only when its exact one-sided p is below the threshold, and with n
    seeds that p cannot go below 1/2^n: too few seeds and a "pruned" study is an unpruned one.
    """
    if seeds < 2:
        return None  # one seed: the pruner sees the target's epochs instead
    checked = seeds - 1  # seeds run at the last consultation
    if pruner == "wilcoxon":
        needed = max(2, WILCOXON_STARTUP_STEPS)
        while min_one_sided_p(needed) >= WILCOXON_P_THRESHOLD:
            needed += 1
        if checked >= needed:
            return None
        why = (
            f"the smallest exact one-sided p after {checked} seeds is {min_one_sided_p(checked):g}, "
            f"never below its threshold {WILCOXON_P_THRESHOLD:g}"
            if checked >= 2
            else "it is consulted only after the first seed, too few to compare"
        )
        return f"--pruner wilcoxon cannot prune with --seeds {seeds}: {why}; pruning needs --seeds {needed + 1} or more"
    if pruner == "median" and checked <= MEDIAN_WARMUP_STEPS:
        return (
            f"--pruner median cannot prune with --seeds {seeds}: it acts from seed {MEDIAN_WARMUP_STEPS + 1} on, "
            f"and after the last seed pruning saves nothing; pruning needs --seeds {MEDIAN_WARMUP_STEPS + 2} or more"
        )
    return None


@dataclass(frozen=True)
class Search:
    """A sampled study's sampler, pruner and trial count, settled together (each constrains the others), and what
    the user should be told about them."""

    sampler: str
    pruner: str
    trials: int
    notes: tuple[str, ...] = ()


def settle_search(
    sampler: str, pruner: str | None, *, seeds: int, trials: int, space: Space, base: Mapping[str, Any]
) -> Search:
    """Check a search's options against each other before anything is written; one-line :class:`AblateError`.

    ``pruner`` None is ``wilcoxon`` with several seeds (it compares seeds), else ``median``. A grid holds
    a fixed number of points, so more trials than that are lowered to it (said in ``notes``)."""
    if sampler not in SAMPLERS:
        raise AblateError(f"--sampler {sampler!r} is not one of {', '.join(SAMPLERS)}")
    pruner = pruner or ("wilcoxon" if seeds > 1 else "median")
    if pruner not in PRUNERS:
        raise AblateError(f"--pruner {pruner!r} is not one of {', '.join(PRUNERS)}")
    if pruner == "wilcoxon" and seeds < 2:
        raise AblateError("--pruner wilcoxon compares seeds: it needs --seeds >= 2")
    overlap = sorted(set(base) & {p.name for p in space.params})
    if overlap:
        raise AblateError(f"--set {', '.join(overlap)}: already a parameter of the search space")
    notes = [f"warning: {cannot}"] if (cannot := pruning_warning(pruner, seeds)) else []
    if sampler == "grid":
        size = math.prod(len(values) for values in space.grid().values())
        if trials > size:
            notes.append(f"grid has {size} points: --trials lowered from {trials} to {size}")
            trials = size
    return Search(sampler, pruner, trials, tuple(notes))
