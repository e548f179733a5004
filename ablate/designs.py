"""Designed experiments: which (case, variant, seed) points a study must run, each exactly once.

Designs are read from ``studies/table1.toml``, ``studies/table2.toml`` and ``studies/ablation.toml``.
A design is plain data — enqueued into an Optuna study by :mod:`ablate.queue` — so the same design can be
resumed, shared by many workers and read back by the report without re-running anything.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import AblateError
from ablate.presets import read_toml, studies_dir
from crossgen.config import CASES, TECHNIQUES, CGIConfig
from crossgen.errors import ConfigError

DESIGNS = ("ofat", "factorial")


@dataclass(frozen=True)
class Variant:
    """One row of a design: a label, the technique and the CGI switches that differ from the defaults."""

    label: str
    technique: str
    cgi: dict[str, Any] = field(default_factory=dict)

    def cgi_config(self, base: dict[str, Any] | None = None) -> CGIConfig:
        return CGIConfig(**{**(base or {}), **self.cgi})


@dataclass(frozen=True)
class DesignPoint:
    case: str
    variant: Variant
    seed: int

    @property
    def key(self) -> str:
        return f"{self.case}|{self.variant.label}|{self.seed}"

    def to_attrs(self) -> dict[str, Any]:
        """User attributes stored on the enqueued trial (what the objective runs, and the report groups by)."""
        return {
            "design_key": self.key,
            "variant": self.variant.label,
            "technique": self.variant.technique,
            "case": self.case,
            "seed": self.seed,
            "cgi_overrides": json.dumps(self.variant.cgi, sort_keys=True),
        }


@dataclass(frozen=True)
class Design:
    name: str
    title: str
    variants: tuple[Variant, ...]
    reference: str
    baseline: str
    base_cgi: dict[str, Any] = field(default_factory=dict)

    def points(self, cases: list[str], seeds: int) -> list[DesignPoint]:
        """Every (case, variant, seed), seed-major so a partial run already holds complete pairs."""
        return [DesignPoint(case, v, s) for case in cases for s in range(seeds) for v in self.variants]


def _validated(label: str, technique: str, cgi: dict[str, Any], where: str) -> Variant:
    if technique not in TECHNIQUES:
        raise AblateError(f"{where}: variant {label!r} technique {technique!r} is not one of {', '.join(TECHNIQUES)}")
    try:
        CGIConfig(**cgi)
    except (ConfigError, TypeError) as exc:
        raise AblateError(f"{where}: variant {label!r}: {exc}") from None
    return Variant(label, technique, dict(cgi))


def load_table_design(which: str, path: Path | None = None) -> Design:
    """Table 1 or Table 2 of the paper."""
    path = path or studies_dir() / f"{which}.toml"
    raw = read_toml(path)
    variants = raw.get("variants")
    if not isinstance(variants, list) or not variants:
        raise AblateError(f"{path}: needs [[variants]] entries")
    vs = tuple(
        _validated(str(v.get("label")), str(v.get("technique")), dict(v.get("cgi", {})), str(path)) for v in variants
    )
    baseline = str(raw.get("baseline", ""))
    if baseline not in {v.label for v in vs}:
        raise AblateError(f"{path}: baseline {baseline!r} is not one of the variants")
    return Design(which, str(raw.get("title", which)), vs, reference=baseline, baseline=baseline)


def _label(changes: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in changes.items())


def load_ablation_design(kind: str, path: Path | None = None) -> Design:
    """OFAT (flip one component at a time, walk M and K ladders) or the full factorial of binary switches."""
    if kind not in DESIGNS:
        raise AblateError(f"--design {kind!r} is not one of {', '.join(DESIGNS)}")
    path = path or studies_dir() / "ablation.toml"
    raw = read_toml(path)
    where = str(path)
    reference = str(raw.get("reference", "full"))
    baseline = str(raw.get("baseline", "no transfer"))
    base = dict(raw.get("full", {}))
    full = _validated(reference, "cgi", base, where)
    defaults = full.cgi_config()
    variants: list[Variant] = [full]
    if kind == "ofat":
        spec = raw.get("ofat", {})
        for name, value in dict(spec.get("flips", {})).items():
            variants.append(_validated(f"{name}={value}", "cgi", {**base, name: value}, where))
        for name, levels in dict(spec.get("ladders", {})).items():
            for level in levels:
                if getattr(defaults, name, None) == level:
                    continue  # that level is the full method itself
                variants.append(_validated(f"{name}={level}", "cgi", {**base, name: level}, where))
    else:
        factors = dict(raw.get("factorial", {}).get("factors", {}))
        if not factors:
            raise AblateError(f"{where}: [factorial] needs `factors`")
        variants = []
        for combo in itertools.product(*factors.values()):
            changes = dict(zip(factors, combo, strict=True))
            cfg = {**base, **changes}
            is_full = CGIConfig(**cfg) == defaults
            variants.append(_validated(reference if is_full else _label(changes), "cgi", cfg, where))
        if reference not in {v.label for v in variants}:
            variants.insert(0, full)
    variants.append(Variant(baseline, "bnn"))
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        raise AblateError(f"{where}: duplicate variant labels in the {kind} design")
    return Design(f"ablation-{kind}", f"CGI ablation ({kind})", tuple(variants), reference, baseline, base)


def expand_cases(case: str) -> list[str]:
    if case == "all":
        return list(CASES)
    if case not in CASES:
        raise AblateError(f"--case {case!r} is not one of {', '.join(CASES)}, all")
    return [case]
