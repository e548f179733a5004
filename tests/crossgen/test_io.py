"""crossgen.io: every target is its old version or its complete new one, and failures are one-line errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from crossgen.errors import CrossgenError
from crossgen.io import OutputError, check_out_dir, write_atomic, write_npz_atomic


def _temps(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_write_atomic_writes_all_and_sets_modes(tmp_path: Path) -> None:
    old = tmp_path / "old.txt"
    old.write_text("before")
    old.chmod(0o600)
    paths = write_atomic({tmp_path / "a.txt": "één", old: b"after", tmp_path / "b.bin": b"\x00\x01"})
    assert paths == [tmp_path / "a.txt", old, tmp_path / "b.bin"]
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "één"
    assert old.read_bytes() == b"after" and (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644  # new file: shared data, not mkstemp's 0600
    assert stat.S_IMODE(old.stat().st_mode) == 0o600  # an existing target keeps its mode
    assert _temps(tmp_path) == []


def test_failure_before_the_renames_keeps_every_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).write_text(f"old {name}")
    real_fsync, calls = os.fsync, []

    def disk_full(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OutputError) as exc:
        write_atomic({tmp_path / n: f"new {n}" for n in ("a", "b", "c")})
    message = str(exc.value)
    assert "\n" not in message and str(tmp_path / "c") in message and "No space left" in message
    assert isinstance(exc.value, CrossgenError)  # the CLI's one line + exit status 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no temp files left
    assert [(tmp_path / n).read_text() for n in ("a", "b", "c")] == ["old a", "old b", "old c"]


def test_check_out_dir(tmp_path: Path) -> None:
    nested = tmp_path / "x" / "y"
    assert check_out_dir(nested) == nested and nested.is_dir() and list(nested.iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_out_dir(tmp_path / "file" / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "x"]  # the probe file is gone


def test_write_npz_atomic_round_trip(tmp_path: Path) -> None:
    arrays = {"x": np.arange(12, dtype=np.uint8).reshape(3, 4), "s": np.array("abc")}
    path = write_npz_atomic(tmp_path / "c.npz", arrays)
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"x", "s"}
        np.testing.assert_array_equal(z["x"], arrays["x"])
        assert str(z["s"]) == "abc"
    with pytest.raises(OutputError, match="missing"):
        write_npz_atomic(tmp_path / "missing" / "c.npz", arrays)
    assert _temps(tmp_path) == []
