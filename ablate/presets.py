"""Checked-in study definitions: where ``studies/`` is and how fidelity presets are read from it."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from ablate.errors import AblateError
from crossgen.config import Fidelity
from crossgen.errors import ConfigError


def studies_dir() -> Path:
    """``$ABLATE_STUDIES_DIR``, else ``./studies`` when it exists, else the repository's ``studies/``."""
    env = os.environ.get("ABLATE_STUDIES_DIR")
    if env:
        return Path(env)
    local = Path.cwd() / "studies"
    if (local / "fidelity.toml").is_file():
        return local
    return Path(__file__).resolve().parents[1] / "studies"


def runs_dir() -> Path:
    return studies_dir() / "runs"


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into a one-line AblateError naming the file."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise AblateError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise AblateError(f"{path}: malformed TOML ({exc})") from None
    except OSError as exc:
        raise AblateError(f"{path}: cannot read ({exc.strerror})") from None


def fidelities(path: Path | None = None) -> dict[str, Fidelity]:
    path = path or studies_dir() / "fidelity.toml"
    raw = read_toml(path)
    out = {}
    for name, values in raw.items():
        if not isinstance(values, dict):
            raise AblateError(f"{path}: [{name}] must be a table")
        try:
            out[name] = Fidelity.from_dict(name, values)
        except (ConfigError, TypeError) as exc:
            raise AblateError(f"{path}: [{name}] {exc}") from None
    return out


def load_fidelity(name: str, path: Path | None = None) -> Fidelity:
    presets = fidelities(path)
    if name not in presets:
        raise AblateError(f"unknown fidelity {name!r}; choose one of {', '.join(presets)}")
    return presets[name]
