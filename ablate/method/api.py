"""The method API: what a method declares and supplies so that every ``ablate`` command can study it.

A method is a subclass of :class:`Method` (scikit-learn's model: parameters declared once, one contract checked
over every method, :func:`ablate.method.check_method`). It declares

* its switches (:func:`~ablate.method.switch` fields on a frozen dataclass, read by :func:`switches_of`),
* its cases (what a result is conditional on: a dataset, a transfer pair) and its variants (what a design
  compares: techniques, arms), with the ``reference`` variant (the full method, which sampled studies tune)
  and the ``baseline`` (what it is compared with: for CGI, the BNN without transfer),
* its definitions folder: ``fidelity.toml`` (presets), ``space.toml`` (the search space), ``ablation.toml``
  (designed ablations) and any ``<table>.toml`` that ``ablate reproduce`` runs,
* and supplies :meth:`Method.run`, which receives every run of a trial (or batch of design points) at once:
  that is where a method stacks replicas (CGI does, on a GPU) or simply loops.

Metrics are accuracies: a fraction ``correct / n`` on a validation split (what studies optimise) and a test
split (what reports report), with ``n`` stored so that the paired tests stay exact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, ClassVar

from ablate.errors import AblateError
from ablate.method.switches import Switches

EpochHook = Callable[[int, float], None]
"""Called after each training epoch of the run being tuned with (epoch, validation accuracy); may raise
``optuna.TrialPruned`` (the method lets it through)."""


@dataclass(frozen=True)
class Preset:
    """A fidelity preset: how much data and training a run gets, as the method reads it.

    ``values`` is the method's normalised table (stored in every study's definition, so it must be plain JSON);
    ``switches`` are switch values every run at this preset starts from (explicit values override them).
    """

    name: str
    values: Mapping[str, Any] = field(default_factory=dict)

    @property
    def switches(self) -> dict[str, Any]:
        return dict(self.values.get("switches") or {})

    def as_dict(self) -> dict[str, Any]:
        """What a study stores as its ``fidelity`` (name first, then the method's values)."""
        return {"name": self.name, **{k: v for k, v in self.values.items() if k != "name"}}


@dataclass(frozen=True)
class Request:
    """One run to make: a case, a variant, a seed, every switch's value, a preset, a device."""

    case: str
    variant: str
    seed: int
    switches: Mapping[str, Any]
    preset: Preset
    device: str = "cpu"
    curve: bool = False
    """Record a learning curve (validation and test accuracy per epoch)."""
    details: bool = True
    """Record the method's diagnostics and artefacts (a sampled study's many trials turn them off)."""
    on_epoch: EpochHook | None = None


@dataclass(frozen=True)
class Outcome:
    """What one run measured. Accuracies are fractions ``correct / n``; reports re-derive them exactly."""

    seed: int
    val_accuracy: float
    test_accuracy: float
    n_val: int
    n_test: int
    seconds: float
    stages: Mapping[str, float] = field(default_factory=dict)
    """Seconds per stage of the run (source training, fitting, target training…), summed in reports."""
    curve: Mapping[str, list[float]] | None = None
    """``{"val": [...], "test": [...]}`` per epoch, when the request asked for it."""
    diagnostics: Mapping[str, Any] = field(default_factory=dict)
    """Small JSON values kept in the trial record (``diagnostics`` user attribute)."""
    generators: Mapping[str, Any] | None = None
    """CGI's fitted generative models, summarised (kept in design trials' records); other methods leave it."""


class Method:
    """Base class of a method ``ablate`` can study; subclass it and fill in the declarations and :meth:`run`.

    Instances are cheap and made once per process (a worker); :meth:`run` may cache data on ``self``.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    title: ClassVar[str] = ""
    """How reports name the method ("CGI ablation (ofat)"); default: its name."""
    description: ClassVar[str] = ""
    baseline_label: ClassVar[str] = ""
    """How reports name the baseline ("the no-transfer benchmark"); default: "the baseline (<baseline>)"."""
    cases: ClassVar[tuple[str, ...]] = ()
    variants: ClassVar[tuple[str, ...]] = ()
    reference: ClassVar[str] = ""
    baseline: ClassVar[str] = ""
    default_preset: ClassVar[str] = ""
    """The ``--fidelity`` a command takes when none is given (default: the first in ``fidelity.toml``)."""
    tables: ClassVar[tuple[str, ...]] = ()
    """Designs ``ablate reproduce`` runs, each from ``<name>.toml`` in the definitions folder."""
    case_help: ClassVar[str] = "Case."
    variant_help: ClassVar[str] = "Variant."
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    """Devices the method runs on: ``cpu`` and, where it supports them, ``cuda`` (``cuda:N`` included)."""

    # ---------------------------------------------------------------------------------------- declarations
    def switches(self) -> Switches:
        """Every switch the method declares (override; most return ``Switches(switches_of(MyConfig))``)."""
        raise NotImplementedError

    def definitions(self) -> Traversable | Path:
        """The folder holding ``fidelity.toml``, ``space.toml``, ``ablation.toml`` and the tables' files."""
        raise NotImplementedError

    def preset(self, name: str, values: Mapping[str, Any]) -> Preset:
        """Validate one ``[name]`` table of ``fidelity.toml`` (raise :class:`~ablate.errors.AblateError`)."""
        unknown = set(values.get("switches") or {}) - set(self.switches().names())
        if unknown:
            raise AblateError(f"switches has unknown switch(es) {', '.join(sorted(unknown))}")
        for key, value in (values.get("switches") or {}).items():
            self.switches().get(key).check(value)
        return Preset(name, dict(values))

    def check(self, variant: str, switches: Mapping[str, Any]) -> None:
        """Refuse a combination the method cannot run (each value was already checked against its switch)."""

    def canonical(self, variant: str, switches: Mapping[str, Any]) -> dict[str, Any]:
        """The switch values this variant actually runs with: two settings with the same canonical form are the
        same model, so a design runs them once and reports them under both names. Default: all of them."""
        return dict(switches)

    def stacks(self, device: str) -> bool:
        """Whether ``--stack auto`` hands :meth:`run` many requests to train as one (where it was measured to
        pay). Default: never; :meth:`run` still receives them together."""
        return False

    def provenance(self, preset: Preset, data_dir: str | None = None) -> dict[str, Any]:
        """What a study records about the method's inputs (a data checksum, library versions)."""
        return {}

    def check_device(self, switches: Mapping[str, Any], device: str) -> None:
        """Refuse, once and before anything is written, switch values this device cannot run."""

    def commands(self) -> dict[str, Any]:
        """CLI commands the method adds or replaces: name -> a typer command function or a ``typer.Typer``
        group (CGI adds ``data`` and ``bench`` and its own ``run``). Default: none."""
        return {}

    # ----------------------------------------------------------------------------------------------- runs
    def run(
        self, requests: Sequence[Request], *, stack: bool = False, log: Callable[..., Any] = print
    ) -> list[Outcome | Exception]:
        """Run every request; return one :class:`Outcome` or the exception that failed it, in order.

        ``stack``: the requests may train as one stacked model. A failure of one run must not fail the others;
        ``KeyboardInterrupt`` and ``optuna.TrialPruned`` raised by an ``on_epoch`` hook propagate.
        """
        out: list[Outcome | Exception] = []
        for request in requests:
            try:
                out.append(self.run_one(request, log=log))
            except Exception as exc:  # noqa: BLE001 - one run's failure is that run's result
                if type(exc).__name__ == "TrialPruned":
                    raise
                out.append(exc)
        return out

    def run_one(self, request: Request, *, log: Callable[..., Any] = print) -> Outcome:
        """One run (override this, or :meth:`run` to see every request at once)."""
        raise NotImplementedError

    # -------------------------------------------------------------------------------------------- helpers
    def resolve(self, variant: str, switches: Mapping[str, Any]) -> dict[str, Any]:
        """The canonical value of every switch a variant runs with, each checked (one-line AblateError)."""
        if variant not in self.variants:
            raise AblateError(f"{variant!r} is not one of {', '.join(self.variants)}")
        values = self.switches().complete(dict(switches))
        self.check(variant, values)
        return self.canonical(variant, values)

    @property
    def label(self) -> str:
        return self.title or self.name

    def identity(self) -> dict[str, str]:
        """Which method made a study and how reports name it and its baseline (stored in its provenance, so a
        report needs no code of the method)."""
        baseline = self.baseline_label or f"the baseline ({self.baseline})"
        return {"name": self.name, "version": self.version, "title": self.label, "baseline": baseline}
