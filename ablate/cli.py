"""The ``ablate`` command: parse, validate, call into the modules, print. No logic of its own.

Every user error — a bad option value, a malformed file, an unreachable storage — ends as one line
``error: …`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ablate import presets, terminal
from ablate.errors import AblateError, one_line
from ablate.method import Method, load_method
from ablate.options import with_switch_options

HELP = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
APP_SETTINGS: dict[str, Any] = dict(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # click's plain help: option names never cut at 80 columns, choices listed
    context_settings=HELP,
)
app = typer.Typer(help="Optuna-driven ablation and sensitivity studies of any method (CGI built in).", **APP_SETTINGS)

out = terminal.console()
err = terminal.console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"ablate {version('ablate')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            metavar="NAME|MODULE:ATTR",
            help="The method to study: a registered name (entry point group ablate.methods) or module:attribute "
            "(default $ABLATE_METHOD, else cgi). Also accepted after the command.",
        ),
    ] = None,
) -> None:
    """Optuna-driven ablation and sensitivity studies of any method (CGI built in)."""


def _one_of(*choices: str) -> str:
    """An option's metavar listing its choices, as click shows a Choice's (``<a|b|c>``)."""
    return "<" + "|".join(choices) + ">"


def _fidelity_names(method: Method) -> tuple[str, ...]:
    try:
        return tuple(presets.fidelities(method=method))
    except Exception:  # noqa: BLE001 - a broken preset file is reported by the command that loads it
        return ()


# Placeholders in the commands' signatures, filled from the method when the app is built (method_app)
CASE_METAVAR = "<CASE>"
CASE_ALL_METAVAR = "<CASE|all>"
TECHNIQUE_METAVAR = "<VARIANT>"
FIDELITY_METAVAR = "<PRESET>"
TABLE_METAVAR = "<TABLE>"
DEFAULT_PRESET = "<default preset>"


def _method() -> Method:
    """The method this invocation studies (set on the root context by :func:`main`)."""
    from ablate.provenance import current_context

    ctx = current_context()
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, Method) else load_method()


def _fail(message: str) -> None:
    raise AblateError(message)


def _choice(option: str, value: str, allowed: tuple[str, ...] | list[str]) -> str:
    if value not in allowed:
        _fail(f"{option} {value!r} is not one of {', '.join(allowed)}")
    return value


def _threads(n: int | None) -> None:
    import torch

    if n is not None:
        if n < 1:
            _fail(f"--threads {n} must be >= 1")
        torch.set_num_threads(n)


def _device(device: str) -> None:
    if device != "cpu" and device != "cuda" and not device.startswith("cuda:"):
        _fail(f"--device {device!r} is not one of cpu, cuda, cuda:N")
    if device.startswith("cuda"):
        if "cuda" not in _method().devices:
            _fail(f"--device {device}: method {_method().name} runs on {', '.join(_method().devices)}")
        import torch

        if not torch.cuda.is_available():
            _fail(f"--device {device}: no CUDA device is available on this machine")


def _precision(switches: dict[str, Any], device: str) -> None:
    """What the method cannot run on this device (CGI: bf16 without bf16 units) is refused once, here."""
    _method().check_device(switches, device)


# ---------------------------------------------------------------------------------------------- run
def run_cmd(
    case: Annotated[str, typer.Option(metavar=CASE_METAVAR, help="Case.")],
    technique: Annotated[str, typer.Option("--technique", metavar=TECHNIQUE_METAVAR, help="Variant to run.")],
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    fidelity: Annotated[str, typer.Option(metavar=FIDELITY_METAVAR, help="Preset in fidelity.toml.")] = DEFAULT_PRESET,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    device: Annotated[str, typer.Option(metavar="<cpu|cuda|cuda:N>", help="Device.")] = "cpu",
    *,
    switches: dict[str, Any],
) -> None:
    """Run one variant of the method on one case with one seed and print its metrics.

    Every switch the method declares is an option below the fixed ones.
    """
    from dataclasses import asdict

    from ablate.method import Request
    from ablate.objective import resolved

    method = _method()
    _choice("--case", case, method.cases)
    _choice("--technique", technique, method.variants)
    _device(device)
    _precision(switches, device)
    preset = presets.load_fidelity(fidelity, method=method)
    values = resolved(method, preset, switches)
    method.check(technique, values)
    request = Request(case, technique, seed, values, preset, device=device)
    (result,) = method.run([request], log=err.print)
    if isinstance(result, Exception):
        raise result
    if as_json:
        print(json.dumps({"case": case, "technique": technique, **asdict(result)}, default=str))
        return
    out.print(
        f"[bold]{case}[/] {technique} seed={seed} fidelity={fidelity}: "
        f"val {result.val_accuracy:.4f}  test {result.test_accuracy:.4f}  ({result.seconds:.1f} s)"
    )


# ---------------------------------------------------------------------------------------------- studies
StorageOpt = Annotated[
    str | None,
    typer.Option("--storage", metavar="URL", help="Optuna storage URL (default $OPTUNA_STORAGE, else SQLite)."),
]
WorkersOpt = Annotated[int, typer.Option(help="Worker processes on this machine (0: only fill the queue).")]
FidelityOpt = Annotated[str, typer.Option(metavar=FIDELITY_METAVAR, help="Preset in the method's fidelity.toml.")]
CurvesOpt = Annotated[
    bool,
    typer.Option("--curves/--no-curves", help="Record every BNN run's per-epoch val/test accuracy (learning curves)."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="NAME=VALUE",
        help="NAME=VALUE: a switch value shared by every run, benchmark included (repeatable; e.g. "
        "--set init_log_sigma=-2.3). The study name gets a +NAME=VALUE suffix.",
    ),
]
StackOpt = Annotated[
    Literal["auto", "on", "off"],
    typer.Option(
        "--stack",
        metavar=_one_of("auto", "on", "off"),
        help="Train a trial's runs (seeds, design points) as stacked replicas: auto = where measured to pay "
        "(on a GPU), on, off (the bit-for-bit reference).",
    ),
]
ThreadsOpt = Annotated[
    int, typer.Option("--threads", help="torch threads per worker (1 is fastest for these small MLPs on a busy CPU).")
]
JoinOpt = Annotated[
    bool, typer.Option(help="Only work on the queue a coordinator fills (extra machines); never creates the study.")
]
JoinWaitOpt = Annotated[
    float,
    typer.Option(help="--join: wait up to this many seconds for the study and its queue (0: refuse at once)."),
]


def _storage_url(storage: str | None) -> str:
    from ablate.storage import check_reachable, parse_storage, resolve_url

    url = resolve_url(storage)
    check_reachable(parse_storage(url))
    return url


def _check_workers(workers: int) -> None:
    if workers < 0:
        _fail(f"--workers {workers} must be >= 0")


def _check_join_wait(seconds: float) -> None:
    if seconds < 0:
        _fail(f"--join-wait {seconds:g} must be >= 0")


def _check_counts(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            _fail(f"--{name.replace('_', '-')} {value} must be >= 1")


def _execute(plan: Any, label: str) -> Any:
    """Run a plan with progress on stderr: a live bar on a terminal, a line every so often in a log."""
    from ablate import studies, terminal

    with terminal.progress(err, label, plan.total) as update:
        outcome = studies.execute(plan, on_progress=update, log=err.print)
        update(studies.progress_info(outcome.study))
    return outcome


def _summary(outcome: Any) -> None:
    from rich.table import Table

    c = outcome.counts
    table = Table(title=f"study {outcome.study.study_name}")
    for col in ("complete", "pruned", "failed", "running", "waiting", "best value", "seconds"):
        table.add_column(col)
    try:
        best = f"{outcome.study.best_value:.4f}"
    except ValueError:
        best = "-"
    table.add_row(
        str(c["COMPLETE"]),
        str(c["PRUNED"]),
        str(c["FAIL"]),
        str(c["RUNNING"]),
        str(c["WAITING"]),
        best,
        f"{outcome.seconds:.0f}",
    )
    out.print(table)


@app.command("reproduce")
def reproduce_cmd(
    table: Annotated[
        str, typer.Argument(metavar=TABLE_METAVAR, help="A table the method declares (CGI: table1, table2).")
    ],
    seeds: Annotated[int, typer.Option(help="Seeds per technique and case (the paper used 10).")] = 10,
    fidelity: FidelityOpt = DEFAULT_PRESET,
    storage: StorageOpt = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Report directory.")] = None,
    workers: WorkersOpt = 1,
    threads: ThreadsOpt = 1,
    device: Annotated[str, typer.Option(metavar="<cpu|cuda|cuda:N>", help="Torch device.")] = "cpu",
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
    from ablate.designs import load_table_design, parse_settings, settings_label
    from ablate.report import reproduce
    from ablate.studies import StudyPlan

    method = _method()
    _choice("table", table, method.tables)
    _check_counts(seeds=seeds, threads=threads)
    _device(device)
    _check_workers(workers)
    fid = presets.load_fidelity(fidelity, method=method)
    base = parse_settings(settings, method)
    _precision(base, device)
    design = load_table_design(table, method=method).with_base(base, method)
    label = f"{table}-{fidelity}{settings_label(base)}"
    out_path = out_dir or presets.runs_dir() / label
    from ablate.report import check_out_dir

    url = _storage_url(storage)  # before the folder is made: a refused storage leaves nothing behind
    check_out_dir(out_path)
    plan = StudyPlan(
        name=label,
        storage=url,
        fidelity=fid,
        kind="design",
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
    outcome = _execute(plan, f"{table} ({fidelity}, {seeds} seeds)")
    _summary(outcome)
    paths, terminal = reproduce.write_table_report(outcome.study, plan, out_path)
    out.print(terminal)
    _next_steps([plan.name], url, written=tuple(str(p) for p in paths))


@app.command("study")
def study_cmd(
    case: Annotated[str, typer.Option(metavar=CASE_ALL_METAVAR, help="A transfer case, or all (one study per case).")],
    trials: Annotated[int, typer.Option(help="Finished trials the study should hold in total.")] = 200,
    seeds: Annotated[int, typer.Option(help="Seeds per trial (mean is the objective).")] = 1,
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
    timeout: Annotated[float | None, typer.Option(help="Stop starting trials after this many seconds.")] = None,
    sampler_seed: Annotated[int, typer.Option(help="Sampler seed (worker i uses seed + i).")] = 0,
    heartbeat: Annotated[int, typer.Option(help="Heartbeat interval in seconds (RDB storages).")] = 60,
    grace: Annotated[int | None, typer.Option(help="Seconds without heartbeat before a trial is stale.")] = None,
    threads: ThreadsOpt = 1,
    device: Annotated[str, typer.Option(metavar="<cpu|cuda|cuda:N>", help="Torch device.")] = "cpu",
    settings: SetOpt = None,
    curves: CurvesOpt = True,
    stack: StackOpt = "auto",
    confirm: Annotated[
        int, typer.Option(help="Then re-run the K best distinct configurations on fresh seeds (0: no confirmation).")
    ] = 0,
    confirm_seeds: Annotated[int, typer.Option(help="Fresh paired seeds of the confirmation (--confirm).")] = 8,
) -> None:
    """Sensitivity study: sample CGI configurations, optimise target validation accuracy.

    \b
    Examples:
      ablate study --case T2M1_T1M2 --trials 200
      ablate study --case all --trials 50 --seeds 3 --workers 2 \\
        --storage postgresql://user@db/ablate
    """
    from ablate.designs import expand_cases, parse_settings, settings_label
    from ablate.names import sensitivity_study_names
    from ablate.space import load_space
    from ablate.studies import PRUNERS, SAMPLERS, StudyPlan

    method = _method()
    cases = expand_cases(case, method)
    _check_counts(trials=trials, seeds=seeds, heartbeat=heartbeat, threads=threads, grace=grace)
    _check_confirm(confirm, confirm_seeds, optional=True)
    _device(device)
    if sampler_seed < 0:
        _fail(f"--sampler-seed {sampler_seed} must be >= 0")
    _check_workers(workers)
    if timeout is not None and timeout <= 0:
        _fail(f"--timeout {timeout} must be > 0")
    _choice("--sampler", sampler, SAMPLERS)
    pruner = pruner or ("wilcoxon" if seeds > 1 else "median")
    _choice("--pruner", pruner, PRUNERS)
    if pruner == "wilcoxon" and seeds < 2:
        _fail("--pruner wilcoxon compares seeds: it needs --seeds >= 2")
    _check_join_wait(join_wait)
    from ablate.studies import pruning_warning

    cannot = pruning_warning(pruner, seeds)
    if cannot:
        print(f"warning: {cannot}", file=sys.stderr)
    fid = presets.load_fidelity(fidelity, method=method)
    sp = load_space(space, method)
    base = parse_settings(settings, method)
    _precision(base, device)
    overlap = sorted(set(base) & {p.name for p in sp.params})
    if overlap:
        _fail(f"--set {', '.join(overlap)}: already a parameter of the search space")
    if sampler == "grid":
        grid = sp.grid()
        size = 1
        for values in grid.values():
            size *= len(values)
        if trials > size:
            err.print(f"grid has {size} points: --trials lowered from {trials} to {size}")
            trials = size
    names = sensitivity_study_names(cases, study_name, fidelity, settings_label(base), confirm)
    url = _storage_url(storage)
    made: list[str] = []
    for c in cases:
        name = names[c]
        plan = StudyPlan(
            name=name,
            storage=url,
            fidelity=fid,
            kind="sensitivity",
            case=c,
            space=sp,
            trials=trials,
            seeds=seeds,
            sampler=sampler,
            pruner=pruner,
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
        outcome = _execute(plan, name)
        _summary(outcome)
        made.append(name)
        if confirm and not join:
            made.append(
                _confirm_one(outcome.study, top=confirm, seeds=confirm_seeds, fidelity=None, url=url, plan=plan)
            )
    _next_steps(made, url, then="report" if confirm else "confirm")


def _check_confirm(top: int, seeds: int, *, optional: bool = False) -> None:
    if top < (0 if optional else 1):
        _fail(f"--{'confirm' if optional else 'top'} {top} must be >= {0 if optional else 1}")
    if seeds < 2:
        _fail(f"--{'confirm-seeds' if optional else 'seeds'} {seeds} must be >= 2 (paired seeds)")


def _next_steps(names: list[str], url: str, **kwargs: Any) -> None:
    for line in terminal.next_steps(names, url, **kwargs):
        out.print(line, soft_wrap=True)


def _confirm_one(source: Any, *, top: int, seeds: int, fidelity: Any, url: str, plan: Any) -> str:
    """Create (or resume) the confirmation of one search, run it with the search's workers, print its verdict."""
    from dataclasses import replace

    from ablate import confirm, record, studies

    existing = None
    conf = confirm.plan(source, top=top, seeds=seeds, fidelity=fidelity, method=plan.method)
    study_plan = replace(
        plan,
        name=conf.name,
        kind="design",
        fidelity=conf.fidelity,
        design=conf.design,
        cases=(conf.case,),
        seeds=seeds,
        case=None,
        space=None,
        trials=0,
        join=False,
        timeout=None,
        base={},
    )
    study = studies.open_study(study_plan)
    if record.DEFINITION in study.user_attrs:
        existing = record.read_definition(study)
        conf = confirm.plan(source, top=top, seeds=seeds, fidelity=fidelity, existing=existing, method=plan.method)
        study_plan = replace(study_plan, design=conf.design)
    confirm.create(study, source, conf, study_plan)
    outcome = _execute(study_plan, conf.name)
    _summary(outcome)
    _print_confirmation(outcome.study)
    return conf.name


