"""Report figures: every function writes a PNG (screens, HTML) and a PDF (papers) and returns both paths.

Design decisions
----------------
* No pyplot. Each function builds a :class:`matplotlib.figure.Figure` directly; ``savefig`` then renders
  with the Agg canvas (PNG) and the PDF canvas. Nothing touches the global backend or pyplot's figure
  registry, so the functions are safe in notebooks, servers and threads, never open a window, and the
  figure is freed when it goes out of scope (there is nothing to ``plt.close``).
* ``stem`` is the output path without extension (a trailing ``.png``/``.pdf`` is tolerated); the parent
  folder is created. Both files are rendered in memory and then written atomically (temp file in the same
  folder + ``os.replace``), so a crash never leaves a half-written image next to an old one.
* PDFs carry no creation date and PNGs no software tag, so re-running a report gives identical files.
* Accuracies are plotted in percent (``percent=True``) to match the tables; pass ``percent=False`` for
  values that are not fractions (timings, losses).
* Sized for print: figures are at most 5.5 in wide with 10 pt text (9 pt ticks), so text stays at or above
  about 6.5 pt when a figure is scaled into a 3.5 in single column. The fonts are set per figure with
  :func:`matplotlib.rc_context`, never globally.
* Every function takes a ``caption`` (the sentence a reader sees under the figure), returned with the paths.

API: ``box_strip``, ``forest``, ``cd_diagram``, ``importance_bars``, ``mk_heatmap``,
``weight_points_scatter``; each returns :class:`FigurePaths` ``(png, pdf)``.
"""

from __future__ import annotations

import functools
import io
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import MatplotlibDeprecationWarning, rc_context
from matplotlib.figure import Figure

from ablate.errors import AblateError
from ablate.io import write_atomic
from ablate.report.model import require

__all__ = [
    "FigurePaths",
    "box_strip",
    "cd_diagram",
    "forest",
    "importance_bars",
    "importance_frame",
    "mk_heatmap",
    "weight_points_scatter",
]

DPI = 200
VERDICT_COLORS = {"better": "#1a7f37", "worse": "#c62828", "equivalent": "#1f5fa8"}
NEUTRAL = "#555555"


#: Text sizes legible in a single-column PDF (see the module docstring); applied per figure.
PRINT_RC: dict[str, Any] = {
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
}
WIDTH = 5.5  # inches


class FigurePaths(tuple):
    """``(png, pdf)``, unpacking as the two paths, with the sentence a reader sees under the figure as
    ``caption`` (empty: the report falls back to the file name)."""

    caption: str

    def __new__(cls, png: Path, pdf: Path, caption: str = "") -> FigurePaths:
        self = super().__new__(cls, (Path(png), Path(pdf)))
        self.caption = caption
        return self

    def __getnewargs__(self) -> tuple[Path, Path, str]:  # pickling/copy keep the caption
        return self[0], self[1], self.caption

    @property
    def png(self) -> Path:
        return self[0]

    @property
    def pdf(self) -> Path:
        return self[1]


