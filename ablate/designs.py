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

from ablate import record
from ablate.errors import AblateError
from ablate.presets import definition_path, read_toml
from crossgen.config import CASES, REGISTRY, TECHNIQUES, Registry, RunConfig
from crossgen.errors import ConfigError

DESIGNS = ("ofat", "factorial")


@dataclass(frozen=True)
class Variant:
    """One row of a design: a label, the technique and the switches that differ from the defaults.

    ``aliases`` are the labels of other rows that resolve to the same configuration (``K=1`` is
    ``generator=gaussian``): they run once and are reported once, under every name.
    """

    label: str
    technique: str
    switches: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return " ≡ ".join((self.label, *self.aliases))

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "technique": self.technique, "switches": self.switches, "aliases": self.aliases}


@dataclass(frozen=True)
class DesignPoint:
    case: str
    variant: Variant
    seed: int

    @property
    def key(self) -> str:
        return f"{self.case}|{self.variant.label}|{self.seed}"

    def point(self) -> record.Point:
        """The record of what runs (see :mod:`ablate.record`)."""
        v = self.variant
        return record.Point(self.key, self.case, v.label, v.technique, self.seed, dict(v.switches))


@dataclass(frozen=True)
class Design:
    name: str
    title: str
    variants: tuple[Variant, ...]
    reference: str
    baseline: str

    def points(self, cases: list[str], seeds: int) -> list[DesignPoint]:
        """Every (case, variant, seed), seed-major so a partial run already holds complete pairs."""
        return [DesignPoint(case, v, s) for case in cases for s in range(seeds) for v in self.variants]

    def with_base(self, base: dict[str, Any], registry: Registry = REGISTRY) -> Design:
        """Every variant (the benchmark included) on top of ``base``: a regime shared by the whole design.

        A variant's own switches win over the base, so a flip of a based switch still flips it.
        """
        if not base:
            return self
        where = "--set"
        variants = [_validated(v.label, v.technique, {**base, **v.switches}, where, registry) for v in self.variants]
        return Design(self.name, self.title, merge_identical(variants, registry), self.reference, self.baseline)

    def to_dict(self) -> dict[str, Any]:
        """The design as stored in the study's definition (reports read this, not the TOML file)."""
        return {
            "name": self.name,
            "title": self.title,
            "reference": self.reference,
            "baseline": self.baseline,
            "variants": [v.to_dict() for v in self.variants],
        }


