"""Report sections per study kind: designed ablations, transfer comparisons (the paper's tables) and sampled
sensitivity studies, each ending in a Methods paragraph a reader can paste.

Every section is built from the tidy runs DataFrame (one row per finished run: ``case``, ``variant``,
``seed``, ``val_accuracy``, ``test_accuracy``, extras) and never re-runs anything. Figures are written under
``fig_dir`` while the sections are built (None: no figures), so a Section refers to files that exist.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ablate import stats
from ablate.report.figures import box_strip, cd_diagram, forest, importance_bars, importance_frame, mk_heatmap
from ablate.report.model import DAGGER, DASH, Section, Table, finite, fmt_num, fmt_p, footnotes, require, slugify
from ablate.report.tables import format_comparisons, paper_table_block, significance_mask, significance_rows
from crossgen.config import CASES

__all__ = [
    "ablation_report_sections",
    "methods_section",
    "sensitivity_report_sections",
    "transfer_report_sections",
]


def _case_order(df: pd.DataFrame, case_col: str, cases: Sequence[str] | None) -> list[Any]:
    if case_col not in df.columns:
        return [None]
    present = list(pd.unique(df[case_col].dropna()))
    if cases is not None:
        return [c for c in cases if c in present]
    known = [c for c in CASES if c in present]
    return known + [c for c in present if c not in known]


def _fig_path(fig_dir: str | Path | None, *parts: Any) -> Path | None:
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
) -> list[Section]:
    """Per case: the ablation table (stats.ablation_table, Holm over the variants of that case), a CI forest
    plot and box+strip plot, and Friedman + CD diagram when >= 3 variants share >= 2 complete seeds; then
    a Methods section (stats.methods_paragraph). Figures are written under ``fig_dir`` (None: no figures).
    A case without the reference gets a section with a warning instead of a table."""
    require(df, variant_col, value)
    sections: list[Section] = []
    ns: list[int] = []
    m_max = 0
    friedman_used = False
    for case in _case_order(df, case_col, cases):
        sub = df if case is None else df[df[case_col] == case]
        heading = "Ablation" if case is None else f"Ablation: {case}"
        names = [str(v) for v in pd.unique(sub[variant_col].dropna())]
        if reference not in names:
            sections.append(
                Section(heading, warnings=[f"reference {reference!r} has no runs here (variants: {names}); no table"])
            )
            continue
        tab = stats.ablation_table(
            sub,
            reference=reference,
            value=value,
            key=key,
            variant_col=variant_col,
            alpha=alpha,
            rope=rope,
            seed=seed,
            n_resamples=n_resamples,
        )
        sec = Section(heading)
        if tab.empty:
            sec.warnings.append(f"only the reference {reference!r} has runs: nothing to compare")
            sections.append(sec)
            continue
        ns += [int(n) for n in tab["n"]]
        m_max = max(m_max, len(tab))
        sec.tables.append(
            format_comparisons(
                tab,
                label="variant",
                percent=percent,
                rope=rope,
                title=f"Variants vs {reference!r}" + (f" ({case})" if case is not None else ""),
                slug=slugify(str(case) if case is not None else "ablation"),
            )
        )
        order = [reference] + [n for n in names if n != reference]
        if fig_dir is not None:
            sec.figures.append(
                forest(
                    tab,
                    _fig_path(fig_dir, "ablation", case, "forest"),
                    rope=rope,
                    percent=percent,
                    title=f"{case}: variant − {reference}" if case is not None else f"variant − {reference}",
                )
            )
            sec.figures.append(
                box_strip(
                    sub,
                    _fig_path(fig_dir, "ablation", case, "box"),
                    value=value,
                    by=variant_col,
                    order=order,
                    percent=percent,
                    title=f"{case}: {value}" if case is not None else value,
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
                )
            )
            if fig_dir is not None:
                sec.figures.append(
                    cd_diagram(
                        fr["ranks"],
                        fr["cd"],
                        _fig_path(fig_dir, "ablation", case, "cd"),
                        title=f"{case}: critical difference (Nemenyi, α={alpha:g})"
                        if case is not None
                        else f"critical difference (Nemenyi, α={alpha:g})",
                    )
                )
        elif wide.shape[1] >= 3:
            sec.warnings.append("Friedman test skipped: fewer than 2 seeds have runs of every variant")
        sections.append(sec)
    if ns:
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
    cases: Sequence[str] = CASES,
    case_col: str = "case",
    key: str = "seed",
    variant_col: str = "variant",
) -> list[Section]:
    """Paper table (benchmark + techniques × cases, bold best, † significant), then per technique the
    per-case verdicts vs the benchmark, the win/tie/loss summary and the Wilcoxon signed-rank line, and
    a Methods section."""
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
        rows_m.attrs["warnings"] = []
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
        sec = Section(f"{m} vs {baseline}", text=text, warnings=list(s["warnings"]))
        if not rows_m.empty:
            sec.tables.append(
                format_comparisons(
                    rows_m,
                    label="case",
                    percent=percent,
                    title=f"{m} vs {baseline} per case",
                    slug=slugify(m),
                    rope=rope,
                )
            )
            if fig_dir is not None:
                sec.figures.append(
                    forest(
                        rows_m,
                        _fig_path(fig_dir, "transfer", m, "forest"),
                        label="case",
                        rope=rope,
                        percent=percent,
                        title=f"{m} − {baseline} per case",
                    )
                )
        sections.append(sec)
    if ns:
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


_NOT_PARAMS = {"case", "variant", "seed", "val_accuracy", "test_accuracy", "trial", "number", "state"}


def _categorical_params(df: pd.DataFrame, exclude: set[str], max_levels: int = 20) -> list[str]:
    out = []
    for c in df.columns:
        if c in exclude or c in _NOT_PARAMS:
            continue
        s = df[c]
        categorical = (
            isinstance(s.dtype, pd.CategoricalDtype)
            or pd.api.types.is_bool_dtype(s)
            or pd.api.types.is_string_dtype(s)
            or pd.api.types.is_object_dtype(s)
        )
        if categorical and 2 <= s.nunique(dropna=True) <= max_levels:
            out.append(str(c))
    return out


def sensitivity_report_sections(
    df: pd.DataFrame,
    importances: Mapping[str, Mapping[str, float]] | None = None,
    *,
    value: str = "val_accuracy",
    params: Sequence[str] | None = None,
    mode: str = "one-vs-rest",
    alpha: float = 0.05,
    fig_dir: str | Path | None = None,
    percent: bool = True,
    x: str = "M",
    y: str = "K",
    case_col: str = "case",
) -> list[Section]:
    """Importances as given (e.g. ``{"PED-ANOVA": {...}, "fANOVA": {...}}``, side by side, not recomputed),
    marginal tests (stats.marginal_tests) per categorical parameter and case with the TPE confounding
    warning, and the ``x`` × ``y`` (M × K) heatmap per case. ``params`` None: every string/categorical/bool
    column with 2..20 levels that is not a run key or a metric."""
    require(df, value)
    sections: list[Section] = []
    if importances:
        imp = importance_frame(importances)
        shown = imp.apply(lambda col: [fmt_num(v, 3) for v in col])
        sec = Section(
            "Parameter importances",
            text="Importances as reported by each evaluator (not recomputed here). Each method normalises "
            "differently: compare the ranking of parameters across columns, not the magnitudes.",
            tables=[Table(data=shown, title="Importances", numeric=imp, slug="importances")],
        )
        if fig_dir is not None:
            sec.figures.append(importance_bars(importances, _fig_path(fig_dir, "sensitivity", "importances")))
        sections.append(sec)
    params = list(params) if params is not None else _categorical_params(df, {value, case_col, x, y})
    scale, d = (100.0, 2) if percent else (1.0, 4)
    unit = "pp" if percent else "units"
    for case in _case_order(df, case_col, None):
        sub = df if case is None else df[df[case_col] == case]
        frames = [stats.marginal_tests(sub, param=p, value=value, mode=mode, alpha=alpha) for p in params]
        frames = [f for f in frames if not f.empty]
        if frames:
            tab = pd.concat(frames, ignore_index=True)
            cells, notes = footnotes(list(tab["warnings"]))
            shown = pd.DataFrame(
                {
                    "parameter": tab["param"].astype(str),
                    "level": tab["level"].astype(str),
                    "vs": tab["other"].astype(str),
                    "n": [f"{a} vs {b}" for a, b in zip(tab["n_level"], tab["n_other"], strict=True)],
                    "mean": [fmt_num(v * scale, d) for v in tab["mean_level"]],
                    "mean (vs)": [fmt_num(v * scale, d) for v in tab["mean_other"]],
                    f"Δ {unit}": [f"{v * scale:+.{d}f}" if finite(v) else DASH for v in tab["delta"]],
                    "p Welch": [fmt_p(p) for p in tab["p_welch"]],
                    "p Welch (Holm)": [fmt_p(p) for p in tab["p_welch_holm"]],
                    "p MWU": [fmt_p(p) for p in tab["p_mwu"]],
                    "p MWU (Holm)": [fmt_p(p) for p in tab["p_mwu_holm"]],
                    "A12": [
                        f"{a:.2f} ({lab})" if finite(a) else DASH
                        for a, lab in zip(tab["a12"], tab["a12_label"], strict=True)
                    ],
                    "warnings": cells,
                }
            )
            numeric = tab.copy()
            numeric["warnings"] = ["; ".join(w) for w in tab["warnings"]]
            extra = sorted(
                {w for f in frames for w in f.attrs.get("warnings", []) if w != stats.TPE_CONFOUNDING_WARNING}
            )
            sec = Section(
                "Marginal tests" + (f": {case}" if case is not None else ""),
                text=f"{value} per level of each categorical parameter ({mode}); Welch t and Mann–Whitney U, "
                "Holm-adjusted within each parameter. Descriptive only: see the warning.",
                tables=[
                    Table(
                        data=shown,
                        title="Marginal tests" + (f" ({case})" if case is not None else ""),
                        numeric=numeric,
                        warnings=notes + extra,
                        slug=slugify(f"marginal-{case}" if case is not None else "marginal"),
                    )
                ],
                warnings=[stats.TPE_CONFOUNDING_WARNING],
            )
            sections.append(sec)
        if fig_dir is not None and x in sub.columns and y in sub.columns and sub[[x, y, value]].dropna().shape[0]:
            sections.append(
                Section(
                    f"{x} × {y}" + (f": {case}" if case is not None else ""),
                    text=f"Mean {value} per {x} × {y} cell (n = trials per cell). Trials were sampled adaptively, "
                    "so cells differ in size and in the other parameters.",
                    figures=[
                        mk_heatmap(
                            sub,
                            _fig_path(fig_dir, "sensitivity", case, "heatmap", x, y),
                            x=x,
                            y=y,
                            value=value,
                            percent=percent,
                            title=f"{case}: mean {value}" if case is not None else f"mean {value}",
                        )
                    ],
                )
            )
    if not params:
        sections.append(
            Section("Marginal tests", warnings=["no categorical parameter columns found: no marginal tests"])
        )
    return sections
