"""Shared fixtures; importable helpers live in ``tests/_support``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from ablate_testing.servers import require_server as _require_server

from ablate.cli import main


@pytest.fixture
def require_server() -> Callable[[str, int], None]:
    """The check as a callable: ``require_server("127.0.0.1", 5432)`` skips (or fails under CI) when down."""
    return _require_server


@dataclass
class Result:
    code: int | str | None
    out: str
    err: str


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run every command from an empty tmp directory, with artifacts there and no storage from the env."""
    monkeypatch.setenv("ABLATE_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("COLUMNS", "250")  # rich tables: one row per line
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    monkeypatch.delenv("ABLATE_STUDIES_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Call ``ablate.cli.main`` in-process; return its exit status and what it printed."""

    def run(*argv: object) -> Result:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(exc.value.code, captured.out, captured.err)

    return run
