"""The confirm stage: re-run a search's best distinct configurations on fresh seeds, paired, and say what holds.

Why: a sensitivity study picks its best trial on the same seeds it reports, so the best value is optimistic
(the winner's curse) and one seed settles nothing. A confirmation is an ordinary *design* study — variants
"rank i: <switches>", the method's reference at its defaults (for CGI: "default CGI") and its baseline — so it
reuses the exact queue, resumption and many workers. Its seeds start at an offset (recorded in the design)
above every seed the search used, and the two studies point at each other (:func:`ablate.record.link_confirmation`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from ablate import record
from ablate.errors import AblateError
from ablate.execution import provenance
from ablate.experiment.designs import Design, DesignPoint, Variant, merge_identical
from ablate.experiment.names import check_study_name, confirmation_name
from ablate.method import Method, Preset, load_method

SEED_OFFSET = 1000
BASELINE = "no transfer"
DESIGN_NAME = "confirm"


@dataclass(frozen=True)
class ConfirmDesign(Design):
    """A design whose seeds start at ``seed_offset``, so they never meet the search's seeds 0..S-1."""

    seed_offset: int = SEED_OFFSET

    def points(self, cases: list[str], seeds: int) -> list[DesignPoint]:
        off = self.seed_offset
        return [DesignPoint(case, v, off + s) for case in cases for s in range(seeds) for v in self.variants]

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "seed_offset": self.seed_offset}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ConfirmDesign:
        variants = tuple(
            Variant(v["label"], v["technique"], dict(v.get("switches", {})), tuple(v.get("aliases", ())))
            for v in raw["variants"]
        )
        return cls(raw["name"], raw["title"], variants, raw["reference"], raw["baseline"], int(raw["seed_offset"]))


@dataclass(frozen=True)
class Candidate:
    """One of the search's best distinct configurations."""

    rank: int
    trial: int
    value: float  # the search objective (mean validation accuracy over the search seeds)
    test_accuracy: float | None
    label: str
    changes: dict[str, Any]  # canonical switch values that differ from the default CGI


@dataclass(frozen=True)
class Confirmation:
    """Everything `ablate confirm` needs to create (or resume) one confirmation study."""

    source: str
    name: str
    case: str
    design: ConfirmDesign
    fidelity: Preset
    seeds: int
    link: dict[str, Any] = field(default_factory=dict)


def default_label(method: Method) -> str:
    """The label of the method's reference at its defaults (plus the search's regime) in a confirmation."""
    return f"default {method.label}"


def _key(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, default=str)


def search_seeds(study: optuna.Study) -> set[int]:
    """Every seed the search ran (its trials' records and its cached benchmarks)."""
    used: set[int] = set()
    for t in study.get_trials(deepcopy=False):
        rec = record.read_trial(t)
        used |= {int(s.seed) for s in rec.seeds}
    used |= record.benchmark_seeds(study)
    definition = record.read_definition(study)
    return used | set(range(definition.seeds))


def regime(definition: record.Definition, config: dict[str, Any], method: Method) -> dict[str, Any]:
    """Switches the search held fixed away from their defaults (``--set``): every confirmed run shares them."""
    searched = {p["name"] for p in definition.space}
    defaults = method.switches().defaults()
    return {k: v for k, v in config.items() if k not in searched and k in defaults and v != defaults[k]}


def top_configurations(
    study: optuna.Study, k: int, method: Method | None = None, definition: record.Definition | None = None
) -> tuple[list[Candidate], dict[str, Any]]:
    """The k best COMPLETE trials by objective with distinct canonical configurations, and the search's regime
    (``definition``: the study's, when the caller has read it already)."""
    definition = definition or record.read_definition(study)
    method = method or method_of(definition)
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    done.sort(key=lambda t: (-float(t.value), t.number))
    if not done:
        raise AblateError(f"study {study.study_name!r} has no COMPLETE trials to confirm")
    first = record.read_trial(done[0])
    base = regime(definition, first.config, method)
    default = method.resolve(method.reference, base)
    seen: set[str] = set()
    out: list[Candidate] = []
    for t in done:
        rec = record.read_trial(t)
        try:
            values = method.resolve(method.reference, rec.config)
        except AblateError:
            continue  # a record of another switch registry: not rerunnable here
        key = _key(values)
        if key in seen:
            continue
        seen.add(key)
        changes = {n: v for n, v in values.items() if v != default.get(n)}
        rank = len(out) + 1
        shown = ", ".join(f"{n}={v}" for n, v in changes.items()) or "the default"
        out.append(Candidate(rank, t.number, float(t.value), rec.test_accuracy, f"rank {rank}: {shown}", changes))
        if len(out) == k:
            break
    return out, base


