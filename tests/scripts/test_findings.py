"""docs/findings.md's tables come from real studies: scripts/experiments.py runs an experiment's cells and
scripts/findings.py regenerates its tables from the storage, so a number on that page cannot be pasted or go
stale without `--check` saying so. Here both scripts run end to end at smoke fidelity (seconds per run)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FINDINGS = REPO / "docs" / "findings.md"


def _script(name: str, *argv: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *map(str, argv)],
        cwd=REPO,  # the experiments' design files are cited relative to the checkout, as findings.md shows them
        capture_output=True,
        text=True,
        timeout=600,
    )


def _block(text: str, name: str) -> str:
    match = re.search(rf"<!-- findings:{name} -->\n(.*?)<!-- /findings:{name} -->", text, re.S)
    assert match, name
    return match.group(1)


def _outside_blocks(text: str) -> str:
    return re.sub(r"(<!-- findings:([\w-]+) -->\n).*?(<!-- /findings:\2 -->)", r"\1\3", text, flags=re.S)


@pytest.mark.slow
def test_an_experiment_runs_and_its_tables_are_regenerated_from_its_studies(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'experiments.db'}"
    ran = _script("experiments.py", "drift", "--fidelity", "smoke", "--seeds", 3, "--workers", 1, "--storage", storage)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.count("$ ablate ablation") == 2  # the dose-response and the tight prior

    page = tmp_path / "findings.md"
    page.write_text(FINDINGS.read_text())
    argv = ("--storage", storage, "--file", page, "--fidelity", "smoke", "--only", "drift", "--only", "prior")
    assert _script("findings.py", *argv, "--check").returncode == 1  # the page does not say what the studies say
    done = _script("findings.py", *argv)
    assert done.returncode == 0, done.stderr[-2000:]
    text = page.read_text()

    drift = _block(text, "drift")
    assert [line.split(" | ")[0].strip("| ") for line in drift.splitlines()[2:]] == [
        "full",
        *(f"source_epochs={e}" for e in (1, 2, 5, 10, 20)),
    ]
    assert all(" | 3 | " in line for line in drift.splitlines()[2:])  # n = 3 paired seeds in every row
    assert "| T1M2_T2M1 | transfer=mu | 3 |" in _block(text, "prior")
    # only the two tables changed: every other table and all the prose are the page's own
    assert _block(text, "readings") == _block(FINDINGS.read_text(), "readings")
    assert _outside_blocks(text) == _outside_blocks(FINDINGS.read_text())
    assert _script("findings.py", *argv, "--check").returncode == 0


def test_unknown_names_are_refused_in_one_line(tmp_path: Path) -> None:
    bad = _script("experiments.py", "no-such-experiment", "--dry-run")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown experiment" in bad.stderr
    bad = _script("findings.py", "--storage", f"sqlite:///{tmp_path / 'e.db'}", "--only", "no-such-table")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown table" in bad.stderr


def test_dry_run_prints_the_commands_findings_cites() -> None:
    ran = _script("experiments.py", "paper-fidelity", "--dry-run")
    assert ran.returncode == 0
    lines = ran.stdout.splitlines()
    assert lines[1] == (
        "$ ablate ablation --case T2M2_T1M1 --seeds 10 --fidelity paper --design-file "
        "studies/experiments/shuffled-only.toml --set init_log_sigma=-2.3 --set transfer=mu --no-curves --workers 2"
    )


def test_the_four_case_paper_fidelity_table_is_what_its_stored_studies_say(tmp_path: Path) -> None:
    """Section 7's table comes from the studies shipped in docs/data (made on a GPU): --check fails on any
    hand edit of a number (planted: one changed digit in the block)."""
    db = tmp_path / "paper-four.db"
    db.write_bytes((REPO / "docs" / "data" / "paper-four-cuda.db").read_bytes())  # opening may touch the file
    argv = ["--storage", f"sqlite:///{db}", "--only", "paper-four"]
    assert _script("findings.py", *argv, "--check").returncode == 0
    edited = tmp_path / "findings.md"
    edited.write_text(
        FINDINGS.read_text().replace(
            "| T1M1_T2M2 | 10 | 98.48 / 97.68 | 98.36 |", "| T1M1_T2M2 | 10 | 98.48 / 97.68 | 98.37 |"
        )
    )
    assert edited.read_text() != FINDINGS.read_text()
    assert _script("findings.py", *argv, "--file", edited, "--check").returncode == 1
