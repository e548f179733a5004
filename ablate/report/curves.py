"""The transfer-gain curve of a paired study: Δ(k) = transfer − benchmark after k target epochs, by case.

Why a curve: an initialisation can only matter before training washes it out, so a verdict at the final
epoch alone hides the budgets at which CGI might help (or hurt). The statistics are
:func:`ablate.analysis.stats.gain_curve`; this module turns them into a table and a figure.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from ablate.analysis import stats
from ablate.report.figures import FigurePaths, _save
from ablate.report.model import Section, Table, fmt_delta_ci, fmt_p

__all__ = ["gain_curve_figure", "gain_curve_section"]


def gain_curve_figure(gain: pd.DataFrame, stem: str | Path, *, title: str, caption: str) -> FigurePaths:
    """Δ(k) in percentage points with its 95% CI band, one line per case; filled markers where Holm < α."""
    fig = Figure(figsize=(6.0, 3.6))
    ax = fig.subplots()
    for case, g in gain.groupby("case", sort=False):
        g = g.sort_values("epoch")
        line = ax.plot(g["epoch"], 100 * g["delta"], marker="o", markersize=3, label=str(case))[0]
        ax.fill_between(g["epoch"], 100 * g["ci_low"], 100 * g["ci_high"], alpha=0.2, color=line.get_color())
        sig = g[g["verdict"].isin(["better", "worse"])]
        ax.plot(sig["epoch"], 100 * sig["delta"], "o", markersize=6, color=line.get_color())
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("target epochs k")
    ax.set_ylabel("Δ test accuracy (pp)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return _save(fig, stem, caption)


def gain_curve_section(
    curves: pd.DataFrame,
    *,
    method: str,
    baseline: str,
    value: str = "test_accuracy",
    alpha: float = 0.05,
    fig_dir: Path | None = None,
) -> Section | None:
    """The section, or None when the study recorded no learning curves (``--no-curves``, older studies)."""
    if curves.empty or not {method, baseline} <= set(curves["variant"]):
        return None
    n_examples = {"test_accuracy": "n_test", "val_accuracy": "n_val"}.get(value)
    gain = stats.gain_curve(curves, method=method, baseline=baseline, value=value, alpha=alpha, n_examples=n_examples)
    if gain.empty:
        return None
    shown = pd.DataFrame(
        {
            "case": gain["case"],
            "k": gain["epoch"],
            "n": gain["n"],
            "Δ pp [95% CI]": [
                fmt_delta_ci(100 * d, 100 * lo, 100 * hi)
                for d, lo, hi in zip(gain["delta"], gain["ci_low"], gain["ci_high"], strict=True)
            ],
            "p (Holm over k)": [fmt_p(p) for p in gain["p_holm"]],
            "verdict": gain["verdict"],
        }
    )
    ci = stats.ci_label(gain["ci_method"])  # the rule the rows used (percentile below MIN_N_BCA seeds)
    better = gain[gain["verdict"] == "better"]
    worse = gain[gain["verdict"] == "worse"]
    lines = [
        f"Δ(k) = {method} − {baseline} in {value} after k target epochs, paired by seed (exact sign-flip test, "
        f"{ci}; Holm over the budgets k of each case, α = {alpha:g}).",
        f"Budgets where the transfer is significantly better: {_where(better)}; worse: {_where(worse)}.",
    ]
    figures = []
    if fig_dir is not None:
        figures.append(
            gain_curve_figure(
                gain,
                Path(fig_dir) / "gain-curve",
                title=f"{method} − {baseline}: gain by target budget",
                caption=f"Δ(k) in pp with {ci} per case; large markers: significant after Holm over k (α = {alpha:g}).",
            )
        )
    table = Table(
        shown.reset_index(drop=True),
        title="Transfer gain by target budget",
        numeric=gain,
        slug="gain-curve",
        role="gain_curve",
    )
    return Section("Transfer gain curve", text=" ".join(lines), tables=[table], figures=figures)


def _where(rows: pd.DataFrame) -> str:
    if rows.empty:
        return "none"
    return "; ".join(f"{case} k = {', '.join(str(k) for k in g['epoch'])}" for case, g in rows.groupby("case"))
