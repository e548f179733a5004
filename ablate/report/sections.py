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

import numpy as np
import pandas as pd

from ablate.analysis import stats
from ablate.report.figures import box_strip, cd_diagram, forest, importance_bars, importance_frame, mk_heatmap
from ablate.report.model import DAGGER, DASH, Section, Table, finite, fmt_num, fmt_p, footnotes, require, slugify
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
    "sensitivity_methods_section",
    "sensitivity_report_sections",
    "transfer_report_sections",
]


def _case_order(df: pd.DataFrame, case_col: str, cases: Sequence[str] | None) -> list[Any]:
    if case_col not in df.columns:
        return [None]
    present = list(pd.unique(df[case_col].dropna()))
    if cases is not None:
        return [c for c in cases if c in present]
    return present


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
            n_examples=n_examples_column(value),
        )
        sec = Section(heading)
        if tab.empty:
            sec.warnings.append(f"only the reference {reference!r} has runs: nothing to compare")
            sections.append(sec)
            continue
        ns += [int(n) for n in tab["n"]]
        m_max = max(m_max, len(tab))
        family = f"the {len(tab)} variants vs {reference!r}" + (f" in {case}" if case is not None else "")
        sec.tables.append(
            format_comparisons(
                tab,
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
                    _fig_path(fig_dir, "ablation", case, "forest"),
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
                    _fig_path(fig_dir, "ablation", case, "box"),
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
                        _fig_path(fig_dir, "ablation", case, "cd"),
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
        family = f"the {len(rows_m)} case(s) of {m} vs {baseline} (the transfer family)"
        if family_note:
            text += "\n\n" + family_note
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
                    family=family,
                    role="transfer",
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


_NOT_PARAMS = {"case", "variant", "seed", "val_accuracy", "test_accuracy", "trial", "number", "state"}

#: What PED-ANOVA and fANOVA measure, in the words the report uses to explain a disagreement between them.
EVALUATOR_NOTE = (
    "PED-ANOVA compares the distribution of each parameter in the top 10% of trials with all trials (what sets "
    "the best configurations apart); fANOVA explains the variance of the objective over all trials (what moves "
    "the value anywhere in the space). A parameter that ruins some trials but does not distinguish the best "
    "ones ranks high for fANOVA and low for PED-ANOVA; compare rankings, not magnitudes."
)


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


def _presence(df: pd.DataFrame, param: str, conditions: Mapping[str, str]) -> str:
    """``14 of 89 (only when generator=gmm)`` for a conditional parameter, ``89`` for one every trial has."""
    n, total = int(df[param].notna().sum()) if param in df else 0, len(df)
    if param in conditions or n < total:
        when = f" (only when {conditions[param]})" if param in conditions else ""
        return f"{n} of {total}{when}"
    return str(total)


def _importance_section(
    importances: Mapping[str, Mapping[str, float]],
    df: pd.DataFrame,
    labels: Mapping[str, str],
    conditions: Mapping[str, str],
    fig_dir: str | Path | None,
) -> Section:
    imp = importance_frame(importances)
    shown = imp.apply(lambda col: [fmt_num(v, 3) for v in col])
    ranks = imp.rank(ascending=False, method="min")
    shown.insert(0, "trials", [_presence(df, p, conditions) for p in imp.index])
    for col in imp.columns:
        shown[f"rank ({col})"] = [str(int(r)) if finite(r) else DASH for r in ranks[col]]
    shown.index = pd.Index([labels.get(p, p) for p in imp.index], name="parameter")
    numeric = imp.copy()
    numeric["trials"] = [int(df[p].notna().sum()) if p in df else 0 for p in imp.index]
    sec = Section(
        "Parameter importances",
        text=f"Importances as reported by each evaluator (not recomputed here). {EVALUATOR_NOTE} A conditional "
        "parameter is scored on the trials where it exists (column trials).",
        tables=[Table(data=shown, title="Importances", numeric=numeric, slug="importances", role="importances")],
    )
    if fig_dir is not None:
        n = len(df)
        sec.figures.append(
            importance_bars(
                {k: {labels.get(p, p): v for p, v in d.items()} for k, d in importances.items()},
                _fig_path(fig_dir, "sensitivity", "importances"),
                caption=f"Importance of each parameter as reported by each evaluator over {n} complete trials, "
                "ordered by the first evaluator; lengths are not comparable across evaluators.",
            )
        )
    return sec


def _ordered(sub: pd.DataFrame, param: str, default: Any) -> pd.DataFrame:
    """Rows reordered so the non-default level comes first: a binary comparison reads 'level vs default'."""
    first = (sub[param] != default).to_numpy()
    return sub.iloc[np.argsort(~first, kind="stable")]


def _marginal_rows(
    sub: pd.DataFrame, params: Sequence[str], value: str, mode: str, alpha: float, defaults: Mapping[str, Any]
) -> list[pd.DataFrame]:
    """stats.marginal_tests per parameter: one row for a binary parameter (non-default vs default level),
    one per level otherwise (``mode``)."""
    frames = []
    for p in params:
        if p not in sub:
            continue
        levels = pd.unique(sub[p].dropna())
        if len(levels) == 2:
            data = _ordered(sub, p, defaults.get(p, levels[1]))
            f = stats.marginal_tests(data, param=p, value=value, mode="pairwise", alpha=alpha)
        else:
            f = stats.marginal_tests(sub, param=p, value=value, mode=mode, alpha=alpha)
        if not f.empty:
            frames.append(f)
    return frames


def _marginal_section(
    sub: pd.DataFrame,
    case: Any,
    params: Sequence[str],
    *,
    value: str,
    mode: str,
    alpha: float,
    percent: bool,
    labels: Mapping[str, str],
    defaults: Mapping[str, Any],
    conditions: Mapping[str, str],
) -> Section | None:
    frames = _marginal_rows(sub, params, value, mode, alpha, defaults)
    if not frames:
        return None
    tab = pd.concat(frames, ignore_index=True)
    total = len(sub)
    row_notes = []
    for _, r in tab.iterrows():
        notes = list(r["warnings"])
        if r["param"] in conditions:
            notes.append(
                f"{labels.get(r['param'], r['param'])} exists only when {conditions[r['param']]}: compared on "
                f"those {int(sub[r['param']].notna().sum())} of {total} trials"
            )
        row_notes.append(notes)
    cells, notes = footnotes(row_notes)
    scale, d = (100.0, 2) if percent else (1.0, 4)
    unit = "pp" if percent else "units"
    shown = pd.DataFrame(
        {
            "parameter": [labels.get(p, p) for p in tab["param"]],
            "comparison": [f"{a} vs {b}" for a, b in zip(tab["level"], tab["other"], strict=True)],
            "n trials": [f"{a} vs {b}" for a, b in zip(tab["n_level"], tab["n_other"], strict=True)],
            f"Δ {unit}": [f"{v * scale:+.{d}f}" if finite(v) else DASH for v in tab["delta"]],
            "means": [
                f"{fmt_num(a * scale, d)} vs {fmt_num(b * scale, d)}"
                for a, b in zip(tab["mean_level"], tab["mean_other"], strict=True)
            ],
            "p MWU (Holm)": [fmt_p(p) for p in tab["p_mwu_holm"]],
            "p Welch (Holm)": [fmt_p(p) for p in tab["p_welch_holm"]],
            "A12": [
                f"{a:.2f} ({lab})" if finite(a) else DASH for a, lab in zip(tab["a12"], tab["a12_label"], strict=True)
            ],
            "notes": cells,
        }
    )
    numeric = tab.copy()
    numeric["warnings"] = ["; ".join(w) for w in row_notes]
    dropped = " were dropped"  # stats' note on trials without a conditional parameter: said per row instead
    extra = sorted(
        {
            w
            for f in frames
            for w in f.attrs.get("warnings", [])
            if w != stats.TPE_CONFOUNDING_WARNING and not w.endswith(dropped)
        }
    )
    where = f" ({case})" if case is not None else ""
    return Section(
        "Marginal tests" + (f": {case}" if case is not None else ""),
        text=f"{value} of the trials at one level of each categorical parameter against the others: a binary "
        "parameter is one row (its non-default level vs the default), a parameter with more levels one row per "
        f"level ({mode}). Welch t and Mann–Whitney U, Holm-adjusted within each parameter; raw p-values are in "
        "the CSV. Descriptive only: trials were sampled adaptively (see the warnings).",
        tables=[
            Table(
                data=shown,
                title="Marginal tests" + where,
                numeric=numeric,
                warnings=[stats.TPE_CONFOUNDING_WARNING, *notes, *extra],
                slug=slugify(f"marginal-{case}" if case is not None else "marginal"),
                role="marginal",
            )
        ],
    )


def _heatmap_section(
    sub: pd.DataFrame,
    case: Any,
    fig_dir: str | Path,
    *,
    x: str,
    y: str,
    value: str,
    percent: bool,
    labels: Mapping[str, str],
    conditions: Mapping[str, str],
) -> Section:
    n, total = int(sub[[x, y, value]].dropna().shape[0]), len(sub)
    cond = [f"{labels.get(c, c)} exists only when {conditions[c]}" for c in (x, y) if c in conditions]
    subset = f"{n} of {total} trials" + (f", {conditions.get(y) or conditions.get(x)}" if cond else "")
    lx, ly = labels.get(x, x), labels.get(y, y)
    return Section(
        f"{lx} × {ly}" + (f": {case}" if case is not None else ""),
        text=f"Mean {value} per {lx} × {ly} cell (n = trials per cell) over the {n} of {total} trials where both "
        f"exist{' (' + '; '.join(cond) + ')' if cond else ''}. Trials were sampled adaptively, so cells differ in "
        "size and in the other parameters.",
        figures=[
            mk_heatmap(
                sub,
                _fig_path(fig_dir, "sensitivity", case, "heatmap", x, y),
                x=x,
                y=y,
                value=value,
                percent=percent,
                title=(f"{case}: " if case is not None else "") + f"mean {value} ({subset})",
                caption=f"Mean {value} (%) per {lx} × {ly} cell with its number of trials; {subset}. Numeric "
                "axes with many values are cut into bins of about equal size (ranges include both ends).",
            )
        ],
    )


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
    labels: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    conditions: Mapping[str, str] | None = None,
) -> list[Section]:
    """Importances as given (e.g. ``{"PED-ANOVA": {...}, "fANOVA": {...}}``, side by side with their ranks and
    the number of trials each parameter exists in, not recomputed), marginal tests (stats.marginal_tests) per
    categorical parameter and case with the TPE confounding warning, and the ``x`` × ``y`` (M × K) heatmap per
    case. ``params`` None: every string/categorical/bool column with 2..20 levels that is not a run key or a
    metric. ``labels``: the name a reader sees per parameter (the switch's flag); ``defaults``: each switch's
    default level (a binary parameter is reported as its other level vs the default); ``conditions``: when a
    conditional parameter exists (``{"K": "generator=gmm"}``)."""
    require(df, value)
    labels, defaults, conditions = dict(labels or {}), dict(defaults or {}), dict(conditions or {})
    sections: list[Section] = []
    if importances:
        sections.append(_importance_section(importances, df, labels, conditions, fig_dir))
    params = list(params) if params is not None else _categorical_params(df, {value, case_col, x, y})
    for case in _case_order(df, case_col, None):
        sub = df if case is None else df[df[case_col] == case]
        sec = _marginal_section(
            sub,
            case,
            params,
            value=value,
            mode=mode,
            alpha=alpha,
            percent=percent,
            labels=labels,
            defaults=defaults,
            conditions=conditions,
        )
        if sec is not None:
            sections.append(sec)
        if fig_dir is not None and x in sub.columns and y in sub.columns and sub[[x, y, value]].dropna().shape[0]:
            sections.append(
                _heatmap_section(
                    sub, case, fig_dir, x=x, y=y, value=value, percent=percent, labels=labels, conditions=conditions
                )
            )
    if not params:
        sections.append(
            Section("Marginal tests", warnings=["no categorical parameter columns found: no marginal tests"])
        )
    return sections


def sensitivity_methods_section(
    *, n_trials: int, seeds: int, value: str, alpha: float, sampler: str | None, benchmark_pairs: int
) -> Section:
    """The Methods paragraph of a sampled study: sampling, importances, marginal tests, best vs benchmark.
    (A designed study's paragraph describes paired-seed tests over a family; this one must not.)"""
    how = f"Optuna's {sampler} sampler" if sampler else "the study's Optuna sampler (TPE unless chosen otherwise)"
    seeds_text = "one seed" if seeds == 1 else f"{seeds} seeds (the objective is their mean)"
    parts = [
        f"We sampled {n_trials} complete configurations with {how}; each trial trained {seeds_text} and was "
        f"scored on {value}. Parameter importances are PED-ANOVA (Watanabe et al., 2023; the top 10% of trials "
        "against all trials) and fANOVA (Hutter et al., 2014; variance decomposition over all trials with a "
        "random-forest surrogate), both as implemented in Optuna; a conditional parameter is scored on the "
        "trials where it exists. For each categorical parameter we compared the trials at one level with the "
        "trials at the other level(s) with Welch's t-test and the Mann–Whitney U test, Holm-adjusted within the "
        f"parameter (alpha = {alpha:g}), and report the Vargha–Delaney A12. An adaptive sampler does not assign "
        "levels at random, so these comparisons are descriptive, not confirmatory.",
    ]
    if benchmark_pairs:
        parts.append(
            f" The best trial (highest {value}) was compared with the no-transfer benchmark trained on the same "
            f"{'seed' if benchmark_pairs == 1 else f'{benchmark_pairs} seeds'}, paired by seed"
            + (
                f"; with fewer than {stats.MIN_N_TESTS} pairs this comparison is descriptive only."
                if benchmark_pairs < stats.MIN_N_TESTS
                else " (exact sign-flip test); the choice of the best trial on the same runs makes it optimistic."
            )
        )
    return Section("Methods", text="".join(parts))
