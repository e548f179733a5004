"""Renderers: one report (a list of Sections) as Markdown, LaTeX, HTML, JSON and CSV, and :func:`write_report`.

* Markdown is a GitHub table written here (pandas' ``to_markdown`` needs tabulate and cannot mark cells).
* LaTeX tables are pandas ``Styler.to_latex`` with booktabs rules (``hrules=True``); bold cells are Styler
  ``textbf`` styles; text goes through :func:`tex_escape`, which also maps ``±``, ``†`` and Greek to math.
* HTML tables are pandas ``Styler.to_html`` (bold as a CSS style, numeric columns right-aligned by class);
  the page is the jinja2 template ``templates/report.html.j2``: one self-contained file, inline CSS,
  figures embedded as base64 PNG, no external resources.
* Per-row warnings appear as numbered footnotes in the human tables; CSV and JSON carry the full text.
  CSV holds the numeric twin of a table when it has one (full precision), JSON holds both plus the marks.
* Output is reproducible: no timestamps unless the caller passes them in ``metadata``; HTML ids come from
  the table slugs, not random ids.
* :func:`write_report` checks the output folder first, renders every file in memory, and only then writes
  them with :func:`ablate.io.write_atomic`: a failure leaves the previous files and no temp files.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup
from pandas.io.formats.style import Styler

from ablate.errors import AblateError
from ablate.io import check_out_dir, write_atomic
from ablate.report.model import (
    DAGGER,
    DASH,
    Section,
    Table,
    as_sections,
    as_table,
    cell_text,
    figure_caption,
    png_pdf,
    slugify,
)

__all__ = [
    "FORMATS",
    "render_html",
    "render_json",
    "render_latex",
    "render_markdown",
    "table_csv",
    "table_html",
    "table_latex",
    "table_markdown",
    "tex_escape",
    "write_report",
]

FORMATS: tuple[str, ...] = ("md", "tex", "csv", "json", "html")

# ---------------------------------------------------------------------------------------- cells


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


@dataclass
class _Grid:
    """A table's cells as plain text, the index shown as a first column when it carries labels.

    ``bold`` / ``dagger`` are aligned with ``cells`` (False in the index column); ``right`` flags the
    columns whose every cell reads as a number (right-aligned).
    """

    header: list[str]
    cells: list[list[str]]
    bold: np.ndarray
    dagger: np.ndarray
    right: list[bool]


def _grid(table: Table) -> _Grid:
    data = table.data
    show_index = not (isinstance(data.index, pd.RangeIndex) and data.index.name is None)
    header = ([str(data.index.name or "")] if show_index else []) + [str(c) for c in data.columns]
    columns = ([list(data.index)] if show_index else []) + [data.iloc[:, j].tolist() for j in range(data.shape[1])]
    texts = [[cell_text(v) for v in col] for col in columns]

    def mask(m: pd.DataFrame | None) -> np.ndarray:
        if m is None:
            out = np.zeros(data.shape, dtype=bool)
        else:
            try:
                out = m.reindex(index=data.index, columns=data.columns).fillna(False).to_numpy(dtype=bool)
            except ValueError as exc:  # duplicate labels
                raise AblateError(
                    f"table {table.title!r}: bold/dagger mask does not align with the table: {exc}"
                ) from exc
        return np.hstack([np.zeros((len(data), 1), dtype=bool), out]) if show_index else out

    right = [
        bool(col) and all(t == DASH or _NUMERIC_CELL.match(t) for t in col) and any(t != DASH for t in col)
        for col in texts
    ]
    cells = [[col[i] for col in texts] for i in range(len(data))]
    return _Grid(header, cells, mask(table.bold), mask(table.dagger), right)


def _styler(cells: list[list[str]], header: list[str], bold_style: str, bold: np.ndarray, uuid: str) -> Styler:
    """Cells (already escaped) on positional columns, so repeated labels cannot break Styler's alignment."""
    frame = pd.DataFrame(cells, columns=range(len(header)), dtype=object)
    styled = Styler(frame, uuid=uuid, cell_ids=False).hide(axis="index").relabel_index(header, axis=1)
    if bold.any():
        styles = pd.DataFrame(np.where(bold, bold_style, ""), index=frame.index, columns=frame.columns)
        styled = styled.apply(lambda _: styles, axis=None)
    return styled


# ---------------------------------------------------------------------------------------- tables