def _printable(fn: Callable[..., FigurePaths]) -> Callable[..., FigurePaths]:
    """Build the figure under :data:`PRINT_RC` (sizes are fixed when artists are created)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> FigurePaths:
        with rc_context(PRINT_RC):
            return fn(*args, **kwargs)

    return wrapper


def _stem(stem: str | Path) -> Path:
    p = Path(stem)
    return p.with_suffix("") if p.suffix.lower() in (".png", ".pdf") else p


def _save(fig: Figure, stem: str | Path, caption: str = "") -> FigurePaths:
    """Render PNG and PDF in memory, then write both atomically (ablate.io.write_atomic)."""
    base = _stem(stem)
    paths = FigurePaths(Path(f"{base}.png"), Path(f"{base}.pdf"), caption)
    payloads: dict[Path, bytes] = {}
    for path, fmt, meta in ((paths.png, "png", {"Software": None}), (paths.pdf, "pdf", {"CreationDate": None})):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=DPI, bbox_inches="tight", metadata=meta)
        payloads[path] = buf.getvalue()
    fig.clear()
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AblateError(f"cannot create figure folder {base.parent}: {exc.strerror or exc}") from exc
    write_atomic(payloads)
    return paths


def _scale(percent: bool) -> float:
    return 100.0 if percent else 1.0


def _label(value: str, percent: bool) -> str:
    return f"{value} (%)" if percent else value


# --------------------------------------------------------------------------------------------- box+strip


@_printable
def box_strip(
    df: pd.DataFrame,
    stem: str | Path,
    *,
    value: str = "test_accuracy",
    by: str = "variant",
    case: str | None = None,
    case_col: str = "case",
    order: Sequence[str] | None = None,
    percent: bool = True,
    title: str | None = None,
    caption: str = "",
) -> FigurePaths:
    """Box plot per group with every run drawn on top (no outlier markers: the strip shows all points)."""
    import seaborn as sns

    require(df, value, by)
    data = df
    if case is not None:
        require(df, case_col)
        data = df[df[case_col] == case]
    data = data[[by, value]].dropna().copy()
    if data.empty:
        raise AblateError(f"no finite {value!r} values to plot" + (f" for case {case!r}" if case else ""))
    data[by] = data[by].astype(str)
    data[value] = data[value].astype(float) * _scale(percent)
    levels = [str(o) for o in order] if order is not None else list(pd.unique(data[by]))
    levels = [lv for lv in levels if lv in set(data[by])]
    fig = Figure(figsize=(WIDTH, 0.45 * len(levels) + 1.2))
    ax = fig.subplots()
    with warnings.catch_warnings():  # seaborn 0.13 passes boxplot(vert=...), deprecated in Matplotlib 3.11
        warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
        sns.boxplot(data=data, x=value, y=by, order=levels, ax=ax, showfliers=False, color="#dbe6f3", width=0.6)
    # every run on top, jittered by a seeded generator (seaborn's stripplot draws from NumPy's global state, so
    # a re-run would give a different PNG and the dashboard would store the figure again)
    rng = np.random.default_rng(0)
    for i, level in enumerate(levels):
        xs = data.loc[data[by] == level, value].to_numpy()
        ax.scatter(xs, i + rng.uniform(-0.18, 0.18, xs.size), color="#1f3b5c", s=12, alpha=0.8, lw=0, zorder=3)
    ax.set_xlabel(_label(value, percent))
    ax.set_ylabel("")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title if title is not None else (f"{case}: {value}" if case else value))
    return _save(fig, stem, caption)


# ------------------------------------------------------------------------------------------------ forest


@_printable
def forest(
    ci_table: pd.DataFrame,
    stem: str | Path,
    *,
    label: str = "variant",
    rope: float | None = None,
    percent: bool = True,
    title: str | None = None,
    caption: str = "",
) -> FigurePaths:
    """Mean paired difference with its CI per row (``delta``, ``ci_low``, ``ci_high``), zero line, ROPE band.

    Points are coloured by ``verdict`` when that column exists; rows without a CI show the point only.
    ``rope`` is in the value's units (like stats.verdict) and drawn as a band of ±rope.
    """
    require(ci_table, label, "delta", "ci_low", "ci_high")
    if ci_table.empty:
        raise AblateError("forest plot of an empty table")
    s = _scale(percent)
    labels = [str(v) for v in ci_table[label]]
    d = ci_table["delta"].to_numpy(dtype=float) * s
    lo = ci_table["ci_low"].to_numpy(dtype=float) * s
    hi = ci_table["ci_high"].to_numpy(dtype=float) * s
    verdicts = list(ci_table["verdict"]) if "verdict" in ci_table.columns else [None] * len(labels)
    fig = Figure(figsize=(WIDTH, 0.42 * len(labels) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(labels))[::-1]
    if rope is not None:
        ax.axvspan(-rope * s, rope * s, color="#9e9e9e", alpha=0.18, lw=0, label=f"ROPE ±{rope * s:g}")
    ax.axvline(0.0, color="black", lw=0.9)
    for yi, di, li, hi_, v in zip(y, d, lo, hi, verdicts, strict=True):
        color = VERDICT_COLORS.get(str(v), NEUTRAL)
        if np.isfinite(li) and np.isfinite(hi_):
            ax.plot([li, hi_], [yi, yi], color=color, lw=2.0, solid_capstyle="butt")
        if np.isfinite(di):
            ax.plot([di], [yi], "o", color=color, ms=6)
    ax.set_yticks(y, labels)
    ax.set_ylim(-0.7, len(labels) - 0.3)
    ax.set_xlabel("Δ = variant − reference" + (" (percentage points)" if percent else ""))
    ax.grid(axis="x", alpha=0.3)
    if rope is not None:
        ax.legend(loc="best", frameon=False)
    ax.set_title(title if title is not None else "Paired difference with 95% CI")
    return _save(fig, stem, caption)


# -------------------------------------------------------------------------------------------- CD diagram


def _cliques(ranks: np.ndarray, cd: float) -> list[tuple[int, int]]:
    """Maximal runs i..j of sorted ranks with r[j] - r[i] <= cd (not significantly different, Nemenyi)."""
    out: list[tuple[int, int]] = []
    last = -1
    for i in range(len(ranks)):
        j = i
        while j + 1 < len(ranks) and ranks[j + 1] - ranks[i] <= cd + 1e-12:
            j += 1
        if j > i and j > last:
            out.append((i, j))
            last = j
    return out


@_printable
def cd_diagram(
    ranks: pd.Series | Mapping[str, float],
    cd: float,
    stem: str | Path,
    *,
    title: str | None = None,
    caption: str = "",
) -> FigurePaths:
    """Critical-difference diagram (Demšar 2006): average-rank axis (1 = best, on the left), variants
    labelled left/right of the axis, a CD scale bar, and thick bars joining variants whose average ranks
    differ by at most ``cd`` (not significantly different by Nemenyi)."""
    r = pd.Series(ranks, dtype=float).dropna().sort_values()
    if len(r) < 2:
        raise AblateError("a CD diagram needs at least 2 ranked variants")
    if not (cd >= 0 and math.isfinite(cd)):
        raise AblateError(f"cd must be a finite non-negative number, got {cd}")
    k = len(r)
    names, vals = [str(n) for n in r.index], r.to_numpy()
    lo_r, hi_r = 1.0, float(max(k, math.ceil(vals.max())))
    n_left = math.ceil(k / 2)
    cliques = _cliques(vals, cd)
    rows = max(n_left, k - n_left)
    # data coordinates: x in rank units (with margins for the labels), y in inches downwards from the axis
    label_top = 0.18 + 0.12 * len(cliques) + 0.15
    top, bottom = (-1.0 if title else -0.75), label_top + 0.28 * (rows - 1) + 0.25
    fig = Figure(figsize=(WIDTH + 0.5, bottom - top))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    margin = 0.32 * (hi_r - lo_r) + 0.6
    ax.set_xlim(lo_r - margin, hi_r + margin)
    ax.set_ylim(bottom, top)
    ax.plot([lo_r, hi_r], [0, 0], color="black", lw=1.2)
    for t in range(1, int(hi_r) + 1):
        ax.plot([t, t], [0, -0.08], color="black", lw=1.0)
        ax.text(t, -0.13, str(t), ha="center", va="bottom", fontsize=9)
    for t in np.arange(1.5, hi_r, 1.0):
        ax.plot([t, t], [0, -0.04], color="black", lw=0.7)
    # CD scale bar above the axis, starting at rank 1
    if cd > 0:
        y_cd = -0.5
        ax.plot([lo_r, lo_r + cd], [y_cd, y_cd], color="black", lw=1.5)
        for xx in (lo_r, lo_r + cd):
            ax.plot([xx, xx], [y_cd - 0.04, y_cd + 0.04], color="black", lw=1.2)
        ax.text(lo_r + cd / 2, y_cd - 0.05, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)
    # clique bars just below the axis
    y0 = 0.18
    for c, (i, j) in enumerate(cliques):
        yy = y0 + 0.12 * c
        ax.plot([vals[i] - 0.03, vals[j] + 0.03], [yy, yy], color="#c62828", lw=3.0, solid_capstyle="round")
    for idx, (name, v) in enumerate(zip(names, vals, strict=True)):
        if idx < n_left:
            yy, x_text, ha = label_top + 0.28 * idx, lo_r - 0.15, "right"
        else:
            yy, x_text, ha = label_top + 0.28 * (k - 1 - idx), hi_r + 0.15, "left"
        ax.plot([v, v, x_text], [0, yy, yy], color="black", lw=0.8)
        ax.text(x_text + (-0.05 if ha == "right" else 0.05), yy, f"{name} ({v:.2f})", ha=ha, va="center", fontsize=9)
    if title:
        ax.text((lo_r + hi_r) / 2, top + 0.08, title, ha="center", va="top", fontsize=10, weight="bold")
    return _save(fig, stem, caption)


# ------------------------------------------------------------------------------------------- importances


@_printable
def importance_bars(
    importances: Mapping[str, Mapping[str, float]] | Mapping[str, float],
    stem: str | Path,
    *,
    title: str | None = None,
    caption: str = "",
) -> FigurePaths:
    """Grouped horizontal bars: ``{evaluator: {param: importance}}`` (e.g. PED-ANOVA and fANOVA side by side),
    or a flat ``{param: importance}``. Parameters are ordered by the first evaluator's importance."""
    table = importance_frame(importances)
    if table.empty:
        raise AblateError("no importances to plot")
    params, evaluators = list(table.index), list(table.columns)
    fig = Figure(figsize=(WIDTH, 0.3 * len(params) * max(1, len(evaluators)) + 1.2))
    ax = fig.subplots()
    h = 0.8 / len(evaluators)
    y = np.arange(len(params))[::-1]
    palette = ["#1f5fa8", "#e07b00", "#1a7f37", "#8e44ad", "#c62828"]
    for e, name in enumerate(evaluators):
        ax.barh(
            y + 0.4 - h * (e + 0.5),
            table[name].to_numpy(dtype=float),
            height=h * 0.95,
            label=str(name),
            color=palette[e % len(palette)],
        )
    ax.set_yticks(y, params)
    ax.set_xlabel("importance (as reported by each evaluator)")
    ax.grid(axis="x", alpha=0.3)
    if len(evaluators) > 1:
        ax.legend(frameon=False, loc="lower right")
    ax.set_title(title if title is not None else "Hyperparameter importances")
    return _save(fig, stem, caption)


