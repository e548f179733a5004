"""The ``ablate`` command: a thin layer over the library, one module per command group.

``common`` holds the app and what commands share; ``run``, ``study``, ``confirm``, ``report`` and ``storage``
hold the commands; this module builds the app for one method (its switches, cases and own commands)
and runs it. Every user error, a bad option value, a malformed file, an unreachable storage, ends as one line
``error: ...`` on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from ablate.cli import confirm, report, run, storage, study  # noqa: F401 - importing them registers the commands
from ablate.cli.common import (
    APP_SETTINGS,
    CASE_ALL_METAVAR,
    CASE_METAVAR,
    DEFAULT_PRESET,
    FIDELITY_METAVAR,
    TABLE_METAVAR,
    TECHNIQUE_METAVAR,
    app,
    err,
    fidelity_names,
    one_of,
)
from ablate.cli.options import with_switch_options
from ablate.cli.run import run_cmd
from ablate.errors import AblateError, one_line
from ablate.method import Method, load_method

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
COMMAND_ORDER = ("reproduce", "study", "confirm", "seeds", "ablation", "report", "studies", "recover", "dashboard")
"""How ``ablate --help`` lists the commands (after ``run`` and the method's own): the order of a piece of work."""


def _filled(method: Method) -> dict[str, str]:
    names = fidelity_names(method)
    return {
        CASE_METAVAR: one_of(*method.cases),
        CASE_ALL_METAVAR: one_of(*method.cases, "all"),
        TECHNIQUE_METAVAR: one_of(*method.variants),
        FIDELITY_METAVAR: one_of(*names) if names else "PRESET",
        TABLE_METAVAR: one_of(*method.tables) if method.tables else "TABLE",
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
    registered = {info.name: info.callback for info in app.registered_commands if info.name}
    generic.update({name: registered[name] for name in COMMAND_ORDER if name in registered})
    generic.update(registered)
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

    from ablate.execution.connections import released

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
