"""Frozen configuration dataclasses: the one place that says what a valid run is.

Every value is validated in ``__post_init__`` so that a bad value fails at the boundary with a one-line
:class:`~crossgen.errors.ConfigError` naming the field, long before any training starts.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from crossgen.errors import ConfigError

CASES: tuple[str, ...] = ("T1M1_T2M2", "T2M1_T1M2", "T1M2_T2M1", "T2M2_T1M1")
"""The paper's four transfer cases, named ``source_target``."""

DETERMINISTIC_TECHNIQUES: tuple[str, ...] = ("none", "feature", "distill")
"""Experiment 1 (deterministic MLPs): no transfer, mid-level feature extraction, knowledge distillation."""

BAYESIAN_TECHNIQUES: tuple[str, ...] = ("bnn", "cgi")
"""Experiment 2 (Pyro BNNs): no-transfer BNN benchmark and cross generative initialisation."""

TECHNIQUES: tuple[str, ...] = DETERMINISTIC_TECHNIQUES + BAYESIAN_TECHNIQUES

SWITCH = "switch"
"""The dataclass-field metadata key under which a switch declaration lives."""


@dataclass(frozen=True)
class Switch:
    """One declared switch: its type, default, allowed values or range, and help.

    Everything else derives from this declaration: validation (here), the ``ablate run`` options, the search
    space's names and bounds check, the ablation design parser, the trial-record columns and report labels.
    ``special`` names non-numeric values a numeric switch also accepts (``M = "all"``); ``nullable`` lets
    ``None`` mean "take it from the fidelity preset" (regime switches).
    """

    name: str
    group: str
    kind: str
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    special: tuple[str, ...] = ()
    nullable: bool = False
    option: str = ""

    @property
    def flag(self) -> str:
        """The CLI option (``--M``, ``--lambda``, ``--prior-sigma``)."""
        return self.option or "--" + self.name.replace("_", "-")

    def describe(self) -> str:
        """What values are allowed, in words (used in --help and in error messages)."""
        if self.choices:
            return " | ".join(str(c) for c in self.choices)
        kind = {"int": "integer", "float": "number", "bool": "true | false", "str": "text"}[self.kind]
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"<= {self.high:g}")
        extra = [*self.special, *(["none"] if self.nullable else [])]
        text = f"{kind} {' and '.join(bounds)}".strip()
        return " | ".join([text, *extra]) if extra else text

    def check(self, value: Any) -> None:
        """Raise a one-line ConfigError naming the switch when ``value`` is not allowed."""
        if value is None and self.nullable:
            return
        if isinstance(value, str) and value in self.special:
            return
        if self.choices:
            if value not in self.choices or isinstance(value, bool) != isinstance(self.choices[0], bool):
                raise ConfigError(f"{self.name}={value!r} is not one of {', '.join(str(c) for c in self.choices)}")
            return
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"{self.name}={value!r} must be true or false")
            return
        if self.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.kind == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else:
            ok = isinstance(value, str)
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value <= self.high
        if not ok:
            raise ConfigError(f"{self.name}={value!r} must be {self._range_text()}")

    def _range_text(self) -> str:
        noun = {"int": "an integer", "float": "a finite number", "str": "text", "bool": "true or false"}[self.kind]
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"<= {self.high:g}")
        text = " ".join([noun, " and ".join(bounds)]).strip()
        extra = [*self.special, *(["none"] if self.nullable else [])]
        return f"{text} or {', '.join(extra)}" if extra else text

    def parse(self, text: str) -> Any:
        """A value written as text (CLI, TOML strings) converted to the switch's type, then checked."""
        raw = text.strip()
        if raw in self.special:
            value: Any = raw
        elif self.nullable and raw.lower() == "none":
            value = None
        elif self.kind == "bool" or (self.choices and isinstance(self.choices[0], bool)):
            lowered = raw.lower()
            if lowered not in ("true", "false"):
                raise ConfigError(f"{self.name}={raw!r} must be true or false")
            value = lowered == "true"
        elif self.kind == "int":
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{self.name}={raw!r} must be {self._range_text()}") from None
        elif self.kind == "float":
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{self.name}={raw!r} must be {self._range_text()}") from None
        else:
            value = raw
        self.check(value)
        return value


