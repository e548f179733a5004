"""Figures of the chaos soak (docs/distributed.md, "Chaos soak") from the JSON files scripts/chaos.py writes.

Usage:
    python scripts/chaos_figures.py DIR [--out docs/figures]

DIR holds ``<storage>.json`` (a soak with chaos) and ``<storage>-baseline.json`` (the same soak with
``--no-chaos``) for any of sqlite, postgresql, mariadb, redis. Writes ``chaos-faults.png`` (faults injected by
kind, ``db_restart`` included), ``chaos-outcome.png`` (trials completed, lost, duplicated, results discarded)
and ``chaos-throughput.png`` (completed trials per minute with and without chaos), and prints the numbers as a
markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

STORAGES = ("sqlite", "postgresql", "mariadb", "redis")
KINDS = ("sigkill", "sigterm", "conn_kill", "db_restart", "nan", "raise")


def load(folder: Path) -> dict[str, dict]:
    runs = {}
    for name in STORAGES:
        for suffix in ("", "-baseline"):
            path = folder / f"{name}{suffix}.json"
            if path.exists():
                runs[name + suffix] = json.loads(path.read_text())
    return runs


LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mariadb": "MariaDB", "redis": "Redis journal"}


def table(runs: dict[str, dict]) -> str:
    """The markdown table of docs/distributed.md ("Chaos soak", Results): one row per storage soaked with chaos."""
    head = "| storage | chaos s | faults: SIGKILL / SIGTERM / conn. kill / restart / NaN / raise | completed | lost | "
    head += "duplicated | results discarded | checks | trials/min with chaos | trials/min without | ratio |"
    lines = [head, "|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for name in STORAGES:
        run = runs.get(name)
        if run is None:
            continue
        base = runs.get(f"{name}-baseline")
        f = run["faults"]
        faults = []
        for k in KINDS:
            if k == "conn_kill" and name in ("postgresql", "mariadb"):
                faults.append(f"{f.get(k, 0)} ({run.get('connections_killed', 0)} conn.)")
            elif k in ("conn_kill", "db_restart") and k not in f:
                faults.append("–")
            else:
                faults.append(str(f.get(k, 0)))
        passed = sum(1 for ok, _ in run["checks"] if ok)
        rate = run["throughput_per_min"]
        base_rate = base["throughput_per_min"] if base else None
        ratio = f"{rate / base_rate:.2f}" if base_rate else "-"
        base_text = f"{base_rate:.1f}" if base_rate else "-"
        cells = [LABELS[name], f"{run['chaos_s']:.0f}", " / ".join(faults)]
        cells += [f"{run['completed']} ({run['rounds']} rounds)", run["lost"], run["duplicates"], run["discarded"]]
        cells += [f"{passed} passed, {len(run['checks']) - passed} failed", f"{rate:.1f}", base_text, ratio]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def figures(runs: dict[str, dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    names = [n for n in STORAGES if n in runs]
    out.mkdir(parents=True, exist_ok=True)
    paths = []

    faults = pd.DataFrame(
        [{"storage": n, "fault": k, "count": runs[n]["faults"].get(k, 0)} for n in names for k in KINDS]
    )
    fig, ax = plt.subplots(figsize=(6, 2.8))
    sns.barplot(faults, x="storage", y="count", hue="fault", ax=ax)
    ax.set(title="Faults injected per soak", xlabel="", ylabel="faults")
    ax.legend(ncols=6, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    paths.append(_save(fig, out / "chaos-faults.png"))

    outcome = pd.DataFrame(
        [
            {"storage": n, "measure": m, "trials": runs[n][key]}
            for n in names
            for m, key in (("completed", "completed"), ("lost", "lost"), ("duplicated", "duplicates"))
        ]
        + [{"storage": n, "measure": "discarded", "trials": runs[n]["discarded"]} for n in names]
    )
    fig, ax = plt.subplots(figsize=(6, 2.8))
    sns.barplot(outcome, x="storage", y="trials", hue="measure", ax=ax)
    for container in ax.containers:
        ax.bar_label(container, fontsize=7)
    ax.set(title="Trials completed, lost, duplicated and discarded (want 0, 0, 0)", xlabel="", ylabel="trials")
    ax.legend(ncols=4, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    paths.append(_save(fig, out / "chaos-outcome.png"))

    rates = pd.DataFrame(
        [
            {"storage": n, "run": label, "trials per minute": runs[key]["throughput_per_min"]}
            for n in names
            for label, key in (("chaos", n), ("no chaos", f"{n}-baseline"))
            if key in runs
        ]
    )
    fig, ax = plt.subplots(figsize=(6, 2.6))
    sns.barplot(rates, x="storage", y="trials per minute", hue="run", ax=ax)
    for container in ax.containers:
        ax.bar_label(container, fmt="%.1f", fontsize=7)
    ax.set(title="Throughput with and without chaos (4 workers, 2 cores)", xlabel="")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out / "chaos-throughput.png"))
    return paths


def _save(fig: object, path: Path) -> Path:
    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(path, dpi=90)  # type: ignore[attr-defined]
    import matplotlib.pyplot as plt

    plt.close(fig)  # type: ignore[arg-type]
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaos_figures.py", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="Folder of <storage>[-baseline].json files from scripts/chaos.py.")
    parser.add_argument("--out", type=Path, default=Path("docs/figures"), help="Where the PNGs go.")
    args = parser.parse_args(argv)
    runs = load(args.folder)
    if not any(n in runs for n in STORAGES):
        print(f"error: no <storage>.json in {args.folder}", file=sys.stderr)
        return 2
    print(table(runs))
    for path in figures(runs, args.out):
        print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
