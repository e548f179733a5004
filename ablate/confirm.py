"""The confirm stage: re-run a search's best distinct configurations on fresh seeds, paired, and say what holds.

Why: a sensitivity study picks its best trial on the same seeds it reports, so the best value is optimistic
(the winner's curse) and one seed settles nothing. A confirmation is an ordinary *design* study — variants
"rank i: <switches>", the method's reference at its defaults (for CGI: "default CGI") and its baseline — so it
reuses the exact queue, resumption and many workers. Its seeds start at an offset (recorded in the design)
above every seed the search used, and the two studies point at each other (:func:`ablate.record.link_confirmation`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState
from scipy import stats as sps

from ablate import power, provenance, record, stats
from ablate.designs import Design, DesignPoint, Variant, merge_identical
from ablate.errors import AblateError
from ablate.method import Method, Preset, load_method
from ablate.names import check_study_name, confirmation_name

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
    for key in study.user_attrs:
        if key.startswith("benchmark:"):
            used.add(int(key.rsplit(":", 1)[1]))
    definition = record.read_definition(study)
    return used | set(range(definition.seeds))


def regime(definition: record.Definition, config: dict[str, Any], method: Method) -> dict[str, Any]:
    """Switches the search held fixed away from their defaults (``--set``): every confirmed run shares them."""
    searched = {p["name"] for p in definition.space}
    defaults = method.switches().defaults()
    return {k: v for k, v in config.items() if k not in searched and k in defaults and v != defaults[k]}


def top_configurations(
    study: optuna.Study, k: int, method: Method | None = None
) -> tuple[list[Candidate], dict[str, Any]]:
    """The k best COMPLETE trials by objective with distinct canonical configurations, and the search's regime."""
    definition = record.read_definition(study)
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    done.sort(key=lambda t: (-float(t.value), t.number))
    if not done:
        raise AblateError(f"study {study.study_name!r} has no COMPLETE trials to confirm")
    method = method or load_method()
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
        searched = source.trials[c.trial].user_attrs["config"]
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


def check_method(definition: record.Definition, method: Method, name: str) -> None:
    """A confirmation reruns the configurations with the method that searched them (its provenance says which;
    studies made before methods were recorded are CGI's)."""
    made_by = ((record.provenance_of(definition) or {}).get("method") or {}).get("name", "cgi")
    if made_by != method.name:
        raise AblateError(f"study {name!r} was made by method {made_by!r}, not {method.name!r}: add --method {made_by}")


def stored_preset(method: Method, stored: dict[str, Any]) -> Preset:
    """The preset a study stored in its definition, as the method reads it (validated again)."""
    values = {k: v for k, v in stored.items() if k != "name"}
    return method.preset(str(stored.get("name")), values)


def definition_of(conf: Confirmation, plan_definition: record.Definition) -> record.Definition:
    """The study plan's definition plus the link back to the search (stored in ``extra``)."""
    return replace(plan_definition, extra={**plan_definition.extra, record.CONFIRMS: conf.link})


def create(study: optuna.Study, source: optuna.Study, conf: Confirmation, study_plan: Any) -> None:
    """Store the definition (with provenance) on the new study and link the search to it."""
    definition = definition_of(conf, study_plan.definition())
    record.write_definition(study, provenance.stamp(study, definition, study_plan))
    record.link_confirmation(source, conf.name)


# ---------------------------------------------------------------------------------------------- analysis
@dataclass
class Analysis:
    """The confirmation's numbers: one row per confirmed configuration, the comparison tables, the rank check."""

    rows: pd.DataFrame
    vs_benchmark: pd.DataFrame
    vs_default: pd.DataFrame
    default_vs_benchmark: dict[str, Any] | None
    tau: float
    tau_p: float
    best: str | None
    titles: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def _title_of(design: dict[str, Any], label: str) -> str:
    for v in design.get("variants", []):
        if label == v["label"] or label in v.get("aliases", []):
            return " ≡ ".join([v["label"], *v.get("aliases", [])])
    return label


def _family(df: pd.DataFrame, names: list[str], reference: str, *, value: str, alpha: float, rope: float | None):
    """Each name vs ``reference``, paired by seed, Holm over the names (stats.ablation_table on that subset)."""
    names = [n for n in names if n != reference]
    if not names:
        return pd.DataFrame()
    sub = df[df["variant"].isin([*names, reference])]
    return stats.ablation_table(sub, reference=reference, value=value, alpha=alpha, rope=rope, n_examples="n_test")


def _needed(row: pd.Series, alpha: float, m: int, sims: int) -> str:
    """Seeds the observed Δ would need for power 0.8 (Holm over m), for rows that are not decided."""
    if row["verdict"] in ("better", "worse") or not (math.isfinite(row["delta"]) and math.isfinite(row["delta_sd"])):
        return ""
    if row["delta"] == 0:
        return "Δ = 0: no n"
    return power.seeds_needed(float(row["delta"]), float(row["delta_sd"]), alpha=alpha, m=m, sims=sims).shown()