def switch(
    default: Any,
    help: str,
    *,
    choices: tuple[Any, ...] = (),
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    special: tuple[str, ...] = (),
    nullable: bool = False,
    option: str = "",
    kind: str | None = None,
) -> Any:
    """Declare a config field as a switch (the one declaration; see :class:`Switch`)."""
    if kind is None:  # from the values it takes: its choices, else its default (None needs an explicit kind)
        sample = choices[0] if choices else default
        kind = type(sample).__name__ if sample is not None else "float"
    spec = {
        "kind": kind,
        "help": help,
        "choices": tuple(choices),
        "low": low,
        "high": high,
        "low_open": low_open,
        "special": tuple(special),
        "nullable": nullable,
        "option": option,
    }
    return field(default=default, metadata={SWITCH: spec})


def switches_of(cls: type, group: str) -> tuple[Switch, ...]:
    """The switches a config dataclass declares, in declaration order."""
    return tuple(
        Switch(name=f.name, group=group, default=f.default, **f.metadata[SWITCH])
        for f in fields(cls)
        if SWITCH in f.metadata
    )


def validate_switches(config: Any) -> None:
    """Check every declared switch of a config instance (called from each ``__post_init__``)."""
    for s in switches_of(type(config), ""):
        s.check(getattr(config, s.name))


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value!r} must be an integer >= {minimum}")


def _positive_float(name: str, value: Any) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a finite number > 0")


@dataclass(frozen=True)
class Case:
    """One transfer case: the source task/model pair and the target task/model pair."""

    name: str
    source_task: str
    source_model: str
    target_task: str
    target_model: str

    @classmethod
    def parse(cls, name: str) -> Case:
        if name not in CASES:
            raise ConfigError(f"case={name!r} is not one of {', '.join(CASES)}")
        src, tgt = name.split("_")
        return cls(name, src[:2], src[2:], tgt[:2], tgt[2:])


@dataclass(frozen=True)
class Fidelity:
    """How much data, width and training a run gets; presets live in ``studies/fidelity.toml``.

    ``epochs`` is the target (and benchmark) budget; ``source_epochs`` trains the source model. Both
    transfer and benchmark targets get the same ``epochs``, so a gain is never bought with extra training.
    """

    name: str = "custom"
    data: str = "digits"
    max_train: int | None = None
    max_eval: int | None = None
    width: int = 32
    epochs: int = 3
    source_epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    bnn_lr: float = 1e-2
    eval_samples: int = 8
    switches: dict[str, Any] = field(default_factory=dict)
    """Switch values every run at this fidelity starts from (a calibrated regime such as ``paper-regime``);
    explicit values (``--set``, a design, a space) override them. Validated against the registry in
    :func:`Registry.configs` when a run is built."""

    def __post_init__(self) -> None:
        if not isinstance(self.switches, dict):
            raise ConfigError(f"fidelity.switches={self.switches!r} must be a table of switch values")
        for name in ("width", "epochs", "source_epochs", "batch_size", "eval_samples"):
            _positive_int(f"fidelity.{name}", getattr(self, name))
        for name in ("max_train", "max_eval"):
            value = getattr(self, name)
            if value is not None:
                _positive_int(f"fidelity.{name}", value)
        _positive_float("fidelity.lr", self.lr)
        _positive_float("fidelity.bnn_lr", self.bnn_lr)
        if not isinstance(self.data, str) or not self.data:
            raise ConfigError(f"fidelity.data={self.data!r} must be mnist, digits or idx:DIR")

    @classmethod
    def from_dict(cls, name: str, values: dict[str, Any]) -> Fidelity:
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"fidelity {name!r} has unknown key(s) {', '.join(unknown)}")
        return cls(name=name, **values)