def check_source(definition: record.Definition, name: str) -> None:
    """Only a finished sensitivity search can be confirmed (never a confirmation, never a design study)."""
    if record.confirmation_source(definition) is not None:
        raise AblateError(f"study {name!r} is itself a confirmation: confirm the search it came from")
    if definition.kind != "sensitivity":
        raise AblateError(f"study {name!r} is a {definition.kind} study: `ablate confirm` re-runs a sensitivity search")


def plan(
    source: optuna.Study,
    *,
    top: int,
    seeds: int,
    fidelity: Preset | None = None,
    existing: record.Definition | None = None,
    name: str | None = None,
    method: Method | None = None,
) -> Confirmation:
    """The confirmation of ``source``: its design (from the search, or as stored when resuming) and its seeds."""
    if top < 1:
        raise AblateError(f"--top {top} must be >= 1")
    if seeds < 2:
        raise AblateError(f"--seeds {seeds} must be >= 2 (a paired comparison needs at least two seeds)")
    definition = record.read_definition(source)
    check_source(definition, source.study_name)
    method = method or load_method()
    check_method(definition, method, source.study_name)
    src_fid = stored_preset(method, definition.fidelity)
    fid = fidelity or src_fid
    name = name or confirmation_name(source.study_name, top, fid.name, src_fid.name)
    check_study_name(name, "the confirmation")
    assert definition.case is not None
    if existing is not None:  # resume: confirm what the study was created for, even if the search grew since
        link = record.confirmation_source(existing)
        if link is None or link.get("study") != source.study_name:
            raise AblateError(f"study {name!r} exists and is not a confirmation of {source.study_name!r}")
        design = ConfirmDesign.from_dict(dict(existing.design or {}))
        if stored_preset(method, existing.fidelity) != fid:
            raise AblateError(f"study {name!r} exists at fidelity {existing.fidelity['name']!r}; choose another name")
        return Confirmation(source.study_name, name, definition.case, design, fid, seeds, link)
    candidates, base = top_configurations(source, top, method)
    used = search_seeds(source)
    offset = SEED_OFFSET * (max(used, default=-1) // SEED_OFFSET + 1)
    fresh = set(range(offset, offset + seeds))
    if fresh & used:  # cannot happen by construction; a confirmation on reused seeds would be worthless
        raise AblateError(f"confirmation seeds {sorted(fresh & used)} were used by the search")
    ref = method.reference
    variants = [Variant(c.label, ref, {**base, **c.changes}) for c in candidates]
    for c, v in zip(candidates, variants, strict=True):
        searched = record.read_trial(source.trials[c.trial]).config
        if method.resolve(ref, v.switches) != method.resolve(ref, searched):
            raise AblateError(f"rank {c.rank} (trial {c.trial}) does not resolve to its own configuration")
    default = default_label(method)
    variants += [Variant(default, ref, dict(base)), Variant(BASELINE, method.baseline, dict(base))]
    merged = merge_identical(variants, method)
    title = f"Confirmation of {source.study_name}: top {len(candidates)} on fresh seeds from {offset}"
    design = ConfirmDesign(DESIGN_NAME, title, merged, default, BASELINE, offset)
    link = {
        "study": source.study_name,
        "top": top,
        "seed_offset": offset,
        "search_seeds": sorted(used),
        "search_fidelity": src_fid.name,
        "search_seeds_per_trial": definition.seeds,
        "regime": base,
        "candidates": [asdict(c) for c in candidates],
        "source_provenance": record.provenance_of(definition),
    }
    return Confirmation(source.study_name, name, definition.case, design, fid, seeds, link)


def made_by(definition: record.Definition) -> str:
    """The name of the method that made a study (its provenance; studies made before methods were recorded
    are CGI's)."""
    return ((record.provenance_of(definition) or {}).get("method") or {}).get("name", "cgi")


def method_of(definition: record.Definition) -> Method:
    """The method that made a study, found by its registered name (a report needs no ``--method``)."""
    return load_method(made_by(definition))


def check_method(definition: record.Definition, method: Method, name: str) -> None:
    """A confirmation reruns the configurations with the method that searched them (its provenance says which;
    studies made before methods were recorded are CGI's)."""
    maker = made_by(definition)
    if maker != method.name:
        raise AblateError(f"study {name!r} was made by method {maker!r}, not {method.name!r}: add --method {maker}")


def stored_preset(method: Method, stored: dict[str, Any]) -> Preset:
    """The preset a study stored in its definition, as the method reads it (validated again)."""
    values = {k: v for k, v in stored.items() if k != "name"}
    return method.preset(str(stored.get("name")), values)


def create(study: optuna.Study, source: optuna.Study, plan: Any) -> None:
    """Store the confirmation plan's definition (with its link and provenance) on the new study and link the
    search to it."""
    record.write_definition(study, provenance.stamp(study, plan.definition(), plan))
    record.link_confirmation(source, plan.name)
