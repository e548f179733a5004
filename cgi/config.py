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

CGI_CHOICES: dict[str, tuple[str, ...]] = {
    "init": ("cross", "random"),
    "generator": ("gmm", "gaussian"),
    "scope": ("separate", "shared"),
    "bootstrap": ("uniform", "bayesian"),
    "transfer": ("mu_sigma", "mu"),
    "covariance_type": ("full", "diag", "tied", "spherical"),
}
"""The categorical CGI switches and their allowed values (the first is the default)."""


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value!r} must be an integer >= {minimum}")


def _positive_float(name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name}={value!r} must be a finite number {bound}")


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

    def __post_init__(self) -> None:
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

    prior_sigma: float = 1.0
    init_log_sigma: float = -5.0
    init_log_sigma_jitter: float = 0.1

    def __post_init__(self) -> None:
        _positive_float("prior_sigma", self.prior_sigma)
        ok = isinstance(self.init_log_sigma, (int, float)) and not isinstance(self.init_log_sigma, bool)
        if not ok or not math.isfinite(self.init_log_sigma):
            raise ConfigError(f"init_log_sigma={self.init_log_sigma!r} must be finite")
        _positive_float("init_log_sigma_jitter", self.init_log_sigma_jitter, allow_zero=True)


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation across label spaces: loss = CE + lam * T^2 * KL(teacher_T || aux_T)."""

    lam: float = 1.0
    temperature: float = 4.0

    def __post_init__(self) -> None:
        _positive_float("lam", self.lam, allow_zero=True)
        _positive_float("temperature", self.temperature)


@dataclass(frozen=True)
class CGIConfig:
    """Every switch of cross generative initialisation (see docs/method.md for the reading of each)."""

    init: str = "cross"
    generator: str = "gmm"
    scope: str = "separate"
    M: int = 2000
    K: int = 5
    bootstrap: str = "uniform"
    transfer: str = "mu_sigma"
    covariance_type: str = "full"
    target_warmup_epochs: int = 0
    max_fit_points: int = 5000
    reg_covar: float = 1e-6

    def __post_init__(self) -> None:
        for name, allowed in CGI_CHOICES.items():
            _choice(name, getattr(self, name), allowed)
        _positive_int("M", self.M)
        _positive_int("K", self.K)
        _positive_int("target_warmup_epochs", self.target_warmup_epochs, minimum=0)
        _positive_int("max_fit_points", self.max_fit_points)
        _positive_float("reg_covar", self.reg_covar)
        if self.generator == "gmm" and self.M < self.K:
            raise ConfigError(f"M={self.M} is smaller than K={self.K}: a K-component GMM needs M >= K points")


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
    device: str = "cpu"
    data_dir: str | None = None
    record_generators: bool = True

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

    def with_(self, **changes: Any) -> RunConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
