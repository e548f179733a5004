"""Provenance: what made a study — command, versions, commit, machine, data checksum — recorded at creation.

Why: a report is only as trustworthy as the claim that its runs are comparable. Two studies run on different
torch versions, commits or data files may differ for reasons no switch explains, so every study stores where
it came from once, in its definition (``Definition.extra["provenance"]``), and reports show it and warn when
the studies they combine differ.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna

from ablate import record

PACKAGES = ("torch", "pyro-ppl", "optuna", "scikit-learn", "numpy")
#: Keys whose difference between two studies makes their comparison suspect (the command line may differ).
COMPARED = (
    "method",
    "versions",
    "git_commit",
    "git_dirty",
    "cpu",
    "cpu_kernels",
    "device",
    "torch_threads",
    "data",
    "stacking",
)
_ROOT = Path(__file__).resolve().parents[2]  # the checkout (ablate/execution/provenance.py)


def versions() -> dict[str, str | None]:
    """Python and the numerical packages whose changes can move a result."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git(*args: str) -> str | None:
    if not (_ROOT / ".git").exists():
        return None
    try:
        proc = subprocess.run(["git", *args], cwd=_ROOT, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """The project's commit, and whether tracked files differed from it (an installed wheel has neither)."""
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": bool(dirty) if dirty is not None else None}


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def current_context() -> Any:
    """The running CLI command's click context (typer ships its own click copy, so both are looked at)."""
    for name in ("typer._click", "click"):
        with contextlib.suppress(ImportError, AttributeError):
            ctx = importlib.import_module(f"{name}.globals").get_current_context(silent=True)
            if ctx is not None:
                return ctx
    return None


def command_line() -> dict[str, Any]:
    """The command as typed: inside the CLI rebuilt from the parsed options (in-process argv is the caller's)."""
    out: dict[str, Any] = {"argv": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""}
    ctx = current_context()
    if ctx is not None:
        with contextlib.suppress(Exception):  # provenance must never stop a study from being created
            out["command"] = _rebuild(ctx)
    return out


def _rebuild(ctx: Any) -> str:
    """``ablate study --case X --trials 200 …``: every option the command received (defaults included)."""
    parts = ["ablate", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or value == [] or value == ():
            continue
        values = list(value) if isinstance(value, list | tuple) else [value]
        if param.param_type_name == "argument":
            parts += [str(v) for v in values]
            continue
        if isinstance(value, bool):
            flags = param.opts if value else (param.secondary_opts or [])
            parts += [max(flags, key=len)] if flags and (value or param.secondary_opts) else []
            continue
        flag = max(param.opts, key=len)
        parts += [x for v in values for x in (flag, str(v))]
    return shlex.join(parts)


def cpu_kernels() -> str:
    """torch's CPU kernel family (AVX2, AVX512, ...): runs are bit-for-bit reproducible only within one, as
    the kernels sum in different orders (docs/method.md, Seeds)."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def collect(*, fidelity: Mapping[str, Any], method: Any, device: str = "cpu", threads: int = 1) -> dict:
    """Everything above for one study (its fidelity and space or design are already in its definition), with
    which method (name, version) made it and what the method records of its inputs (CGI: the data's SHA-256)."""
    prov: dict[str, Any] = {
        **command_line(),
        "fidelity": str(fidelity.get("name")),
        "versions": versions(),
        **git_state(),
        "cpu": cpu_model(),
        "cpu_kernels": cpu_kernels(),
        "cpu_count": os.cpu_count(),
        "device": device,
        "torch_threads": threads,
        "platform": platform.platform(),
        "method": method.identity(),
    }
    preset = method.preset(str(fidelity.get("name")), {k: v for k, v in fidelity.items() if k != "name"})
    prov.update(method.provenance(preset))
    if device.startswith("cuda"):
        import torch

        with contextlib.suppress(RuntimeError, AssertionError):
            prov["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return prov


def stamp(study: optuna.Study, definition: record.Definition, plan: Any) -> record.Definition:
    """The definition with provenance for a study about to be created; an existing study's is left as stored."""
    if record.DEFINITION in study.user_attrs or record.PROVENANCE in definition.extra:
        return definition
    prov = collect(
        fidelity=definition.fidelity,
        method=plan.method,
        device=getattr(plan, "device", "cpu"),
        threads=getattr(plan, "threads", 1),
    )
    if hasattr(plan, "stacking_note"):
        prov["stacking"] = plan.stacking_note
    return replace(definition, extra={**definition.extra, record.PROVENANCE: prov})


def _flat(prov: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in COMPARED:
        value = prov.get(key)
        if isinstance(value, Mapping):
            for k, v in value.items():
                if k != "path":  # a cache in another folder with the same bytes is the same data
                    out[f"{key}.{k}"] = v
        else:
            out[key] = value
    return out


def differences(provs: Sequence[tuple[str, Mapping[str, Any] | None]]) -> list[str]:
    """One line per provenance item that differs between the named studies (or is missing from some)."""
    missing = [name for name, p in provs if p is None]
    notes = [f"no provenance recorded for: {', '.join(missing)} (created before ablate recorded it)"] if missing else []
    flats = [(name, _flat(p)) for name, p in provs if p is not None]
    keys = sorted({k for _, f in flats for k in f})
    for key in keys:
        values = {json.dumps(f.get(key), default=str): name for name, f in flats}
        if len(values) > 1:
            shown = "; ".join(f"{name}: {f.get(key)}" for name, f in flats)
            notes.append(f"studies differ in {key} ({shown})")
    return notes


def summary_rows(prov: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(item, value) lines a report prints: short, the full record is in the JSON."""
    if prov is None:
        return [("provenance", "not recorded (study created before ablate recorded provenance)")]
    v = prov.get("versions") or {}
    data = prov.get("data") or {}
    commit = prov.get("git_commit")
    rows = [
        ("command", str(prov.get("command") or prov.get("argv", ""))),
        ("versions", ", ".join(f"{k} {val}" for k, val in v.items() if val)),
        ("git commit", f"{commit[:12]}{' (uncommitted changes)' if prov.get('git_dirty') else ''}" if commit else "–"),
        (
            "machine",
            f"{prov.get('cpu')} ({prov.get('cpu_count')} cores, {prov.get('cpu_kernels', '?')} kernels), "
            f"device {prov.get('device')}, "
            f"{prov.get('torch_threads')} torch thread(s)",
        ),
    ]
    if data:
        rows.append(("data", f"{data.get('source')} sha256 {str(data.get('sha256') or 'not cached')[:16]}…"))
    if prov.get("stacking"):
        rows.append(("training", str(prov["stacking"])))
    if prov.get("method"):
        m = prov["method"]
        rows.insert(1, ("method", f"{m.get('name')} {m.get('version')}"))
    return rows
