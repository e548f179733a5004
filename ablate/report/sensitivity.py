"""A sensitivity study's sections: parameter importances (fANOVA, PED-ANOVA), each categorical parameter's
marginal comparison of its levels, interaction heatmaps, and the methods paragraph that says what they can and
cannot claim (the trials were sampled adaptively)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ablate.analysis import stats
from ablate.report.figures import importance_bars, importance_frame, mk_heatmap
from ablate.report.model import DASH, Section, Table, finite, fmt_num, fmt_p, footnotes, require, slugify

__all__ = ["sensitivity_methods_section", "sensitivity_report_sections"]
from ablate.report.sections import case_order, fig_path

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
                fig_path(fig_dir, "sensitivity", "importances"),
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
) -> list[stats.TableResult]:
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
    tab = pd.concat([f.frame for f in frames], ignore_index=True)
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
        {w for f in frames for w in f.warnings if w != stats.TPE_CONFOUNDING_WARNING and not w.endswith(dropped)}
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
                fig_path(fig_dir, "sensitivity", case, "heatmap", x, y),
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
    for case in case_order(df, case_col, None):
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