def _with_seeds(tab: pd.DataFrame, alpha: float, sims: int) -> pd.DataFrame:
    """``tab`` with its rows' :func:`_needed` as column ``seeds_needed``: computed once, shown by the summary
    table and by the comparison tables alike (format_comparisons reads it)."""
    if not tab.empty:
        tab["seeds_needed"] = [_needed(r, alpha, len(tab), sims) for _, r in tab.iterrows()]
    return tab


def analyse(
    df: pd.DataFrame,
    definition: record.Definition,
    *,
    value: str = "test_accuracy",
    alpha: float = 0.05,
    rope: float | None = None,
    sims: int = 1000,
) -> Analysis:
    """Each confirmed configuration vs the benchmark and vs the default CGI (Holm over the K comparisons each),
    the search value next to the confirmed mean (the winner's curse) and Kendall τ between the two rankings."""
    link = record.confirmation_source(definition)
    if link is None:
        raise AblateError(f"study {definition.name!r} is not a confirmation")
    design = definition.design or {}
    baseline = _title_of(design, design.get("baseline", BASELINE))
    default = _title_of(design, design.get("reference", ""))
    cands = link["candidates"]
    titles = {c["label"]: _title_of(design, c["label"]) for c in cands}
    ranked = [titles[c["label"]] for c in cands]
    vs_b = _with_seeds(_family(df, ranked, baseline, value=value, alpha=alpha, rope=rope), alpha, sims)
    vs_d = _with_seeds(_family(df, ranked, default, value=value, alpha=alpha, rope=rope), alpha, sims)
    notes: list[str] = []
    if default in ranked:
        notes.append(f"{default!r} is one of the top configurations: it is not compared with itself")
    d_vs_b = None
    if {default, baseline} <= set(df["variant"]):
        pairs = stats.paired(df, variant=default, reference=baseline, value=value)
        d_vs_b = stats.compare(pairs, alpha=alpha, rope=rope) if pairs.n else None
    means = df.groupby("variant")[["val_accuracy", "test_accuracy"]].agg(["mean", "std", "count"])
    rows = []
    for c in cands:
        t = titles[c["label"]]
        m = means.loc[t] if t in means.index else None
        vb = vs_b[vs_b["variant"] == t].iloc[0] if not vs_b.empty and t in set(vs_b["variant"]) else None
        vd = vs_d[vs_d["variant"] == t].iloc[0] if not vs_d.empty and t in set(vs_d["variant"]) else None
        conf_val = float(m[("val_accuracy", "mean")]) if m is not None else math.nan
        conf_test = float(m[("test_accuracy", "mean")]) if m is not None else math.nan
        search_test = c.get("test_accuracy")
        rows.append(
            {
                "rank": c["rank"],
                "variant": t,
                "trial": c["trial"],
                "changes": c["changes"],
                "n": int(m[("val_accuracy", "count")]) if m is not None else 0,
                "search_val": c["value"],
                "confirmed_val": conf_val,
                "confirmed_val_sd": float(m[("val_accuracy", "std")]) if m is not None else math.nan,
                "winners_curse_val": c["value"] - conf_val,
                "search_test": search_test if search_test is not None else math.nan,
                "confirmed_test": conf_test,
                "winners_curse_test": (search_test - conf_test) if search_test is not None else math.nan,
                "delta_vs_benchmark": float(vb["delta"]) if vb is not None else math.nan,
                "p_holm_vs_benchmark": float(vb["p_holm"]) if vb is not None else math.nan,
                "verdict_vs_benchmark": str(vb["verdict"]) if vb is not None else "–",
                "seeds_needed_vs_benchmark": vb["seeds_needed"] if vb is not None else "",
                "delta_vs_default": float(vd["delta"]) if vd is not None else math.nan,
                "p_holm_vs_default": float(vd["p_holm"]) if vd is not None else math.nan,
                "verdict_vs_default": str(vd["verdict"]) if vd is not None else "is the default",
                "seeds_needed_vs_default": vd["seeds_needed"] if vd is not None else "",
            }
        )
    out = pd.DataFrame(rows)
    out["confirmed_rank"] = out["confirmed_val"].rank(ascending=False, method="min")
    out["confirmed"] = out["verdict_vs_benchmark"] == "better"
    ok = out.dropna(subset=["confirmed_val"])
    tau = tau_p = math.nan
    if len(ok) >= 2 and ok["confirmed_val"].nunique() > 1:
        res = sps.kendalltau(ok["rank"], -ok["confirmed_val"])
        tau, tau_p = float(res.statistic), float(res.pvalue)
    elif len(ok) < 2:
        notes.append("fewer than 2 configurations confirmed: no rank agreement")
    best = str(ok.loc[ok["confirmed_val"].idxmax(), "variant"]) if len(ok) else None
    if definition.fidelity.get("name") != link.get("search_fidelity"):
        notes.append(
            f"confirmed at fidelity {definition.fidelity.get('name')!r}, searched at {link.get('search_fidelity')!r}: "
            "the difference between search and confirmed values mixes the winner's curse with the fidelity change"
        )
    return Analysis(out, vs_b, vs_d, d_vs_b, tau, tau_p, best, titles, notes)
