"""One worker of scripts/chaos.py: the real ``ablate`` CLI, with a test-only fault injector around the objective.

The injector is the only way the soak makes a trial return NaN or raise, and it lives here, not in ``ablate``:
the product has no such switch. The chaos loop drops a token file (``nan-<n>`` or ``raise-<n>``) into
``CHAOS_DIR/inject/``; the next trial to start in any worker takes it by renaming it into ``CHAOS_DIR/taken/``
(a rename is atomic, so exactly one trial takes each token) and then returns NaN or raises.

Usage (scripts/chaos.py builds these lines):
    python scripts/chaos_worker.py --chaos-dir DIR -- ABLATE-ARGS... [--then ABLATE-ARGS...]...

Each ``--then`` group is one ``ablate`` command run in this process, in order (an ablation's queue, then a
sensitivity study's): a worker that is killed is replaced by one that starts again from the first.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

INJECTED_MESSAGE = "chaos: injected failure"


def take_token(chaos_dir: Path, label: str) -> str | None:
    """Take one injection token for the trial ``label``; its kind (``nan`` / ``raise``), or None."""
    inbox = chaos_dir / "inject"
    try:
        names = sorted(os.listdir(inbox))
    except FileNotFoundError:
        return None
    for name in names:
        try:
            os.rename(inbox / name, chaos_dir / "taken" / f"{name}.{label}")
        except FileNotFoundError:
            continue  # another worker took it first
        return name.split("-", 1)[0]
    return None


def injecting(objective: Callable[[Any], float], chaos_dir: Path) -> Callable[[Any], float]:
    """``objective``, except that a trial which takes a token returns NaN after running, or raises before."""

    def wrapped(trial: Any) -> float:
        kind = take_token(chaos_dir, f"{trial.study.study_name}.trial{trial.number}.pid{os.getpid()}")
        if kind == "raise":
            raise RuntimeError(INJECTED_MESSAGE)
        value = objective(trial)
        return math.nan if kind == "nan" else value

    return wrapped


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # as `ablate` does for its spawned workers: the running trial is failed with a reason


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("error: usage: chaos_worker.py --chaos-dir DIR -- ABLATE-ARGS [--then ABLATE-ARGS]...", file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="chaos_worker.py", description=__doc__.splitlines()[0])
    parser.add_argument("--chaos-dir", type=Path, required=True)
    args = parser.parse_args(argv[:split])
    commands: list[list[str]] = [[]]
    for word in argv[split + 1 :]:
        if word == "--then":
            commands.append([])
        else:
            commands[-1].append(word)

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        from ablate import cli
        from ablate.execution import studies

        build = studies.build_objective
        studies.build_objective = lambda plan, log: injecting(build(plan, log), args.chaos_dir)  # type: ignore[assignment]
        for command in commands:
            try:
                cli.main(command)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if code:
                    return code
    except KeyboardInterrupt:  # SIGTERM before ablate's own handling began (while importing): no trial was running
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
