"""The Summary every report opens with: what the study covered, what it found, how sure, what to run next.

Why: a reader decides from the first screen whether to read on. Everything here is generated from the numbers
the other sections already hold (tables carry a ``role`` and their stats rows in ``numeric``), never fixed
text and never a second computation, so the Summary cannot disagree with the tables below it.

Seeds rule (used until the seeds advisor exists, see :func:`seeds_to_decide`): with n pairs the exact
two-sided sign-flip test cannot go below p = 2/2^n, and Holm over m comparisons needs p < alpha/m for the
first rejection, so at least ``n_min = ceil(log2(2m/alpha))`` pairs (plus one when that bound is hit
exactly) are needed before any verdict is possible; and if an inconclusive effect persists with its observed
d_z, a paired test at alpha/m reaches 80% power with about ``((z_{1-alpha/(2m)} + z_0.8) / |d_z|)^2`` pairs
(normal approximation). The advice is the larger of the two, capped at :data:`MAX_SEEDS_ADVICE`; the command
to run next asks for enough seeds to decide every undecided effect that is large (|d_z| >= 0.8), or the
strongest undecided one when none is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from scipy import stats as sps

from ablate.report.model import DASH, Section, Table, as_table, finite, fmt_delta_ci, fmt_p

__all__ = ["MAX_SEEDS_ADVICE", "Scope", "label_families", "seeds_to_decide", "state_totals", "summary_section"]

MAX_SEEDS_ADVICE = 100
SIGNIFICANT = ("better", "worse")


@dataclass(frozen=True)
class Scope:
    """What the study covered, as the Summary's first line says it.

    ``kind``: ``ablation`` | ``table`` | ``sensitivity``; ``seeds``: per configuration (designed studies) or per
    trial (sampled); ``next_command``: the command that reruns this study with more seeds (designed) or
    confirms its finding (sampled), without the ``--seeds`` value, which the Summary fills in.
    """

    kind: str
    study: str
    cases: tuple[str, ...]
    fidelity: str
    seeds: int
    complete: int
    pruned: int
    failed: int
    other: int
    metric: str
    alpha: float
    reference: str | None = None
    baseline: str | None = None
    sampler: str | None = None
    next_command: str = ""
    best: dict[str, Any] | None = None  # sensitivity: the best trial's number, configuration and values
    method: str = "CGI"  # how the report names the method that made the study (record.method_labels)
    benchmark: str = "the no-transfer benchmark"  # and its baseline


# ----------------------------------------------------------------------------------------------- seeds


def seeds_to_decide(d_z: float, m: int, alpha: float) -> int | None:
    """Pairs needed before an effect of size ``d_z`` can get a verdict under Holm over ``m`` (module docstring).

    A quick normal-approximation rule, so the Summary costs no simulation; the seeds advisor
    (:mod:`ablate.analysis.power`, ``ablate seeds STUDY``), which simulates the exact sign-flip test with Holm,
    gives the sharper number, and the Summary's last line points to it. None when d_z is unknown or zero.
    """
    m = max(1, int(m))
    level = alpha / m
    n_min = math.ceil(math.log2(2 / level))
    if 2 / 2**n_min >= level:
        n_min += 1
    if not finite(d_z) or d_z == 0:
        return None
    z = sps.norm.ppf(1 - level / 2) + sps.norm.ppf(0.8)
    return int(min(MAX_SEEDS_ADVICE, max(n_min, math.ceil((z / abs(d_z)) ** 2))))


# ----------------------------------------------------------------------------------------------- tables


def _tables(sections: Sequence[Section], role: str) -> list[tuple[Section, Table]]:
    out = []
    for s in sections:
        for t in map(as_table, s.tables):
            if t.role == role and t.numeric is not None and not t.numeric.empty:
                out.append((s, t))
    return out


def _rows(sections: Sequence[Section], role: str) -> pd.DataFrame:
    """The stats rows of every table of ``role``, stacked, with the table's family size ``m``."""
    frames = []
    for s, t in _tables(sections, role):
        f = t.numeric.copy()
        f["m"] = int(f["p_holm"].notna().sum()) if "p_holm" in f else len(f)
        f["section"] = s.title
        if "case" not in f:
            f["case"] = s.title.split(": ", 1)[1] if ": " in s.title else ""
        frames.append(f)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _pp(x: Any) -> str:
    return f"{x * 100:+.2f}" if finite(x) else DASH