def _resolve(technique: str, switches: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """The canonical switch values a variant runs with (raises ConfigError on a bad value)."""
    config = RunConfig(case=CASES[0], technique=technique, **registry.configs(switches))
    return config.canonical().switch_values(registry)


def _validated(label: str, technique: str, switches: dict[str, Any], where: str, registry: Registry) -> Variant:
    if technique not in TECHNIQUES:
        raise AblateError(f"{where}: variant {label!r} technique {technique!r} is not one of {', '.join(TECHNIQUES)}")
    try:
        _resolve(technique, switches, registry)
    except (ConfigError, TypeError) as exc:
        raise AblateError(f"{where}: variant {label!r}: {exc}") from None
    return Variant(label, technique, dict(switches))


def merge_identical(variants: list[Variant], registry: Registry = REGISTRY) -> tuple[Variant, ...]:
    """Variants that resolve to the same configuration become one, carrying the other labels as aliases."""
    merged: dict[str, Variant] = {}
    for v in variants:
        key = json.dumps([v.technique, _resolve(v.technique, v.switches, registry)], sort_keys=True, default=str)
        if key in merged:
            first = merged[key]
            merged[key] = Variant(first.label, first.technique, first.switches, (*first.aliases, v.label, *v.aliases))
        else:
            merged[key] = v
    return tuple(merged.values())


def load_table_design(which: str, path: Path | None = None, registry: Registry = REGISTRY) -> Design:
    """Table 1 or Table 2 of the paper."""
    path = path or definition_path(f"{which}.toml")
    raw = read_toml(path)
    variants = raw.get("variants")
    if not isinstance(variants, list) or not variants:
        raise AblateError(f"{path}: needs [[variants]] entries")
    vs = tuple(
        _validated(str(v.get("label")), str(v.get("technique")), dict(v.get("switches", {})), str(path), registry)
        for v in variants
    )
    baseline = str(raw.get("baseline", ""))
    if baseline not in {v.label for v in vs}:
        raise AblateError(f"{path}: baseline {baseline!r} is not one of the variants")
    return Design(which, str(raw.get("title", which)), vs, reference=baseline, baseline=baseline)


def _label(changes: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in changes.items())


def load_ablation_design(kind: str, path: Path | None = None, registry: Registry = REGISTRY) -> Design:
    """OFAT (flip one switch at a time, walk ladders) or the full factorial of the listed factors.

    Any registered switch may appear in ``[full]``, ``flips``, ``ladders`` and ``factors``; values are
    validated against its declaration. Rows that resolve to the same configuration are merged.
    """
    if kind not in DESIGNS:
        raise AblateError(f"--design {kind!r} is not one of {', '.join(DESIGNS)}")
    path = path or definition_path("ablation.toml")
    raw = read_toml(path)
    where = str(path)
    reference = str(raw.get("reference", "full"))
    baseline = str(raw.get("baseline", "no transfer"))
    base = dict(raw.get("full", {}))
    full = _validated(reference, "cgi", base, where, registry)
    defaults = _resolve("cgi", base, registry)
    variants: list[Variant] = [full]
    if kind == "ofat":
        spec = raw.get("ofat", {})
        for name, value in dict(spec.get("flips", {})).items():
            variants.append(_validated(f"{name}={value}", "cgi", {**base, name: value}, where, registry))
        for name, levels in dict(spec.get("ladders", {})).items():
            for level in levels:
                if defaults.get(name) == level:
                    continue  # that level is the full method itself
                variants.append(_validated(f"{name}={level}", "cgi", {**base, name: level}, where, registry))
    else:
        factors = dict(raw.get("factorial", {}).get("factors", {}))
        if not factors:
            raise AblateError(f"{where}: [factorial] needs `factors`")
        variants = []
        for combo in itertools.product(*factors.values()):
            changes = dict(zip(factors, combo, strict=True))
            cfg = {**base, **changes}
            variant = _validated(_label(changes), "cgi", cfg, where, registry)
            is_full = _resolve("cgi", cfg, registry) == defaults
            variants.append(Variant(reference, "cgi", cfg) if is_full else variant)
        if reference not in {v.label for v in variants}:
            variants.insert(0, full)
    variants.append(Variant(baseline, "bnn"))
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        raise AblateError(f"{where}: duplicate variant labels in the {kind} design")
    merged = merge_identical(variants, registry)
    return Design(f"ablation-{kind}", f"CGI ablation ({kind})", merged, reference, baseline)


def parse_settings(settings: list[str] | None, registry: Registry = REGISTRY) -> dict[str, Any]:
    """``--set NAME=VALUE`` options into validated switch values (one-line errors naming the option)."""
    out: dict[str, Any] = {}
    for item in settings or []:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep:
            raise AblateError(f"--set {item!r}: write NAME=VALUE (e.g. --set init_log_sigma=-2.3)")
        if name not in registry.names():
            raise AblateError(f"--set {item!r}: {name!r} is not a switch (known: {', '.join(registry.names())})")
        try:
            out[name] = registry.get(name).parse(text)
        except ConfigError as exc:
            raise AblateError(f"--set {item!r}: {exc}") from None
    return out


def settings_label(base: dict[str, Any]) -> str:
    """The suffix a study name gets for its ``--set`` values (so that different regimes never share a study)."""
    return "".join(f"+{k}={v}" for k, v in sorted(base.items()))


def expand_cases(case: str) -> list[str]:
    if case == "all":
        return list(CASES)
    if case not in CASES:
        raise AblateError(f"--case {case!r} is not one of {', '.join(CASES)}, all")
    return [case]