def _print_confirmation(study: Any) -> None:
    from rich.table import Table

    from ablate import confirm, record, tidy

    df = tidy.design_frame(study)
    if df.empty:
        return
    a = confirm.analyse(df, record.read_definition(study))
    table = Table(title=f"{study.study_name}: fresh paired seeds (test accuracy; Holm over {len(a.rows)} each)")
    default = f"vs default {_method().label}"
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
    top: Annotated[int, typer.Option(help="How many of the best distinct configurations to re-run.")] = 3,
    seeds: Annotated[int, typer.Option(help="Fresh paired seeds (disjoint from the search's).")] = 8,
    fidelity: Annotated[
        str | None, typer.Option(metavar=FIDELITY_METAVAR, help="Preset to confirm at (default: the search's).")
    ] = None,
    storage: StorageOpt = None,
    workers: WorkersOpt = 1,
    threads: ThreadsOpt = 1,
    device: Annotated[str, typer.Option(metavar="<cpu|cuda|cuda:N>", help="Torch device.")] = "cpu",
    stack: StackOpt = "auto",
) -> None:
    """Re-run a search's K best distinct configurations, the default CGI and the benchmark on fresh seeds.

    The confirmation is a design study named confirm-topK-STUDY (resumable, many workers), linked to its search;
    `ablate report` on it gives the verdicts, the winner's curse and the rank agreement.

    \b
    Examples:
      ablate confirm sensitivity-T2M1_T1M2-quick --top 3 --seeds 8
      ablate confirm --case all --top 3 --seeds 10 --fidelity paper --workers 2
    """
    import optuna

    from ablate import confirm, record
    from ablate.storage import open_storage
    from ablate.studies import StudyPlan

    _check_confirm(top, seeds)
    _check_workers(workers)
    _check_counts(threads=threads)
    _device(device)
    if not studies and not case:
        _fail("name one or more sensitivity studies, or pass --case CASE|all")
    method = _method()
    fid = presets.load_fidelity(fidelity, method=method) if fidelity else None
    url = _storage_url(storage)
    st = open_storage(url, heartbeat_interval=None, create=False)
    sources = []
    for name in studies or []:
        try:
            sources.append(optuna.load_study(study_name=name, storage=st))
        except KeyError:
            _fail(f"no study named {name!r} in {url}")
    if case:
        from ablate.designs import expand_cases

        wanted = set(expand_cases(case, method))
        for name in optuna.get_all_study_names(st):
            study = optuna.load_study(study_name=name, storage=st)
            if record.kind_of(study) != "sensitivity" or any(s.study_name == name for s in sources):
                continue
            with contextlib.suppress(AblateError):
                if record.read_definition(study).case in wanted:
                    sources.append(study)
        if not sources:
            _fail(f"no sensitivity study of --case {case} in {url}")
    for source in sources:  # every check before the first write: bad input leaves the storage as it was
        confirm.plan(source, top=top, seeds=seeds, fidelity=fid, method=method)
    names: list[str] = []
    for source in sources:
        definition = record.read_definition(source)
        base = StudyPlan(
            name=source.study_name,
            storage=url,
            fidelity=fid or confirm.stored_preset(method, definition.fidelity),
            kind="design",
            workers=workers,
            device=device,
            threads=threads,
            stack=stack,
            method=method,
        )
        names.append(_confirm_one(source, top=top, seeds=seeds, fidelity=fid, url=url, plan=base))
    _next_steps(names, url)


