"""The switch vocabulary every method declares its settings with: ``x: int = switch(3, "What x does.", low=0)``.

A switch is one declaration (type, default, allowed values, help) in a frozen dataclass field's metadata. The
CLI options, ``--set`` parsing, search-space bounds, design flips, record columns and report labels all derive
from it. The metadata layout (key :data:`SWITCH`, a dict of the keyword arguments below) is a plain-data
contract: ``crossgen.config`` declares CGI's switches in the same layout with its own ``switch`` (crossgen
validates its configs standalone and never imports ``ablate``), so :func:`switches_of` reads both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from ablate.errors import AblateError

SWITCH = "switch"
"""The dataclass-field metadata key under which a switch declaration lives."""
KINDS = ("int", "float", "bool", "str")


class SwitchError(AblateError, ValueError):
    """A value a switch does not allow (the message names the switch and what it allows)."""


@dataclass(frozen=True)
class Switch:
    """One declared switch: its type, default, allowed values or range, and help.

    ``special`` names non-numeric values a numeric switch also accepts (``M = "all"``); ``nullable`` lets
    ``None`` mean "take it from the fidelity preset"; ``option`` overrides the CLI flag; ``group`` is where the
    method keeps it (CGI: the config dataclass), never shown to a user.
    """

    name: str
    kind: str
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    special: tuple[str, ...] = ()
    nullable: bool = False
    option: str = ""
    group: str = ""

    @property
    def flag(self) -> str:
        """The CLI option (``--M``, ``--lambda``, ``--prior-sigma``)."""
        return self.option or "--" + self.name.replace("_", "-")

    def _bounds(self) -> list[str]:
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"<= {self.high:g}")
        return bounds

    def _extra(self) -> list[str]:
        return [*self.special, *(["none"] if self.nullable else [])]

    def describe(self) -> str:
        """What values are allowed, in words (used in --help and in error messages)."""
        if self.choices:
            return " | ".join(str(c) for c in self.choices)
        kind = {"int": "integer", "float": "number", "bool": "true | false", "str": "text"}[self.kind]
        text = f"{kind} {' and '.join(self._bounds())}".strip()
        return " | ".join([text, *self._extra()]) if self._extra() else text

    def _range_text(self) -> str:
        noun = {"int": "an integer", "float": "a finite number", "str": "text", "bool": "true or false"}[self.kind]
        text = " ".join([noun, " and ".join(self._bounds())]).strip()
        return f"{text} or {', '.join(self._extra())}" if self._extra() else text

    def check(self, value: Any) -> None:
        """Raise a one-line :class:`SwitchError` naming the switch when ``value`` is not allowed."""
        if value is None and self.nullable:
            return
        if isinstance(value, str) and value in self.special:
            return
        if self.choices:
            if value not in self.choices or isinstance(value, bool) != isinstance(self.choices[0], bool):
                raise SwitchError(f"{self.name}={value!r} is not one of {', '.join(str(c) for c in self.choices)}")
            return
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise SwitchError(f"{self.name}={value!r} must be true or false")
            return
        if self.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.kind == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else:
            ok = isinstance(value, str)
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value <= self.high
        if not ok:
            raise SwitchError(f"{self.name}={value!r} must be {self._range_text()}")

    def parse(self, text: str) -> Any:
        """A value written as text (CLI, TOML strings) converted to the switch's type, then checked."""
        raw = text.strip()
        if raw in self.special:
            value: Any = raw
        elif self.nullable and raw.lower() == "none":
            value = None
        elif self.kind == "bool" or (self.choices and isinstance(self.choices[0], bool)):
            lowered = raw.lower()
            if lowered not in ("true", "false"):
                raise SwitchError(f"{self.name}={raw!r} must be true or false")
            value = lowered == "true"
        elif self.kind in ("int", "float"):
            try:
                value = int(raw) if self.kind == "int" else float(raw)
            except ValueError:
                raise SwitchError(f"{self.name}={raw!r} must be {self._range_text()}") from None
        else:
            value = raw
        self.check(value)
        return value

    def as_dict(self) -> dict[str, Any]:
        """The declaration as plain data (what a study stores, so reports never need the method's code)."""
        return {
            "name": self.name,
            "group": self.group,
            "kind": self.kind,
            "default": self.default,
            "choices": list(self.choices),
            "flag": self.flag,
            "help": self.help,
        }


def switch(
    default: Any,
    help: str,
    *,
    choices: tuple[Any, ...] = (),
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    special: tuple[str, ...] = (),
    nullable: bool = False,
    option: str = "",
    kind: str | None = None,
) -> Any:
    """Declare a dataclass field as a switch (the one declaration; see :class:`Switch`).

    Parameters
    ----------
    default
        The value a run takes when nothing sets it; it must itself be allowed.
    help
        One sentence: what the switch does (shown in ``--help``, error messages and the docs).
    choices, low, high, low_open, special, nullable, option, kind
        What is allowed (see :class:`Switch`); ``kind`` is inferred from the choices or the default.
    """
    if kind is None:  # from the values it takes: its choices, else its default (None needs an explicit kind)
        sample = choices[0] if choices else default
        kind = type(sample).__name__ if sample is not None else "float"
    spec = {
        "kind": kind,
        "help": help,
        "choices": tuple(choices),
        "low": low,
        "high": high,
        "low_open": low_open,
        "special": tuple(special),
        "nullable": nullable,
        "option": option,
    }
    return field(default=default, metadata={SWITCH: spec})


def switches_of(cls: type, group: str = "") -> tuple[Switch, ...]:
    """The switches a dataclass declares, in declaration order (ablate's or crossgen's ``switch``)."""
    return tuple(
        Switch(name=f.name, group=group, default=f.default, **f.metadata[SWITCH])
        for f in fields(cls)
        if SWITCH in f.metadata
    )


@dataclass(frozen=True)
class Switches:
    """A method's switches, by name: lookups and the checks every entry point shares."""

    all: tuple[Switch, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.all]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise AblateError(f"switch(es) {', '.join(duplicated)} declared twice")
        for s in self.all:
            if s.kind not in KINDS:
                raise AblateError(f"switch {s.name!r} has kind {s.kind!r}; kinds are {', '.join(KINDS)}")

    def __iter__(self):  # noqa: ANN204 - iterating yields Switch
        return iter(self.all)

    def __len__(self) -> int:
        return len(self.all)

    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.all)

    def get(self, name: str) -> Switch:
        for s in self.all:
            if s.name == name:
                return s
        raise SwitchError(f"{name!r} is not a switch (known: {', '.join(self.names())})")

    def defaults(self) -> dict[str, Any]:
        return {s.name: s.default for s in self.all}

    def complete(self, values: dict[str, Any]) -> dict[str, Any]:
        """Every switch's value: ``values`` (each checked) over the defaults; unknown names are refused."""
        for name, value in values.items():
            self.get(name).check(value)
        return {**self.defaults(), **values}

    def declarations(self) -> tuple[dict[str, Any], ...]:
        return tuple(s.as_dict() for s in self.all)
