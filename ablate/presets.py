"""Where study definitions are read from and where runs are written, checkout or installed package alike.

The built-in definitions (``fidelity.toml``, ``space.toml``, ``ablation.toml``, ``table1.toml``, ``table2.toml``)
ship as package data of ``ablate_studies``, which setuptools maps onto the repository's ``studies/`` folder, so
an installed ``ablate`` works from any folder while ``studies/`` stays the one source of truth. A project's own
``studies/`` overrides them. Output never goes next to the installed code.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import platformdirs

from ablate.errors import AblateError
from crossgen.config import REGISTRY, Fidelity
from crossgen.errors import ConfigError

DEFINITIONS_PACKAGE = "ablate_studies"
STUDIES_ENV = "ABLATE_STUDIES_DIR"
APP_NAME = "ablate"

Definition = Path | Traversable


def _env_studies_dir() -> Path | None:
    env = os.environ.get(STUDIES_ENV, "").strip()
    return Path(env).expanduser().absolute() if env else None


def project_studies_dir() -> Path | None:
    """The definitions a user chose over the built-in ones: ``$ABLATE_STUDIES_DIR``, else ``./studies`` when it
    holds ``fidelity.toml`` (a checkout or a project folder), else ``None``."""
    env = _env_studies_dir()
    if env is not None:
        return env
    local = Path.cwd() / "studies"
    return local if (local / "fidelity.toml").is_file() else None


def builtin_studies_dir() -> Traversable:
    """The definitions shipped with the package, read through ``importlib.resources`` so zipped installs work too."""
    try:
        return resources.files(DEFINITIONS_PACKAGE)
    except ModuleNotFoundError:
        raise AblateError(
            f"this installation lacks the built-in study definitions (package {DEFINITIONS_PACKAGE}); "
            f"set {STUDIES_ENV} to a folder holding fidelity.toml"
        ) from None


def studies_dir() -> Definition:
    """Where definitions are read from: the project's own folder when there is one, else the built-in ones."""
    project = project_studies_dir()
    return project if project is not None else builtin_studies_dir()


def definition_path(name: str) -> Definition:
    """The definition file ``name`` (e.g. ``"space.toml"``) from :func:`studies_dir`; read it with :func:`read_toml`
    (a Traversable, not always a filesystem path)."""
    return studies_dir() / name


def runs_dir() -> Path:
    """Default home of databases, reports and dashboard artifacts, never inside the installed package:
    ``$ABLATE_STUDIES_DIR/runs``, else ``./studies/runs`` when the current folder has ``studies/`` (a project),
    else ``runs/`` in the per-user data folder."""
    env = _env_studies_dir()
    if env is not None:
        return env / "runs"
    local = Path.cwd() / "studies"
    if local.is_dir():
        return local / "runs"
    return Path(platformdirs.user_data_dir(APP_NAME)) / "runs"


def default_storage_url() -> str:
    """The SQLite storage used when neither ``--storage`` nor ``$OPTUNA_STORAGE`` names one; absolute, so that
    workers and later commands started elsewhere find the same file."""
    return f"sqlite:///{runs_dir() / 'ablate.db'}"


def read_toml(path: Definition | str) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into a one-line AblateError naming the file."""
    if isinstance(path, str | os.PathLike):
        path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise AblateError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise AblateError(f"{path}: malformed TOML ({exc})") from None
    except OSError as exc:
        raise AblateError(f"{path}: cannot read ({exc.strerror})") from None


def fidelities(path: Definition | None = None) -> dict[str, Fidelity]:
    path = path or definition_path("fidelity.toml")
    raw = read_toml(path)
    out = {}
    for name, values in raw.items():
        if not isinstance(values, dict):
            raise AblateError(f"{path}: [{name}] must be a table")
        try:
            out[name] = Fidelity.from_dict(name, values)
            REGISTRY.configs({}, out[name])  # its switch values must be valid switches
        except (ConfigError, TypeError) as exc:
            raise AblateError(f"{path}: [{name}] {exc}") from None
    return out


def load_fidelity(name: str, path: Definition | None = None) -> Fidelity:
    presets = fidelities(path)
    if name not in presets:
        raise AblateError(f"unknown fidelity {name!r}; choose one of {', '.join(presets)}")
    return presets[name]