def importance_frame(importances: Mapping[str, Any]) -> pd.DataFrame:
    """``{evaluator: {param: value}}`` (or flat ``{param: value}``) → rows = params, columns = evaluators."""
    if not importances:
        return pd.DataFrame()
    if all(isinstance(v, Mapping) for v in importances.values()):
        table = pd.DataFrame({str(k): pd.Series(v, dtype=float) for k, v in importances.items()})
    elif all(isinstance(v, int | float | np.number) for v in importances.values()):
        table = pd.DataFrame({"importance": pd.Series(importances, dtype=float)})
    else:
        raise AblateError("importances must be {evaluator: {param: value}} or {param: value}")
    table.index = table.index.map(str)
    table.index.name = "parameter"
    return table.sort_values(table.columns[0], ascending=False, na_position="last")


# ---------------------------------------------------------------------------------------------- heatmap


def _integral(s: pd.Series) -> bool:
    v = s.dropna()
    return pd.api.types.is_numeric_dtype(v) and len(v) > 0 and bool(np.all(np.asarray(v, dtype=float) % 1 == 0))


def _round_sig(x: float, digits: int = 2) -> float:
    return float(f"{x:.{digits}g}") if x else 0.0


def _num_text(x: float, integral: bool) -> str:
    return f"{int(round(x)):,}" if integral else f"{x:.3g}"


