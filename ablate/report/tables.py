"""The statistics tables: the paper's layout (mean ± SD per variant and case, bold best, † significant) and
the significance tables (technique or variant vs its reference, paired by seed).

Nothing here computes a test or an interval: every statistic comes from :mod:`ablate.analysis.stats`; this module
only arranges and formats it. Holm families are the ones :mod:`ablate.analysis.stats` uses (ablation: the variants
of one case vs the reference; transfer: the cases of one technique vs the benchmark).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ablate.analysis import power, stats
from ablate.errors import AblateError
from ablate.report.model import (
    DAGGER,
    DASH,
    Table,
    finite,
    fmt_delta_ci,
    fmt_mean_sd,
    fmt_p,
    footnotes,
    require,
)

__all__ = [
    "constant_columns",
    "format_comparisons",
    "n_examples_column",
    "paper_table",
    "paper_table_block",
    "significance_mask",
    "significance_rows",
]

SIGNIFICANT = ("better", "worse")
N_EXAMPLES = {"test_accuracy": "n_test", "val_accuracy": "n_val"}


def n_examples_column(value: str) -> str | None:
    """The tidy column holding N of a count-ratio metric (accuracy = correct / N), so the sign-flip test
    counts ties on whole examples (its exact integer path); None for other metrics (tolerance path)."""
    return N_EXAMPLES.get(value)


def constant_columns(shown: pd.DataFrame, keep: Sequence[str] = ()) -> tuple[pd.DataFrame, list[str]]:
    """Drop columns whose every cell is the same (with two or more rows) and say them once instead:
    a constant column spends width on nothing, and at 1200 px width is what a table lacks."""
    if len(shown) < 2:
        return shown, []
    notes, drop = [], []
    for c in shown.columns:
        if c in keep:
            continue
        vals = shown[c].astype(str)
        if vals.nunique() == 1:
            drop.append(c)
            if vals.iloc[0].strip():
                notes.append(f"{c}: {vals.iloc[0]} in every row")
    return shown.drop(columns=drop), notes


# ---------------------------------------------------------------------------------------- paper table


def _paper_numeric(
    df: pd.DataFrame,
    *,
    rows: Sequence[str],
    value: str,
    cases: Sequence[str],
    percent: bool,
    case_col: str,
    variant_col: str,
    key: str,
) -> tuple[pd.DataFrame, list[str]]:
    require(df, case_col, variant_col, value)
    rows = [str(r) for r in rows]
    if not rows:
        raise AblateError("paper_table needs at least one row (variant)")
    if len(set(rows)) != len(rows):
        raise AblateError(f"paper_table rows repeat a variant: {rows}")
    available = [str(v) for v in pd.unique(df[variant_col].dropna())]
    missing = [r for r in rows if r not in available]
    if missing:
        raise AblateError(f"variant(s) {missing} not in the runs (available: {available})")
    data = df[df[variant_col].astype(str).isin(rows)].copy()
    data[variant_col] = data[variant_col].astype(str)
    notes: list[str] = []
    if key in data.columns:
        dup = data[data.duplicated([variant_col, case_col, key], keep=False)]
        if len(dup):
            first = dup.iloc[0]
            raise AblateError(
                f"several runs for variant={first[variant_col]!r}, {case_col}={first[case_col]!r}, "
                f"{key}={first[key]!r}: aggregate or deduplicate them first"
            )
    n_nan = int(data[value].isna().sum())
    if n_nan:
        notes.append(f"{n_nan} run(s) with a missing {value!r} were left out")
    vals = data[value].dropna().astype(float)
    if percent and len(vals) and (vals.min() < 0 or vals.max() > 1):
        raise AblateError(
            f"{value!r} has values outside [0, 1] (min {vals.min():g}, max {vals.max():g}): "
            "already in percent? pass percent=False"
        )
    scale = 100.0 if percent else 1.0
    data = data.dropna(subset=[value])
    cols: dict[str, list[float]] = {}
    for case in cases:
        sub = data[data[case_col] == case]
        g = sub.groupby(variant_col)[value]
        mean, sd, n = g.mean() * scale, g.std(ddof=1) * scale, g.count()
        cols[f"{case}_mean"] = [float(mean.get(r, math.nan)) for r in rows]
        cols[f"{case}_sd"] = [float(sd.get(r, math.nan)) for r in rows]
        cols[f"{case}_n"] = [int(n.get(r, 0)) for r in rows]
    out = pd.DataFrame(cols, index=pd.Index(rows, name="variant"))
    empty_cases = [c for c in cases if (out[f"{c}_n"] == 0).all()]
    if empty_cases:
        notes.append(f"no runs for case(s): {', '.join(map(str, empty_cases))}")
    holes = [f"{r} / {c}" for c in cases if c not in empty_cases for r in rows if out.at[r, f"{c}_n"] == 0]
    if holes:
        notes.append(f"no runs for: {', '.join(holes)}")
    single = [f"{r} / {c}" for c in cases for r in rows if out.at[r, f"{c}_n"] == 1]
    if single:
        notes.append(f"one run only (SD undefined, mean shown alone): {', '.join(single)}")
    ns = {int(out.at[r, f"{c}_n"]) for c in cases for r in rows if out.at[r, f"{c}_n"] > 0}
    if len(ns) > 1:
        notes.append(f"cells rest on different numbers of seeds (n from {min(ns)} to {max(ns)}); see the CSV")
    extra = [c for c in pd.unique(data[case_col].dropna()) if c not in set(cases)]
    if extra:
        notes.append(f"runs of case(s) not shown in the table: {', '.join(map(str, extra))}")
    return out, notes


def paper_table(
    df: pd.DataFrame,
    *,
    rows: Sequence[str],
    value: str = "test_accuracy",
    cases: Sequence[str] | None = None,
    percent: bool = True,
    decimals: int | None = None,
    formatted: bool = True,
    case_col: str = "case",
    variant_col: str = "variant",
    key: str = "seed",
) -> stats.TableResult:
    """The paper's layout: rows = ``rows`` (variants, in that order), columns = ``cases``, cells
    ``mean±sd`` (sample SD, ddof=1) in percent with 2 decimals, e.g. ``97.03±0.02``.

    ``formatted=False`` returns the numeric twin instead: columns ``<case>_mean``, ``<case>_sd``,
    ``<case>_n`` (percent when ``percent``). Either comes as a :class:`~ablate.analysis.stats.TableResult`
    whose ``warnings`` name missing cells, single runs and unequal n. Raises AblateError for unknown variants, duplicate
    (variant, case, seed) runs, and fractions expected but values outside [0, 1].
    """
    cases = list(cases) if cases is not None else list(pd.unique(df[case_col].dropna()))
    numeric, notes = _paper_numeric(
        df, rows=rows, value=value, cases=cases, percent=percent, case_col=case_col, variant_col=variant_col, key=key
    )
    if not formatted:
        return stats.TableResult(numeric, tuple(notes))
    d = (2 if percent else 4) if decimals is None else decimals
    out = pd.DataFrame(
        {
            case: [fmt_mean_sd(numeric.at[r, f"{case}_mean"], numeric.at[r, f"{case}_sd"], d) for r in numeric.index]
            for case in cases
        },
        index=numeric.index.copy(),
    )
    return stats.TableResult(out, tuple(notes))


def _best_mask(numeric: pd.DataFrame, rows: Sequence[str], cases: Sequence[str], decimals: int) -> pd.DataFrame:
    mask = pd.DataFrame(False, index=pd.Index(list(rows), name="variant"), columns=list(cases))
    for case in cases:
        means = numeric[f"{case}_mean"].round(decimals)
        if means.notna().any():
            mask[case] = (means == means.max()).to_numpy()
    return mask


def paper_table_block(
    df: pd.DataFrame,
    *,
    rows: Sequence[str],
    value: str = "test_accuracy",
    cases: Sequence[str] | None = None,
    percent: bool = True,
    decimals: int | None = None,
    significant: pd.DataFrame | None = None,
    title: str | None = None,
    case_col: str = "case",
    variant_col: str = "variant",
    key: str = "seed",
) -> Table:
    """:func:`paper_table` with its numeric twin, bold best-per-column and † where ``significant`` is True
    (a boolean DataFrame, rows × cases, e.g. from :func:`significance_mask`)."""
    cases = list(cases) if cases is not None else list(pd.unique(df[case_col].dropna()))
    kw = {"case_col": case_col, "variant_col": variant_col, "key": key}
    result = paper_table(df, rows=rows, value=value, cases=cases, percent=percent, decimals=decimals, **kw)
    shown = result.frame
    numeric = paper_table(df, rows=rows, value=value, cases=cases, percent=percent, formatted=False, **kw).frame
    d = (2 if percent else 4) if decimals is None else decimals
    dagger = None
    if significant is not None:
        dagger = significant.reindex(index=shown.index, columns=shown.columns).fillna(False).astype(bool)
    unit = " (%)" if percent else ""
    caption = (
        f"Mean ± sample standard deviation (ddof=1) over seeds of {value}{unit}; bold: best mean per case "
        "(at the shown precision)"
        + (
            f"; {DAGGER}: significantly different from the benchmark after Holm correction"
            if dagger is not None
            else ""
        )
        + "."
    )
    return Table(
        data=shown,
        title=title if title is not None else f"{value}{unit} per case",
        caption=caption,
        numeric=numeric,
        bold=_best_mask(numeric, shown.index, cases, d),
        dagger=dagger,
        warnings=list(result.warnings),
        slug="paper-table",
    )


# ---------------------------------------------------------------------------------------- significance


def significance_rows(
    df: pd.DataFrame,
    *,
    method: str | Sequence[str] | None,
    baseline: str,
    value: str = "test_accuracy",
    alpha: float = 0.05,
    rope: float | None = None,
    seed: int = 0,
    n_resamples: int = 9999,
    case_col: str = "case",
    key: str = "seed",
    variant_col: str = "variant",
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Technique vs benchmark per case, via :func:`ablate.analysis.stats.transfer_verdicts` (Holm across the cases of
    each technique). ``method``: one technique, several, or None = every variant except ``baseline``.

    Returns the stats rows of all techniques stacked (``variant`` = technique) with ``delta_pp``,
    ``ci_low_pp``, ``ci_high_pp`` (percentage points, i.e. ×100) and ``significant`` (verdict better or
    worse) added, and ``{technique: summary}`` with the win/tie/loss + Wilcoxon summary of each.
    """
    require(df, variant_col)
    if method is None:
        methods = [str(v) for v in pd.unique(df[variant_col].dropna()) if str(v) != baseline]
    elif isinstance(method, str):
        methods = [method]
    else:
        methods = [str(m) for m in method]
    if not methods:
        raise AblateError(f"no technique to compare with the benchmark {baseline!r}")
    available = {str(v) for v in pd.unique(df[variant_col].dropna())}
    missing = [m for m in [baseline, *methods] if m not in available]
    if missing:
        raise AblateError(f"variant(s) {missing} not in the runs (available: {sorted(available)})")
    frames, summaries = [], {}
    for m in methods:
        per_case, summary = stats.transfer_verdicts(
            df,
            method=m,
            baseline=baseline,
            case_col=case_col,
            value=value,
            key=key,
            variant_col=variant_col,
            alpha=alpha,
            rope=rope,
            seed=seed,
            n_resamples=n_resamples,
            n_examples=n_examples_column(value),
        )
        frames.append(per_case)
        summaries[m] = summary
    out = (
        pd.concat([f for f in frames if not f.empty], ignore_index=True)
        if any(not f.empty for f in frames)
        else pd.DataFrame()
    )
    if not out.empty:
        for col in ("delta", "ci_low", "ci_high"):
            out[f"{col}_pp"] = out[col].astype(float) * 100.0
        out["significant"] = out["verdict"].isin(SIGNIFICANT)
    return out, summaries


