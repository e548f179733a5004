"""The CUDA path, wherever ``torch.cuda.is_available()``: a run, a stacked run, a 2-worker study, ``bench``.

Skipped with the reason on a machine without a GPU (CI has none); ``scripts/device_check.sh`` runs them on
a lent GPU machine. The CPU checks of the same code are in test_stack.py, test_objective.py and test_queue.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

from ablate.execution import queue
from ablate.experiment.presets import load_fidelity
from ablate.methods.cgi import bench
from crossgen import RunConfig
from crossgen.runner import load_run_tasks, run, run_many

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (torch.cuda.is_available() is False)")
CASE = "T2M1_T1M2"


def test_a_run_on_cuda_trains_there_and_evaluates() -> None:
    cfg = RunConfig(case=CASE, technique="cgi", fidelity=load_fidelity("smoke"), device="cuda")
    result = run(cfg, log=lambda *_: None)
    assert 0.0 <= result.test_accuracy <= 1.0 and result.config["device"] == "cuda"


def test_a_stacked_run_on_cuda_follows_the_unstacked_one() -> None:
    smoke = load_fidelity("smoke")
    configs = [
        RunConfig(case=CASE, technique=t, seed=s, fidelity=smoke, device="cuda") for s in (0, 1) for t in ("bnn", "cgi")
    ]
    tasks = load_run_tasks(configs[0], log=lambda *_: None)
    for a, b in zip([run(c, tasks=tasks, log=None) for c in configs], run_many(configs, tasks=tasks), strict=True):
        assert not isinstance(b, Exception), b
        assert b.history["target"] == pytest.approx(a.history["target"], rel=1e-3)


def test_a_two_worker_stacked_study_on_cuda_completes_exactly(run_cli, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'cuda.db'}"
    r = run_cli(
        "ablation", "--case", CASE, "--seeds", 2, "--design", "ofat", "--fidelity", "smoke",
        "--device", "cuda", "--workers", 2, "--storage", storage,
    )  # fmt: skip
    assert r.code == 0, r.err
    study = optuna.load_study(study_name=f"ablation-ofat-{CASE}-smoke", storage=storage)
    c = queue.counts(study)
    assert c["COMPLETE"] == len(study.trials) and c["FAIL"] == 0


def test_bench_on_cuda_reports_its_keys(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "ablate.cli", "bench", "--quick", "--json", "--device", "cuda", "--skip-cgi"]
    cmd += ["--skip-stack", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    assert results["device"] == "cuda" and results["reference_epoch_s"] > 0  # the Pyro reference ran on the GPU
    assert json.loads(out.read_text()) == results


def test_the_stacking_benchmark_measures_both_paths_on_cuda() -> None:
    smoke = load_fidelity("smoke")
    config = RunConfig(case=CASE, technique="cgi", fidelity=smoke, device="cuda")
    out = bench.stacking_benchmark(load_run_tasks(config, log=lambda *_: None), config, seeds=2)
    assert out["stacked_runs"] == 4 and out["stacked_seconds_per_run"] > 0
