"""Analysing a confirmation: each confirmed configuration against the baseline and the default reference on
fresh paired seeds (Holm over the K comparisons each), the winner's curse and the rank agreement.

The planning half (which configurations, which seeds) is :mod:`ablate.experiment.confirm`; the confirmation is an
ordinary design study, and this reads its tidy table and stored definition only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
from scipy import stats as sps

from ablate import record
from ablate.analysis import power, stats
from ablate.errors import AblateError


@dataclass
class Analysis:
    """The confirmation's numbers: one row per confirmed configuration, the comparison tables, the rank check."""

    rows: pd.DataFrame
    vs_benchmark: stats.TableResult
    vs_default: stats.TableResult
    default_vs_benchmark: dict[str, Any] | None
    tau: float
    tau_p: float
    best: str | None
    titles: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def _title_of(design: dict[str, Any], label: str) -> str:
    return record.variant_titles(design).get(label, label)


def _family(
    df: pd.DataFrame, names: list[str], reference: str, *, value: str, alpha: float, rope: float | None
) -> stats.TableResult:
    """Each name vs ``reference``, paired by seed, Holm over the names (stats.ablation_table on that subset)."""
    names = [n for n in names if n != reference]
    if not names:
        return stats.TableResult(alpha=alpha)
    sub = df[df["variant"].isin([*names, reference])]
    return stats.ablation_table(sub, reference=reference, value=value, alpha=alpha, rope=rope, n_examples="n_test")


def _needed(row: pd.Series, alpha: float, m: int, sims: int) -> str:
    """Seeds the observed Δ would need for power 0.8 (Holm over m), for rows that are not decided."""
    if row["verdict"] in ("better", "worse") or not (math.isfinite(row["delta"]) and math.isfinite(row["delta_sd"])):
        return ""
    if row["delta"] == 0:
        return "Δ = 0: no n"
    return power.seeds_needed(float(row["delta"]), float(row["delta_sd"]), alpha=alpha, m=m, sims=sims).shown()


def _with_seeds(tab: stats.TableResult, alpha: float, sims: int) -> stats.TableResult:
    """``tab`` with its rows' :func:`_needed` as column ``seeds_needed``: computed once, shown by the summary
    table and by the comparison tables alike (format_comparisons reads it)."""
    if not tab.empty:
        needed = [_needed(r, alpha, len(tab.frame), sims) for _, r in tab.frame.iterrows()]
        return replace(tab, frame=tab.frame.assign(seeds_needed=needed))
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
    baseline = _title_of(design, design.get("baseline", "no transfer"))  # studies made before it was stored
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
        vb = vs_b.frame[vs_b.frame["variant"] == t].iloc[0] if t in set(vs_b.frame.get("variant", ())) else None
        vd = vs_d.frame[vs_d.frame["variant"] == t].iloc[0] if t in set(vs_d.frame.get("variant", ())) else None
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
