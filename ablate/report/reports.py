"""The reports of several finished studies at once: each study's own, and the joint one of confirmations of
several cases, in their folders, every folder checked before the first report is written.

Why one function: ``ablate report`` and ``ablate study --report`` (and ``make main``) write the same reports to
the same folders, so where a report goes, and what name it has, is decided here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from ablate.experiment import presets
from ablate.io import check_out_dir
from ablate.report.across import across_name, confirmations_by_fidelity, write_across_cases_report
from ablate.report.study import write_study_report


@dataclass(frozen=True)
class Written:
    """One report written: its name, what it is, and its files."""

    name: str
    what: str
    paths: tuple[Path, ...]


def report_dir(name: str, out_dir: Path | None, *, several: bool) -> Path:
    """Where the report named ``name`` goes: ``out_dir`` (``out_dir/NAME`` when there are several), else
    ``RUNS/report-NAME``."""
    if out_dir is not None:
        return out_dir / name if several else out_dir
    return presets.runs_dir() / f"report-{name}"


def check_report_dirs(names: Sequence[str], out_dir: Path | None) -> None:
    """Refuse, before anything is written, a report folder that cannot be one (a file, no permission)."""
    for name in names:
        check_out_dir(report_dir(name, out_dir, several=len(names) > 1))


def write_reports(
    studies: Sequence[optuna.Study],
    out_dir: Path | None = None,
    *,
    formats: Sequence[str],
    metric: str = "test_accuracy",
    alpha: float = 0.05,
    rope: float | None = None,
    publish: bool = True,
    on_written: Callable[[Written], Any] | None = None,
) -> list[Written]:
    """Each study's report, then one joint report per fidelity for confirmations of two or more cases.

    ``publish`` also saves each report's note and figures to its study (optuna-dashboard shows them)."""
    names = [s.study_name for s in studies]
    check_report_dirs(names, out_dir)
    written: list[Written] = []

    def done(item: Written) -> None:
        written.append(item)
        if on_written is not None:
            on_written(item)

    for study in studies:
        target = report_dir(study.study_name, out_dir, several=len(studies) > 1)
        result = write_study_report(
            study, target, formats=formats, metric=metric, alpha=alpha, rope=rope, publish=publish
        )
        done(Written(study.study_name, f"{result.kind}, {result.runs} runs", tuple(result.paths)))
    for fidelity, group in confirmations_by_fidelity(list(studies)).items():
        name = across_name(fidelity)
        target = report_dir(name, out_dir, several=True)
        paths = write_across_cases_report(group, target, formats=formats, metric=metric, alpha=alpha, rope=rope)
        done(Written(name, f"{len(group)} confirmations", tuple(paths)))
    return written