@app.command("seeds")
def seeds_cmd(
    study_name: Annotated[str | None, typer.Argument(help="A design or confirmation study to plan from.")] = None,
    sd: Annotated[float | None, typer.Option(help="SD of the paired differences (accuracy units).")] = None,
    delta: Annotated[float | None, typer.Option(help="Difference to detect (accuracy units, 0.005 = 0.5 pp).")] = None,
    alpha: Annotated[float, typer.Option(help="Family-wise significance level.")] = 0.05,
    m: Annotated[int | None, typer.Option("--m", help="Comparisons in the Holm family (default: the study's).")] = None,
    power_: Annotated[float, typer.Option("--power", help="Target power.")] = 0.8,
    metric: Annotated[
        str, typer.Option(metavar="<test_accuracy|val_accuracy>", help="Paired metric.")
    ] = "test_accuracy",
    sims: Annotated[int, typer.Option(help="Simulated experiments per n (seeded).")] = 2000,
    storage: StorageOpt = None,
) -> None:
    """Seeds advisor: paired seeds needed to detect Δ at α with the given power (exact sign-flip test + Holm).

    Power is simulated for the test the reports use and cross-checked against the noncentral t.

    \b
    Examples:
      ablate seeds --sd 0.01 --delta 0.005 --m 3
      ablate seeds confirm-top3-sensitivity-T2M1_T1M2-quick
    """
    from ablate import power

    _choice("--metric", metric, ("test_accuracy", "val_accuracy"))
    if not 0 < alpha < 1:
        _fail(f"--alpha {alpha} must be in (0, 1)")
    if not 0 < power_ < 1:
        _fail(f"--power {power_} must be in (0, 1)")
    if m is not None and m < 1:
        _fail(f"--m {m} must be >= 1")
    if sims < 100:
        _fail(f"--sims {sims} must be >= 100")
    if sd is not None and sd <= 0:
        _fail(f"--sd {sd} must be > 0")
    if delta is not None and delta == 0:
        _fail("--delta must not be 0")
    rows: list[tuple[str, float, float, int | None]] = []
    if study_name is None:
        if sd is None or delta is None:
            _fail("give a study, or both --sd and --delta")
        rows.append(("given", float(delta), float(sd), None))
    else:
        rows = _observed_differences(study_name, metric, storage)
    from rich.table import Table

    family = m or max(1, len(rows))
    table = Table(title=f"paired seeds for power {power_:g} (exact sign-flip, Holm over {family}, α = {alpha:g})")
    for col in ("comparison", "n now", "Δ", "SD", "seeds (sign-flip, simulated)", "power there", "noncentral t"):
        table.add_column(col)
    for label, d, s, n_now in rows:
        d_use, s_use = (delta if delta is not None else d), (sd if sd is not None else s)
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