@dataclass(frozen=True)
class BNNConfig:
    """Prior and variational initialisation of the Pyro BNNs (Experiment 2)."""

    prior_sigma: float = switch(1.0, "BNN prior N(0, σ²): σ.", low=0.0, low_open=True)
    init_log_sigma: float = switch(-5.0, "Initial log σ of the variational posterior.")
    init_log_sigma_jitter: float = switch(0.1, "Jitter (SD) of the initial log σ.", low=0.0)
    depth: str = switch(
        "weight_layers",
        "Reading of 'five-layer / three-layer' BNN: weight layers (4 / 2 hidden) | layers of units "
        "(3 / 1 hidden) | hidden layers (5 / 3 hidden).",
        choices=("weight_layers", "unit_layers", "hidden_layers"),
    )

    def __post_init__(self) -> None:
        validate_switches(self)


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation across label spaces: loss = CE + lam * T^2 * KL(teacher_T || aux_T)."""

    lam: float = switch(1.0, "Distillation weight λ.", low=0.0, option="--lambda")
    temperature: float = switch(4.0, "Distillation temperature T.", low=0.0, low_open=True)

    def __post_init__(self) -> None:
        validate_switches(self)


@dataclass(frozen=True)
class CGIConfig:
    """Every switch of cross generative initialisation (see docs/method.md for the reading of each)."""

    init: str = switch(
        "cross", "CGI ①: cross (bootstrap the target into the source) | random.", choices=("cross", "random")
    )
    generator: str = switch("gmm", "CGI ②: the generative model.", choices=("gmm", "gaussian"))
    scope: str = switch(
        "separate", "CGI ②: one generator per layer group, or one shared.", choices=("separate", "shared")
    )
    M: int | str = switch(
        2000,
        "Bootstrapped target weight points per group (all: as many as the target group has weights).",
        low=1,
        special=("all",),
        option="--M",
        kind="int",
    )
    K: int = switch(5, "GMM components.", low=1, option="--K")
    bootstrap: str = switch("uniform", "Non-parametric bootstrap weights.", choices=("uniform", "bayesian"))
    transfer: str = switch("mu_sigma", "What the generated points set in the target.", choices=("mu_sigma", "mu"))
    covariance_type: str = switch(
        "full", "GMM covariance parametrisation.", choices=("full", "diag", "tied", "spherical")
    )
    target_warmup_epochs: int = switch(0, "Warm the target up before bootstrapping.", low=0)
    max_fit_points: int | str = switch(
        5000, "Cap on source weight points fed to the generator (none: all of them).", low=1, special=("none",)
    )
    reg_covar: float = switch(1e-6, "GMM covariance regularisation.", low=0.0, low_open=True)
    points: str = switch(
        "mu_logsigma",
        "What a posterior weight point is: (μ/s, log σ) | μ/s only (target keeps its σ) | a sample w ~ q, /s.",
        choices=("mu_logsigma", "mu", "sample"),
    )
    input_layer: str = switch(
        "middle",
        "The 784-wide input layer: part of the middle group | its own third GMM | keeps the target's init.",
        choices=("middle", "own", "keep"),
    )
    clip_log_sigma: bool = switch(False, "Clip generated log σ at the prior's log σ.")
    source_labels: str = switch(
        "true",
        "Source training labels: true | shuffled (a control: a source that learned nothing transferable).",
        choices=("true", "shuffled"),
    )

    def __post_init__(self) -> None:
        validate_switches(self)
        if self.generator == "gmm" and isinstance(self.M, int) and self.M < self.K:
            raise ConfigError(f"M={self.M} is smaller than K={self.K}: a K-component GMM needs M >= K points")

    def canonical(self) -> CGIConfig:
        """The same model under one name.

        A one-component GMM *is* the single Gaussian (K is then moot); points without log σ transfer μ only.
        """
        out = self
        if out.generator == "gaussian" or out.K == 1:
            out = replace(out, generator="gaussian", K=1)
        if out.points != "mu_logsigma":
            out = replace(out, transfer="mu", clip_log_sigma=False)
        if out.transfer == "mu":
            out = replace(out, clip_log_sigma=False)
        return out


@dataclass(frozen=True)
class RegimeConfig:
    """How the BNNs are trained, beyond the fidelity preset (numerics, optimiser)."""

    precision: str = switch(
        "fp32",
        "Matmul precision: fp32 (bit-for-bit reproducible) | bf16 (bf16 matmuls, fp32 master weights).",
        choices=("fp32", "bf16"),
    )
    bnn_lr: float | None = switch(
        None, "BNN learning rate (none: the fidelity preset's bnn_lr).", low=0.0, low_open=True, nullable=True
    )
    optimizer: str = switch("adam", "BNN optimiser on -ELBO/N.", choices=("adam", "sgd"))
    kl_weight: float = switch(1.0, "Weight of the KL term in the ELBO (1: the ELBO itself).", low=0.0)
    source_epochs: int | None = switch(
        None, "Source BNN epochs (none: the fidelity preset's source_epochs).", low=1, nullable=True, kind="int"
    )
    target_epochs: int | None = switch(
        None,
        "Target (and benchmark) BNN epochs (none: the fidelity preset's epochs).",
        low=1,
        nullable=True,
        kind="int",
    )

    def __post_init__(self) -> None:
        validate_switches(self)


@dataclass(frozen=True)
class RunConfig:
    """One run: a case, a technique, a seed, and everything that shapes it."""

    case: str
    technique: str
    seed: int = 0
    fidelity: Fidelity = field(default_factory=Fidelity)
    cgi: CGIConfig = field(default_factory=CGIConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    bnn: BNNConfig = field(default_factory=BNNConfig)
    regime: RegimeConfig = field(default_factory=RegimeConfig)
    device: str = "cpu"
    data_dir: str | None = None
    record_generators: bool = True
    record_curve: bool = False

    def __post_init__(self) -> None:
        Case.parse(self.case)
        _choice("technique", self.technique, TECHNIQUES)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed={self.seed!r} must be a non-negative integer")
        if not isinstance(self.device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"device={self.device!r} must be cpu or cuda[:N]")

    @property
    def case_spec(self) -> Case:
        return Case.parse(self.case)

    @property
    def bayesian(self) -> bool:
        return self.technique in BAYESIAN_TECHNIQUES

    @property
    def target_epochs(self) -> int:
        """The target budget: the regime's override, else the fidelity preset's."""
        return self.regime.target_epochs or self.fidelity.epochs

    @property
    def source_epochs(self) -> int:
        return self.regime.source_epochs or self.fidelity.source_epochs

    @property
    def bnn_lr(self) -> float:
        return self.regime.bnn_lr or self.fidelity.bnn_lr

    def with_(self, **changes: Any) -> RunConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def switch_values(self, registry: Registry | None = None) -> dict[str, Any]:
        """Every switch's value, flat by name (what a trial record stores)."""
        return {s.name: getattr(getattr(self, s.group), s.name) for s in (registry or REGISTRY).switches}

    def canonical(self) -> RunConfig:
        """Switches the technique never reads reset to defaults, and equivalent CGI settings merged.

        Two configurations with the same canonical form run bit-identically, so a design runs them once.
        """
        cgi = self.cgi.canonical() if self.technique == "cgi" else type(self.cgi)()
        distill = self.distill if self.technique == "distill" else type(self.distill)()
        bnn = self.bnn if self.bayesian else type(self.bnn)()
        return replace(self, cgi=cgi, distill=distill, bnn=bnn)


