"""Equivalence of training paths: stacked vs unstacked, CUDA vs CPU (docs/benchmarks.md).

Stacked replicas and CUDA kernels round differently from the unstacked CPU reference, so a run's numbers
drift after the first epochs; the question is whether that drift moves results. Each *arm* runs the same
configurations (every case, ``--seeds`` seeds, the no-transfer BNN and CGI) one way and writes one CSV row
per run; ``analyse`` pairs two arms by (case, technique, seed) and runs TOST (two one-sided paired t-tests,
statsmodels' ``ttost_paired``) on the test-accuracy differences against ±``--margin``. Equivalence is
shown when the TOST p < 0.05 (the 90% CI of the mean difference lies inside the margin).

    python scripts/equivalence.py run --arm cpu-unstacked --stack off --seeds 20 --out eq-cpu-off.csv
    python scripts/equivalence.py run --arm cpu-stacked --stack on --seeds 20 --out eq-cpu-on.csv
    python scripts/equivalence.py run --arm cuda-stacked --stack on --device cuda --seeds 20 --out eq-cuda.csv
    python scripts/equivalence.py analyse eq-cpu-off.csv eq-cpu-on.csv eq-cuda.csv --margin 0.003
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

FIELDS = ("arm", "case", "technique", "seed", "val_accuracy", "test_accuracy", "n_test", "seconds")
TECHNIQUES = ("bnn", "cgi", "cgi-mu")
"""The no-transfer BNN, CGI as specified (transfer=mu_sigma) and its stable reading (transfer=mu)."""


def _config(technique: str, **kw: object):
    from crossgen import CGIConfig, RunConfig

    if technique == "cgi-mu":
        return RunConfig(technique="cgi", cgi=CGIConfig(transfer="mu"), **kw)
    return RunConfig(technique=technique, **kw)


def run_arm(arm: str, *, device: str, stack: bool, seeds: int, fidelity: str, out: Path) -> int:
    from ablate.experiment.presets import load_fidelity
    from ablate.methods.cgi import CGIMethod
    from crossgen import RunConfig
    from crossgen.config import CASES
    from crossgen.runner import load_run_tasks, run, run_many

    fid = CGIMethod().fidelity(load_fidelity(fidelity))  # the preset as crossgen reads it
    quiet = {"log": lambda *_: None}
    tasks = load_run_tasks(RunConfig(case=CASES[0], technique="bnn", fidelity=fid), **quiet)
    done = set()
    if out.exists():  # resume: an arm interrupted half-way keeps the cases it finished
        with out.open() as fh:
            done = {(r["case"], r["technique"], int(r["seed"])) for r in csv.DictReader(fh)}
    new = not out.exists()
    with out.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        if new:
            writer.writeheader()
        for case in CASES:
            wanted = [(t, s) for s in range(seeds) for t in TECHNIQUES if (case, t, s) not in done]
            configs = [
                _config(t, case=case, seed=s, fidelity=fid, device=device, record_generators=False) for t, s in wanted
            ]
            if not configs:
                continue
            start = time.perf_counter()
            results = (
                run_many(configs, tasks=tasks, **quiet) if stack else [run(c, tasks=tasks, **quiet) for c in configs]
            )
            seconds = (time.perf_counter() - start) / len(configs)
            for (technique, seed), result in zip(wanted, results, strict=True):
                if isinstance(result, Exception):
                    print(f"{arm} {case} {technique} seed {seed}: {result}", file=sys.stderr)
                    continue
                writer.writerow(
                    {
                        "arm": arm,
                        "case": case,
                        "technique": technique,
                        "seed": seed,
                        "val_accuracy": result.val_accuracy,
                        "test_accuracy": result.test_accuracy,
                        "n_test": result.n_test,
                        "seconds": round(seconds, 4),
                    }
                )
            fh.flush()
            print(f"{arm}: {case} done ({len(configs)} runs, {seconds:.2f} s per run)", flush=True)
    return 0


def analyse(paths: list[Path], margin: float) -> str:
    """Markdown: each arm against the first (the reference), per technique and over all runs."""
    import numpy as np
    import pandas as pd
    from scipy import stats
    from statsmodels.stats.weightstats import ttost_paired

    frames = [pd.read_csv(p) for p in paths]
    ref = frames[0]
    key = ["case", "technique", "seed"]
    lines = [
        f"| arm vs {ref['arm'].iloc[0]} | runs | mean Δ test (pp) | 90% CI (pp) | SD of Δ (pp) "
        f"| TOST p (±{margin * 100:g} pp) | equivalent |",
        "| --- | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for other in frames[1:]:
        pairs = ref.merge(other, on=key, suffixes=("_ref", "_arm"), validate="one_to_one")
        for technique in [*TECHNIQUES, "all"]:
            sub = pairs if technique == "all" else pairs[pairs["technique"] == technique]
            if len(sub) < 3:
                continue
            d = sub["test_accuracy_arm"] - sub["test_accuracy_ref"]
            with np.errstate(divide="ignore", invalid="ignore"):  # identical arms: zero SD, p = 0
                p, _, _ = ttost_paired(
                    sub["test_accuracy_arm"].to_numpy(), sub["test_accuracy_ref"].to_numpy(), -margin, margin
                )

            se = d.std(ddof=1) / len(d) ** 0.5
            t = stats.t.ppf(0.95, len(d) - 1)
            lo, hi = d.mean() - t * se, d.mean() + t * se
            verdict = "yes" if p < 0.05 else "no"
            lines.append(
                f"| {other['arm'].iloc[0]} ({technique}) | {len(d)} | {d.mean() * 100:+.3f} | "
                f"[{lo * 100:+.3f}, {hi * 100:+.3f}] | {d.std(ddof=1) * 100:.3f} | {p:.3g} | {verdict} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run one arm")
    r.add_argument("--arm", required=True)
    r.add_argument("--device", default="cpu")
    r.add_argument("--stack", choices=("on", "off"), required=True)
    r.add_argument("--seeds", type=int, default=20)
    r.add_argument("--fidelity", default="quick")
    r.add_argument("--out", type=Path, required=True)
    a = sub.add_parser("analyse", help="TOST of each arm against the first")
    a.add_argument("csv", type=Path, nargs="+")
    a.add_argument("--margin", type=float, default=0.003, help="equivalence margin in accuracy (0.003 = 0.3 pp)")
    args = parser.parse_args(argv)
    if args.command == "run":
        if args.seeds < 1:
            print(f"error: --seeds {args.seeds} must be >= 1", file=sys.stderr)
            return 2
        import torch

        torch.set_num_threads(1)
        return run_arm(
            args.arm,
            device=args.device,
            stack=args.stack == "on",
            seeds=args.seeds,
            fidelity=args.fidelity,
            out=args.out,
        )
    missing = [str(p) for p in args.csv if not p.exists()]
    if missing or len(args.csv) < 2:
        print(f"error: analyse needs two or more arm CSVs (missing: {', '.join(missing) or 'none'})", file=sys.stderr)
        return 2
    print(analyse(args.csv, args.margin))
    return 0


if __name__ == "__main__":
    sys.exit(main())
