"""Tables 1 and 2 of the paper, from the trials of a designed study (never by re-running anything)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from rich.table import Table as RichTable

from ablate import record
from ablate.analysis import tidy
from ablate.errors import AblateError
from ablate.io import write_atomic
from ablate.report.model import Section
from ablate.report.provenance import provenance_section, report_provenance
from ablate.report.render import write_report
from ablate.report.sections import transfer_report_sections
from ablate.report.study import publish_sections, report_scope
from ablate.report.summary import summary_section
from ablate.report.tables import paper_table

__all__ = ["design_runs", "table_sections", "terminal_table", "write_table_report"]


def design_runs(study: optuna.Study, plan: Any, definition: record.Definition | None = None) -> pd.DataFrame:
    """The study's finished runs restricted to this plan's design points (a study may hold more seeds)."""
    df = tidy.design_frame(study, definition)
    if df.empty:
        raise AblateError(f"study {study.study_name!r} has no finished runs to report")
    keys = {p.key for p in plan.points()}
    df = df[[f"{c}|{v}|{s}" in keys for c, v, s in zip(df["case"], df["variant"], df["seed"], strict=True)]]
    return df.reset_index(drop=True)


def table_sections(df: pd.DataFrame, design: Any, fig_dir: Path | None) -> list[Section]:
    """Every technique of the design against its baseline, in the paper's layout."""
    methods = [v.label for v in design.variants if v.label != design.baseline]
    return transfer_report_sections(df, method=methods, baseline=design.baseline, fig_dir=fig_dir)


def terminal_table(df: pd.DataFrame, design: Any, title: str) -> RichTable:
    """The paper table for the terminal (rich), rows in the design's order."""
    rows = [v.label for v in design.variants]
    shown = paper_table(df, rows=rows).frame
    table = RichTable(title=title)
    table.add_column("Transfer means")
    for case in shown.columns:
        table.add_column(case.replace("_", " → "), justify="right")
    for label, row in shown.iterrows():
        table.add_row(str(label), *[str(x) for x in row])
    return table


def write_table_report(study: optuna.Study, plan: Any, out_dir: Path) -> tuple[list[Path], RichTable]:
    """Write ``tableN.{md,tex,csv,json,html}`` (+ per-seed ``tableN-runs.csv``) and publish to the dashboard."""
    design = plan.design
    definition = record.read_definition(study)  # once: every part below is built from it
    df = design_runs(study, plan, definition)
    sections = table_sections(df, design, out_dir / "figures")
    meta = {"study": study.study_name, "fidelity": plan.fidelity.name, "seeds": plan.seeds, "storage": "see CLI"}
    provenance = report_provenance(study, definition)
    sections.append(provenance_section(provenance))
    meta["provenance"] = dict(provenance)
    sections.insert(0, summary_section(report_scope(study, definition, "table", "test_accuracy", 0.05), sections))
    paths = write_report(out_dir, design.name, sections, title=design.title, metadata=meta)
    runs_csv = out_dir / f"{design.name}-runs.csv"
    paths += write_atomic({runs_csv: df.to_csv(index=False)})
    publish_sections(study, sections, design.title)
    return paths, terminal_table(df, design, f"{design.title} — test accuracy (%), {plan.fidelity.name} fidelity")