def _observed_differences(name: str, metric: str, storage: str | None) -> list[tuple[str, float, float, int | None]]:
    """Per comparison of a design study (each variant vs its reference, per case): mean and SD of the differences."""
    import optuna

    from ablate import record, stats, tidy
    from ablate.storage import open_storage

    url = _storage_url(storage)
    st = open_storage(url, heartbeat_interval=None, create=False)
    try:
        study = optuna.load_study(study_name=name, storage=st)
    except KeyError:
        _fail(f"no study named {name!r} in {url}")
    definition = record.read_definition(study)
    if definition.kind != "design":
        _fail(f"study {name!r} is a {definition.kind} study: give a design or confirmation study, or --sd and --delta")
    df = tidy.design_frame(study)
    design = definition.design or {}
    titles = {v["label"]: " ≡ ".join([v["label"], *v.get("aliases", [])]) for v in design.get("variants", [])}
    reference = titles.get(design.get("baseline", ""), design.get("baseline", ""))
    rows = []
    for c in sorted(df["case"].unique()) if not df.empty else []:
        sub = df[df["case"] == c]
        for v in sub["variant"].unique():
            if v == reference:
                continue
            pr = stats.paired(sub, variant=v, reference=reference, value=metric)
            if pr.n >= 2:
                rows.append((f"{c}: {v} vs {reference}", float(pr.diff.mean()), float(pr.diff.std(ddof=1)), pr.n))
    if not rows:
        _fail(f"study {name!r} has no comparison with at least 2 paired seeds")
    return rows


