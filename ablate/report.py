"""Presentation layer: paper tables, significance tables and full reports in Markdown, LaTeX, HTML, CSV, JSON.

Reports never re-run anything: every function takes the tidy runs DataFrame (one row per finished run,
columns ``case``, ``variant``, ``seed``, ``val_accuracy``, ``test_accuracy``, optional extras) and calls
:mod:`ablate.stats` for every number that is a statistic. Nothing here computes a test or an interval.

Decisions (stated here because readers paste these tables into papers)
----------------------------------------------------------------------
* ``±`` is the sample standard deviation over seeds (ddof=1), never the standard error; with one seed the
  cell shows the mean alone and a warning says the SD is undefined. Accuracies are shown in percent with
  two decimals; differences in percentage points (pp), signed.
* Bold = best mean per column (higher is better), compared at the displayed precision, so cells that
  read the same are bold together. † = significantly different from the benchmark after Holm correction
  (better *or* worse; the significance table says which).
* Holm families are the ones :mod:`ablate.stats` uses: ablation = the variants of one case vs the
  reference; transfer = the cases of one technique vs the benchmark (not across techniques).
* ``rope`` is in the value's units (0.005 = half a percentage point), exactly as in :mod:`ablate.stats`.
* Per-row warnings become numbered footnotes (``[1]``) in the human tables with the text listed under
  the table ("Warnings"); table- and section-level warnings are listed there too. The machine outputs
  (CSV, JSON) carry the full warning text in a ``warnings`` column / field.
* CSV holds the numeric twin of a table when it has one (full precision, percent where the table shows
  percent), otherwise the displayed cells. JSON holds both, plus bold/† marks and all warnings.
* Output is reproducible: no timestamps unless the caller passes them in ``metadata``.
* :func:`write_report` checks the output folder first, renders every file in memory, writes each to a
  temp file in the same folder and only then ``os.replace``-s them into place: a failure while rendering
  or writing leaves the previous files untouched and no partial or temp files behind.

API
---
``paper_table(df, *, rows, value, cases, percent, decimals, formatted) -> DataFrame``
``paper_table_block(df, *, rows, ..., significant) -> Table`` (bold + † marks attached)
``significance_rows(df, *, method, baseline, ...) -> (DataFrame, {method: summary})``,
``significance_mask(sig, *, rows, cases)``, ``format_comparisons(tab, *, label) -> Table``
``table_markdown / table_latex / table_html / table_csv (table) -> str``
``render_markdown / render_latex / render_html / render_json (sections) -> str``
``write_report(out_dir, name, sections, formats) -> list[Path]``, ``write_atomic(payloads)``
``ablation_report_sections / transfer_report_sections / sensitivity_report_sections -> list[Section]``
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ablate import stats
from ablate.errors import AblateError
from crossgen.config import CASES

__all__ = [
    "CASES",
    "FORMATS",
    "Section",
    "Table",
    "ablation_report_sections",
    "format_comparisons",
    "paper_table",
    "paper_table_block",
    "render_html",
    "render_json",
    "render_latex",
    "render_markdown",
    "sensitivity_report_sections",
    "significance_mask",
    "significance_rows",
    "table_csv",
    "table_html",
    "table_latex",
    "table_markdown",
    "transfer_report_sections",
    "write_atomic",
    "write_report",
]

FORMATS: tuple[str, ...] = ("md", "tex", "csv", "json", "html")
DASH = "–"
DAGGER = "†"
SIGNIFICANT = ("better", "worse")

# ---------------------------------------------------------------------------------------- containers


@dataclass(eq=False)
class Table:
    """A table as readers see it (``data``: display cells) plus what machines and markup need.

    ``numeric``: full-precision twin written to CSV/JSON. ``bold`` / ``dagger``: boolean masks aligned with
    ``data`` (index and columns). ``warnings``: shown under the table in every format.
    """

    data: pd.DataFrame
    title: str = ""
    caption: str = ""
    numeric: pd.DataFrame | None = None
    bold: pd.DataFrame | None = None
    dagger: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)
    slug: str | None = None

    def __post_init__(self) -> None:
        if not self.warnings:  # a DataFrame from ablate.stats carries its table-level warnings in attrs
            self.warnings = [str(w) for w in self.data.attrs.get("warnings", [])]


@dataclass(eq=False)
class Section:
    """One report section: a heading, plain text, tables, figures (paths or stems) and warnings."""

    title: str
    text: str = ""
    tables: list[Table | pd.DataFrame] = field(default_factory=list)
    figures: list[str | Path | tuple[Path, Path]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def as_table(obj: Table | pd.DataFrame) -> Table:
    """A bare DataFrame becomes a Table; its ``attrs`` ``title``/``warnings`` (as stats sets them) are kept."""
    if isinstance(obj, Table):
        return obj
    if isinstance(obj, pd.DataFrame):
        return Table(data=obj, title=str(obj.attrs.get("title", "")))
    raise AblateError(f"a report table must be a DataFrame or Table, got {type(obj).__name__}")


def _as_sections(sections: Section | Iterable[Section]) -> list[Section]:
    out = [sections] if isinstance(sections, Section) else list(sections)
    for s in out:
        if not isinstance(s, Section):
            raise AblateError(f"report sections must be Section objects, got {type(s).__name__}")
    return out


# ---------------------------------------------------------------------------------------- formatting


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt_num(x: Any, decimals: int = 2) -> str:
    return f"{float(x):.{decimals}f}" if _finite(x) else DASH


def fmt_mean_sd(mean: Any, sd: Any, decimals: int = 2) -> str:
    """``97.03±0.02``; the mean alone when the SD is undefined (one run); a dash when there is no run."""
    if not _finite(mean):
        return DASH
    return f"{mean:.{decimals}f}±{sd:.{decimals}f}" if _finite(sd) else f"{mean:.{decimals}f}"


def fmt_delta_ci(delta: Any, low: Any, high: Any, decimals: int = 2) -> str:
    """Signed difference with its CI: ``+2.01 [+1.50, +2.60]``."""
    if not _finite(delta):
        return DASH
    if _finite(low) and _finite(high):
        return f"{delta:+.{decimals}f} [{low:+.{decimals}f}, {high:+.{decimals}f}]"
    return f"{delta:+.{decimals}f}"


def fmt_p(p: Any) -> str:
    """Three decimals (``0.002``), scientific below 0.001 (``2.0e-04``) so small p are never shown as 0."""
    if not _finite(p):
        return DASH
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _cell(v: Any) -> str:
    """Generic cell text for DataFrames passed in raw (e.g. straight from ablate.stats)."""
    if v is None:
        return DASH
    if isinstance(v, str):
        return v
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return f"{float(v):.4g}" if math.isfinite(v) else DASH
    if isinstance(v, list | tuple | np.ndarray):
        return "; ".join(_cell(x) for x in v)
    if v is pd.NA or v is pd.NaT:
        return DASH
    return str(v)


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return s[:60].strip("-") or "table"


def _footnotes(row_warnings: Sequence[Sequence[str]], start: int = 1) -> tuple[list[str], list[str]]:
    """Per-row warning lists → cells like ``[1][2]`` and the numbered texts (identical texts share a number)."""
    numbers: dict[str, int] = {}
    cells = []
    for ws in row_warnings:
        refs = []
        for w in ws or []:
            if w not in numbers:
                numbers[w] = start + len(numbers)
            refs.append(f"[{numbers[w]}]")
        cells.append("".join(refs))
    return cells, [f"[{n}] {w}" for w, n in numbers.items()]


def _require(df: pd.DataFrame, *cols: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise AblateError(
            f"column(s) {', '.join(map(repr, missing))} not found (columns: {', '.join(map(str, df.columns))})"
        )


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
    _require(df, case_col, variant_col, value)
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
    cases: Sequence[str] = CASES,
    percent: bool = True,
    decimals: int | None = None,
    formatted: bool = True,
    case_col: str = "case",
    variant_col: str = "variant",
    key: str = "seed",
) -> pd.DataFrame:
    """The paper's layout: rows = ``rows`` (variants, in that order), columns = ``cases``, cells
    ``mean±sd`` (sample SD, ddof=1) in percent with 2 decimals, e.g. ``97.03±0.02``.

    ``formatted=False`` returns the numeric twin instead: columns ``<case>_mean``, ``<case>_sd``,
    ``<case>_n`` (percent when ``percent``). Warnings (missing cells, single runs, unequal n) are in
    ``attrs["warnings"]`` of either frame. Raises AblateError for unknown variants, duplicate
    (variant, case, seed) runs, and fractions expected but values outside [0, 1].
    """
    numeric, notes = _paper_numeric(
        df, rows=rows, value=value, cases=cases, percent=percent, case_col=case_col, variant_col=variant_col, key=key
    )
    if not formatted:
        numeric.attrs["warnings"] = notes
        return numeric
    d = (2 if percent else 4) if decimals is None else decimals
    out = pd.DataFrame(
        {
            case: [fmt_mean_sd(numeric.at[r, f"{case}_mean"], numeric.at[r, f"{case}_sd"], d) for r in numeric.index]
            for case in cases
        },
        index=numeric.index.copy(),
    )
    out.attrs["warnings"] = notes
    return out


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
    cases: Sequence[str] = CASES,
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
    kw = {"case_col": case_col, "variant_col": variant_col, "key": key}
    shown = paper_table(df, rows=rows, value=value, cases=cases, percent=percent, decimals=decimals, **kw)
    numeric = paper_table(df, rows=rows, value=value, cases=cases, percent=percent, formatted=False, **kw)
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
        warnings=list(shown.attrs.get("warnings", [])),
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
    """Technique vs benchmark per case, via :func:`ablate.stats.transfer_verdicts` (Holm across the cases of
    each technique). ``method``: one technique, several, or None = every variant except ``baseline``.

    Returns the stats rows of all techniques stacked (``variant`` = technique) with ``delta_pp``,
    ``ci_low_pp``, ``ci_high_pp`` (percentage points, i.e. ×100) and ``significant`` (verdict better or
    worse) added, and ``{technique: summary}`` with the win/tie/loss + Wilcoxon summary of each.
    """
    _require(df, variant_col)
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
    out.attrs["warnings"] = [f"{m}: {w}" for m, s in summaries.items() for w in s["warnings"]]
    out.attrs["alpha"] = alpha
    return out, summaries


def significance_mask(sig: pd.DataFrame, *, rows: Sequence[str], cases: Sequence[str] = CASES) -> pd.DataFrame:
    """Boolean rows × cases: True where :func:`significance_rows` found a significant difference (for †)."""
    mask = pd.DataFrame(False, index=pd.Index(list(rows), name="variant"), columns=list(cases))
    if sig.empty:
        return mask
    for _, r in sig.iterrows():
        if r["variant"] in mask.index and r["case"] in mask.columns and bool(r["significant"]):
            mask.at[r["variant"], r["case"]] = True
    return mask


def format_comparisons(
    tab: pd.DataFrame,
    *,
    label: str = "variant",
    percent: bool = True,
    title: str = "",
    caption: str | None = None,
    slug: str | None = None,
    rope: float | None = None,
) -> Table:
    """Human columns for rows of ablate.stats (ablation_table / transfer_verdicts): n, mean ± SD of each
    side, median [IQR], Δ [95% CI] (pp when ``percent``), p, p (Holm), p (t), d_z and A12 with labels,
    verdict, and warning footnotes. The stats rows themselves (with pp columns) become the numeric twin."""
    s, d = (100.0, 2) if percent else (1.0, 4)
    unit = "pp" if percent else "units"
    numeric = tab.copy()
    if tab.empty:
        return Table(data=pd.DataFrame(), title=title, numeric=numeric, warnings=list(tab.attrs.get("warnings", [])))
    ref = str(tab["reference"].iloc[0]) if "reference" in tab.columns else "reference"
    cells, notes = _footnotes(list(tab["warnings"]))
    verdicts = []
    for _, r in tab.iterrows():
        v = str(r["verdict"])
        if bool(r.get("negative_transfer", False)):
            v += " (negative transfer)"
        verdicts.append(v)
    shown = pd.DataFrame(
        {
            label: [str(x) for x in tab[label]],
            "n": [int(x) for x in tab["n"]],
            "mean ± SD": [
                fmt_mean_sd(m * s, sd * s, d) for m, sd in zip(tab["variant_mean"], tab["variant_sd"], strict=True)
            ],
            f"{ref} mean ± SD": [
                fmt_mean_sd(m * s, sd * s, d) for m, sd in zip(tab["reference_mean"], tab["reference_sd"], strict=True)
            ],
            "median [IQR]": [
                f"{fmt_num(m * s, d)} [{fmt_num(a * s, d)}, {fmt_num(b * s, d)}]" if _finite(m) else DASH
                for m, a, b in zip(tab["variant_median"], tab["variant_q1"], tab["variant_q3"], strict=True)
            ],
            f"Δ {unit} [95% CI]": [
                fmt_delta_ci(x * s, lo * s, hi * s, d)
                for x, lo, hi in zip(tab["delta"], tab["ci_low"], tab["ci_high"], strict=True)
            ],
            "p": [fmt_p(p) for p in tab["p"]],
            "p (Holm)": [fmt_p(p) for p in tab["p_holm"]],
            "p (t)": [fmt_p(p) for p in tab["p_t"]],
            "d_z": [
                f"{x:.2f} ({lab})" if _finite(x) else DASH for x, lab in zip(tab["d_z"], tab["d_z_label"], strict=True)
            ],
            "A12": [
                f"{x:.2f} ({lab})" if _finite(x) else DASH for x, lab in zip(tab["a12"], tab["a12_label"], strict=True)
            ],
            "verdict": verdicts,
            "warnings": cells,
        }
    )
    if percent:
        for col in ("delta", "ci_low", "ci_high"):
            numeric[f"{col}_pp"] = numeric[col].astype(float) * 100.0
    numeric["warnings"] = ["; ".join(w or []) for w in tab["warnings"]]
    if caption is None:
        caption = (
            f"Δ = {label if label == 'variant' else 'method'} − {ref}, paired by seed"
            + (" (percentage points)" if percent else "")
            + "; p: exact sign-flip permutation test; p (Holm): Holm-adjusted over the rows of this table; "
            "p (t): paired t-test (sensitivity check); mean ± sample SD over the paired seeds"
            + (f"; ROPE ±{rope * s:g} {unit} (rope={rope:g} in value units, as in the warnings)" if rope else "")
            + "."
        )
    return Table(
        data=shown,
        title=title,
        caption=caption,
        numeric=numeric,
        warnings=notes + [str(w) for w in tab.attrs.get("warnings", [])],
        slug=slug,
    )


# ---------------------------------------------------------------------------------------- cell grid


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "±": r"$\pm$",
    "†": r"$^{\dagger}$",
    "Δ": r"$\Delta$",
    "×": r"$\times$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "−": r"$-$",
    "≈": r"$\approx$",
    "→": r"$\rightarrow$",
    "α": r"$\alpha$",
    "χ": r"$\chi$",
    "σ": r"$\sigma$",
    "μ": r"$\mu$",
    "²": r"$^{2}$",
}


def tex_escape(text: str) -> str:
    """Escape LaTeX specials (``_ % & $ # { } ~ ^ \\``) and map ``±`` → ``$\\pm$``, ``†``, Greek, etc."""
    out = "".join(_TEX.get(ch, ch) for ch in str(text))
    return re.sub(r"(?<!\\)\$\$", "", out)  # merge adjacent math: $\pm$$^{\dagger}$ -> $\pm^{\dagger}$


def _md_escape(text: str) -> str:
    return str(text).replace("|", r"\|").replace("\n", "<br>")


_NUMERIC_CELL = re.compile(r"^[+\-−]?(\d|\.\d)")


def _grid(table: Table, esc: Callable[[str], str], bold: Callable[[str], str], dagger: str):
    """Header, rows of escaped+marked cells, and per-column right-alignment (numbers) flags."""
    data = table.data
    show_index = not (isinstance(data.index, pd.RangeIndex) and data.index.name is None)
    header = ([str(data.index.name or "")] if show_index else []) + [str(c) for c in data.columns]
    columns = ([list(data.index)] if show_index else []) + [data.iloc[:, j].tolist() for j in range(data.shape[1])]
    nrow = len(data)

    def mask(m: pd.DataFrame | None) -> np.ndarray:
        if m is None:
            return np.zeros(data.shape, dtype=bool)
        try:
            return m.reindex(index=data.index, columns=data.columns).fillna(False).to_numpy(dtype=bool)
        except ValueError as exc:  # duplicate labels
            raise AblateError(f"table {table.title!r}: bold/dagger mask does not align with the table: {exc}") from exc

    b, dg = mask(table.bold), mask(table.dagger)
    offset = 1 if show_index else 0
    rows, right = [], []
    for col in columns:
        texts = [_cell(v) for v in col]
        right.append(
            bool(texts) and all(t == DASH or _NUMERIC_CELL.match(t) for t in texts) and any(t != DASH for t in texts)
        )
    for i in range(nrow):
        cells = []
        for j, col in enumerate(columns):
            text = esc(_cell(col[i]))
            if j >= offset:
                if b[i, j - offset]:
                    text = bold(text)
                if dg[i, j - offset]:
                    text += dagger
            cells.append(text)
        rows.append(cells)
    return [esc(h) for h in header], rows, right


def table_markdown(table: Table | pd.DataFrame) -> str:
    """GitHub table (header, separator, rows); bold as ``**…**``, † appended; ``|`` escaped."""
    t = as_table(table)
    if t.data.shape[1] == 0:
        return "_(empty table)_"
    header, rows, right = _grid(t, _md_escape, lambda s: f"**{s}**", DAGGER)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---:" if r else "---" for r in right) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def table_latex(
    table: Table | pd.DataFrame, *, float_env: bool = False, caption: str | None = None, label: str | None = None
) -> str:
    """Booktabs ``tabular`` (``\\toprule \\midrule \\bottomrule``): bold via ``\\textbf``, † as
    ``$^{\\dagger}$``, text escaped. ``float_env=True`` wraps it in a ``table`` float with caption/label
    (paste-ready; needs ``\\usepackage{booktabs}``)."""
    t = as_table(table)
    if t.data.shape[1] == 0:
        return r"\emph{(empty table)}"
    header, rows, right = _grid(t, tex_escape, lambda s: rf"\textbf{{{s}}}", r"$^{\dagger}$")
    header = [_tex_cell(h) for h in header]
    rows = [[_tex_cell(c) for c in r] for r in rows]
    spec = "".join("r" if r else "l" for r in right)
    body = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    body += [" & ".join(r) + r" \\" for r in rows]
    body += [r"\bottomrule", r"\end{tabular}"]
    tab = "\n".join(body)
    if not float_env:
        return tab
    cap = caption if caption is not None else (t.title + (f". {t.caption}" if t.caption else ""))
    parts = [r"\begin{table}[t]", r"\centering"]
    if cap:
        parts.append(rf"\caption{{{tex_escape(cap)}}}")
    if label:
        parts.append(rf"\label{{{label}}}")
    parts += [tab, r"\end{table}"]
    return "\n".join(parts)