@dataclass(frozen=True)
class Registry:
    """All switches, by the ``RunConfig`` attribute (group) whose dataclass declares them.

    A copy with an extra group or a subclassed config class is a different registry: every consumer takes one
    (defaulting to :data:`REGISTRY`), which is how a test adds a throwaway switch without editing anything.
    """

    groups: tuple[tuple[str, type], ...]

    @property
    def switches(self) -> tuple[Switch, ...]:
        return tuple(s for group, cls in self.groups for s in switches_of(cls, group))

    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.switches)

    def get(self, name: str) -> Switch:
        for s in self.switches:
            if s.name == name:
                return s
        raise ConfigError(f"{name!r} is not a switch (known: {', '.join(self.names())})")

    def split(self, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Flat ``{switch: value}`` into ``{group: {switch: value}}``; unknown names are refused."""
        out: dict[str, dict[str, Any]] = {group: {} for group, _ in self.groups}
        for name, value in values.items():
            out[self.get(name).group][name] = value
        return out

    def configs(self, values: dict[str, Any], fidelity: Fidelity | None = None) -> dict[str, Any]:
        """The validated config objects for a flat set of overrides (defaults for the rest).

        ``fidelity``: its preset switch values come first, ``values`` override them.
        """
        split = self.split({**(fidelity.switches if fidelity else {}), **values})
        try:
            return {group: cls(**split[group]) for group, cls in self.groups}
        except TypeError as exc:  # a subclass registry may pass fields the base class lacks
            raise ConfigError(str(exc)) from None


REGISTRY = Registry((("cgi", CGIConfig), ("bnn", BNNConfig), ("distill", DistillConfig), ("regime", RegimeConfig)))
"""The project's switches. ``RunConfig(**REGISTRY.configs(values), case=..., technique=...)`` builds a run."""
