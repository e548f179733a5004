"""Where study definitions are read from and where runs are written, checkout or installed package alike.

Each method ships its definitions (``fidelity.toml``, ``space.toml``, ``ablation.toml``, its tables' files) and
names the folder (:meth:`ablate.method.Method.definitions`). CGI's ship as package data of ``ablate_studies``,
which setuptools maps onto the repository's ``studies/`` folder, so an installed ``ablate`` works from any folder
while ``studies/`` stays the one source of truth. A project's own ``studies/`` (or ``$ABLATE_STUDIES_DIR``)
overrides them: its top level holds the default method's definitions, ``studies/<method>/`` another method's.
Output never goes next to the installed code.
"""

from __future__ import annotations

import os
import tomllib
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import platformdirs

from ablate.errors import AblateError
from ablate.method import Method, Preset, load_method
from ablate.method.discovery import DEFAULT

STUDIES_ENV = "ABLATE_STUDIES_DIR"
APP_NAME = "ablate"

Definition = Path | Traversable


def _env_studies_dir() -> Path | None:
    env = os.environ.get(STUDIES_ENV, "").strip()
    return Path(env).expanduser().absolute() if env else None


def _project_root() -> Path | None:
    env = _env_studies_dir()
    if env is not None:
        return env
    local = Path.cwd() / "studies"
    return local if local.is_dir() else None


def project_studies_dir(method: Method | None = None) -> Path | None:
    """The definitions a user chose over the method's own: ``$ABLATE_STUDIES_DIR``, else ``./studies``, when it
    holds ``fidelity.toml`` (at its top for the default method, in ``<method>/`` for another), else ``None``.
    The variable, once set, is the choice even before its files exist (a missing file is then reported)."""
    name = (method or load_method()).name
    root = _project_root()
    if root is None:
        return None
    folder = root if name == DEFAULT else root / name
    if _env_studies_dir() is not None and name == DEFAULT:
        return folder
    return folder if (folder / "fidelity.toml").is_file() else None


def studies_dir(method: Method | None = None) -> Definition:
    """Where definitions are read from: the project's own folder when there is one, else the method's."""
    method = method or load_method()
    project = project_studies_dir(method)
    return project if project is not None else method.definitions()


def definition_path(name: str, method: Method | None = None) -> Definition:
    """The definition file ``name`` (e.g. ``"space.toml"``) from :func:`studies_dir`; read it with :func:`read_toml`
    (a Traversable, not always a filesystem path)."""
    return studies_dir(method) / name


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


def fidelities(path: Definition | None = None, method: Method | None = None) -> dict[str, Preset]:
    """Every preset of ``fidelity.toml``, validated by the method."""
    method = method or load_method()
    path = path or definition_path("fidelity.toml", method)
    raw = read_toml(path)
    out = {}
    for name, values in raw.items():
        if not isinstance(values, dict):
            raise AblateError(f"{path}: [{name}] must be a table")
        try:
            out[name] = method.preset(name, values)
        except AblateError as exc:
            raise AblateError(f"{path}: [{name}] {exc}") from None
    return out


def load_fidelity(name: str, path: Definition | None = None, method: Method | None = None) -> Preset:
    presets = fidelities(path, method)
    if name not in presets:
        raise AblateError(f"unknown fidelity {name!r}; choose one of {', '.join(presets)}")
    return presets[name]