def table_html(table: Table | pd.DataFrame) -> str:
    t = as_table(table)
    if t.data.shape[1] == 0:
        return "<p><em>(empty table)</em></p>"
    header, rows, right = _grid(t, html.escape, lambda s: f"<b>{s}</b>", DAGGER)
    out = ["<table>"]
    if t.title:
        out.append(f"<caption>{html.escape(t.title)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr></thead><tbody>")
    for r in rows:
        out.append(
            "<tr>"
            + "".join(f'<td class="num">{c}</td>' if right[j] else f"<td>{c}</td>" for j, c in enumerate(r))
            + "</tr>"
        )
    out.append("</tbody></table>")
    return "\n".join(out)


def _machine_frame(t: Table, numeric: bool = True) -> pd.DataFrame:
    data = t.numeric if (numeric and t.numeric is not None) else t.data
    if not (isinstance(data.index, pd.RangeIndex) and data.index.name is None):
        data = data.reset_index()
    data = data.copy()
    for c in data.columns:
        if data[c].dtype == object:
            data[c] = [("; ".join(map(str, v)) if isinstance(v, list | tuple) else v) for v in data[c]]
    return data


def table_csv(table: Table | pd.DataFrame, *, numeric: bool = True) -> str:
    """CSV of the numeric twin (full precision) when there is one and ``numeric``, else of the shown cells."""
    return _machine_frame(as_table(table), numeric).to_csv(index=False, lineterminator="\n")


