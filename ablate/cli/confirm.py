"""``ablate confirm`` and ``ablate seeds``: the confirm stage and the seeds advisor."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ablate.cli.common import (
    CASE_ALL_METAVAR,
    FIDELITY_METAVAR,
    AlphaOpt,
    DeviceOpt,
    StackOpt,
    StorageOpt,
    ThreadsOpt,
    WorkersOpt,
    above,
    app,
    choice,
    current_method,
    err,
    execute_plan,
    fail,
    next_steps,
    out,
    print_summary,
    storage_url,
)


def confirm_one(source: Any, *, top: int, seeds: int, fidelity: Any, plan: Any) -> str:
    """Create (or resume) the confirmation of one search, run it with the search's workers, print its verdict."""
    from ablate.app import prepare_confirmation

    confirmation = prepare_confirmation(source, top=top, seeds=seeds, fidelity=fidelity, plan=plan)
    outcome = execute_plan(confirmation, confirmation.name)
    print_summary(outcome)
    print_confirmation(outcome.study)
    return confirmation.name


def print_confirmation(study: Any) -> None:
    from rich.table import Table

    from ablate import record
    from ablate.analysis import confirmation, tidy

    df = tidy.design_frame(study)
    if df.empty:
        return
    a = confirmation.analyse(df, record.read_definition(study))
    table = Table(title=f"{study.study_name}: fresh paired seeds (test accuracy; Holm over {len(a.rows)} each)")
    default = f"vs default {current_method().label}"
    for col in ("configuration", "search → confirmed val (winner's curse)", "vs benchmark", default):
        table.add_column(col)
    for _, r in a.rows.iterrows():
        table.add_row(
            str(r["variant"]),
            f"{r['search_val'] * 100:.2f} → {r['confirmed_val'] * 100:.2f} ({r['winners_curse_val'] * 100:+.2f} pp)",
            f"{r['delta_vs_benchmark'] * 100:+.2f} pp, p={r['p_holm_vs_benchmark']:.3g}: {r['verdict_vs_benchmark']}",
            f"{r['delta_vs_default'] * 100:+.2f} pp, p={r['p_holm_vs_default']:.3g}: {r['verdict_vs_default']}",
        )
    out.print(table)
    out.print(
        f"Kendall τ (search rank vs confirmed rank, validation) = {a.tau:.2f}, p = {a.tau_p:.3g}; "
        f"mean winner's curse {a.rows['winners_curse_val'].mean() * 100:+.2f} pp (search − confirmed validation)"
    )
    for w in a.warnings:
        err.print(f"note: {w}")


@app.command("confirm")
def confirm_cmd(
    studies: Annotated[list[str] | None, typer.Argument(help="Sensitivity studies to confirm.")] = None,
    case: Annotated[
        str | None,
        typer.Option(metavar=CASE_ALL_METAVAR, help="Confirm every sensitivity search of this case (or all)."),
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="How many of the best distinct configurations to re-run.")] = 3,
    seeds: Annotated[int, typer.Option(min=2, help="Fresh paired seeds (disjoint from the search's).")] = 8,
    fidelity: Annotated[
        str | None, typer.Option(metavar=FIDELITY_METAVAR, help="Preset to confirm at (default: the search's).")
    ] = None,
    storage: StorageOpt = None,
    workers: WorkersOpt = 1,
    threads: ThreadsOpt = 1,
    device: DeviceOpt = "cpu",
    stack: StackOpt = "auto",
) -> None:
    """Re-run a search's K best distinct configurations, the default and the baseline on fresh seeds.

    The confirmation is a design study named confirm-topK-STUDY (resumable, many workers), linked to its search;
    `ablate report` on it gives the verdicts, the winner's curse and the rank agreement.

    \b
    Examples:
      ablate confirm sensitivity-T2M1_T1M2-quick --top 3 --seeds 8
      ablate confirm --case all --top 3 --seeds 10 --fidelity paper --workers 2
    """
    from ablate import app as application

    execution = application.Execution(workers=workers, threads=threads, device=device, stack=stack)
    planned = application.plan_confirmations(
        current_method(),
        studies=studies or [],
        case=case,
        top=top,
        seeds=seeds,
        fidelity=fidelity,
        storage=storage,
        execution=execution,
    )
    names = [
        confirm_one(source, top=top, seeds=seeds, fidelity=plan.fidelity if fidelity else None, plan=plan)
        for source, plan in planned
    ]
    if planned:
        next_steps(names, planned[0][1].storage)


@app.command("seeds")
def seeds_cmd(
    study_name: Annotated[str | None, typer.Argument(help="A design or confirmation study to plan from.")] = None,
    sd: Annotated[
        float | None, typer.Option(callback=above(0), help="SD of the paired differences (accuracy units); x>0.")
    ] = None,
    delta: Annotated[float | None, typer.Option(help="Difference to detect (accuracy units, 0.005 = 0.5 pp).")] = None,
    alpha: AlphaOpt = 0.05,
    m: Annotated[
        int | None, typer.Option("--m", min=1, help="Comparisons in the Holm family (default: the study's).")
    ] = None,
    power_: Annotated[float, typer.Option("--power", callback=above(0, 1), help="Target power; 0<x<1.")] = 0.8,
    metric: Annotated[
        str, typer.Option(metavar="<test_accuracy|val_accuracy>", help="Paired metric.")
    ] = "test_accuracy",
    sims: Annotated[int, typer.Option(min=100, help="Simulated experiments per n (seeded).")] = 2000,
    storage: StorageOpt = None,
) -> None:
    """Seeds advisor: paired seeds needed to detect Δ at α with the given power (exact sign-flip test + Holm).

    Power is simulated for the test the reports use and cross-checked against the noncentral t.

    \b
    Examples:
      ablate seeds --sd 0.01 --delta 0.005 --m 3
      ablate seeds confirm-top3-sensitivity-T2M1_T1M2-quick
    """
    from ablate.analysis import power

    choice("--metric", metric, ("test_accuracy", "val_accuracy"))
    if delta is not None and delta == 0:
        fail("--delta must not be 0")
    if study_name is None:
        if sd is None or delta is None:
            fail("give a study, or both --sd and --delta")
        rows = [power.Observed("given", float(delta), float(sd), 0)]
    else:
        from ablate.app import load_study

        rows = power.observed_differences(load_study(storage_url(storage), study_name), metric)
    from rich.table import Table

    family = m or max(1, len(rows))
    table = Table(title=f"paired seeds for power {power_:g} (exact sign-flip, Holm over {family}, α = {alpha:g})")
    for col in ("comparison", "n now", "Δ", "SD", "seeds (sign-flip, simulated)", "power there", "noncentral t"):
        table.add_column(col)
    for row in rows:
        label, n_now = row.label, row.n
        d_use, s_use = (delta if delta is not None else row.delta), (sd if sd is not None else row.sd)
        a = power.seeds_needed(d_use, s_use, alpha=alpha, m=family, target=power_, sims=sims)
        table.add_row(
            label,
            str(n_now or "–"),
            f"{d_use * 100:+.2f} pp",
            f"{s_use * 100:.2f} pp",
            a.text(),
            f"{a.power_at_n:.3f}",
            str(a.t_n or "–"),
        )
    out.print(table)
