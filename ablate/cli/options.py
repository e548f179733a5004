"""CLI options derived from a method's switches: one ``--flag`` per declared switch, never listed by hand.

Choices become typer's own choice type (``Literal``), closed ranges its ``min``/``max``; open bounds, named
values (``M = all``) and ``none`` go through the switch's own parser. Every refusal is a typer/click usage
error or a :class:`~ablate.method.SwitchError`, which ``ablate.cli.main`` prints as one line with exit 2.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, Literal

import typer

from ablate.method import SwitchError, Switches
from ablate.method.switches import Switch


def _parser(s: Switch) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if not isinstance(value, str):
            return value  # an already-typed default
        try:
            return s.parse(value)
        except SwitchError as exc:
            raise typer.BadParameter(str(exc)) from None

    parse.__name__ = s.kind
    return parse


def _help(s: Switch) -> str:
    """Help text; parser-based options state their allowed values (typer shows ranges and choices itself)."""
    return f"{s.help} ({s.describe()})"


def switch_parameter(s: Switch) -> inspect.Parameter:
    """The typer parameter of one switch (its Python name is the switch's name)."""
    if s.kind == "bool":
        off = "--no-" + s.flag.removeprefix("--")
        annotation: Any = Annotated[bool, typer.Option(f"{s.flag}/{off}", help=s.help)]
    elif s.choices and not (s.special or s.nullable):
        annotation = Annotated[Literal[s.choices], typer.Option(s.flag, help=s.help)]  # type: ignore[valid-type]
    elif s.special or s.nullable or s.low_open or s.kind not in ("int", "float"):
        annotation = Annotated[str, typer.Option(s.flag, help=_help(s), parser=_parser(s), metavar=s.kind.upper())]
    else:
        kind = int if s.kind == "int" else float
        annotation = Annotated[kind, typer.Option(s.flag, help=s.help, min=s.low, max=s.high)]  # type: ignore[valid-type]
    return inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, default=s.default, annotation=annotation)


def with_switch_options(func: Callable[..., Any], registry: Switches) -> Callable[..., Any]:
    """``func(**fixed, switches: dict)`` exposed to typer with its own parameters plus one per switch.

    The wrapper collects the switch values into one ``switches`` dict, so the command body never names a
    switch: adding one to the registry adds its option here.
    """
    own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "switches"]
    names = registry.names()
    clash = {p.name for p in own} & set(names)
    if clash:
        raise RuntimeError(f"switch names clash with the command's own options: {sorted(clash)}")

    def command(switch_context: typer.Context, **kwargs: Any) -> Any:
        # only switches the user gave: the rest come from the fidelity preset, else the declared default
        given = {n for n in names if switch_context.get_parameter_source(n).name != "DEFAULT"}
        switches = {name: kwargs.pop(name) for name in names}
        return func(**kwargs, switches={n: v for n, v in switches.items() if n in given})

    context = inspect.Parameter("switch_context", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    params = [context] + own + [switch_parameter(s) for s in registry]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = func.__doc__
    command.__name__ = func.__name__
    return command
