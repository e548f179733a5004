"""Trials/hour with 1, 2 and 4 worker processes over one storage (default: the local PostgreSQL).

    python scripts/bench_workers.py [--storage URL] [--trials 12] [--fidelity quick] [--workers 1,2,4]

Each worker count gets its own fresh study (random sampler, no pruning, 1 seed, 1 torch thread per worker),
timed from the coordinator's start to the last worker's exit; the studies are deleted afterwards.
Prints one JSON object; docs/distributed.md records the numbers.
"""

from __future__ import annotations

import argparse
import json
import uuid

import optuna

from ablate.execution.storages import open_storage
from ablate.experiment.presets import load_fidelity
from ablate.methods.cgi.bench import _study_plan, worker_throughput


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
        plan = _study_plan(
            "",
            name,
            fidelity,
            storage=args.storage,
            case=args.case,
            trials=args.trials,
            sampler_name="random",
            pruner_name="none",
            workers=workers,
        )
        result = worker_throughput(plan)
        result["trials_per_hour"] = round(result["trials_per_hour"], 1)
        results[f"workers_{workers}"] = result
        optuna.delete_study(study_name=name, storage=open_storage(args.storage, heartbeat_interval=None))
    base = results["workers_1"]["trials_per_hour"] if "workers_1" in results else None
    if base:
        for key, value in list(results.items()):
            if key.startswith("workers_"):
                value["speedup_over_1"] = round(value["trials_per_hour"] / base, 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