# ---------------------------------------------------------------------------------------- documents


def png_pdf(fig: str | Path | tuple[Path, Path]) -> tuple[Path, Path]:
    p = Path(fig[0]) if isinstance(fig, tuple) else Path(fig)
    base = p.with_suffix("") if p.suffix.lower() in (".png", ".pdf") else p
    return Path(f"{base}.png"), Path(f"{base}.pdf")


def _rel(path: Path, base_dir: str | Path | None) -> str:
    if base_dir is None:
        return path.as_posix()
    try:
        return Path(os.path.relpath(path.resolve(), Path(base_dir).resolve())).as_posix()
    except ValueError:  # other drive (Windows)
        return path.resolve().as_posix()


def _table_warnings(t: Table) -> list[str]:
    return [str(w) for w in t.warnings]


def render_markdown(
    sections: Section | Iterable[Section], *, title: str | None = None, base_dir: str | Path | None = None
) -> str:
    """GitHub Markdown; figure links are relative to ``base_dir`` (the report folder) when given."""
    out: list[str] = []
    if title:
        out += [f"# {title}", ""]
    for s in _as_sections(sections):
        out += [f"## {s.title}", ""]
        if s.text:
            out += [s.text.strip(), ""]
        for tb in map(as_table, s.tables):
            if tb.title:
                out += [f"### {tb.title}", ""]
            out += [table_markdown(tb), ""]
            if tb.caption:
                out += [f"_{tb.caption}_", ""]
            if tb.warnings:
                out += ["**Warnings**", ""] + [f"- {_md_escape(w)}" for w in _table_warnings(tb)] + [""]
        for fig in s.figures:
            png, _ = png_pdf(fig)
            rel = _rel(png, base_dir)
            out += [f"![{png.stem}]({'<' + rel + '>' if ' ' in rel else rel})", ""]
        if s.warnings:
            out += ["**Warnings**", ""] + [f"- {_md_escape(w)}" for w in s.warnings] + [""]
    return "\n".join(out).rstrip() + "\n"


