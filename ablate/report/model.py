"""The report's data model (Table, Section) and the cell formatting every output format shares.

Formatting decisions (readers paste these into papers, so they are fixed here once):

* ``±`` is the sample standard deviation (ddof=1); with one run the mean stands alone.
* Accuracies in percent with two decimals; differences signed, in percentage points.
* p-values with three decimals, scientific below 0.001 so a small p never reads as 0.
* A missing number is an en dash, never ``nan``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ablate.analysis.results import TableResult
from ablate.errors import AblateError

__all__ = [
    "DAGGER",
    "DASH",
    "Section",
    "Table",
    "as_sections",
    "as_table",
    "cell_text",
    "finite",
    "fmt_delta_ci",
    "fmt_mean_sd",
    "fmt_num",
    "fmt_p",
    "figure_caption",
    "footnotes",
    "png_pdf",
    "require",
    "slugify",
]

DASH = "–"
DAGGER = "†"


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
    role: str = ""  # what ``numeric`` holds ("ablation", "transfer", "marginal", "importances"): the Summary reads it


@dataclass(eq=False)
class Section:
    """One report section: a heading, plain text, tables, figures (paths or stems) and warnings.

    A figure with a ``caption`` attribute (:class:`~ablate.report.figures.FigurePaths`) is captioned with it.
    """

    title: str
    text: str = ""
    tables: list[Table | TableResult | pd.DataFrame] = field(default_factory=list)
    figures: list[str | Path | tuple[Path, Path]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def as_table(obj: Table | TableResult | pd.DataFrame) -> Table:
    """A bare DataFrame becomes a Table without a title; a TableResult keeps its warnings."""
    if isinstance(obj, Table):
        return obj
    if isinstance(obj, TableResult):
        return Table(data=obj.frame, warnings=list(obj.warnings))
    if isinstance(obj, pd.DataFrame):
        return Table(data=obj)
    raise AblateError(f"a report table must be a DataFrame, TableResult or Table, got {type(obj).__name__}")


def as_sections(sections: Section | Iterable[Section]) -> list[Section]:
    """One section or many, checked early so a wrong type fails before anything is rendered."""
    out = [sections] if isinstance(sections, Section) else list(sections)
    for s in out:
        if not isinstance(s, Section):
            raise AblateError(f"report sections must be Section objects, got {type(s).__name__}")
    return out


def png_pdf(fig: str | Path | tuple[Path, Path]) -> tuple[Path, Path]:
    """A figure given as stem, ``.png``, ``.pdf`` or (png, pdf) pair → its (png, pdf) paths."""
    p = Path(fig[0]) if isinstance(fig, tuple) else Path(fig)
    base = p.with_suffix("") if p.suffix.lower() in (".png", ".pdf") else p
    return Path(f"{base}.png"), Path(f"{base}.pdf")


def figure_caption(fig: Any) -> str:
    """A figure's caption: its own when it has one, else the file name (a caption must never be empty)."""
    caption = getattr(fig, "caption", "")
    return str(caption) if caption else png_pdf(fig)[0].stem


# ---------------------------------------------------------------------------------------- formatting


def finite(x: Any) -> bool:
    """True for a real, finite number (None, NaN, inf and non-numbers are not)."""
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt_num(x: Any, decimals: int = 2) -> str:
    return f"{float(x):.{decimals}f}" if finite(x) else DASH


def fmt_mean_sd(mean: Any, sd: Any, decimals: int = 2) -> str:
    """``97.03±0.02``; the mean alone when the SD is undefined (one run); a dash when there is no run."""
    if not finite(mean):
        return DASH
    return f"{mean:.{decimals}f}±{sd:.{decimals}f}" if finite(sd) else f"{mean:.{decimals}f}"


def fmt_delta_ci(delta: Any, low: Any, high: Any, decimals: int = 2) -> str:
    """Signed difference with its CI: ``+2.01 [+1.50, +2.60]``."""
    if not finite(delta):
        return DASH
    if finite(low) and finite(high):
        return f"{delta:+.{decimals}f} [{low:+.{decimals}f}, {high:+.{decimals}f}]"
    return f"{delta:+.{decimals}f}"


def fmt_p(p: Any) -> str:
    """Three decimals (``0.002``), scientific below 0.001 (``2.0e-04``) so small p are never shown as 0."""
    if not finite(p):
        return DASH
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def cell_text(v: Any) -> str:
    """Generic cell text for DataFrames passed in raw (e.g. straight from ablate.analysis.stats)."""
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
        return "; ".join(cell_text(x) for x in v)
    if v is pd.NA or v is pd.NaT:
        return DASH
    return str(v)


def slugify(text: str) -> str:
    """File-name-safe, lower-case slug (CSV file names, figure stems, HTML ids)."""
    s = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return s[:60].strip("-") or "table"


def footnotes(row_warnings: Sequence[Sequence[str]], start: int = 1) -> tuple[list[str], list[str]]:
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


def require(df: pd.DataFrame, *cols: str) -> None:
    """One-line error naming the missing columns and the ones there are."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise AblateError(
            f"column(s) {', '.join(map(repr, missing))} not found (columns: {', '.join(map(str, df.columns))})"
        )
