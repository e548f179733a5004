"""Designed experiments: which (case, variant, seed) points a study must run, each exactly once.

Designs are read from the method's definitions: ``ablation.toml`` and its tables (CGI: ``table1.toml``,
``table2.toml``).
A design is plain data — enqueued into an Optuna study by :mod:`ablate.execution.queue` — so the same design can be
resumed, shared by many workers and read back by the report without re-running anything.
"""

from __future__ import annotations

import itertools
import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate import record
from ablate.errors import AblateError
from ablate.experiment.presets import definition_path, read_toml
from ablate.method import Method, load_method

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
        return record.variant_titles({"variants": [self.to_dict()]})[self.label]

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

    def with_base(self, base: dict[str, Any], method: Method | None = None) -> Design:
        """Every variant (the benchmark included) on top of ``base``: a regime shared by the whole design.

        A variant's own switches win over the base, so a flip of a based switch still flips it.
        """
        if not base:
            return self
        method = method or load_method()
        where = "--set"
        variants = [_validated(v.label, v.technique, {**base, **v.switches}, where, method) for v in self.variants]
        return Design(self.name, self.title, merge_identical(variants, method), self.reference, self.baseline)

    def to_dict(self) -> dict[str, Any]:
        """The design as stored in the study's definition (reports read this, not the TOML file)."""
        return {
            "name": self.name,
            "title": self.title,
            "reference": self.reference,
            "baseline": self.baseline,
            "variants": [v.to_dict() for v in self.variants],
        }


def _validated(label: str, technique: str, switches: dict[str, Any], where: str, method: Method) -> Variant:
    if technique not in method.variants:
        raise AblateError(
            f"{where}: variant {label!r} technique {technique!r} is not one of {', '.join(method.variants)}"
        )
    try:
        method.resolve(technique, switches)
    except AblateError as exc:
        raise AblateError(f"{where}: variant {label!r}: {exc}") from None
    return Variant(label, technique, dict(switches))


def merge_identical(variants: list[Variant], method: Method | None = None) -> tuple[Variant, ...]:
    """Variants that resolve to the same configuration become one, carrying the other labels as aliases."""
    method = method or load_method()
    merged: dict[str, Variant] = {}
    for v in variants:
        key = json.dumps([v.technique, method.resolve(v.technique, v.switches)], sort_keys=True, default=str)
        if key in merged:
            first = merged[key]
            merged[key] = Variant(first.label, first.technique, first.switches, (*first.aliases, v.label, *v.aliases))
        else:
            merged[key] = v
    return tuple(merged.values())


def load_table_design(which: str, path: Path | None = None, method: Method | None = None) -> Design:
    """A table design the method declares (CGI: Table 1 or Table 2 of the paper), from ``<which>.toml``."""
    method = method or load_method()
    path = path or definition_path(f"{which}.toml", method)
    raw = read_toml(path)
    where = str(path)
    _known_keys(where, "the file", raw, _TABLE_KEYS)
    variants = raw.get("variants")
    if not isinstance(variants, list) or not variants:
        raise AblateError(f"{path}: needs [[variants]] entries")
    vs = []
    for i, v in enumerate(variants, 1):
        entry = _table(where, f"[[variants]] entry {i}", v)
        _known_keys(where, f"[[variants]] entry {i}", entry, _VARIANT_KEYS)
        label = _text(where, f"[[variants]] entry {i}: label", entry.get("label"))
        technique = _text(where, f"variant {label!r}: technique", entry.get("technique"))
        switches = _table(where, f"variant {label!r}: switches", entry.get("switches", {}))
        vs.append(_validated(label, technique, dict(switches), where, method))
    _unique_labels(where, "table", [v.label for v in vs])
    baseline = _text(where, "baseline", raw.get("baseline"))
    if baseline not in {v.label for v in vs}:
        raise AblateError(f"{path}: baseline {baseline!r} is not one of the variants")
    return Design(which, str(raw.get("title", which)), tuple(vs), reference=baseline, baseline=baseline)


# What a design file may hold: anything else is a typo that would silently drop part of the design.
_TABLE_KEYS = ("title", "baseline", "variants")
_VARIANT_KEYS = ("label", "technique", "switches")
_ABLATION_KEYS = ("reference", "baseline", "full", "ofat", "factorial")
_OFAT_KEYS = ("flips", "ladders")
_FACTORIAL_KEYS = ("factors",)


def _known_keys(where: str, section: str, raw: dict[str, Any], known: tuple[str, ...]) -> None:
    unknown = [k for k in raw if k not in known]
    if unknown:
        raise AblateError(
            f"{where}: unknown key {unknown[0]!r} in {section} (known: {', '.join(known)}); a misspelt key "
            "would silently leave its variants out"
        )