def _caveats(r: pd.Series, alpha: float) -> str:
    out = []
    n = int(r["n"])
    min_p = r.get("min_p")
    if n < 5:
        out.append(f"descriptive only: {n} pairs < 5")
    elif finite(min_p) and min_p >= alpha / max(1, int(r["m"])):
        out.append(f"few seeds: with {n} pairs p ≥ {min_p:.3g} > α/m = {alpha / max(1, int(r['m'])):.3g}")
    if r["verdict"] not in SIGNIFICANT and r["verdict"] != "equivalent" and n >= 5:
        need = seeds_to_decide(r.get("d_z", math.nan), int(r["m"]), alpha)
        if need is not None and need > n:
            out.append(f"about {need} seeds if the effect persists")
    return "; ".join(out) or "none"


def _paired_effects(rows: pd.DataFrame, alpha: float, top: int = 3) -> pd.DataFrame:
    """The strongest paired comparisons: significant ones first, then by |Δ|."""
    if rows.empty:
        return rows
    r = rows.assign(_sig=rows["verdict"].isin(SIGNIFICANT), _abs=rows["delta"].abs())
    r = r.sort_values(["_sig", "_abs"], ascending=[False, False], na_position="last").head(top)
    return pd.DataFrame(
        {
            "effect": [f"{v} vs {ref}" for v, ref in zip(r["variant"], r["reference"], strict=True)],
            "case": [str(c) for c in r["case"]],
            "verdict": list(r["verdict"]),
            "Δ pp [95% CI]": [
                fmt_delta_ci(d * 100, lo * 100, hi * 100) if finite(d) else DASH
                for d, lo, hi in zip(r["delta"], r["ci_low"], r["ci_high"], strict=True)
            ],
            "p (Holm)": [f"{fmt_p(p)} (m = {m})" for p, m in zip(r["p_holm"], r["m"], strict=True)],
            "n": [str(int(n)) for n in r["n"]],
            "caveat": [_caveats(x, alpha) for _, x in r.iterrows()],
        }
    )


