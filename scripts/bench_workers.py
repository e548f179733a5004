"""Trials/hour with 1, 2 and 4 worker processes over one storage (default: the local PostgreSQL).

    python scripts/bench_workers.py [--storage URL] [--trials 12] [--fidelity quick] [--workers 1,2,4]

Each worker count gets its own fresh study (random sampler, no pruning, 1 seed, 1 torch thread per worker),
timed from the coordinator's start to the last worker's exit; the studies are deleted afterwards.
Prints one JSON object; docs/distributed.md records the numbers.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

import optuna

from ablate.presets import load_fidelity
from ablate.space import load_space
from ablate.storage import open_storage
from ablate.studies import StudyPlan, execute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--fidelity", default="quick")
    parser.add_argument("--case", default="T2M1_T1M2")
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    fidelity = load_fidelity(args.fidelity)
    results = {"storage": args.storage.split("@")[-1], "trials": args.trials, "fidelity": args.fidelity}
    for workers in (int(w) for w in args.workers.split(",")):
        name = f"bench-workers-{workers}-{uuid.uuid4().hex[:8]}"
        plan = StudyPlan(
            name=name,
            storage=args.storage,
            fidelity=fidelity,
            kind="sensitivity",
            case=args.case,
            space=load_space(),
            trials=args.trials,
            sampler="random",
            pruner="none",
            workers=workers,
        )
        start = time.perf_counter()
        outcome = execute(plan, log=lambda *_: None)
        elapsed = time.perf_counter() - start
        done = outcome.counts["COMPLETE"] + outcome.counts["PRUNED"]
        results[f"workers_{workers}"] = {
            "seconds": round(elapsed, 1),
            "finished": done,
            "failed": outcome.counts["FAIL"],
            "trials_per_hour": round(done / elapsed * 3600, 1),
        }
        optuna.delete_study(study_name=name, storage=open_storage(args.storage, heartbeat_interval=None))
    base = results["workers_1"]["trials_per_hour"] if "workers_1" in results else None
    if base:
        for key, value in list(results.items()):
            if key.startswith("workers_"):
                value["speedup_over_1"] = round(value["trials_per_hour"] / base, 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
