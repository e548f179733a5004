"""Calibrate the `paper-regime` fidelity: the training regime whose no-transfer BNN benchmarks land closest
to the paper's Table 2 benchmarks (97.68, 94.69, 97.32, 88.97 % for the four cases).

The paper's benchmarks sit far below ours (its T2M2→T1M1 benchmark is 88.97 % against our 97.70 % at paper
fidelity), so it trained in a smaller budget or a noisier regime — where an initialisation can still matter.
This finds such a regime, choosing on *validation* accuracy only (the paper's numbers are test accuracies;
matching them on validation keeps our test split untouched), with a TPE study over the BNN learning rate,
the initial posterior log σ and the prior σ, on the `quick` data and width. Each trial trains the benchmark
of all four cases on seed 0 for 20 epochs with the learning curve recorded: with a constant learning rate,
epoch k of that run *is* a k-epoch run, so one trial scores every budget k = 1..20 and keeps the best
(the preset's `epochs`, source = target).

    python scripts/calibrate.py --trials 40            # run or resume the study
    python scripts/calibrate.py --write                # write the best regime as [paper-regime]

`--write` replaces the [paper-regime] block of studies/fidelity.toml, with a comment naming the study.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
import warnings
from pathlib import Path

import optuna

from ablate.execution.storages import open_storage
from ablate.experiment.presets import load_fidelity
from ablate.methods.cgi import CGIMethod
from crossgen.config import CASES, REGISTRY, RunConfig
from crossgen.runner import load_run_tasks, run

PAPER_BENCHMARK = dict(zip(CASES, (0.9768, 0.9469, 0.9732, 0.8897), strict=True))
"""The paper's Table 2 'Without Transfer Benchmark' row, by case (source_target)."""
STUDY = "calibrate-paper-regime"
CANDIDATES = ({"bnn_lr": 0.01, "init_log_sigma": -2.3, "prior_sigma": 1.0},)
"""Evaluated besides TPE's own proposals: the regime of docs/findings.md experiment 1 (the quick preset's
learning rate and prior, initial log σ -2.3), whose benchmarks first came close to the paper's."""


MAX_EPOCHS = 20


def regime(trial: optuna.Trial) -> tuple[dict, dict]:
    """(fidelity fields, switch values) of one trial."""
    fields = {"epochs": MAX_EPOCHS, "bnn_lr": trial.suggest_float("bnn_lr", 1e-4, 3e-2, log=True)}
    switches = {
        "init_log_sigma": trial.suggest_float("init_log_sigma", -6.0, -0.5),
        "prior_sigma": trial.suggest_float("prior_sigma", 0.05, 1.0, log=True),
    }
    return fields, switches


def objective(trial: optuna.Trial, base, tasks) -> float:
    fields, switches = regime(trial)
    fid = dataclasses.replace(base, name="calibrating", **fields)
    curves = {}
    for case in CASES:
        cfg = RunConfig(
            case=case, technique="bnn", seed=0, fidelity=fid, record_curve=True, **REGISTRY.configs(switches)
        )
        result = run(cfg, tasks=tasks, log=lambda *a: None)
        curves[case] = (result.history["curve_val"], result.history["curve_test"])
    rmse = [
        math.sqrt(sum((100 * (curves[c][0][k] - PAPER_BENCHMARK[c])) ** 2 for c in CASES) / len(CASES))
        for k in range(MAX_EPOCHS)
    ]
    best = min(range(MAX_EPOCHS), key=rmse.__getitem__)
    trial.set_user_attr("epochs", best + 1)
    for case in CASES:
        trial.set_user_attr(f"val:{case}", curves[case][0][best])
        trial.set_user_attr(f"test:{case}", curves[case][1][best])
    return rmse[best]  # RMSE in percentage points at the best budget


def write_preset(study: optuna.Study, path: Path) -> str:
    best = study.best_trial
    p = {**best.params, "epochs": best.user_attrs["epochs"]}
    block = (
        f"[paper-regime]    # calibrated: `python scripts/calibrate.py` (study {STUDY!r}, trial {best.number}, "
        f"validation RMSE {best.value:.2f} pp to the paper's benchmarks)\n"
        f'data = "mnist"\nmax_train = 10000\nmax_eval = 2000\nwidth = 100\n'
        f"epochs = {p['epochs']}\nsource_epochs = {p['epochs']}\nbatch_size = 128\nlr = 0.002\n"
        f"bnn_lr = {p['bnn_lr']:.6g}\neval_samples = 8\n"
        f"switches = {{ init_log_sigma = {p['init_log_sigma']:.4g}, prior_sigma = {p['prior_sigma']:.4g} }}\n"
    )
    text = path.read_text()
    pattern = re.compile(r"\n\[paper-regime\].*?(?=\n\[|\Z)", re.S)
    text = pattern.sub("", text).rstrip("\n") + "\n\n" + block
    path.write_text(text)
    return block


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=40, help="total trials the study should hold")
    parser.add_argument("--storage", default="sqlite:///studies/runs/experiments.db")
    parser.add_argument("--write", action="store_true", help="write the best regime into studies/fidelity.toml")
    parser.add_argument("--fidelity-file", type=Path, default=Path("studies/fidelity.toml"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(args.storage, heartbeat_interval=None)
    study = optuna.create_study(
        study_name=STUDY,
        storage=storage,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=10),
        load_if_exists=True,
    )
    study.set_metric_names(["val_rmse_pp"])
    for params in CANDIDATES:  # once per study, whatever the order in which trials were run
        study.enqueue_trial(params, skip_if_exists=True)
    base = CGIMethod().fidelity(load_fidelity("quick"))  # the preset as crossgen reads it
    todo = args.trials - len([t for t in study.trials if t.state.is_finished()])
    if todo > 0:
        tasks = load_run_tasks(RunConfig(case=CASES[0], technique="bnn", fidelity=base), log=lambda *a: None)
        study.optimize(lambda t: objective(t, base, tasks), n_trials=todo)
    best = study.best_trial
    epochs = best.user_attrs["epochs"]
    print(f"best trial {best.number}: validation RMSE {best.value:.2f} pp; {best.params}, {epochs} epochs")
    for case in CASES:
        val, test = (100 * best.user_attrs[f"{split}:{case}"] for split in ("val", "test"))
        print(f"  {case}: val {val:.2f}  test {test:.2f}  paper {100 * PAPER_BENCHMARK[case]:.2f}")
    if args.write:
        print(write_preset(study, args.fidelity_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
