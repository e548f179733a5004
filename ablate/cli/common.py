"""What every command shares: the app, the consoles, the method this invocation studies, option aliases,
the placeholders a method fills, and the checks whose failure is one line and exit 2."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import typer

import ablate.cli.terminal as terminal
from ablate.errors import AblateError
from ablate.experiment import presets
from ablate.method import Method, load_method

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


def one_of(*choices: str) -> str:
    """An option's metavar listing its choices, as click shows a Choice's (``<a|b|c>``)."""
    return "<" + "|".join(choices) + ">"


def fidelity_names(method: Method) -> tuple[str, ...]:
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


def current_method() -> Method:
    """The method this invocation studies (set on the root context by :func:`main`)."""
    from ablate.execution.provenance import current_context

    ctx = current_context()
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, Method) else load_method()


def fail(message: str) -> None:
    raise AblateError(message)


def choice(option: str, value: str, allowed: tuple[str, ...] | list[str]) -> str:
    if value not in allowed:
        fail(f"{option} {value!r} is not one of {', '.join(allowed)}")
    return value


def set_threads(n: int | None) -> None:
    import torch

    if n is not None:
        torch.set_num_threads(n)


def above(bound: float, below: float | None = None) -> Callable[[float | None], float | None]:
    """An option callback for an open bound (typer's ``min``/``max`` are closed): a level, a width, a timeout.

    It refuses as typer refuses a closed bound, so ``ablate.cli.main`` prints one line and exits 2."""

    def check(value: float | None) -> float | None:
        if value is not None and (value <= bound or (below is not None and value >= below)):
            upper = f" and less than {below:g}" if below is not None else ""
            raise typer.BadParameter(f"Input should be greater than {bound:g}{upper}")
        return value

    return check


def check_device(device: str) -> None:
    from ablate.app import check_device

    check_device(current_method(), device)


# ---------------------------------------------------------------------------------------------- studies
StorageOpt = Annotated[
    str | None,
    typer.Option("--storage", metavar="URL", help="Optuna storage URL (default $OPTUNA_STORAGE, else SQLite)."),
]
WorkersOpt = Annotated[int, typer.Option(min=0, help="Worker processes on this machine (0: only fill the queue).")]
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
        metavar=one_of("auto", "on", "off"),
        help="Train a trial's runs (seeds, design points) as stacked replicas: auto = where measured to pay "
        "(on a GPU), on, off (the bit-for-bit reference).",
    ),
]
ThreadsOpt = Annotated[
    int,
    typer.Option(
        "--threads", min=1, help="torch threads per worker (1 is fastest for these small MLPs on a busy CPU)."
    ),
]
HeartbeatOpt = Annotated[int, typer.Option(min=1, help="Heartbeat interval in seconds (RDB storages).")]
GraceOpt = Annotated[int | None, typer.Option(min=1, help="Seconds without heartbeat before a trial is stale.")]
AlphaOpt = Annotated[float, typer.Option(callback=above(0, 1), help="Family-wise significance level (Holm); 0<x<1.")]
JoinOpt = Annotated[
    bool, typer.Option(help="Only work on the queue a coordinator fills (extra machines); never creates the study.")
]
DeviceOpt = Annotated[str, typer.Option(metavar="<cpu|cuda|cuda:N>", help="Torch device.")]
JoinWaitOpt = Annotated[
    float,
    typer.Option(
        min=0,
        help="--join: wait up to this many seconds for the study and its queue, and for a database that refuses "
        "connections (restarting) (0: refuse at once).",
    ),
]


def storage_url(storage: str | None, *, wait: float = 0.0) -> str:
    from ablate.app import storage_url

    return storage_url(storage, wait=wait)


def execute_plan(plan: Any, label: str) -> Any:
    """Run a plan with progress on stderr: a live bar on a terminal, a line every so often in a log."""

    from ablate.execution import studies

    with terminal.progress(err, label, plan.total) as update:
        outcome = studies.execute(plan, on_progress=update, log=err.print)
        update(studies.progress_info(outcome.study))
    return outcome


def print_summary(outcome: Any) -> None:
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


def next_steps(names: list[str], url: str, **kwargs: Any) -> None:
    for line in terminal.next_steps(names, url, **kwargs):
        out.print(line, soft_wrap=True)
