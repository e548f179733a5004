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
    check_device,
    check_precision,
    choice,
    current_method,
    err,
    execute_plan,
    next_steps,
    out,
    print_summary,
    storage_url,
)
from ablate.cli.confirm import confirm_one
from ablate.execution.studies import check_new_names
from ablate.experiment import presets
from ablate.report.reports import check_report_dirs


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
    from ablate.execution.plans import DesignPlan
    from ablate.experiment.designs import load_table_design, parse_settings
    from ablate.experiment.names import derived_name
    from ablate.report import reproduce

    method = current_method()
    choice("table", table, method.tables)
    check_device(device)
    fid = presets.load_fidelity(fidelity, method=method)
    base = parse_settings(settings, method)
    check_precision(base, device)
    design = load_table_design(table, method=method).with_base(base, method)
    label = derived_name("table", fidelity, design=table, settings=base)
    out_path = out_dir or presets.runs_dir() / label
    from ablate.report import check_out_dir

    url = storage_url(storage)  # before the folder is made: a refused storage leaves nothing behind
    check_new_names(url, [label])
    check_out_dir(out_path)
    plan = DesignPlan(
        name=label,
        storage=url,
        fidelity=fid,
        design=design,
        cases=method.cases,
        seeds=seeds,
        workers=workers,
        device=device,
        threads=threads,
        curves=curves,
        stack=stack,
        method=method,
    )
    outcome = execute_plan(plan, f"{table} ({fidelity}, {seeds} seeds)")
    print_summary(outcome)
    paths, terminal = reproduce.write_table_report(outcome.study, plan, out_path)
    out.print(terminal)
    next_steps([plan.name], url, written=tuple(str(p) for p in paths))


ReportOpt = Annotated[
    bool,
    typer.Option(
        "--report", help="Then write each study's report (a confirmation's too) to RUNS/report-STUDY, as ablate report."
    ),
]


def write_reports_of(names: list[str], url: str) -> tuple[str, ...]:
    """``--report``: the reports of the studies just run, in their default folders; the folders written."""
    import optuna

    from ablate.execution.storages import open_storage
    from ablate.report import FORMATS
    from ablate.report.reports import write_reports

    storage = open_storage(url, heartbeat_interval=None, create=False)
    studies = [optuna.load_study(study_name=n, storage=storage) for n in names]
    folders = {str(w.paths[0].parent) + "/": None for w in write_reports(studies, formats=FORMATS) if w.paths}
    return tuple(folders)


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
    from ablate.execution.plans import SensitivityPlan, settle_search
    from ablate.experiment.designs import expand_cases, parse_settings
    from ablate.experiment.names import sensitivity_study_names
    from ablate.experiment.space import load_space

    method = current_method()
    cases = expand_cases(case, method)
    check_device(device)
    fid = presets.load_fidelity(fidelity, method=method)
    sp = load_space(space, method)
    base = parse_settings(settings, method)
    check_precision(base, device)
    search = settle_search(sampler, pruner, seeds=seeds, trials=trials, space=sp, base=base)
    for note in search.notes:
        err.print(note)
    names = sensitivity_study_names(cases, study_name, fidelity, base, confirm)
    url = storage_url(storage, wait=join_wait if join else 0.0)
    check_new_names(url, names.values())
    if report:
        check_report_dirs(list(names.values()), None)
    made: list[str] = []
    for c in cases:
        name = names[c]
        plan = SensitivityPlan(
            name=name,
            storage=url,
            fidelity=fid,
            case=c,
            space=sp,
            trials=search.trials,
            seeds=seeds,
            sampler_name=search.sampler,
            pruner_name=search.pruner,
            sampler_seed=sampler_seed,
            workers=workers,
            join=join,
            join_wait=join_wait,
            timeout=timeout,
            heartbeat_interval=heartbeat,
            grace_period=grace,
            device=device,
            threads=threads,
            base=base,
            curves=curves,
            stack=stack,
            method=method,
        )
        outcome = execute_plan(plan, name)
        print_summary(outcome)
        made.append(name)
        if confirm and not join:
            made.append(confirm_one(outcome.study, top=confirm, seeds=confirm_seeds, fidelity=None, url=url, plan=plan))
    written = write_reports_of(made, url) if report and not join else ()
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
    from ablate.execution.plans import DesignPlan
    from ablate.experiment.designs import expand_cases, load_ablation_design, parse_settings
    from ablate.experiment.names import ablation_study_names

    method = current_method()
    cases = expand_cases(case, method)
    check_device(device)
    fid = presets.load_fidelity(fidelity, method=method)
    base = parse_settings(settings, method)
    check_precision(base, device)
    dsg = load_ablation_design(design, design_file, method).with_base(base, method)
    stem = dsg.name if design_file is None else f"{dsg.name}-{design_file.stem}"
    names = ablation_study_names(stem, cases, study_name, fidelity, base)
    url = storage_url(storage, wait=join_wait if join else 0.0)
    check_new_names(url, names.values())
    if report:
        check_report_dirs(list(names.values()), None)
    made: list[str] = []
    for c in cases:
        name = names[c]
        plan = DesignPlan(
            name=name,
            storage=url,
            fidelity=fid,
            design=dsg,
            cases=(c,),
            seeds=seeds,
            workers=workers,
            join=join,
            join_wait=join_wait,
            heartbeat_interval=heartbeat,
            grace_period=grace,
            device=device,
            threads=threads,
            curves=curves,
            stack=stack,
            method=method,
        )
        outcome = execute_plan(plan, name)
        print_summary(outcome)
        made.append(name)
    next_steps(made, url, written=write_reports_of(made, url) if report and not join else ())
