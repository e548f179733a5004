"""What the command line prints, on a terminal and in a pipe or a log.

On a terminal, rich draws tables to the terminal's width and a live progress bar. In a pipe or a log (stdout
or stderr not a terminal) nothing is cut to fit: tables take the width their cells need (a study name or a
configuration is copied whole, a path is never wrapped mid-name) unless ``COLUMNS`` is set, and progress is
one plain line per ``ABLATE_PROGRESS_SECONDS`` (default 30) as trials finish, which a batch scheduler's log
keeps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from rich.console import Console, ConsoleDimensions

PIPE_WIDTH = 10_000
"""Width of a console that is not a terminal and has no ``COLUMNS``: wide enough that nothing is cut."""

PROGRESS_ENV = "ABLATE_PROGRESS_SECONDS"
PROGRESS_SECONDS = 30.0


class PlainWhenPiped(Console):
    """A rich console that, writing to a pipe or a file, never truncates or wraps to an assumed width.

    Rich takes its width from any standard stream that is a terminal (so ``ablate studies | cat`` in a
    terminal was cut to the terminal's width) and 80 otherwise; here a console whose own stream is not a
    terminal is ``COLUMNS`` wide when that is set, else :data:`PIPE_WIDTH`.
    """

    @property
    def size(self) -> ConsoleDimensions:
        if self.is_terminal:
            return super().size
        columns = os.environ.get("COLUMNS", "")
        return ConsoleDimensions(int(columns) if columns.isdigit() else PIPE_WIDTH, 25)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


def console(*, stderr: bool = False, file: TextIO | None = None) -> PlainWhenPiped:
    return PlainWhenPiped(stderr=stderr, file=file, highlight=False)


def progress_line(label: str, total: int, c: dict[str, Any], elapsed: float) -> str:
    """One log line: ``LABEL: 12/200 trials finished (best 0.9412, running 2, failed 0), 3m05s``."""
    done = c["COMPLETE"] + c["PRUNED"]
    best = f"best {c['best']:.4f}, " if c.get("best") is not None else ""
    minutes, seconds = divmod(int(elapsed), 60)
    return (
        f"{label}: {min(done, total)}/{total} trials finished ({best}running {c['RUNNING']}, "
        f"failed {c['FAIL']}), {minutes}m{seconds:02d}s"
    )


def progress_seconds() -> float:
    raw = os.environ.get(PROGRESS_ENV, "")
    try:
        return max(0.0, float(raw)) if raw else PROGRESS_SECONDS
    except ValueError:
        return PROGRESS_SECONDS


@contextmanager
def progress(err: Console, label: str, total: int) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A progress callback (trial counts by state, ``best``): a live bar on a terminal, log lines elsewhere."""
    if not err.is_terminal:
        start = last = time.monotonic()
        interval = progress_seconds()
        latest: dict[str, Any] = {}
        shown: list[dict[str, Any]] = [{}]

        def log(c: dict[str, Any]) -> None:
            nonlocal last
            latest.clear()
            latest.update(c)
            now = time.monotonic()
            if now - last >= interval:
                last = now
                shown[0] = dict(c)
                err.print(progress_line(label, total, c, now - start), soft_wrap=True)

        err.print(f"{label}: {total} trials to finish", soft_wrap=True)
        yield log
        if latest and latest != shown[0]:
            err.print(progress_line(label, total, latest, time.monotonic() - start), soft_wrap=True)
        return

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=total, info="")

        def update(c: dict[str, Any]) -> None:
            done = c["COMPLETE"] + c["PRUNED"]
            best = f"best {c['best']:.4f} " if c.get("best") is not None else ""
            bar.update(task, completed=min(done, total), info=f"{best}running {c['RUNNING']} failed {c['FAIL']}")

        yield update


def next_steps(names: list[str], url: str, *, then: str = "report", written: tuple[str, ...] = ()) -> list[str]:
    """What a run command prints last: where its results are and the commands that come next.

    ``then`` is ``report`` (``ablate report``) or ``confirm`` (a search not yet confirmed: ``ablate confirm``).
    The dashboard line gives both ``ablate dashboard`` and the plain ``optuna-dashboard`` command with the
    artifact store the report figures are in (without ``--artifact-dir`` they are broken images).
    """
    import shlex

    from ablate.execution.dashboard import artifact_dir

    storage = shlex.quote(url)
    lines = [f"stored: {url} (study {', '.join(names)})"]
    if written:
        lines.append(f"written: {', '.join(written)}")
    if then == "confirm":
        lines += [f"next: ablate confirm {n} --storage {storage}" for n in names]
    lines += [f"report: ablate report {' '.join(names)} --storage {storage}"]
    lines.append(
        f"dashboard: ablate dashboard --storage {storage}  "
        f"(or: optuna-dashboard {storage} --artifact-dir {shlex.quote(str(artifact_dir()))})"
    )
    return lines
