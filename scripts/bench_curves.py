"""What recording learning curves costs: quick-fidelity CGI and benchmark runs with and without them.

A learning curve evaluates the target on validation and test after every epoch. Runs alternate (off, on)
in one process so that machine noise hits both; prints the time ratio and checks that the curve's last
point equals the run's final accuracy (recording must not change results).

    python scripts/bench_curves.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from ablate.experiment.presets import load_fidelity
from ablate.methods.cgi import CGIMethod
from crossgen.config import RunConfig
from crossgen.runner import load_run_tasks, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--case", default="T2M2_T1M1")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    base = RunConfig(case=args.case, technique="cgi", fidelity=CGIMethod().fidelity(load_fidelity("quick")))
    tasks = load_run_tasks(base, log=lambda *a: None)
    seconds = {False: 0.0, True: 0.0}
    for _ in range(args.repeats):
        for technique in ("cgi", "bnn"):
            plain = run(base.with_(technique=technique), tasks=tasks, log=lambda *a: None)
            curved = run(base.with_(technique=technique, record_curve=True), tasks=tasks, log=lambda *a: None)
            assert curved.val_accuracy == plain.val_accuracy == curved.history["curve_val"][-1]
            assert curved.test_accuracy == plain.test_accuracy == curved.history["curve_test"][-1]
            seconds[False] += plain.seconds
            seconds[True] += curved.seconds
    ratio = seconds[True] / seconds[False]
    print(json.dumps({"curves_on_over_off": round(ratio, 4), "seconds_off": round(seconds[False], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