def render_latex(
    sections: Section | Iterable[Section],
    *,
    title: str | None = None,
    base_dir: str | Path | None = None,
    standalone: bool = True,
) -> str:
    """LaTeX with booktabs tables (not floats, so long warning lists never overflow a page); figures use
    the PDF (PNG if no PDF). ``standalone=False`` gives the body only, for ``\\input``."""
    body: list[str] = []
    for s in _as_sections(sections):
        body += [rf"\section*{{{tex_escape(s.title)}}}", ""]
        if s.text:
            body += [tex_escape(p.strip()) + "\n" for p in re.split(r"\n\s*\n", s.text.strip())]
        for tb in map(as_table, s.tables):
            if tb.title:
                body += [rf"\subsection*{{{tex_escape(tb.title)}}}", ""]
            body += [
                r"\begin{center}",
                r"\begin{adjustbox}{max width=\linewidth}",
                table_latex(tb),
                r"\end{adjustbox}",
                r"\end{center}",
            ]
            if tb.caption:
                body += [rf"{{\footnotesize {tex_escape(tb.caption)}\par}}", ""]
            if tb.warnings:
                body += [_tex_warnings(_table_warnings(tb))]
        for fig in s.figures:
            png, pdf = png_pdf(fig)
            use = pdf if pdf.exists() or not png.exists() else png
            body += [
                r"\begin{center}",
                rf"\includegraphics[width=0.9\linewidth]{{{_rel(use, base_dir)}}}",
                r"\end{center}",
            ]
        if s.warnings:
            body += [_tex_warnings(s.warnings)]
        body.append("")
    text = "\n".join(body)
    if not standalone:
        return text
    head = [
        r"\documentclass[10pt]{article}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage[utf8]{inputenc}",
        r"\usepackage[margin=2cm]{geometry}",
        r"\usepackage{booktabs}",
        r"\usepackage{graphicx}",
        r"\usepackage{adjustbox}",
        r"\begin{document}",
    ]
    if title:
        head += [rf"\section*{{{tex_escape(title)}}}"]
    return "\n".join(head) + "\n\n" + text + "\n" + r"\end{document}" + "\n"


