"""``ablate study``, ``ablate ablation``, ``ablate reproduce``: build a study plan and execute it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ablate.cli.common import (
    CASE_ALL_METAVAR,
    DEFAULT_PRESET,
    TABLE_METAVAR,
    CurvesOpt,
    DeviceOpt,
    FidelityOpt,
    GraceOpt,
    HeartbeatOpt,
    JoinOpt,
    JoinWaitOpt,
    SetOpt,
    StackOpt,
    StorageOpt,
    ThreadsOpt,
    WorkersOpt,
    above,
    app,
    current_method,
    err,
    execute_plan,
    next_steps,
    out,
    print_summary,
)
from ablate.cli.confirm import confirm_one


@app.command("reproduce")
def reproduce_cmd(
    table: Annotated[
        str, typer.Argument(metavar=TABLE_METAVAR, help="A table the method declares (CGI: table1, table2).")
    ],
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per technique and case (the paper used 10).")] = 10,
    fidelity: FidelityOpt = DEFAULT_PRESET,
    storage: StorageOpt = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Report directory.")] = None,
    workers: WorkersOpt = 1,
    threads: ThreadsOpt = 1,
    device: DeviceOpt = "cpu",
    settings: SetOpt = None,
    curves: CurvesOpt = True,
    stack: StackOpt = "auto",
) -> None:
    """Reproduce Table 1 or Table 2: every technique x case x seed is one enqueued Optuna trial.

    Resumable (rerun the same command), visible in `ablate dashboard`, and written as .md/.tex/.csv/.json.

    \b
    Examples:
      ablate reproduce table1 --seeds 10 --fidelity quick
      ablate reproduce table2 --seeds 5 --fidelity quick --out studies/runs/table2
    """
    from ablate import app as application
    from ablate.report import reproduce

    execution = application.Execution(workers=workers, threads=threads, device=device, curves=curves, stack=stack)
    plan, out_path = application.plan_table(
        current_method(),
        table=table,
        seeds=seeds,
        fidelity=fidelity,
        storage=storage,
        out_dir=out_dir,
        settings=settings,
        execution=execution,
    )
    outcome = execute_plan(plan, f"{table} ({fidelity}, {seeds} seeds)")
    print_summary(outcome)
    paths, terminal = reproduce.write_table_report(outcome.study, plan, out_path)
    out.print(terminal)
    next_steps([plan.name], plan.storage, written=tuple(str(p) for p in paths))


ReportOpt = Annotated[
    bool,
    typer.Option(
        "--report", help="Then write each study's report (a confirmation's too) to RUNS/report-STUDY, as ablate report."
    ),
]


@app.command("study")
def study_cmd(
    case: Annotated[str, typer.Option(metavar=CASE_ALL_METAVAR, help="A transfer case, or all (one study per case).")],
    trials: Annotated[int, typer.Option(min=1, help="Finished trials the study should hold in total.")] = 200,
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per trial (mean is the objective).")] = 1,
    fidelity: FidelityOpt = DEFAULT_PRESET,
    sampler: Annotated[str, typer.Option(metavar="<tpe|random|qmc|grid>", help="Optuna sampler.")] = "tpe",
    pruner: Annotated[
        str | None,
        typer.Option(
            metavar="<none|median|wilcoxon|hyperband>",
            help="Optuna pruner (default: wilcoxon if --seeds > 1, else median).",
        ),
    ] = None,
    space: Annotated[Path | None, typer.Option(help="Search space file (default studies/space.toml).")] = None,
    storage: StorageOpt = None,
    study_name: Annotated[str | None, typer.Option(help="Override the derived study name.")] = None,
    workers: WorkersOpt = 1,
    join: JoinOpt = False,
    join_wait: JoinWaitOpt = 300,
    timeout: Annotated[
        float | None, typer.Option(callback=above(0), help="Stop starting trials after this many seconds; x>0.")
    ] = None,
    sampler_seed: Annotated[int, typer.Option(min=0, help="Sampler seed (worker i uses seed + i).")] = 0,
    heartbeat: HeartbeatOpt = 60,
    grace: GraceOpt = None,
    threads: ThreadsOpt = 1,
    device: DeviceOpt = "cpu",
    settings: SetOpt = None,
    curves: CurvesOpt = True,
    stack: StackOpt = "auto",
    confirm: Annotated[
        int,
        typer.Option(min=0, help="Then re-run the K best distinct configurations on fresh seeds (0: no confirmation)."),
    ] = 0,
    confirm_seeds: Annotated[
        int, typer.Option(min=2, help="Fresh paired seeds of the confirmation (--confirm; paired: 2 or more).")
    ] = 8,
    report: ReportOpt = False,
) -> None:
    """Sensitivity study: sample configurations of the method (CGI by default), optimise validation accuracy.

    \b
    Examples:
      ablate study --case T2M1_T1M2 --trials 200
      ablate study --case all --trials 50 --seeds 3 --workers 2 \\
        --storage postgresql://user@db/ablate
    """
    from ablate import app as application

    execution = application.Execution(
        workers=workers,
        threads=threads,
        device=device,
        stack=stack,
        curves=curves,
        join=join,
        join_wait=join_wait,
        heartbeat_interval=heartbeat,
        grace_period=grace,
        timeout=timeout,
    )
    searches = application.plan_searches(
        current_method(),
        case=case,
        trials=trials,
        seeds=seeds,
        fidelity=fidelity,
        sampler=sampler,
        pruner=pruner,
        space=space,
        storage=storage,
        study_name=study_name,
        settings=settings,
        sampler_seed=sampler_seed,
        confirm_top=confirm,
        report=report,
        execution=execution,
    )
    for note in searches.notes:
        err.print(note)
    made: list[str] = []
    for plan in searches.plans:
        outcome = execute_plan(plan, plan.name)
        print_summary(outcome)
        made.append(plan.name)
        if confirm and not join:
            made.append(confirm_one(outcome.study, top=confirm, seeds=confirm_seeds, fidelity=None, plan=plan))
    url = searches.plans[0].storage
    written = application.write_reports_of(made, url) if report and not join else ()
    next_steps(made, url, then="report" if confirm else "confirm", written=written)


@app.command("ablation")
def ablation_cmd(
    case: Annotated[str, typer.Option(metavar=CASE_ALL_METAVAR, help="A transfer case, or all (one study per case).")],
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per variant (paired across variants).")] = 10,
    design: Annotated[
        str, typer.Option(metavar="<ofat|factorial>", help="ofat (one factor at a time) or factorial.")
    ] = "ofat",
    fidelity: FidelityOpt = DEFAULT_PRESET,
    storage: StorageOpt = None,
    study_name: Annotated[str | None, typer.Option(help="Override the derived study name.")] = None,
    design_file: Annotated[
        Path | None, typer.Option(help="Design file (default studies/ablation.toml); its stem names the study.")
    ] = None,
    settings: SetOpt = None,
    curves: CurvesOpt = True,
    workers: WorkersOpt = 1,
    join: JoinOpt = False,
    join_wait: JoinWaitOpt = 300,
    heartbeat: HeartbeatOpt = 60,
    grace: GraceOpt = None,
    threads: ThreadsOpt = 1,
    device: DeviceOpt = "cpu",
    stack: StackOpt = "auto",
    report: ReportOpt = False,
) -> None:
    """Designed ablation: every variant of the full method, and the no-transfer benchmark, on the same seeds.

    \b
    Examples:
      ablate ablation --case T2M2_T1M1 --seeds 10 --design ofat
      ablate ablation --case all --seeds 5 --design factorial --workers 2
    """
    from ablate import app as application

    execution = application.Execution(
        workers=workers,
        threads=threads,
        device=device,
        stack=stack,
        curves=curves,
        join=join,
        join_wait=join_wait,
        heartbeat_interval=heartbeat,
        grace_period=grace,
    )
    plans = application.plan_ablations(
        current_method(),
        case=case,
        seeds=seeds,
        fidelity=fidelity,
        design=design,
        design_file=design_file,
        storage=storage,
        study_name=study_name,
        settings=settings,
        report=report,
        execution=execution,
    )
    for plan in plans:
        print_summary(execute_plan(plan, plan.name))
    made, url = [p.name for p in plans], plans[0].storage
    next_steps(made, url, written=application.write_reports_of(made, url) if report and not join else ())
