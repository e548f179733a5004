"""Is bf16 training equivalent to fp32? Paired seeds, paired Δ test accuracy, a TOST within ±margin.

Runs the no-transfer BNN (``bnn``) and CGI (``cgi``) in both precisions on the same seeds (a pair differs in
nothing but ``regime.precision``) and reports, per fidelity and technique, pooled over cases and per case:

* the mean paired Δ = bf16 - fp32 test accuracy (pp) with its 95% t interval;
* a paired TOST (statsmodels' ``ttost_paired``) of |Δ| < margin (default 0.2 pp): "equivalent" when both
  one-sided tests reject at α = 0.05, i.e. the 90% interval lies inside ±margin;
* the median bf16/fp32 wall-time ratio of the pairs (each pair runs back to back, so load hits both).

The quick part runs every case (``--cases``) on ``--seeds`` seeds; the paper part one case on
``--paper-seeds`` seeds (a paper-fidelity BNN run is ~1.5 min on one thread). Every finished run is appended
to ``OUT/runs.jsonl`` and skipped on a rerun, so the script resumes where it stopped; ``--report`` only
analyses what is there. Usage::

    nice python scripts/bench_bf16_equivalence.py --out studies/runs/bf16-equivalence
    python scripts/bench_bf16_equivalence.py --out studies/runs/bf16-equivalence --report
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from statsmodels.stats.weightstats import ttost_paired

from ablate.experiment.presets import load_fidelity
from ablate.methods.cgi import CGIMethod
from crossgen import RunConfig, run
from crossgen.config import CASES, RegimeConfig
from crossgen.errors import ConfigError
from crossgen.runner import load_run_tasks
from crossgen.train import require_precision

PRECISIONS = ("fp32", "bf16")


def plan(args: argparse.Namespace) -> list[tuple[str, str, str, int]]:
    """(fidelity, case, technique, seed) in run order: seeds outermost, so a stop leaves whole seeds."""
    out = []
    if not args.skip_quick:
        out += [(args.fidelity, c, t, s) for s in range(args.seeds) for c in args.cases for t in args.techniques]
    if args.paper_seeds:
        out += [("paper", args.paper_case, t, s) for s in range(args.paper_seeds) for t in args.techniques]
    return out


def key(row: dict[str, Any]) -> tuple[str, str, str, int, str]:
    return row["fidelity"], row["case"], row["technique"], row["seed"], row["precision"]


def execute(args: argparse.Namespace, path: Path) -> None:
    done = {key(r) for r in load(path)}
    tasks: dict[str, dict] = {}
    for fidelity, case, technique, seed in plan(args):
        for precision in PRECISIONS:  # back to back: a pair sees the same machine load
            if (fidelity, case, technique, seed, precision) in done:
                continue
            fid = CGIMethod().fidelity(load_fidelity(fidelity))  # the preset as crossgen reads it
            cfg = RunConfig(
                case=case, technique=technique, seed=seed, fidelity=fid, regime=RegimeConfig(precision=precision)
            )
            if fidelity not in tasks:
                tasks[fidelity] = load_run_tasks(cfg, log=lambda *_: None)
            result = run(cfg, tasks=tasks[fidelity], log=lambda *_: None)
            row = {
                "fidelity": fidelity,
                "case": case,
                "technique": technique,
                "seed": seed,
                "precision": precision,
                "val_accuracy": result.val_accuracy,
                "test_accuracy": result.test_accuracy,
                "seconds": result.seconds,
                "stages": result.stages,
            }
            with path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(
                f"{fidelity} {case} {technique} seed={seed} {precision}: "
                f"test {result.test_accuracy:.4f} ({result.seconds:.1f} s)",
                flush=True,
            )


def load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def paired(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str, int], dict[str, dict[str, Any]]]:
    pairs: dict[tuple[str, str, str, int], dict[str, dict[str, Any]]] = {}
    for r in rows:
        pairs.setdefault((r["fidelity"], r["case"], r["technique"], r["seed"]), {})[r["precision"]] = r
    return {k: v for k, v in pairs.items() if set(v) == set(PRECISIONS)}


def summarise(pairs: list[dict[str, dict[str, Any]]], margin_pp: float) -> dict[str, Any]:
    """Paired Δ (pp), its 95% t interval, the TOST p-value and verdict, and the bf16/fp32 time ratio."""
    b = np.array([p["bf16"]["test_accuracy"] for p in pairs]) * 100
    f = np.array([p["fp32"]["test_accuracy"] for p in pairs]) * 100
    d = b - f
    n = len(d)
    out: dict[str, Any] = {
        "n": n,
        "fp32_mean": float(f.mean()),
        "bf16_mean": float(b.mean()),
        "delta_mean": float(d.mean()),
        "time_ratio": statistics.median(p["bf16"]["seconds"] / p["fp32"]["seconds"] for p in pairs),
    }
    if n < 2:
        return out | {"ci_low": math.nan, "ci_high": math.nan, "tost_p": math.nan, "verdict": "too few pairs"}
    sd = float(d.std(ddof=1))
    if sd == 0:  # every pair identical: the interval is a point, equivalent iff inside the margin
        inside = abs(out["delta_mean"]) < margin_pp
        return out | {
            "ci_low": out["delta_mean"],
            "ci_high": out["delta_mean"],
            "tost_p": 0.0 if inside else 1.0,
            "verdict": "equivalent" if inside else "not shown equivalent",
        }
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    p_value = float(ttost_paired(b, f, -margin_pp, margin_pp)[0])
    return out | {
        "ci_low": out["delta_mean"] - half,
        "ci_high": out["delta_mean"] + half,
        "tost_p": p_value,
        "verdict": "equivalent" if p_value < 0.05 else "not shown equivalent",
    }


def report(path: Path, margin_pp: float) -> list[dict[str, Any]]:
    pairs = paired(load(path))
    groups: dict[tuple[str, str, str], list[dict[str, dict[str, Any]]]] = {}
    for (fidelity, case, technique, _seed), pair in sorted(pairs.items()):
        groups.setdefault((fidelity, technique, "all cases"), []).append(pair)
        groups.setdefault((fidelity, technique, case), []).append(pair)
    rows = [{"fidelity": f, "technique": t, "case": c} | summarise(v, margin_pp) for (f, t, c), v in groups.items()]
    rows.sort(key=lambda r: (r["fidelity"] != "quick", r["technique"], r["case"] != "all cases", r["case"]))
    print(
        f"| fidelity | technique | case | pairs | fp32 % | bf16 % | Δ pp [95% CI] | TOST p (±{margin_pp} pp) "
        "| verdict | bf16/fp32 time |"
    )
    print("|---|---|---|---:|---:|---:|---|---:|---|---:|")
    for r in rows:
        ci = f"{r['delta_mean']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
        print(
            f"| {r['fidelity']} | {r['technique']} | {r['case']} | {r['n']} | {r['fp32_mean']:.2f} | "
            f"{r['bf16_mean']:.2f} | {ci} | {r['tost_p']:.3g} | {r['verdict']} | {r['time_ratio']:.3f} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("studies/runs/bf16-equivalence"), help="results folder")
    parser.add_argument("--fidelity", default="quick", help="fidelity preset of the many-seed part (default quick)")
    parser.add_argument("--seeds", type=int, default=10, help="paired seeds per case of the quick part")
    parser.add_argument("--cases", default="all", help="comma-separated cases of the quick part, or all")
    parser.add_argument("--techniques", default="bnn,cgi", help="comma-separated techniques (default bnn,cgi)")
    parser.add_argument("--paper-seeds", type=int, default=3, help="paired seeds at paper fidelity (0 skips)")
    parser.add_argument("--paper-case", default="T2M1_T1M2", help="the one case of the paper part")
    parser.add_argument("--skip-quick", action="store_true", help="run only the paper part")
    parser.add_argument("--margin", type=float, default=0.2, help="equivalence margin in pp (default 0.2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--report", action="store_true", help="only analyse OUT/runs.jsonl, run nothing")
    args = parser.parse_args(argv)
    args.cases = list(CASES) if args.cases == "all" else args.cases.split(",")
    args.techniques = args.techniques.split(",")
    bad = [c for c in args.cases + [args.paper_case] if c not in CASES]
    bad += [t for t in args.techniques if t not in ("bnn", "cgi")]
    if bad:
        print(f"error: unknown case or technique {', '.join(bad)}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "runs.jsonl"
    if not args.report:
        try:
            require_precision("bf16")
            execute(args, path)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    rows = report(path, args.margin)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