def _tex_cell(text: str) -> str:
    r"""Merge math made adjacent by marks (``$\pm$$^{\dagger}$``), and put ``{}`` before a leading ``[`` so
    that ``\\`` / ``\item`` do not read it as an optional argument."""
    text = re.sub(r"(?<!\\)\$\$", "", text)
    return "{}" + text if text.startswith("[") else text


def _tex_warnings(ws: Sequence[str]) -> str:
    items = "\n".join(rf"\item {_tex_cell(tex_escape(w))}" for w in ws)
    return "\n".join(
        [r"{\footnotesize\textbf{Warnings}", r"\begin{itemize}\setlength\itemsep{0pt}", items, r"\end{itemize}}", ""]
    )


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #333;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
thead th{border-bottom:2px solid #333;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.caption{font-size:.85em;color:#555;font-style:italic}
.warnings{background:#fff8e1;border-left:4px solid #f0b400;padding:.3em 1em;font-size:.85em;margin:.6em 0}
.warnings ul{margin:.2em 0;padding-left:1.2em}
figure{margin:1em 0}figure img{max-width:100%;height:auto}figcaption{font-size:.85em;color:#555}
.scroll{overflow-x:auto}
""".strip()


def _html_warnings(ws: Sequence[str]) -> str:
    items = "".join(f"<li>{html.escape(str(w))}</li>" for w in ws)
    return f'<div class="warnings"><strong>Warnings</strong><ul>{items}</ul></div>'


def render_html(sections: Section | Iterable[Section], *, title: str | None = None) -> str:
    """One self-contained page: inline CSS, figures embedded as base64 PNG, no external resources."""
    page_title = title or "Report"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(page_title)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    if title:
        out.append(f"<h1>{html.escape(title)}</h1>")
    for s in _as_sections(sections):
        out.append(f"<section><h2>{html.escape(s.title)}</h2>")
        if s.text:
            out += [f"<p>{html.escape(p.strip())}</p>" for p in re.split(r"\n\s*\n", s.text.strip())]
        for tb in map(as_table, s.tables):
            out.append(f'<div class="scroll">{table_html(tb)}</div>')
            if tb.caption:
                out.append(f'<p class="caption">{html.escape(tb.caption)}</p>')
            if tb.warnings:
                out.append(_html_warnings(_table_warnings(tb)))
        for fig in s.figures:
            png, _ = png_pdf(fig)
            try:
                b64 = base64.b64encode(png.read_bytes()).decode("ascii")
            except OSError as exc:
                raise AblateError(f"cannot read figure {png}: {exc.strerror or exc}") from exc
            alt = html.escape(png.stem)
            out.append(
                f'<figure><img alt="{alt}" src="data:image/png;base64,{b64}"><figcaption>{alt}</figcaption></figure>'
            )
        if s.warnings:
            out.append(_html_warnings(s.warnings))
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | np.ndarray | pd.Index):
        return [_jsonable(x) for x in v]
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return float(v) if math.isfinite(v) else None
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, Path):
        return v.as_posix()
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return str(v)


def _marks(t: Table, m: pd.DataFrame | None) -> list[list[Any]]:
    if m is None:
        return []
    aligned = m.reindex(index=t.data.index, columns=t.data.columns).fillna(False).astype(bool)
    return [[r, c] for r in aligned.index for c in aligned.columns if aligned.at[r, c]]


def _table_json(t: Table, slug: str) -> dict[str, Any]:
    shown = _machine_frame(t, numeric=False)
    return {
        "title": t.title,
        "slug": slug,
        "caption": t.caption,
        "columns": [str(c) for c in shown.columns],
        "rows": shown.to_dict(orient="records"),
        "numeric": _machine_frame(t, numeric=True).to_dict(orient="records") if t.numeric is not None else None,
        "bold": _marks(t, t.bold),
        "dagger": _marks(t, t.dagger),
        "warnings": _table_warnings(t),
    }


def _table_slugs(sections: list[Section]) -> list[str]:
    used: dict[str, int] = {}
    out = []
    for s in sections:
        for tb in map(as_table, s.tables):
            base = tb.slug or _slug(tb.title or s.title)
            used[base] = used.get(base, 0) + 1
            out.append(base if used[base] == 1 else f"{base}-{used[base]}")
    return out


def render_json(
    sections: Section | Iterable[Section],
    *,
    title: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    base_dir: str | Path | None = None,
) -> str:
    """Tables as records (shown cells and numeric twin), marks, metadata and every warning; NaN → null."""
    secs = _as_sections(sections)
    slugs = iter(_table_slugs(secs))
    doc_sections, all_warnings = [], []
    for s in secs:
        tables = []
        for tb in map(as_table, s.tables):
            tj = _table_json(tb, next(slugs))
            tables.append(tj)
            all_warnings += [{"section": s.title, "table": tb.title, "text": w} for w in tj["warnings"]]
        all_warnings += [{"section": s.title, "table": None, "text": w} for w in s.warnings]
        doc_sections.append(
            {
                "title": s.title,
                "text": s.text,
                "tables": tables,
                "figures": [_rel(png_pdf(f)[0], base_dir) for f in s.figures],
                "warnings": list(s.warnings),
            }
        )
    doc = {
        "title": title,
        "generator": "ablate.report",
        "metadata": dict(metadata or {}),
        "warnings": all_warnings,
        "sections": doc_sections,
    }
    return json.dumps(_jsonable(doc), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# ---------------------------------------------------------------------------------------- writing


def write_atomic(payloads: Mapping[str | Path, str | bytes]) -> list[Path]:
    """Write several files so that each is either its old version or its complete new one.

    All contents go to temp files in the target folders first (flushed and fsynced); only when every one
    is complete are they moved into place with ``os.replace``. On any failure the temp files are removed
    and OSError becomes an AblateError with a one-line message. New files get mode 0644 (an existing
    target keeps its mode).
    """
    temps: list[tuple[str, Path]] = []
    try:
        for target, content in payloads.items():
            path = Path(target)
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps.append((tmp, path))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                mode = path.stat().st_mode & 0o7777
            except FileNotFoundError:
                mode = 0o644
            os.chmod(tmp, mode)
        for tmp, path in temps:
            os.replace(tmp, path)
    except OSError as exc:
        _cleanup(temps)
        where = Path(exc.filename).parent if getattr(exc, "filename", None) else "the output folder"
        raise AblateError(f"could not write report files in {where}: {exc.strerror or exc}") from exc
    except BaseException:
        _cleanup(temps)
        raise
    return [p for _, p in temps]


def _cleanup(temps: list[tuple[str, Path]]) -> None:
    for tmp, _ in temps:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def check_out_dir(out_dir: str | Path) -> Path:
    """Fail before any work when ``out_dir`` cannot be created or written (one-line AblateError)."""
    out = Path(out_dir)
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise AblateError(f"cannot create report folder {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise AblateError(f"cannot write report folder {out}: {probe} is not writable")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ablate-probe.", dir=out)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise AblateError(f"cannot write report folder {out}: {exc.strerror or exc}") from exc
    return out


def write_report(
    out_dir: str | Path,
    name: str,
    sections: Section | Iterable[Section],
    formats: Sequence[str] = FORMATS,
    *,
    title: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write ``name.md``, ``name.tex``, ``name.csv`` (first table; ``name-<slug>.csv`` for the others),
    ``name.json`` and ``name.html`` into ``out_dir``; returns the paths written.

    Order: validate (formats, name, output folder, figures), render everything in memory, then
    :func:`write_atomic`. Unknown formats, a bad name, an unwritable folder or a missing figure raise
    AblateError before anything is written.
    """
    if isinstance(formats, str):
        formats = (formats,)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise AblateError(
            f"unknown report format(s) {', '.join(map(repr, unknown))} (choose from {', '.join(FORMATS)})"
        )
    formats = list(dict.fromkeys(formats))
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise AblateError(f"report name must be a plain file name without a folder, got {name!r}")
    out = check_out_dir(out_dir)
    secs = _as_sections(sections)
    for s in secs:
        for fig in s.figures:
            png, pdf = png_pdf(fig)
            if set(formats) & {"md", "html", "json"} and not png.exists():
                raise AblateError(f"figure {png} of section {s.title!r} does not exist")
            if "tex" in formats and not (pdf.exists() or png.exists()):
                raise AblateError(f"figure {pdf} of section {s.title!r} does not exist")
    title = title if title is not None else name
    payloads: dict[Path, str] = {}
    for fmt in formats:
        if fmt == "md":
            payloads[out / f"{name}.md"] = render_markdown(secs, title=title, base_dir=out)
        elif fmt == "tex":
            payloads[out / f"{name}.tex"] = render_latex(secs, title=title, base_dir=out)
        elif fmt == "html":
            payloads[out / f"{name}.html"] = render_html(secs, title=title)
        elif fmt == "json":
            payloads[out / f"{name}.json"] = render_json(secs, title=title, metadata=metadata, base_dir=out)
        elif fmt == "csv":
            tables = [as_table(t) for s in secs for t in s.tables]
            for i, (tb, slug) in enumerate(zip(tables, _table_slugs(secs), strict=True)):
                payloads[out / (f"{name}.csv" if i == 0 else f"{name}-{slug}.csv")] = table_csv(tb)
    return write_atomic(payloads)


# ---------------------------------------------------------------------------------------- report sections


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
    return Path(fig_dir) / _slug("-".join(str(p) for p in parts if p is not None))


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
    from ablate import figures

    _require(df, variant_col, value)
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
                slug=_slug(str(case) if case is not None else "ablation"),
            )
        )
        order = [reference] + [n for n in names if n != reference]
        if fig_dir is not None:
            sec.figures.append(
                figures.forest(
                    tab,
                    _fig_path(fig_dir, "ablation", case, "forest"),
                    rope=rope,
                    percent=percent,
                    title=f"{case}: variant − {reference}" if case is not None else f"variant − {reference}",
                )
            )
            sec.figures.append(
                figures.box_strip(
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
                    slug=_slug(f"friedman-{case}" if case is not None else "friedman"),
                )
            )
            if fig_dir is not None:
                sec.figures.append(
                    figures.cd_diagram(
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
            _methods_section(
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


def _methods_section(
    ns: list[int], alpha: float, rope: float | None, n_resamples: int, seed: int, corrected_over: str, **kw: bool
) -> Section:
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
    from ablate import figures

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
                if _finite(s["wilcoxon_statistic"])
                else f"not computed (p = {fmt_p(s['wilcoxon_p'])}: no non-zero per-case difference)"
            )
            + f"; smallest attainable p = {s['wilcoxon_min_p']:.3g}."
        )
        scale, unit = (100.0, " pp") if percent else (1.0, "")
        text = (
            f"{m} vs {baseline}: {s['wins']} win(s), {s['ties']} tie(s), {s['losses']} loss(es) over "
            f"{s['n_cases']} case(s) (ties include {s['n_equivalent']} equivalent and "
            f"{s['n_descriptives_only']} descriptives-only); mean per-case Δ = "
            f"{fmt_num(s['mean_delta'] * scale if _finite(s['mean_delta']) else math.nan)}{unit}. {wilcoxon}"
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
                    slug=_slug(m),
                    rope=rope,
                )
            )
            if fig_dir is not None:
                sec.figures.append(
                    figures.forest(
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
            _methods_section(
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
    from ablate import figures

    _require(df, value)
    sections: list[Section] = []
    if importances:
        imp = figures.importance_frame(importances)
        shown = imp.apply(lambda col: [fmt_num(v, 3) for v in col])
        sec = Section(
            "Parameter importances",
            text="Importances as reported by each evaluator (not recomputed here). Each method normalises "
            "differently: compare the ranking of parameters across columns, not the magnitudes.",
            tables=[Table(data=shown, title="Importances", numeric=imp, slug="importances")],
        )
        if fig_dir is not None:
            sec.figures.append(figures.importance_bars(importances, _fig_path(fig_dir, "sensitivity", "importances")))
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
            cells, notes = _footnotes(list(tab["warnings"]))
            shown = pd.DataFrame(
                {
                    "parameter": tab["param"].astype(str),
                    "level": tab["level"].astype(str),
                    "vs": tab["other"].astype(str),
                    "n": [f"{a} vs {b}" for a, b in zip(tab["n_level"], tab["n_other"], strict=True)],
                    "mean": [fmt_num(v * scale, d) for v in tab["mean_level"]],
                    "mean (vs)": [fmt_num(v * scale, d) for v in tab["mean_other"]],
                    f"Δ {unit}": [f"{v * scale:+.{d}f}" if _finite(v) else DASH for v in tab["delta"]],
                    "p Welch": [fmt_p(p) for p in tab["p_welch"]],
                    "p Welch (Holm)": [fmt_p(p) for p in tab["p_welch_holm"]],
                    "p MWU": [fmt_p(p) for p in tab["p_mwu"]],
                    "p MWU (Holm)": [fmt_p(p) for p in tab["p_mwu_holm"]],
                    "A12": [
                        f"{a:.2f} ({lab})" if _finite(a) else DASH
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
                        slug=_slug(f"marginal-{case}" if case is not None else "marginal"),
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
                        figures.mk_heatmap(
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