def _axis_bins(s: pd.Series, max_levels: int, n_bins: int) -> tuple[pd.Series, str]:
    """A few levels as they are (integers shown as integers, never ``10.0``); more are cut into ``n_bins``
    equal-count bins with edges rounded to two significant digits, labelled in one notation:
    ``lo–hi`` (both included) for integers, ``[lo, hi)`` for real numbers."""
    integral = _integral(s)
    if not pd.api.types.is_numeric_dtype(s) or s.nunique(dropna=True) <= max_levels:
        return (s.astype("Int64") if integral else s), "levels"
    x = s.astype(float)
    edges = sorted({_round_sig(float(q)) for q in np.quantile(x, np.linspace(0, 1, n_bins + 1))[1:-1]})
    edges = [e for e in edges if x.min() < e <= x.max()]
    bounds = [float(x.min()), *edges, math.inf]
    labels = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        last = i == len(bounds) - 2
        if integral:
            hi = x.max() if last else math.ceil(b) - 1
            labels.append(f"{_num_text(a, True)}–{_num_text(hi, True)}" if hi > a else _num_text(a, True))
        else:
            labels.append(f"[{_num_text(a, False)}, {_num_text(x.max() if last else b, False)}{']' if last else ')'}")
    codes = np.searchsorted(np.asarray(edges, dtype=float), x.to_numpy(), side="right")
    binned = pd.Series(pd.Categorical.from_codes(codes, categories=labels, ordered=True), index=s.index)
    return binned, "binned"