def significance_mask(sig: pd.DataFrame, *, rows: Sequence[str], cases: Sequence[str] | None = None) -> pd.DataFrame:
    """Boolean rows × cases: True where :func:`significance_rows` found a significant difference (for †)."""
    if cases is None:
        cases = list(pd.unique(sig["case"].dropna())) if "case" in sig.columns else []
    mask = pd.DataFrame(False, index=pd.Index(list(rows), name="variant"), columns=list(cases))
    if sig.empty:
        return mask
    for _, r in sig.iterrows():
        if r["variant"] in mask.index and r["case"] in mask.columns and bool(r["significant"]):
            mask.at[r["variant"], r["case"]] = True
    return mask


def _seeds_note(row: pd.Series, family: int) -> str:
    """How many paired seeds the observed Δ would need. A row that carries ``seeds_needed`` (a confirmation:
    the exact test simulated with Holm, ablate.analysis.power.Advice.shown) shows that figure, the one its summary table
    shows. Otherwise: the noncentral t, 80% power, Holm's first step over the family; ``ablate seeds``
    simulates the exact test with the whole Holm procedure, which can differ either way (see ablate.analysis.power).
    When the t answer is below what the exact test can ever reach (a large, consistent Δ on too few seeds),
    the floor is the answer."""
    given = row.get("seeds_needed")
    if isinstance(given, str):
        return f" (seeds for power 0.8: {given})" if given else ""
    delta, sd = row.get("delta"), row.get("delta_sd")
    if not (finite(delta) and finite(sd)) or sd <= 0 or delta == 0:
        return ""
    n = power.t_seeds(float(delta), float(sd), m=family)
    floor = power.exact_floor(m=family)
    if n is None or n < floor:
        return f" (≥ {floor} seeds: with fewer the exact test cannot reach α after Holm over {family})"
    return f" (≈ {n} seeds for this Δ, t approx.)"