def _table(where: str, what: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise AblateError(f"{where}: {what} must be a table (e.g. {{ NAME = VALUE }}), not {value!r}")
    return value


def _text(where: str, what: str, value: Any) -> str:
    """A label, a baseline, a technique: a non-empty string that prints on one line."""
    if not isinstance(value, str) or not value.strip():
        raise AblateError(f"{where}: {what} must be a non-empty string, not {value!r}")
    if value != value.strip() or any(unicodedata.category(c) == "Cc" for c in value):
        raise AblateError(f"{where}: {what} {value!r} must not hold control characters or surrounding whitespace")
    return value


def _levels(where: str, what: str, value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise AblateError(f"{where}: {what} must be a non-empty list of values (e.g. [1, 2, 5]), not {value!r}")
    return value


def _unique_labels(where: str, kind: str, labels: list[str]) -> None:
    seen: set[str] = set()
    for label in labels:
        if label in seen:
            raise AblateError(f"{where}: duplicate variant labels in the {kind} design ({label!r})")
        seen.add(label)


def _label(changes: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in changes.items())


def load_ablation_design(kind: str, path: Path | None = None, method: Method | None = None) -> Design:
    """OFAT (flip one switch at a time, walk ladders) or the full factorial of the listed factors.

    Any registered switch may appear in ``[full]``, ``flips``, ``ladders`` and ``factors``; values are
    validated against its declaration. Rows vary the method's reference variant; the baseline row is the
    method's baseline. Rows that resolve to the same configuration are merged.
    """
    if kind not in DESIGNS:
        raise AblateError(f"--design {kind!r} is not one of {', '.join(DESIGNS)}")
    method = method or load_method()
    ref = method.reference
    path = path or definition_path("ablation.toml", method)
    raw = read_toml(path)
    where = str(path)
    _known_keys(where, "the file", raw, _ABLATION_KEYS)
    reference = _text(where, "reference", raw.get("reference", "full"))
    baseline = _text(where, "baseline", raw.get("baseline", "no transfer"))
    base = dict(_table(where, "[full]", raw.get("full", {})))
    full = _validated(reference, ref, base, where, method)
    defaults = method.resolve(ref, base)
    variants: list[Variant] = [full]
    if kind == "ofat":
        if "ofat" not in raw:
            raise AblateError(f"{where}: --design ofat needs an [ofat] section (flips, ladders)")
        spec = _table(where, "[ofat]", raw["ofat"])
        _known_keys(where, "[ofat]", spec, _OFAT_KEYS)
        for name, value in _table(where, "[ofat] flips", spec.get("flips", {})).items():
            variants.append(_validated(f"{name}={value}", ref, {**base, name: value}, where, method))
        for name, levels in _table(where, "[ofat] ladders", spec.get("ladders", {})).items():
            for level in _levels(where, f"[ofat] ladders.{name}", levels):
                if defaults.get(name) == level:
                    continue  # that level is the full method itself
                variants.append(_validated(f"{name}={level}", ref, {**base, name: level}, where, method))
    else:
        spec = _table(where, "[factorial]", raw.get("factorial", {}))
        _known_keys(where, "[factorial]", spec, _FACTORIAL_KEYS)
        factors = dict(_table(where, "[factorial] factors", spec.get("factors", {})))
        if not factors:
            raise AblateError(f"{where}: [factorial] needs `factors`")
        for name, levels in factors.items():
            _levels(where, f"[factorial] factors.{name}", levels)
        variants = []
        for combo in itertools.product(*factors.values()):
            changes = dict(zip(factors, combo, strict=True))
            cfg = {**base, **changes}
            variant = _validated(_label(changes), ref, cfg, where, method)
            is_full = method.resolve(ref, cfg) == defaults
            variants.append(Variant(reference, ref, cfg) if is_full else variant)
        if reference not in {v.label for v in variants}:
            variants.insert(0, full)
    variants.append(Variant(baseline, method.baseline))
    _unique_labels(where, kind, [v.label for v in variants])
    merged = merge_identical(variants, method)
    return Design(f"ablation-{kind}", f"{method.label} ablation ({kind})", merged, reference, baseline)


def parse_settings(settings: list[str] | None, method: Method | None = None) -> dict[str, Any]:
    """``--set NAME=VALUE`` options into validated switch values (one-line errors naming the option)."""
    registry = (method or load_method()).switches()
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
        except AblateError as exc:
            raise AblateError(f"--set {item!r}: {exc}") from None
    return out


def expand_cases(case: str, method: Method | None = None) -> list[str]:
    cases = (method or load_method()).cases
    if case == "all":
        return list(cases)
    if case not in cases:
        raise AblateError(f"--case {case!r} is not one of {', '.join(cases)}, all")
    return [case]