@_printable
def mk_heatmap(
    df: pd.DataFrame,
    stem: str | Path,
    *,
    x: str = "M",
    y: str = "K",
    value: str = "val_accuracy",
    percent: bool = True,
    max_levels: int = 8,
    n_bins: int | None = None,
    title: str | None = None,
    caption: str = "",
) -> FigurePaths:
    """Mean ``value`` per (x, y) cell, annotated with mean and number of trials. Only rows where both
    parameters exist are drawn (a conditional parameter covers a subset: say so in ``title``). A numeric
    axis with more distinct values than ``n_bins`` (at most ``max_levels``) is cut into ``n_bins`` bins of
    about equal size; ``n_bins`` None picks as many per axis as keep about three trials per cell (2 to 6)."""
    import seaborn as sns

    require(df, x, y, value)
    data = df[[x, y, value]].dropna()
    if data.empty:
        raise AblateError(f"no rows with {x!r}, {y!r} and {value!r} to plot")
    # about three trials per cell: an axis keeps its levels only while cells stay that full
    per_axis = n_bins or int(np.clip(math.isqrt(max(1, len(data) // 3)), 2, 6))
    bx, how_x = _axis_bins(data[x], min(max_levels, per_axis), per_axis)
    by_, how_y = _axis_bins(data[y], min(max_levels, per_axis), per_axis)
    frame = pd.DataFrame({"x": bx, "y": by_, "v": data[value].astype(float) * _scale(percent)})
    g = frame.groupby(["y", "x"], observed=True)["v"].agg(["mean", "count"])
    means = g["mean"].unstack("x")
    counts = g["count"].unstack("x")
    means = means.sort_index(ascending=False)  # larger y at the top
    counts = counts.reindex(index=means.index, columns=means.columns)
    annot = np.full(means.shape, "", dtype=object)
    for i in range(means.shape[0]):
        for j in range(means.shape[1]):
            m = means.iat[i, j]
            if np.isfinite(m):
                annot[i, j] = (
                    f"{m:.1f}\nn={int(counts.iat[i, j])}" if percent else f"{m:.3g}\nn={int(counts.iat[i, j])}"
                )
    fig = Figure(figsize=(min(WIDTH, 1.0 * means.shape[1] + 2.6), 0.6 * means.shape[0] + 1.6))
    ax = fig.subplots()
    sns.heatmap(
        means.astype(float),
        annot=annot,
        fmt="",
        cmap="viridis",
        ax=ax,
        annot_kws={"fontsize": 9},
        cbar_kws={"label": f"mean {_label(value, percent)}"},
    )
    ax.set_xticks(ax.get_xticks(), [str(c) for c in means.columns], rotation=0)
    ax.set_yticks(ax.get_yticks(), [str(i) for i in means.index], rotation=0)
    ax.set_xlabel(f"{x} ({how_x})" if how_x != "levels" else x)
    ax.set_ylabel(f"{y} ({how_y})" if how_y != "levels" else y)
    ax.set_title(title if title is not None else f"mean {value} per {x} × {y}")
    return _save(fig, stem, caption)


# ---------------------------------------------------------------------------------------- weight points


_POINT_STYLES = {  # drawn in this order: the (many) generated points underneath
    "generated": {"color": "#1a7f37", "marker": ".", "s": 10, "alpha": 0.45, "label": "generated", "zorder": 1},
    "target_bootstrap": {
        "color": "#e07b00",
        "marker": "x",
        "s": 18,
        "alpha": 0.9,
        "label": "target bootstrap",
        "zorder": 2,
    },
    "source_posterior": {
        "color": "#1f5fa8",
        "marker": "o",
        "s": 16,
        "alpha": 0.8,
        "label": "source posterior",
        "zorder": 3,
    },
}


@_printable
def weight_points_scatter(
    points: Mapping[str, Mapping[str, Any]],
    stem: str | Path,
    *,
    title: str | None = None,
    caption: str = "",
) -> FigurePaths:
    """Scatter of weight points per group in the (μ/s, log σ) plane, one panel per group.

    ``points = {group: {"source_posterior": [[a, b], ...], "target_bootstrap": [...], "generated": [...]}}``;
    the points are plotted as given (already in (μ/s, log σ) coordinates); missing kinds are skipped.
    """
    if not points:
        raise AblateError("no weight-point groups to plot")
    groups = list(points)
    ncol = min(4, len(groups))
    nrow = math.ceil(len(groups) / ncol)
    fig = Figure(figsize=(3.4 * ncol, 3.0 * nrow + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    for ax, group in zip(axes, groups, strict=False):
        kinds = points[group]
        unknown = set(kinds) - set(_POINT_STYLES)
        if unknown:
            raise AblateError(
                f"group {group!r}: unknown point kind(s) {sorted(unknown)}; expected {list(_POINT_STYLES)}"
            )
        for kind, style in _POINT_STYLES.items():
            if kind not in kinds or kinds[kind] is None:
                continue
            arr = np.asarray(kinds[kind], dtype=float)
            if arr.size == 0:
                continue
            if arr.ndim != 2 or arr.shape[1] != 2:
                raise AblateError(
                    f"group {group!r}, {kind}: expected an (n, 2) array of (μ/s, log σ), got shape {arr.shape}"
                )
            ax.scatter(arr[:, 0], arr[:, 1], **style)
        ax.set_title(str(group))
        ax.set_xlabel("μ / s")
        ax.set_ylabel("log σ")
        ax.grid(alpha=0.3)
    for ax in axes[len(groups) :]:
        ax.set_axis_off()
    handles, labels = [], []
    for ax in axes[: len(groups)]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), frameon=False)
    if title:
        fig.suptitle(title)
    return _save(fig, stem, caption)