@app.command("ablation")
def ablation_cmd(
    case: Annotated[str, typer.Option(metavar=CASE_ALL_METAVAR, help="A transfer case, or all (one study per case).")],
    seeds: Annotated[int, typer.Option(help="Seeds per variant (paired across variants).")] = 10,
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
    heartbeat: Annotated[int, typer.Option(help="Heartbeat interval in seconds (RDB storages).")] = 60,
    grace: Annotated[int | None, typer.Option(help="Seconds without heartbeat before a trial is stale.")] = None,
    threads: ThreadsOpt = 1,
    device: Annotated[str, typer.Option(metavar="<cpu|cuda|cuda:N>", help="Torch device.")] = "cpu",
    stack: StackOpt = "auto",
) -> None:
    """Designed ablation: every variant of the full method, and the no-transfer benchmark, on the same seeds.

    \b
    Examples:
      ablate ablation --case T2M2_T1M1 --seeds 10 --design ofat
      ablate ablation --case all --seeds 5 --design factorial --workers 2
    """
    from ablate.designs import expand_cases, load_ablation_design, parse_settings, settings_label
    from ablate.names import ablation_study_names
    from ablate.studies import StudyPlan

    method = _method()
    cases = expand_cases(case, method)
    _check_counts(seeds=seeds, heartbeat=heartbeat, threads=threads, grace=grace)
    _device(device)
    _check_workers(workers)
    _check_join_wait(join_wait)
    fid = presets.load_fidelity(fidelity, method=method)
    base = parse_settings(settings, method)
    _precision(base, device)
    dsg = load_ablation_design(design, design_file, method).with_base(base, method)
    stem = dsg.name if design_file is None else f"{dsg.name}-{design_file.stem}"
    names = ablation_study_names(stem, cases, study_name, fidelity, settings_label(base))
    url = _storage_url(storage)
    made: list[str] = []
    for c in cases:
        name = names[c]
        plan = StudyPlan(
            name=name,
            storage=url,
            fidelity=fid,
            kind="design",
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
        outcome = _execute(plan, name)
        _summary(outcome)
        made.append(name)
    _next_steps(made, url)


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
    alpha: Annotated[float, typer.Option(help="Family-wise significance level (Holm).")] = 0.05,
    rope: Annotated[
        float | None, typer.Option(help="Region of practical equivalence, accuracy units (0.005 = 0.5 pp).")
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
    import optuna

    from ablate import record
    from ablate.report import FORMATS, write_study_report
    from ablate.storage import open_storage

    fmts = tuple(f.strip() for f in formats.split(",") if f.strip())
    for f in fmts:
        _choice("--format", f, FORMATS)
    _choice("--metric", metric, ("test_accuracy", "val_accuracy"))
    if not 0 < alpha < 1:
        _fail(f"--alpha {alpha} must be in (0, 1)")
    if rope is not None and rope <= 0:
        _fail(f"--rope {rope} must be > 0")
    if not studies and not case:
        _fail("name one or more studies, or pass --case CASE|all")
    url = _storage_url(storage)
    st = open_storage(url, heartbeat_interval=None, create=False)
    names = list(studies or [])
    if case:
        from ablate.designs import expand_cases

        wanted = expand_cases(case, _method())
        names += [n for n in optuna.get_all_study_names(st) if any(c in n for c in wanted) and n not in names]
    if not names:
        _fail(f"no studies found for --case {case} in {url}")
    from ablate.report import check_out_dir

    targets = {
        n: (out_dir / n if out_dir and len(names) > 1 else out_dir) or presets.runs_dir() / f"report-{n}" for n in names
    }
    found = {}
    for name in names:  # every study found and readable before any folder is made or report written
        try:
            found[name] = optuna.load_study(study_name=name, storage=st)
        except KeyError:
            _fail(f"no study named {name!r} in {url}")
        record.read_definition(found[name])  # one line for a study plain Optuna (or a newer ablate) made
    for target in targets.values():
        check_out_dir(target)
    loaded: list[Any] = []
    for name, study in found.items():
        result = write_study_report(
            study, targets[name], formats=fmts, metric=metric, alpha=alpha, rope=rope, publish=not no_dashboard
        )
        out.print(f"[bold]{name}[/] ({result.kind}, {result.runs} runs): {', '.join(str(p) for p in result.paths)}")
        loaded.append(study)
    _report_across_cases(loaded, out_dir, formats=fmts, metric=metric, alpha=alpha, rope=rope)


def _report_across_cases(studies: list[Any], out_dir: Path | None, **kwargs: Any) -> None:
    """Confirmations of two or more cases at one fidelity also get one report that joins them."""
    from ablate.report.across import across_name, confirmations_by_fidelity, write_across_cases_report

    for fidelity, group in confirmations_by_fidelity(studies).items():
        name = across_name(fidelity)
        target = out_dir / name if out_dir else presets.runs_dir() / f"report-{name}"
        paths = write_across_cases_report(group, target, **kwargs)
        out.print(f"[bold]{name}[/] ({len(group)} confirmations): {', '.join(str(p) for p in paths)}")


@app.command("studies")
def studies_cmd(storage: StorageOpt = None) -> None:
    """List the studies in a storage with trial counts by state and best value.

    Example: ablate studies --storage sqlite:///studies/runs/ablate.db
    """
    from rich.table import Table

    from ablate.studies import list_studies

    url = _storage_url(storage)
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
    stale_after: Annotated[float, typer.Option(help="Fail RUNNING trials older than this many seconds.")],
    study_name: Annotated[str | None, typer.Option(help="Only this study (default: every study).")] = None,
    storage: StorageOpt = None,
) -> None:
    """Repair a storage without heartbeats (journal file / Redis) after a worker was killed.

    Stuck RUNNING trials older than --stale-after are failed and re-queued with the same parameters.
    Example: ablate recover --stale-after 600 --storage studies/runs/journal.log
    """
    import optuna

    from ablate.queue import recover
    from ablate.storage import open_storage

    if stale_after <= 0:
        _fail(f"--stale-after {stale_after} must be > 0")
    url = _storage_url(storage)
    st = open_storage(url, heartbeat_interval=None, create=False)
    names = [study_name] if study_name else [s.study_name for s in optuna.get_all_study_summaries(st)]
    for name in names:
        try:
            study = optuna.load_study(study_name=name, storage=st)
        except KeyError:
            _fail(f"--study-name {name!r}: no such study in {url}")
        repaired = recover(study, stale_after=stale_after)
        out.print(f"{name}: re-queued {len(repaired)} stale trial(s) {repaired if repaired else ''}")


@app.command("dashboard")
def dashboard_cmd(
    storage: StorageOpt = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8080,
    host: Annotated[str, typer.Option(help="Bind address (default loopback only).")] = "127.0.0.1",
) -> None:
    """Launch optuna-dashboard on the same storage (reports appear as study notes and artifacts).

    Example: ablate dashboard --port 8080
    """
    from ablate import dashboard

    if not 1 <= port <= 65535:
        _fail(f"--port {port} must be in 1..65535")
    url = _storage_url(storage)
    dashboard.check_port(host, port)
    out.print(f"optuna-dashboard on http://{host}:{port}/ (Ctrl-C to stop)")
    dashboard.serve(url, host=host, port=port)


# ---------------------------------------------------------------------------------------------- entry
# Optuna features ablate uses on purpose although Optuna marks them experimental (checked against Optuna 5.0).
# Their ExperimentalWarning says nothing to a user; it is silenced here, once, for every command. Any other
# experimental feature still warns.
CHOSEN_EXPERIMENTAL = (
    "RetryHeartbeatStaleTrialCallback",
    "fail_stale_trials",
    "WilcoxonPruner",
    "set_metric_names",
    "QMCSampler",
    "JournalStorage",
    "JournalFileBackend",
    "JournalRedisBackend",
)


# ---------------------------------------------------------------------------------------------- the app
def _filled(method: Method) -> dict[str, str]:
    names = _fidelity_names(method)
    return {
        CASE_METAVAR: _one_of(*method.cases),
        CASE_ALL_METAVAR: _one_of(*method.cases, "all"),
        TECHNIQUE_METAVAR: _one_of(*method.variants),
        FIDELITY_METAVAR: _one_of(*names) if names else "PRESET",
        TABLE_METAVAR: _one_of(*method.tables) if method.tables else "TABLE",
        DEFAULT_PRESET: method.default_preset or (names[0] if names else ""),
    }


def _bind(func: Any, filled: dict[str, str]) -> Any:
    """``func`` with the signature's placeholders (metavars, the default preset) filled for one method."""
    import copy
    import inspect
    from typing import get_args, get_origin

    from typer.models import ArgumentInfo, OptionInfo

    sig = inspect.signature(func, eval_str=True)
    params = []
    for p in sig.parameters.values():
        ann, default = p.annotation, p.default
        if get_origin(ann) is Annotated:
            base, *extras = get_args(ann)
            fixed = []
            for extra in extras:
                if isinstance(extra, OptionInfo | ArgumentInfo) and extra.metavar in filled:
                    extra = copy.copy(extra)
                    extra.metavar = filled[extra.metavar]
                fixed.append(extra)
            ann = Annotated[(base, *fixed)]  # type: ignore[valid-type]
        if isinstance(default, str) and default in filled:
            default = filled[default]
        params.append(p.replace(annotation=ann, default=default))

    def command(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = func.__doc__
    command.__name__ = func.__name__
    return command


def method_app(method: Method) -> typer.Typer:
    """The ``ablate`` app for one method: every command, its options and metavars derived from the method's
    declarations, plus the commands the method adds (CGI: ``data``, ``bench``, its own ``run``)."""
    from typer.models import CommandInfo

    filled = _filled(method)
    bound = typer.Typer(help=app.info.help, **APP_SETTINGS)
    bound.registered_callback = app.registered_callback
    extra = method.commands()
    generic = {"run": with_switch_options(run_cmd, method.switches())}
    generic.update({info.name: info.callback for info in app.registered_commands if info.name})
    added = [n for n, c in extra.items() if n not in generic and not isinstance(c, typer.Typer)]
    order = ["run", *added, *[n for n in generic if n != "run"]]  # run first, the method's own next
    for name in order:
        callback = extra.get(name, generic.get(name))
        bound.registered_commands.append(CommandInfo(name=name, callback=_bind(callback, filled)))
    for name, group in extra.items():
        if isinstance(group, typer.Typer):
            sub = typer.Typer(help=group.info.help, **APP_SETTINGS)
            for info in group.registered_commands:
                sub.registered_commands.append(CommandInfo(name=info.name, callback=_bind(info.callback, filled)))
            bound.add_typer(sub, name=name)
    return bound


def command(method: Method | None = None) -> Any:
    """The click command of ``ablate`` for ``method`` (default: $ABLATE_METHOD, else CGI): what ``main`` runs and
    what the docs generator and tests inspect."""
    return typer.main.get_command(method_app(method or load_method()))


def method_from_argv(args: list[str]) -> tuple[str | None, list[str]]:
    """``--method X`` (or ``--method=X``) wherever it was given, and the arguments with it moved to the front
    (the root parses it). The method must be known before the commands' options are."""
    rest = list(args)
    for i, arg in enumerate(rest):
        if arg == "--":
            break
        if arg == "--method" and i + 1 < len(rest):
            spec = rest[i + 1]
            del rest[i : i + 2]
            return spec, ["--method", spec, *rest]
        if arg.startswith("--method="):
            spec = arg.split("=", 1)[1]
            del rest[i]
            return spec, ["--method", spec, *rest]
    return None, rest


def _silence_chosen_experimental() -> None:
    import warnings

    from optuna.exceptions import ExperimentalWarning

    pattern = "|".join(CHOSEN_EXPERIMENTAL)
    warnings.filterwarnings("ignore", message=f"({pattern}) is experimental", category=ExperimentalWarning)


def _sigterm_as_ctrl_c(signum: int, frame: Any) -> None:
    """Schedulers (SLURM, Kubernetes, systemd) stop jobs with SIGTERM: end like Ctrl-C (trials FAIL, exit 130)."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the typer app and turn every user error into one line and exit 2."""
    import signal
    import threading

    from ablate.connections import released

    _silence_chosen_experimental()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c) if main_thread else None
    try:
        spec, args = method_from_argv(argv if argv is not None else sys.argv[1:])
        method = load_method(spec)
        root = command(method)
        with released():  # the command's storages give their connections back when it ends, however it ends
            rc = root.main(args=args, prog_name="ablate", standalone_mode=False, obj=method)
        if rc == 130:  # typer's answer to KeyboardInterrupt (Ctrl-C, SIGTERM): say why in one line
            print("interrupted", file=sys.stderr)
    except typer.Exit as exc:
        rc = exc.exit_code
    except typer.Abort:
        err.print("aborted")
        rc = 130
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.format_message())
            sys.exit(0)
        print(f"error: {one_line(exc.format_message())}", file=sys.stderr)
        rc = 2
    except AblateError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        rc = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        rc = 130
    except Exception as exc:  # a bug, not bad input: say so in one line; ABLATE_DEBUG=1 shows the traceback
        if os.environ.get("ABLATE_DEBUG"):
            raise
        print(
            f"internal error (please report): {type(exc).__name__}: {' '.join(str(exc).split())[:300]}; "
            "rerun with ABLATE_DEBUG=1 for the traceback",
            file=sys.stderr,
        )
        rc = 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    sys.exit(rc or 0)


if __name__ == "__main__":
    main()
