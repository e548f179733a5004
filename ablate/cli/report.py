"""``ablate report``: the reports of finished studies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ablate.cli.common import (
    CASE_ALL_METAVAR,
    AlphaOpt,
    StorageOpt,
    above,
    app,
    choice,
    current_method,
    out,
    storage_url,
)
from ablate.report.reports import Written


@app.command("report")
def report_cmd(
    studies: Annotated[
        list[str] | None, typer.Argument(help="Study names (default: every ablate study of --case).")
    ] = None,
    case: Annotated[
        str | None, typer.Option(metavar=CASE_ALL_METAVAR, help="Report every study of this case (or all).")
    ] = None,
    storage: StorageOpt = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Report directory (default studies/runs/report-STUDY).")
    ] = None,
    formats: Annotated[
        str, typer.Option("--format", metavar="<md,tex,csv,json,html>", help="Comma-separated formats.")
    ] = "md,tex,csv,json,html",
    metric: Annotated[
        str, typer.Option(metavar="<test_accuracy|val_accuracy>", help="Reported: test; optimised: val.")
    ] = "test_accuracy",
    alpha: AlphaOpt = 0.05,
    rope: Annotated[
        float | None,
        typer.Option(callback=above(0), help="Region of practical equivalence, accuracy units (0.005 = 0.5 pp); x>0."),
    ] = None,
    no_dashboard: Annotated[
        bool, typer.Option("--no-dashboard", help="Do not save the note and figures to the study.")
    ] = False,
) -> None:
    """Statistics report of finished studies: significance tables, effect sizes, figures, methods paragraph.

    Confirmations of two or more cases at one fidelity are also joined in one report,
    confirm-across-cases-FIDELITY: each case's best confirmed configuration, Holm over every comparison of
    every case with its benchmark, and the switch settings all the cases' winners share.

    \b
    Examples:
      ablate report ablation-ofat-T2M2_T1M1-quick
      ablate report --case all --format md,html --rope 0.005
      ablate report confirm-top3-sensitivity-T1M1_T2M2-quick \\
        confirm-top3-sensitivity-T2M2_T1M1-quick
    """
    from ablate.app import find_studies
    from ablate.report import FORMATS
    from ablate.report.reports import write_reports

    fmts = tuple(f.strip() for f in formats.split(",") if f.strip())
    for f in fmts:
        choice("--format", f, FORMATS)
    choice("--metric", metric, ("test_accuracy", "val_accuracy"))
    found = find_studies(current_method(), storage_url(storage), studies or [], case)
    write_reports(
        found, out_dir, formats=fmts, metric=metric, alpha=alpha, rope=rope, publish=not no_dashboard, on_written=said
    )


def said(report: Written) -> None:
    out.print(f"[bold]{report.name}[/] ({report.what}): {', '.join(str(p) for p in report.paths)}")
