"""Search spaces read from ``studies/*.toml`` and turned into Optuna ``suggest_*`` calls.

A space is data, validated once when it is loaded (a malformed file is a one-line error before any
storage is touched); sampling it is a pure function of the trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from ablate.errors import AblateError
from ablate.experiment.presets import definition_path, read_toml
from ablate.method import Method, Switches, load_method


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    when: dict[str, Any] = field(default_factory=dict)
    grid: tuple[Any, ...] = ()

    def active(self, values: dict[str, Any]) -> bool:
        return all(values.get(k) == v for k, v in self.when.items())

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)


@dataclass(frozen=True)
class Space:
    path: str
    params: tuple[Param, ...]

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """Suggest every active parameter, in file order (conditions refer to earlier parameters)."""
        values: dict[str, Any] = {}
        for p in self.params:
            if p.active(values):
                values[p.name] = p.suggest(trial)
        return values

    def to_dicts(self) -> tuple[dict[str, Any], ...]:
        """The space as stored in the study's definition."""
        return tuple(
            {
                "name": p.name,
                "type": p.type,
                "choices": list(p.choices),
                "low": p.low,
                "high": p.high,
                "log": p.log,
                "when": p.when,
            }
            for p in self.params
        )

    def grid(self) -> dict[str, list[Any]]:
        """The grid sampler's search space (conditional parameters are walked unconditionally)."""
        out = {}
        for p in self.params:
            values = list(p.choices) if p.type == "categorical" else list(p.grid)
            if not values:
                raise AblateError(f"{self.path}: [params.{p.name}] needs `grid = [...]` for --sampler grid")
            out[p.name] = values
        return out


def _check_values(where: str, name: str, values: list[Any], registry: Switches) -> None:
    """Every value a parameter can take must be one its switch accepts (bounds and choices come from there)."""
    switch = registry.get(name)
    for value in values:
        try:
            switch.check(value)
        except AblateError as exc:
            raise AblateError(f"{where}: {exc}") from None


def _param(path: str, name: str, raw: Any, registry: Switches) -> Param:
    where = f"{path}: [params.{name}]"
    if not isinstance(raw, dict):
        raise AblateError(f"{where} must be a table")
    if name not in registry.names():
        raise AblateError(f"{where} is not a switch (known: {', '.join(sorted(registry.names()))})")
    unknown = set(raw) - {"type", "choices", "low", "high", "log", "when", "grid"}
    if unknown:
        raise AblateError(f"{where} has unknown key(s) {', '.join(sorted(unknown))}")
    kind = raw.get("type")
    if kind not in ("categorical", "int", "float"):
        raise AblateError(f"{where} type must be categorical, int or float, not {kind!r}")
    when = raw.get("when", {})
    if not isinstance(when, dict):
        raise AblateError(f'{where} `when` must be a table like {{ generator = "gmm" }}')
    grid = raw.get("grid", [])
    if not isinstance(grid, list):
        raise AblateError(f"{where} `grid` must be a list")
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise AblateError(f"{where} needs a non-empty `choices` list")
        _check_values(where, name, choices, registry)
        return Param(name, kind, tuple(choices), when=dict(when))
    switch_kind = registry.get(name).kind
    if registry.get(name).choices or switch_kind not in ("int", "float") or (switch_kind == "int" and kind != "int"):
        raise AblateError(f"{where} type {kind!r} does not fit the switch ({registry.get(name).describe()})")
    low, high, log = raw.get("low"), raw.get("high"), raw.get("log", False)
    numeric = (int,) if kind == "int" else (int, float)
    if not isinstance(low, numeric) or not isinstance(high, numeric) or isinstance(low, bool):
        raise AblateError(f"{where} needs numeric `low` and `high`")
    if low > high or (log and low <= 0):
        raise AblateError(f"{where} needs low <= high (and low > 0 with log = true)")
    if not isinstance(log, bool):
        raise AblateError(f"{where} `log` must be true or false")
    if any(not isinstance(g, numeric) or not low <= g <= high for g in grid):
        raise AblateError(f"{where} grid values must lie in [low, high]")
    _check_values(where, name, [low, high], registry)
    return Param(name, kind, low=low, high=high, log=log, when=dict(when), grid=tuple(grid))


def load_space(path: Path | str | None = None, method: Method | None = None) -> Space:
    """Read and validate a space file (default: the method's ``space.toml``) against the method's switches."""
    method = method or load_method()
    registry = method.switches()
    path = Path(path) if path else definition_path("space.toml", method)
    raw = read_toml(path)
    params_raw = raw.get("params")
    if not isinstance(params_raw, dict) or not params_raw:
        raise AblateError(f"{path}: needs at least one [params.NAME] table")
    params = tuple(_param(str(path), name, value, registry) for name, value in params_raw.items())
    seen: set[str] = set()
    for p in params:
        for dep in p.when:
            if dep not in seen:
                raise AblateError(f"{path}: [params.{p.name}] depends on {dep!r}, which must be defined before it")
        seen.add(p.name)
    return Space(str(path), params)
