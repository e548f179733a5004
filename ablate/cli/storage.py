"""``ablate studies``, ``ablate recover``, ``ablate dashboard``: what a storage holds."""

from __future__ import annotations

from typing import Annotated

import typer

from ablate.cli.common import (
    StorageOpt,
    above,
    app,
    fail,
    out,
    storage_url,
)


@app.command("studies")
def studies_cmd(storage: StorageOpt = None) -> None:
    """List the studies in a storage with trial counts by state and best value.

    Example: ablate studies --storage sqlite:///studies/runs/ablate.db
    """
    from rich.table import Table

    from ablate.execution.studies import list_studies

    url = storage_url(storage)
    table = Table(title=f"studies in {url}")
    cols = ("study", "kind", "COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING", "best_value")
    for col in cols:
        table.add_column(col.lower())
    for row in list_studies(url):
        best = row["best_value"]
        table.add_row(
            *[str(row[c] if c != "best_value" else (f"{best:.4f}" if best is not None else "-")) for c in cols]
        )
    out.print(table)


@app.command("recover")
def recover_cmd(
    stale_after: Annotated[
        float, typer.Option(callback=above(0), help="Fail RUNNING trials older than this many seconds; x>0.")
    ],
    study_name: Annotated[str | None, typer.Option(help="Only this study (default: every study).")] = None,
    storage: StorageOpt = None,
) -> None:
    """Repair a storage without heartbeats (journal file / Redis) after a worker was killed.

    Stuck RUNNING trials older than --stale-after are failed and re-queued with the same parameters.
    Example: ablate recover --stale-after 600 --storage studies/runs/journal.log
    """
    import optuna

    from ablate.execution.queue import recover
    from ablate.execution.storages import open_storage

    url = storage_url(storage)
    st = open_storage(url, heartbeat_interval=None, create=False)
    names = [study_name] if study_name else [s.study_name for s in optuna.get_all_study_summaries(st)]
    for name in names:
        try:
            study = optuna.load_study(study_name=name, storage=st)
        except KeyError:
            fail(f"--study-name {name!r}: no such study in {url}")
        repaired = recover(study, stale_after=stale_after)
        out.print(f"{name}: re-queued {len(repaired)} stale trial(s) {repaired if repaired else ''}")


@app.command("dashboard")
def dashboard_cmd(
    storage: StorageOpt = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 8080,
    host: Annotated[str, typer.Option(help="Bind address (default loopback only).")] = "127.0.0.1",
) -> None:
    """Launch optuna-dashboard on the same storage (reports appear as study notes and artifacts).

    Example: ablate dashboard --port 8080
    """
    from ablate.execution import dashboard

    url = storage_url(storage)
    dashboard.check_port(host, port)
    out.print(f"optuna-dashboard on http://{host}:{port}/ (Ctrl-C to stop)")
    dashboard.serve(url, host=host, port=port)