def format_comparisons(
    result: stats.TableResult,
    *,
    label: str = "variant",
    percent: bool = True,
    title: str = "",
    caption: str | None = None,
    slug: str | None = None,
    rope: float | None = None,
    family: str | None = None,
    role: str = "",
) -> Table:
    """Human columns for rows of ablate.analysis.stats (ablation_table / transfer_verdicts), the answer first: label,
    verdict, Δ [95% CI] (pp when ``percent``), p (Holm), then n, mean ± SD of each side, p, p (t), d_z and
    A12 with labels, and warning footnotes. A column equal in every row moves into the caption; median [IQR]
    stays in the numeric twin (the stats rows with pp columns, written to CSV/JSON). ``family`` names the
    Holm family in the caption (the same comparison may sit in two families of one report). ``result``'s
    table-level warnings follow the row footnotes."""
    tab = result.frame
    s, d = (100.0, 2) if percent else (1.0, 4)
    unit = "pp" if percent else "units"
    numeric = tab.copy()
    if tab.empty:
        return Table(data=pd.DataFrame(), title=title, numeric=numeric, warnings=list(result.warnings))
    ref = str(tab["reference"].iloc[0]) if "reference" in tab.columns else "reference"
    cells, notes = footnotes(list(tab["warnings"]))
    verdicts = []
    family_size = int(tab["p_holm"].notna().sum()) or 1
    for _, r in tab.iterrows():
        v = str(r["verdict"])
        if bool(r.get("negative_transfer", False)):
            v += " (negative transfer)"
        if v == "inconclusive":
            v += _seeds_note(r, family_size)
        verdicts.append(v)
    shown = pd.DataFrame(
        {
            label: [str(x) for x in tab[label]],
            "verdict": verdicts,
            f"Δ {unit} [95% CI]": [
                fmt_delta_ci(x * s, lo * s, hi * s, d)
                for x, lo, hi in zip(tab["delta"], tab["ci_low"], tab["ci_high"], strict=True)
            ],
            "p (Holm)": [fmt_p(p) for p in tab["p_holm"]],
            "n": [int(x) for x in tab["n"]],
            "mean ± SD": [
                fmt_mean_sd(m * s, sd * s, d) for m, sd in zip(tab["variant_mean"], tab["variant_sd"], strict=True)
            ],
            f"{ref} mean ± SD": [
                fmt_mean_sd(m * s, sd * s, d) for m, sd in zip(tab["reference_mean"], tab["reference_sd"], strict=True)
            ],
            "p": [fmt_p(p) for p in tab["p"]],
            "p (t)": [fmt_p(p) for p in tab["p_t"]],
            "d_z": [
                f"{x:.2f} ({lab})" if finite(x) else DASH for x, lab in zip(tab["d_z"], tab["d_z_label"], strict=True)
            ],
            "A12": [
                f"{x:.2f} ({lab})" if finite(x) else DASH for x, lab in zip(tab["a12"], tab["a12_label"], strict=True)
            ],
            "notes": cells,
        }
    )
    shown, constant = constant_columns(shown, keep=[label, "verdict"])
    if percent:
        for col in ("delta", "ci_low", "ci_high"):
            numeric[f"{col}_pp"] = numeric[col].astype(float) * 100.0
    numeric["warnings"] = ["; ".join(w or []) for w in tab["warnings"]]
    if caption is None:
        caption = (
            f"Δ = {label if label == 'variant' else 'method'} − {ref}, paired by seed"
            + (" (percentage points)" if percent else "")
            + "; p: exact sign-flip permutation test; p (Holm): Holm-adjusted over "
            + (family or "the rows of this table")
            + "; "
            "p (t): paired t-test (sensitivity check); mean ± sample SD over the paired seeds"
            + (f"; ROPE ±{rope * s:g} {unit} (rope={rope:g} in value units, as in the warnings)" if rope else "")
            + "; median and IQR are in the CSV."
            + (f" {'; '.join(constant)}." if constant else "")
        )
    return Table(
        data=shown,
        title=title,
        caption=caption,
        numeric=numeric,
        warnings=notes + list(result.warnings),
        slug=slug,
        role=role,
    )