def table_markdown(table: Table | pd.DataFrame) -> str:
    """GitHub table (header, separator, rows); bold as ``**…**``, † appended; ``|`` escaped."""
    t = as_table(table)
    if t.data.shape[1] == 0:
        return "_(empty table)_"
    g = _grid(t)
    rows = []
    for i, row in enumerate(g.cells):
        cells = []
        for j, text in enumerate(row):
            text = _md_escape(text)
            if g.bold[i, j]:
                text = f"**{text}**"
            cells.append(text + (DAGGER if g.dagger[i, j] else ""))
        rows.append(cells)
    lines = [
        "| " + " | ".join(map(_md_escape, g.header)) + " |",
        "| " + " | ".join("---:" if r else "---" for r in g.right) + " |",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def table_latex(
    table: Table | pd.DataFrame, *, float_env: bool = False, caption: str | None = None, label: str | None = None
) -> str:
    """Booktabs ``tabular`` via ``Styler.to_latex(hrules=True)``: bold via ``\\textbf``, † as ``$^{\\dagger}$``,
    text escaped. ``float_env=True`` wraps it in a ``table`` float with caption/label (paste-ready; needs
    ``\\usepackage{booktabs}``)."""
    t = as_table(table)
    if t.data.shape[1] == 0:
        return r"\emph{(empty table)}"
    g = _grid(t)
    cells = [
        [_tex_cell(tex_escape(c) + (r"$^{\dagger}$" if g.dagger[i, j] else "")) for j, c in enumerate(row)]
        for i, row in enumerate(g.cells)
    ]
    header = [_tex_cell(tex_escape(h)) for h in g.header]
    styled = _styler(cells, header, "textbf: --rwrap;", g.bold, uuid="t")
    spec = "".join("r" if r else "l" for r in g.right)
    if not float_env:
        return styled.to_latex(hrules=True, column_format=spec).rstrip("\n")
    cap = caption if caption is not None else (t.title + (f". {t.caption}" if t.caption else ""))
    return styled.to_latex(
        hrules=True,
        column_format=spec,
        environment="table",
        position="t",
        position_float="centering",
        caption=tex_escape(cap) if cap else None,
        label=label or None,
    ).rstrip("\n")


def table_html(table: Table | pd.DataFrame, *, uid: str | None = None) -> str:
    """``Styler.to_html``: the title as ``<caption>``, bold as a CSS style, numeric columns with class ``num``.
    ``uid`` prefixes the element ids (unique per page; default: the table's slug)."""
    t = as_table(table)
    if t.data.shape[1] == 0:
        return "<p><em>(empty table)</em></p>"
    g = _grid(t)
    cells = [[c + (DAGGER if g.dagger[i, j] else "") for j, c in enumerate(row)] for i, row in enumerate(g.cells)]
    styled = _styler(
        cells, [html.escape(h) for h in g.header], "font-weight: bold", g.bold, uuid=uid or t.slug or slugify(t.title)
    ).format(escape="html")
    if any(g.right):
        classes = [["num" if r else "" for r in g.right] for _ in g.cells]
        styled = styled.set_td_classes(pd.DataFrame(classes, columns=range(len(g.header))))
    if t.title:
        styled = styled.set_caption(html.escape(t.title))
    return styled.to_html().strip()


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


def _rel(path: Path, base_dir: str | Path | None) -> str:
    if base_dir is None:
        return path.as_posix()
    try:
        return Path(os.path.relpath(path.resolve(), Path(base_dir).resolve())).as_posix()
    except ValueError:  # other drive (Windows)
        return path.resolve().as_posix()


def render_markdown(
    sections: Section | Iterable[Section],
    *,
    title: str | None = None,
    base_dir: str | Path | None = None,
    figure_links: Mapping[Path, str] | None = None,
) -> str:
    """GitHub Markdown; figure links are relative to ``base_dir`` (the report folder) when given.

    ``figure_links`` maps a figure's PNG (resolved path) to the address it is served from (the dashboard
    note links its artifacts: a file path would resolve against the dashboard's URL and break).
    """
    links = {Path(k).resolve(): v for k, v in (figure_links or {}).items()}
    out: list[str] = []
    if title:
        out += [f"# {title}", ""]
    for s in as_sections(sections):
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
            rel = links.get(png.resolve()) or _rel(png, base_dir)
            caption = _md_escape(figure_caption(fig)).replace("[", "(").replace("]", ")")
            out += [f"![{caption}]({'<' + rel + '>' if ' ' in rel else rel})", "", f"_{caption}_", ""]
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
    for s in as_sections(sections):
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
                rf"{{\footnotesize {tex_escape(figure_caption(fig))}\par}}",
                "",
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


_STYLE = re.compile(r'\A\s*<style type="text/css">\s*(.*?)\s*</style>\s*', re.S)


def _split_style(markup: str) -> tuple[str, str]:
    """Styler puts its cell CSS in a ``<style>`` before the table; a page keeps styles in its head."""
    m = _STYLE.match(markup)
    return (m.group(1), markup[m.end() :]) if m else ("", markup)


_CODE = re.compile(r"`([^`]+)`")


def _html_paragraphs(text: str) -> list[Markup]:
    """Paragraphs escaped, with ```command``` spans as ``<code>`` (a command to copy must look like one)."""
    paras = [p.strip() for p in re.split(r"\n\s*\n", text.strip())] if text else []
    return [Markup(_CODE.sub(r"<code>\1</code>", html.escape(p, quote=False))) for p in paras]


def render_html(sections: Section | Iterable[Section], *, title: str | None = None) -> str:
    """One self-contained page from the jinja2 template: inline CSS, figures embedded as base64 PNG."""
    secs = as_sections(sections)
    slugs = iter(_table_slugs(secs))
    view: list[dict[str, Any]] = []
    styles: list[str] = []
    for s in secs:
        figures = []
        for fig in s.figures:
            png, _ = png_pdf(fig)
            try:
                b64 = base64.b64encode(png.read_bytes()).decode("ascii")
            except OSError as exc:
                raise AblateError(f"cannot read figure {png}: {exc.strerror or exc}") from exc
            figures.append({"alt": figure_caption(fig), "src": f"data:image/png;base64,{b64}"})
        tables = []
        for tb in map(as_table, s.tables):
            css, markup = _split_style(table_html(tb, uid=next(slugs)))
            styles += [css] if css else []
            tables.append({"html": markup, "caption": tb.caption, "warnings": _table_warnings(tb)})
        view.append(
            {
                "title": s.title,
                "paragraphs": _html_paragraphs(s.text),
                "tables": tables,
                "figures": figures,
                "warnings": [str(w) for w in s.warnings],
            }
        )
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ablate.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("report.html.j2").render(title=title, sections=view, table_css=styles)


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
            base = tb.slug or slugify(tb.title or s.title)
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
    secs = as_sections(sections)
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
    secs = as_sections(sections)
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


def _table_warnings(t: Table) -> list[str]:
    return [str(w) for w in t.warnings]