def _marginal_effects(rows: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    if rows.empty:
        return rows
    r = rows.assign(_abs=rows["delta"].abs()).sort_values("_abs", ascending=False, na_position="last").head(top)
    caveats = []
    for _, x in r.iterrows():
        c = ["adaptive sampling: descriptive"]
        extra = [w for w in str(x.get("warnings", "")).split("; ") if w.strip()]
        c += [w for w in extra if "exists only" in w or "small groups" in w]
        caveats.append("; ".join(c))
    return pd.DataFrame(
        {
            "effect": [f"{p} = {c}" for p, c in zip(r["shown_param"], r["comparison"], strict=True)],
            "case": [str(c) for c in r["case"]],
            "Δ pp": [_pp(d) for d in r["delta"]],
            "n trials": [f"{a} vs {b}" for a, b in zip(r["n_level"], r["n_other"], strict=True)],
            "p MWU (Holm)": [fmt_p(p) for p in r["p_mwu_holm"]],
            "caveat": caveats,
        }
    )


# ----------------------------------------------------------------------------------------------- prose


def _scope_line(sc: Scope) -> str:
    what = {"ablation": "Designed ablation", "table": "Paper table", "sensitivity": "Sensitivity study"}[sc.kind]
    cases = ", ".join(c.replace("_", " → ") for c in sc.cases) or DASH
    per = "per configuration, paired by seed" if sc.kind != "sensitivity" else "per trial"
    sampled = f", sampled by {sc.sampler}" if sc.sampler else ""
    other = f", {sc.other} unfinished" if sc.other else ""
    return (
        f"{what} of {cases} at {sc.fidelity} fidelity{sampled}: {sc.seeds} seed(s) {per}; trials "
        f"{sc.complete} complete, {sc.pruned} pruned, {sc.failed} failed{other}. Metric: {sc.metric}; "
        f"α = {sc.alpha:g}."
    )


def _verdict_line(rows: pd.DataFrame, label: str) -> str:
    if rows.empty:
        return ""
    counts = rows["verdict"].value_counts()
    order = ("better", "worse", "equivalent", "inconclusive", "descriptives only")
    parts = [f"{int(counts[v])} {v}" for v in order if v in counts]
    n = sorted({int(x) for x in rows["n"]})
    m = int(rows["m"].max())
    ns = f"n = {n[0]}" if len(n) == 1 else f"n = {n[0]}–{n[-1]}"
    lowest = 2 / 2 ** n[0]
    return (
        f"{label}: {len(rows)} comparison(s), {', '.join(parts)} ({ns} pairs; Holm over up to {m} per family). "
        f"With {n[0]} pairs the exact sign-flip test cannot go below p = 2/2^{n[0]} = {lowest:.3g}."
    )


def _evaluators(importances: Table | None) -> str:
    if importances is None or importances.numeric is None:
        return ""
    imp = importances.numeric.drop(columns=[c for c in ("trials",) if c in importances.numeric])
    if imp.shape[1] < 2:
        return ""
    a, b = imp.columns[:2]
    ranks = imp[[a, b]].rank(ascending=False, method="min")
    both = ranks.dropna()
    if both.empty:
        return ""
    k = max(1, min(3, len(both) // 2))
    agree = [p for p in both.index if both.at[p, a] <= k and both.at[p, b] <= k]
    gap = (both[a] - both[b]).abs().sort_values(ascending=False)
    disagree = [p for p in gap.index if gap[p] >= max(2, len(both) // 3)][:2]
    n_of = importances.numeric.get("trials")
    labels = dict(zip(importances.numeric.index, importances.data.index, strict=True))

    def name(p: str) -> str:
        cond = ""
        if n_of is not None and int(n_of[p]) < int(n_of.max()):
            cond = f" (conditional: {int(n_of[p])} of {int(n_of.max())} trials)"
        return f"{labels.get(p, p)}{cond}"

    parts = []
    if agree:
        parts.append(f"{a} and {b} agree that {', '.join(map(name, agree))} rank in their top {k}")
    else:
        parts.append(f"{a} and {b} share no parameter in their top {k}")
    if disagree:
        parts.append(
            "they disagree on "
            + ", ".join(f"{name(p)} (rank {int(both.at[p, a])} vs {int(both.at[p, b])})" for p in disagree)
        )
    missing = [p for p in imp.index if imp.loc[p].isna().any()]
    if missing:
        parts.append(f"{', '.join(labels.get(p, p) for p in missing)} scored by one evaluator only")
    return (
        "; ".join(parts) + ". Why they can differ: PED-ANOVA compares the top 10% of trials with all trials, "
        "fANOVA explains the variance over all trials (see Parameter importances)."
    )


def _conditional(importances: Table | None) -> str:
    """'K, covariance_type exist in 11 of 16 trials (only when generator=gmm)' from the importances table."""
    if importances is None or "trials" not in importances.data:
        return ""
    cond = [(str(p), str(t)) for p, t in zip(importances.data.index, importances.data["trials"], strict=True)]
    cond = [(p, t) for p, t in cond if " of " in t]
    if not cond:
        return ""
    by: dict[str, list[str]] = {}
    for p, t in cond:
        by.setdefault(t, []).append(p)
    return "; ".join(f"{', '.join(ps)} exist{'s' if len(ps) == 1 else ''} in {t}" for t, ps in by.items())


def _benchmark_line(sc: Scope, ablation: pd.DataFrame, transfer: pd.DataFrame) -> str:
    """The method vs its baseline, from the one family the report gives that comparison's verdict in."""
    rows = pd.DataFrame()
    family = ""
    if sc.kind == "ablation" and not ablation.empty and sc.baseline is not None:
        rows = ablation[ablation["variant"].astype(str) == sc.baseline]
        family = "Holm over the ablation family of its case"
        sign = -1.0  # the row is baseline − reference; the Summary says reference − baseline
    if rows.empty and not transfer.empty:
        rows, family, sign = transfer, "Holm over the transfer cases", 1.0
    if rows.empty:
        return ""
    parts = []
    for _, r in rows.iterrows():
        d = sign * r["delta"] if finite(r["delta"]) else math.nan
        name = r["reference"] if sign < 0 else r["variant"]
        base = r["variant"] if sign < 0 else r["reference"]
        parts.append(
            f"{r['case']}: {name} − {base} = {_pp(d)} pp (n = {int(r['n'])}, p Holm = {fmt_p(r['p_holm'])}, "
            f"{r['verdict'] if sign > 0 else _flip(r['verdict'])})"
        )
    return f"{sc.method} vs {sc.benchmark} ({family}): " + "; ".join(parts) + "."


def _flip(verdict: str) -> str:
    return {"better": "worse", "worse": "better"}.get(verdict, verdict)


def _next(sc: Scope, paired: pd.DataFrame, marginal: pd.DataFrame) -> str:
    if not sc.next_command:
        return ""
    if sc.kind == "sensitivity":
        return (
            f"Next: `{sc.next_command} --top 3 --seeds 8`: re-runs the 3 best distinct configurations, the default "
            f"{sc.method} and {sc.benchmark} on 8 fresh paired seeds, the verdicts a search cannot give; then "
            f"`ablate report confirm-top3-{sc.study}`."
        )
    undecided = paired[~paired["verdict"].isin([*SIGNIFICANT, "equivalent"])] if not paired.empty else paired
    if paired.empty:
        return f"Next: `{sc.next_command} --seeds {max(10, sc.seeds)}`."
    if undecided.empty:
        return (
            f"Next: `{sc.next_command} --seeds {2 * sc.seeds}` (every comparison has a verdict; more seeds narrow "
            "the effect sizes' intervals)."
        )
    dz = undecided["d_z"].abs() if "d_z" in undecided else pd.Series(dtype=float)
    large = undecided[dz >= 0.8] if not dz.empty else undecided.iloc[:0]
    aim = large if not large.empty else undecided.loc[dz.dropna().sort_values(ascending=False).index[:1]]
    needs = [(seeds_to_decide(r["d_z"], int(r["m"]), sc.alpha), r) for _, r in aim.iterrows()]
    needs = [(n, r) for n, r in needs if n is not None]
    if not needs:
        return f"Next: `{sc.next_command} --seeds {max(10, 2 * sc.seeds)}` (no undecided effect has a size yet)."
    target = max(sc.seeds + 1, max(n for n, _ in needs))
    names = ", ".join(f"{r['variant']} (d_z = {r['d_z']:+.2f})" for _, r in needs)
    return (
        f"Next: `{sc.next_command} --seeds {target}`: it adds seeds to this study, enough to decide "
        f"{names} if the effect persists ({len(undecided)} comparison(s) are undecided; rule: "
        "ablate.report.summary.seeds_to_decide). For the exact test's simulated power per comparison run "
        f"`ablate seeds {sc.study}`."
    )


# ----------------------------------------------------------------------------------------------- section


def best_line(best: dict[str, Any] | None, method: str = "CGI") -> str:
    """The search's best configuration and its value, as a reader would copy it."""
    if not best:
        return "Best: no COMPLETE trial yet."
    test = f", test accuracy {best['test_accuracy']:.4f}" if best.get("test_accuracy") is not None else ""
    return (
        f"Best: trial {best['trial']}, {best['configuration']} (changes from the default {method}): "
        f"validation accuracy {best['val_accuracy']:.4f} (the objective, mean of {best['seeds']} seed(s)){test}."
    )


def summary_section(sc: Scope, sections: Sequence[Section]) -> Section:
    """The Summary: scope, strongest effects (table), how sure, evaluators, CGI vs benchmark, next command."""
    ablation, transfer = _rows(sections, "ablation"), _rows(sections, "transfer")
    # one comparison, one verdict: in an ablation the benchmark comparison is a row of the ablation family
    paired = ablation if sc.kind == "ablation" and not ablation.empty else pd.concat([ablation, transfer])
    lines = ["Covered: " + _scope_line(sc)]
    tables: list[Table] = []
    warnings: list[str] = []
    if sc.kind == "sensitivity":
        lines.append(best_line(sc.best, sc.method))
        marg = _rows(sections, "marginal")
        if not marg.empty:
            shown_names = {}
            for _, t in _tables(sections, "marginal"):
                shown_names.update(dict(zip(t.numeric["param"], t.data["parameter"], strict=True)))
            marg = marg.assign(
                shown_param=[shown_names.get(p, p) for p in marg["param"]],
                comparison=[f"{a} vs {b}" for a, b in zip(marg["level"], marg["other"], strict=True)],
            )
        effects = _marginal_effects(marg)
        if not effects.empty:
            top = effects.iloc[0]
            lines.append(
                f"Found: the largest marginal difference is {top['effect']} in {top['case']}: Δ = {top['Δ pp']} pp "
                f"({top['n trials']} trials, p MWU Holm = {top['p MWU (Holm)']})."
            )
            tables.append(Table(effects, title="Strongest effects (marginal, descriptive)", slug="summary-effects"))
        imp = _tables(sections, "importances")
        imp_table = imp[0][1] if imp else None
        cond = _conditional(imp_table)
        lines.append(
            "How sure: descriptive only. Trials were sampled adaptively, so a parameter's levels co-vary with the "
            f"others; {sc.seeds} seed(s) per trial"
            + (f"; conditional parameters: {cond}" if cond else "")
            + ". No verdict without a paired-seed ablation."
        )
        ev = _evaluators(imp_table)
        if ev:
            lines.append("Importance evaluators: " + ev)
        bench = _benchmark_line(sc, pd.DataFrame(), transfer)
        if bench:
            lines.append(bench + " The best trial was picked on these runs, so this is optimistic.")
        lines.append(_next(sc, pd.DataFrame(), effects))
    else:
        effects = _paired_effects(paired, sc.alpha)
        if not effects.empty:
            top = effects.iloc[0]
            sure = (
                "significant after Holm"
                if top["verdict"] in SIGNIFICANT
                else ("no comparison is significant after Holm" if top["verdict"] != "equivalent" else "equivalent")
            )
            lines.append(
                f"Found: the strongest effect is {top['effect']} in {top['case']}: Δ = {top['Δ pp [95% CI]']} pp, "
                f"n = {top['n']}, p Holm = {top['p (Holm)']}, verdict {top['verdict']} ({sure})."
            )
            tables.append(Table(effects, title="Strongest effects (paired by seed)", slug="summary-effects"))
        for label, rows in (("Ablation tables", ablation), ("Vs the benchmark", transfer)):
            if sc.kind == "ablation" and label == "Vs the benchmark":
                continue  # the same comparison is already a row of the ablation family (label_families)
            v = _verdict_line(rows, label)
            if v:
                lines.append("How sure: " + v)
        bench = _benchmark_line(sc, ablation, transfer)
        if bench:
            lines.append(bench)
        lines.append(_next(sc, paired, effects))
    if sc.failed:
        warnings.append(f"{sc.failed} trial(s) failed: see 'Trials not in this report' for the reasons")
    return Section("Summary", text="\n\n".join(x for x in lines if x), tables=tables, warnings=warnings)


def label_families(sections: Sequence[Section], *, reference: str, baseline: str) -> None:
    """One comparison, two families: where the reference-vs-baseline comparison is both a row of an ablation
    table (Holm over that case's variants) and of the transfer table (Holm over the cases), say so next to the
    transfer verdict, with both verdicts, so a reader sees why they can differ. Edits the sections in place."""
    ablation = _rows(sections, "ablation")
    if ablation.empty:
        return
    same = ablation[ablation["variant"].astype(str) == baseline]
    if same.empty:
        return
    for sec in sections:
        for t in map(as_table, sec.tables):
            if t.role != "transfer" or t.numeric is None:
                continue
            notes = []
            for _, r in t.numeric.iterrows():
                a = same[same["case"].astype(str) == str(r["case"])]
                if a.empty:
                    continue
                x = a.iloc[0]
                notes.append(
                    f"{r['case']}: here (Holm over {int(t.numeric['p_holm'].notna().sum())} case(s)) p Holm = "
                    f"{fmt_p(r['p_holm'])}, {r['verdict']}; in the ablation table (Holm over {int(x['m'])} "
                    f"variants) p Holm = {fmt_p(x['p_holm'])}, {_flip(str(x['verdict']))}"
                )
            if notes:
                sec.text += (
                    f"\n\nTwo families, two corrections: {reference} vs {baseline} is also a row of the ablation "
                    "table, where Holm corrects over every variant of the case; here Holm corrects over the "
                    "transfer cases only, so the bar is lower and the verdicts can differ. The Summary quotes the "
                    "ablation family (the stricter one). " + "; ".join(notes) + "."
                )


def state_totals(counts: pd.DataFrame) -> dict[str, int]:
    """complete / pruned / failed / other from :func:`ablate.analysis.tidy.state_counts`."""
    if counts.empty:
        return {"complete": 0, "pruned": 0, "failed": 0, "other": 0}
    by = counts.groupby("state")["n"].sum()
    known = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}
    out = {v: int(by.get(k, 0)) for k, v in known.items()}
    out["other"] = int(by[[s for s in by.index if s not in known]].sum()) if len(by) else 0
    return out
