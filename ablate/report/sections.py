"""Report sections per study kind: designed ablations, transfer comparisons (the paper's tables) and sampled
sensitivity studies, each ending in a Methods paragraph a reader can paste.

Every section is built from the tidy runs DataFrame (one row per finished run: ``case``, ``variant``,
``seed``, ``val_accuracy``, ``test_accuracy``, extras) and never re-runs anything. Figures are written under
``fig_dir`` while the sections are built (None: no figures), so a Section refers to files that exist.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.analysis import stats
from ablate.report.figures import box_strip, cd_diagram, forest
from ablate.report.model import DAGGER, Section, Table, finite, fmt_num, fmt_p, require, slugify
from ablate.report.tables import (
    format_comparisons,
    n_examples_column,
    paper_table_block,
    significance_mask,
    significance_rows,
)

__all__ = [
    "ablation_report_sections",
    "combined_methods_section",
    "methods_section",
    "transfer_report_sections",
]


def case_order(df: pd.DataFrame, case_col: str, cases: Sequence[str] | None) -> list[Any]:
    if case_col not in df.columns:
        return [None]
    present = list(pd.unique(df[case_col].dropna()))
    if cases is not None:
        return [c for c in cases if c in present]
    return present


def fig_path(fig_dir: str | Path | None, *parts: Any) -> Path | None:
    if fig_dir is None:
        return None
    return Path(fig_dir) / slugify("-".join(str(p) for p in parts if p is not None))


def ablation_report_sections(
    df: pd.DataFrame,
    *,
    reference: str = "full",
    value: str = "test_accuracy",
    alpha: float = 0.05,
    rope: float | None = None,
    seed: int = 0,
    n_resamples: int = 9999,
    fig_dir: str | Path | None = None,
    percent: bool = True,
    cases: Sequence[str] | None = None,
    case_col: str = "case",
    key: str = "seed",
    variant_col: str = "variant",
    with_methods: bool = True,
) -> list[Section]:
    """Per case: the ablation table (stats.ablation_table, Holm over the variants of that case), a CI forest
    plot and box+strip plot, and Friedman + CD diagram when >= 3 variants share >= 2 complete seeds; then
    a Methods section (stats.methods_paragraph; ``with_methods=False`` leaves it to the caller, who writes one for
    the whole report). Figures are written under ``fig_dir`` (None: no figures). A case without the reference
    gets a section with a warning instead of a table. The sign-flip test counts ties on whole examples
    when the runs carry N of the metric (``n_test`` / ``n_val``)."""
    require(df, variant_col, value)
    sections: list[Section] = []
    ns: list[int] = []
    m_max = 0
    friedman_used = False
    for case in case_order(df, case_col, cases):
        sub = df if case is None else df[df[case_col] == case]
        heading = "Ablation" if case is None else f"Ablation: {case}"
        names = [str(v) for v in pd.unique(sub[variant_col].dropna())]
        if reference not in names:
            sections.append(
                Section(heading, warnings=[f"reference {reference!r} has no runs here (variants: {names}); no table"])
            )
            continue
        result = stats.ablation_table(
            sub,
            reference=reference,
            value=value,
            key=key,
            variant_col=variant_col,
            alpha=alpha,
            rope=rope,
            seed=seed,
            n_resamples=n_resamples,
            n_examples=n_examples_column(value),
        )
        sec = Section(heading)
        tab = result.frame
        if tab.empty:
            sec.warnings.append(f"only the reference {reference!r} has runs: nothing to compare")
            sections.append(sec)
            continue
        ns += [int(n) for n in tab["n"]]
        m_max = max(m_max, len(tab))
        family = f"the {len(tab)} variants vs {reference!r}" + (f" in {case}" if case is not None else "")
        sec.tables.append(
            format_comparisons(
                result,
                label="variant",
                percent=percent,
                rope=rope,
                title=f"Variants vs {reference!r}" + (f" ({case})" if case is not None else ""),
                slug=slugify(str(case) if case is not None else "ablation"),
                family=f"{family} (the ablation family)",
                role="ablation",
            )
        )
        where = f"{case}, " if case is not None else ""
        n_text = _n_text([int(n) for n in tab["n"]])
        order = [reference] + [n for n in names if n != reference]
        if fig_dir is not None:
            sec.figures.append(
                forest(
                    tab,
                    fig_path(fig_dir, "ablation", case, "forest"),
                    rope=rope,
                    percent=percent,
                    title=f"{case}: variant − {reference}" if case is not None else f"variant − {reference}",
                    caption=f"Mean paired difference in {value} (variant − {reference}, percentage points) with its "
                    f"95% bootstrap CI per variant; {where}{n_text}; colour: verdict after Holm over {family}.",
                )
            )
            sec.figures.append(
                box_strip(
                    sub,
                    fig_path(fig_dir, "ablation", case, "box"),
                    value=value,
                    by=variant_col,
                    order=order,
                    percent=percent,
                    title=f"{case}: {value}" if case is not None else value,
                    caption=f"{value} of every run (one point per seed) with box plots per variant; {where}{n_text}.",
                )
            )
        wide = sub.pivot(index=key, columns=variant_col, values=value)
        wide = wide[[c for c in order if c in wide.columns]]
        if wide.shape[1] >= 3 and len(wide.dropna()) >= 2:
            fr = stats.friedman(wide, alpha=alpha)
            friedman_used = True
            ranks = fr["ranks"].sort_values()
            sec.tables.append(
                Table(
                    data=pd.DataFrame(
                        {"variant": [str(i) for i in ranks.index], "average rank": [f"{r:.2f}" for r in ranks]}
                    ),
                    title="Friedman average ranks" + (f" ({case})" if case is not None else ""),
                    caption=(
                        f"Friedman test over k={fr['k']} variants on N={fr['n']} complete seeds: "
                        f"χ² = {fr['statistic']:.2f}, p = {fmt_p(fr['p'])}; Nemenyi critical difference "
                        f"(α = {alpha:g}) = {fr['cd']:.2f} average ranks (rank 1 = best)."
                    ),
                    numeric=pd.DataFrame(
                        {"variant": [str(i) for i in ranks.index], "average_rank": ranks.to_numpy(), "cd": fr["cd"]}
                    ),
                    warnings=list(fr["warnings"]),
                    slug=slugify(f"friedman-{case}" if case is not None else "friedman"),
                    role="friedman",
                )
            )
            if fig_dir is not None:
                sec.figures.append(
                    cd_diagram(
                        fr["ranks"],
                        fr["cd"],
                        fig_path(fig_dir, "ablation", case, "cd"),
                        title=f"{case}: critical difference (Nemenyi, α={alpha:g})"
                        if case is not None
                        else f"critical difference (Nemenyi, α={alpha:g})",
                        caption=f"Average rank of each variant over the {fr['n']} seeds every variant ran "
                        f"(1 = best); variants joined by a bar are not significantly different (Nemenyi, "
                        f"α = {alpha:g}). Friedman p = {fmt_p(fr['p'])}.",
                    )
                )
        elif wide.shape[1] >= 3:
            sec.warnings.append("Friedman test skipped: fewer than 2 seeds have runs of every variant")
        sections.append(sec)
    if ns and with_methods:
        sections.append(
            methods_section(
                ns,
                alpha,
                rope,
                n_resamples,
                seed,
                f"the {m_max} variant-vs-{reference!r} comparisons within each case",
                friedman_used=friedman_used,
            )
        )
    return sections


def _n_text(ns: Sequence[int]) -> str:
    lo, hi = min(ns), max(ns)
    return f"n = {lo} paired seeds" if lo == hi else f"n = {lo} to {hi} paired seeds"


def combined_methods_section(
    sections: Sequence[Section], *, alpha: float, rope: float | None, n_resamples: int = 9999, seed: int = 0
) -> Section | None:
    """One Methods paragraph for a report whose sections hold several Holm families (ablation tables and
    the transfer comparison): a report has one Methods section, which names every family."""
    ns: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}
    friedman_used = False
    for sec in sections:
        for tb in sec.tables:
            role = getattr(tb, "role", "")
            friedman_used |= role == "friedman"
            if role in ("ablation", "transfer") and tb.numeric is not None and "n" in tb.numeric:
                ns.setdefault(role, []).extend(int(n) for n in tb.numeric["n"])
                sizes[role] = max(sizes.get(role, 0), len(tb.numeric))
    if not ns:
        return None
    families = []
    if "ablation" in ns:
        families.append(f"the (up to {sizes['ablation']}) variant-vs-reference comparisons within each case")
    if "transfer" in ns:
        families.append(
            f"{'separately, ' if families else ''}the {sizes['transfer']} transfer case(s) of each technique "
            "vs the benchmark"
        )
    return methods_section(
        [n for v in ns.values() for n in v],
        alpha,
        rope,
        n_resamples,
        seed,
        " and, ".join(families),
        friedman_used=friedman_used,
        wilcoxon_used="transfer" in ns,
    )


def methods_section(
    ns: list[int], alpha: float, rope: float | None, n_resamples: int, seed: int, corrected_over: str, **kw: bool
) -> Section:
    """The Methods paragraph (stats.methods_paragraph) for the most common number of paired seeds, with a
    warning when comparisons rest on different numbers, so a pasted paragraph never overstates n."""
    counts = pd.Series(ns).value_counts()
    n_seeds = int(counts.index[0])
    sec = Section(
        "Methods",
        text=stats.methods_paragraph(
            n_seeds=n_seeds,
            alpha=alpha,
            rope=rope,
            n_resamples=n_resamples,
            seed=seed,
            corrected_over=corrected_over,
            **kw,
        ),
    )
    if len(counts) > 1:
        sec.warnings.append(
            f"the number of paired seeds varies across comparisons ({min(ns)} to {max(ns)}); the paragraph states "
            f"the most common, n={n_seeds}: edit it if you report the others"
        )
    return sec


def transfer_report_sections(
    df: pd.DataFrame,
    *,
    method: str | Sequence[str] | None,
    baseline: str,
    value: str = "test_accuracy",
    alpha: float = 0.05,
    rope: float | None = None,
    seed: int = 0,
    n_resamples: int = 9999,
    fig_dir: str | Path | None = None,
    percent: bool = True,
    cases: Sequence[str] | None = None,
    case_col: str = "case",
    key: str = "seed",
    variant_col: str = "variant",
    with_methods: bool = True,
    family_note: str = "",
) -> list[Section]:
    """Paper table (benchmark + techniques × cases, bold best, † significant), then per technique the
    per-case verdicts vs the benchmark, the win/tie/loss summary and the Wilcoxon signed-rank line, and
    a Methods section (``with_methods=False``: the caller writes one for the whole report). ``family_note`` is
    added to each technique's text: where the same comparison also sits in another Holm family."""
    cases = list(cases) if cases is not None else list(pd.unique(df[case_col].dropna()))
    sig, summaries = significance_rows(
        df,
        method=method,
        baseline=baseline,
        value=value,
        alpha=alpha,
        rope=rope,
        seed=seed,
        n_resamples=n_resamples,
        case_col=case_col,
        key=key,
        variant_col=variant_col,
    )
    methods = list(summaries)
    rows = [*methods, baseline]  # the paper puts the benchmark last
    block = paper_table_block(
        df,
        rows=rows,
        value=value,
        cases=cases,
        percent=percent,
        significant=significance_mask(sig, rows=rows, cases=cases),
        title=f"{value}{' (%)' if percent else ''} per transfer case",
        case_col=case_col,
        variant_col=variant_col,
        key=key,
    )
    sections = [
        Section(
            "Results table",
            text=f"Benchmark: {baseline}. {DAGGER} marks a significant difference from the benchmark "
            f"(Holm over the cases of each technique, α = {alpha:g}).",
            tables=[block],
        )
    ]
    ns: list[int] = []
    for m in methods:
        rows_m = sig[sig["variant"] == m].reset_index(drop=True) if not sig.empty else sig
        s = summaries[m]
        ns += [int(n) for n in rows_m["n"]] if not rows_m.empty else []
        wilcoxon = (
            f"Wilcoxon signed-rank test on the {s['n_cases']} per-case mean differences: "
            + (
                f"W = {s['wilcoxon_statistic']:g}, p = {fmt_p(s['wilcoxon_p'])}"
                if finite(s["wilcoxon_statistic"])
                else f"not computed (p = {fmt_p(s['wilcoxon_p'])}: no non-zero per-case difference)"
            )
            + f"; smallest attainable p = {s['wilcoxon_min_p']:.3g}."
        )
        scale, unit = (100.0, " pp") if percent else (1.0, "")
        text = (
            f"{m} vs {baseline}: {s['wins']} win(s), {s['ties']} tie(s), {s['losses']} loss(es) over "
            f"{s['n_cases']} case(s) (ties include {s['n_equivalent']} equivalent and "
            f"{s['n_descriptives_only']} descriptives-only); mean per-case Δ = "
            f"{fmt_num(s['mean_delta'] * scale if finite(s['mean_delta']) else math.nan)}{unit}. {wilcoxon}"
        )
        if s["negative_transfer_cases"]:
            text += f" Negative transfer (significantly worse) in: {', '.join(map(str, s['negative_transfer_cases']))}."
        family = f"the {len(rows_m)} case(s) of {m} vs {baseline} (the transfer family)"
        if family_note:
            text += "\n\n" + family_note
        sec = Section(f"{m} vs {baseline}", text=text, warnings=list(s["warnings"]))
        if not rows_m.empty:
            sec.tables.append(
                format_comparisons(
                    stats.TableResult(rows_m, alpha=alpha),
                    label="case",
                    percent=percent,
                    title=f"{m} vs {baseline} per case",
                    slug=slugify(m),
                    rope=rope,
                    family=family,
                    role="transfer",
                )
            )
            if fig_dir is not None:
                sec.figures.append(
                    forest(
                        rows_m,
                        fig_path(fig_dir, "transfer", m, "forest"),
                        label="case",
                        rope=rope,
                        percent=percent,
                        title=f"{m} − {baseline} per case",
                        caption=f"Mean paired difference in {value} ({m} − {baseline}, percentage points) with "
                        f"its 95% bootstrap CI per transfer case; {_n_text([int(n) for n in rows_m['n']])}; "
                        f"colour: verdict after Holm over {family}.",
                    )
                )
        sections.append(sec)
    if ns and with_methods:
        sections.append(
            methods_section(
                ns,
                alpha,
                rope,
                n_resamples,
                seed,
                "the transfer cases of each technique separately",
                wilcoxon_used=True,
            )
        )
    return sections
