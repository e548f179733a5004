"""Atomic file output and the output-folder check, shared by the MNIST cache and ablate's reports.

Why atomic: a crash, a full disk or Ctrl-C mid-write must leave either the old file or the complete new
one, never a torn cache that fails checksum checks later or a report whose ``.md`` and ``.json`` disagree.
Every payload goes to a temp file in the target's own folder (so ``os.replace`` is a rename on one file
system), is flushed and fsynced, and only when all are complete are they renamed into place.

Why here and not in ``ablate``: the core library writes its data cache with the same rules, and ``crossgen``
never imports ``ablate``. Errors are :class:`OutputError` (a CrossgenError): one line naming the path.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from crossgen.errors import CrossgenError

__all__ = ["OutputError", "check_out_dir", "write_atomic", "write_npz_atomic"]


class OutputError(CrossgenError):
    """A file or folder that cannot be written (the message names it and the likely fix)."""


def write_atomic(payloads: Mapping[str | Path, str | bytes]) -> list[Path]:
    """Write several files so that each is either its old version or its complete new one.

    Text is UTF-8 encoded. New files get mode 0644 (the data is meant to be shared); an existing target
    keeps its mode. On any failure the temp files are removed and OSError becomes an :class:`OutputError`.
    Returns the target paths in the order given.
    """
    temps: list[tuple[str, Path]] = []
    current: Path | None = None
    try:
        for target, content in payloads.items():
            current = Path(target)
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            fd, tmp = tempfile.mkstemp(prefix=f".{current.name}.", suffix=".tmp", dir=current.parent)
            temps.append((tmp, current))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                mode = current.stat().st_mode & 0o7777
            except FileNotFoundError:
                mode = 0o644
            os.chmod(tmp, mode)
        for tmp, path in temps:
            current = path
            os.replace(tmp, path)
    except OSError as exc:
        _cleanup(temps)
        raise OutputError(f"cannot write {current} ({exc.strerror or exc}); check free space and permissions") from exc
    except BaseException:
        _cleanup(temps)
        raise
    return [p for _, p in temps]


def write_npz_atomic(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """``np.savez`` (uncompressed) rendered in memory, then written with :func:`write_atomic`."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return write_atomic({Path(path): buf.getvalue()})[0]


def _cleanup(temps: list[tuple[str, Path]]) -> None:
    for tmp, _ in temps:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def check_out_dir(out_dir: str | Path) -> Path:
    """Create ``out_dir`` and prove it writable before any work starts, so a long run never ends in an
    unwritable folder; a one-line :class:`OutputError` otherwise. Returns the folder."""
    out = Path(out_dir)
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputError(f"cannot create output folder {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write output folder {out}: {probe} is not writable")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".crossgen-probe.", dir=out)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OutputError(f"cannot write output folder {out}: {exc.strerror or exc}") from exc
    return out
