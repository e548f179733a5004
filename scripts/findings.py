"""Regenerate the tables of docs/findings.md from the stored experiment studies (never pasted by hand).

Each table sits between `<!-- findings:NAME -->` and `<!-- /findings:NAME -->`; the prose around them is
written by people and cites the command that produced each study (`scripts/experiments.py NAME`,
`scripts/calibrate.py`). A table whose studies are missing says so instead of showing numbers.

    python scripts/findings.py                      # rewrite docs/findings.md in place
    python scripts/findings.py --check              # exit 1 if the file is not what the studies say
    python scripts/findings.py --only budget-sigma  # one table only (the storage holds only its studies)
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd

from ablate.analysis import stats, tidy
from ablate.errors import AblateError
from ablate.execution.storages import open_storage
from ablate.experiment.names import derived_name

PAPER = {  # Table 2 of the paper: (CGI, benchmark), test accuracy %
    "T1M1_T2M2": (98.48, 97.68),
    "T2M1_T1M2": (94.70, 94.69),
    "T1M2_T2M1": (97.52, 97.32),
    "T2M2_T1M1": (93.03, 88.97),
}
CASES = tuple(PAPER)
SIGMAS = ("-5.0", "-2.3", "-0.4")
BENCH = "no transfer"


def _ablation(design_file: str, case: str, fidelity: str, **settings: object) -> str:
    """The study `ablate ablation --design-file studies/experiments/DESIGN_FILE.toml --set ...` makes (the one
    naming function, ablate.experiment.names.derived_name)."""
    return derived_name("ablation", fidelity, case=case, design=f"ablation-ofat-{design_file}", settings=settings)


def _pp(x: float) -> str:
    return f"{100 * x:+.2f}"


def _p(p: float) -> str:
    return "–" if p != p else f"{p:.3f}" if p >= 0.001 else "<0.001"


def _md(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


class Store:
    def __init__(self, url: str) -> None:
        self.storage = open_storage(url, heartbeat_interval=None, create=False)
        self.names = {s.study_name for s in optuna.get_all_study_summaries(self.storage)}

    def study(self, name: str) -> optuna.Study | None:
        if name not in self.names:
            return None
        return optuna.load_study(study_name=name, storage=self.storage)

    def runs(self, name: str) -> pd.DataFrame:
        study = self.study(name)
        return pd.DataFrame() if study is None else tidy.design_frame(study)

    def curves(self, name: str) -> pd.DataFrame:
        study = self.study(name)
        return pd.DataFrame() if study is None else tidy.curve_frame(study)


def _vs_bench(runs: pd.DataFrame) -> pd.DataFrame:
    """Every variant against the benchmark on paired seeds, Holm over the variants of the study."""
    return stats.ablation_table(runs, reference=BENCH, n_examples="n_test").frame


def calibration(store: Store) -> str:
    study = store.study("calibrate-paper-regime")
    if study is None or not any(t.value is not None for t in study.trials):
        return "_Not run yet: `python scripts/calibrate.py --trials 40`._"
    best = study.best_trial
    rows = [
        {
            "case": c,
            "paper benchmark (test %)": f"{PAPER[c][1]:.2f}",
            "ours, val %": f"{100 * best.user_attrs[f'val:{c}']:.2f}",
            "ours, test %": f"{100 * best.user_attrs[f'test:{c}']:.2f}",
        }
        for c in CASES
    ]
    done = sum(t.value is not None for t in study.trials)
    p = best.params
    return (
        f"Best of {done} trials (trial {best.number}, validation RMSE {best.value:.2f} pp): "
        f"{best.user_attrs['epochs']} epochs (source and target), BNN learning rate {p['bnn_lr']:.3g}, initial log σ "
        f"{p['init_log_sigma']:.2f}, prior σ {p['prior_sigma']:.3g}; quick data and width, seed 0.\n\n"
        + _md(pd.DataFrame(rows))
    )


def budget_sigma(store: Store, fidelity: str) -> str:
    rows = []
    for case in ("T2M2_T1M1", "T1M1_T2M2", "T2M1_T1M2", "T1M2_T2M1"):
        for sigma in SIGMAS:
            name = _ablation("transfer", case, fidelity, init_log_sigma=sigma, target_epochs=20)
            runs, curves = store.runs(name), store.curves(name)
            if runs.empty or curves.empty:
                continue
            row: dict[str, object] = {"case": case, "init log σ": sigma, "seeds": runs["seed"].nunique()}
            row["benchmark %"] = f"{100 * runs.loc[runs.variant == BENCH, 'test_accuracy'].mean():.2f}"
            for method in ("full", "transfer=mu"):
                gain = stats.gain_curve(curves, method=method, baseline=BENCH, n_examples="n_test")
                if gain.empty:
                    continue
                last = gain[gain.epoch == gain.epoch.max()].iloc[0]
                first = gain[gain.epoch == 1].iloc[0]
                label = "mu_sigma" if method == "full" else "mu"
                row[f"{label}: Δ k=1"] = f"{_pp(first.delta)} ({first.verdict})"
                row[f"{label}: Δ k=20"] = f"{_pp(last.delta)} ({last.verdict})"
                better = gain[gain.verdict == "better"].epoch.tolist()
                row[f"{label}: better at k"] = _ranges(better)
            rows.append(row)
    if not rows:
        return "_Not run yet: `python scripts/experiments.py budget-sigma`._"
    return _md(pd.DataFrame(rows).fillna("–"))


def _ranges(ks: list[int]) -> str:
    if not ks:
        return "none"
    out, start, prev = [], ks[0], ks[0]
    for k in ks[1:] + [None]:
        if k is not None and k == prev + 1:
            prev = k
            continue
        out.append(f"{start}" if start == prev else f"{start}–{prev}")
        if k is not None:
            start = prev = k
    return ", ".join(out)


def _variant_table(store: Store, names: list[tuple[str, str]], empty: str) -> str:
    rows = []
    for case, name in names:
        runs = store.runs(name)
        if runs.empty:
            continue
        table = _vs_bench(runs)
        bench = runs.loc[runs.variant == BENCH, "test_accuracy"].mean()
        for r in table.itertuples():
            rows.append(
                {
                    "case": case,
                    "variant": r.variant,
                    "n": r.n,
                    "benchmark %": f"{100 * bench:.2f}",
                    "Δ pp [95% CI]": f"{_pp(r.delta)} [{_pp(r.ci_low)}, {_pp(r.ci_high)}]",
                    "p (Holm)": _p(r.p_holm),
                    "verdict": r.verdict,
                }
            )
    return _md(pd.DataFrame(rows)) if rows else empty


def shuffled(store: Store, fidelity: str) -> str:
    rows = []
    for case in ("T2M2_T1M1", "T1M1_T2M2"):
        name = _ablation("shuffled", case, fidelity, init_log_sigma=-2.3, target_epochs=20, transfer="mu")
        curves = store.curves(name)
        if curves.empty:
            continue
        for variant in sorted(set(curves.variant) - {BENCH}):
            gain = stats.gain_curve(curves, method=variant, baseline=BENCH, n_examples="n_test")
            row: dict[str, object] = {"case": case, "variant": variant, "n": int(gain.n.max())}
            for k in (1, 3, 5, 10, 20):
                g = gain[gain.epoch == k]
                if len(g):
                    row[f"Δ k={k}"] = f"{_pp(g.iloc[0].delta)}{'*' if g.iloc[0].verdict == 'better' else ''}"
            rows.append(row)
    if not rows:
        return "_Not run yet: `python scripts/experiments.py shuffled`._"
    return _md(pd.DataFrame(rows).fillna("–")) + "\n\n`*`: significantly better than the benchmark (Holm over k)."


def paper_regime(store: Store) -> str:
    rows = []
    for case in CASES:
        runs = store.runs(_ablation("transfer", case, "paper-regime"))
        if runs.empty:
            continue
        table = _vs_bench(runs).set_index("variant")
        mean = runs.groupby("variant")["test_accuracy"].mean()
        row = {
            "case": case,
            "paper: CGI / bench": f"{PAPER[case][0]:.2f} / {PAPER[case][1]:.2f}",
            "ours: bench %": f"{100 * mean[BENCH]:.2f}",
            "n": int(table["n"].max()),
        }
        for variant, label in (("full", "CGI mu_sigma"), ("transfer=mu", "CGI mu")):
            if variant in table.index:
                r = table.loc[variant]
                row[f"{label} %"] = f"{100 * mean[variant]:.2f}"
                row[f"{label} Δ (p Holm)"] = f"{_pp(r.delta)} ({_p(r.p_holm)}, {r.verdict})"
        rows.append(row)
    if not rows:
        return "_Not run yet: `python scripts/experiments.py paper-regime`._"
    return _md(pd.DataFrame(rows))


def control(store: Store, name: str) -> str:
    """A control study (reference ``full`` = the method, one flip = the control): every arm against the
    benchmark, and the control against the method itself; each comparison on the seeds both arms have."""
    runs = store.runs(name)
    if runs.empty:
        return "_Not run yet: `python scripts/experiments.py paper-fidelity`._"
    mean = runs.groupby("variant")["test_accuracy"].mean()
    rows = []
    for reference, label in ((BENCH, "vs the benchmark"), ("full", "vs the method (transfer=mu)")):
        if runs.variant.eq(reference).sum() < 2:
            continue
        for r in stats.ablation_table(runs, reference=reference, n_examples="n_test").frame.itertuples():
            if reference == "full" and r.variant == BENCH:
                continue
            rows.append(
                {
                    "comparison": f"{'transfer=mu' if r.variant == 'full' else r.variant} {label}",
                    "n": r.n,
                    "variant %": f"{100 * mean[r.variant]:.2f}",
                    "Δ pp [95% CI]": f"{_pp(r.delta)} [{_pp(r.ci_low)}, {_pp(r.ci_high)}]",
                    "p (Holm)": _p(r.p_holm),
                    "verdict": r.verdict,
                }
            )
    seeds = runs.groupby("variant")["seed"].nunique().to_dict()
    done = ", ".join(f"{v}: {n}" for v, n in sorted(seeds.items()))
    means = ", ".join(f"{v} {100 * m:.2f} %" for v, m in mean.items())
    if not rows:
        return f"Too few paired seeds for a test yet. Means so far: {means}. Seeds complete per arm: {done} (of 10)."
    return _md(pd.DataFrame(rows)) + f"\n\nSeeds complete per arm: {done} (of 10)."


PAPER_FOUR = {  # the factorial's variant labels, as the table names them
    "full": "CGI as specified (μ, σ)",
    "transfer=mu,source_labels=true": "transfer=mu",
    "transfer=mu_sigma,source_labels=shuffled": "as specified, shuffled source",
    "transfer=mu,source_labels=shuffled": "transfer=mu, shuffled source",
}


def paper_four(store: Store) -> str:
    """The paper-fidelity picture in every case: each arm against the benchmark (Holm over the case's four
    arms), and the shuffled-label control against the true source for transfer=mu (paired by seed)."""
    rows = []
    for case in CASES:
        runs = store.runs(f"ablation-factorial-paper-four-{case}-paper+init_log_sigma=-2.3")
        if runs.empty:
            continue
        mean = runs.groupby("variant")["test_accuracy"].mean()
        table = _vs_bench(runs).set_index("variant")
        control = stats.ablation_table(
            runs[runs.variant.isin(["transfer=mu,source_labels=true", "transfer=mu,source_labels=shuffled"])],
            reference="transfer=mu,source_labels=true",
            n_examples="n_test",
        ).frame.iloc[0]
        row: dict[str, object] = {
            "case": case,
            "n": int(table["n"].max()),
            "paper: CGI / bench": f"{PAPER[case][0]:.2f} / {PAPER[case][1]:.2f}",
            "benchmark %": f"{100 * mean[BENCH]:.2f}",
        }
        for variant, label in PAPER_FOUR.items():
            r = table.loc[variant]
            row[label] = f"{100 * mean[variant]:.2f} ({_pp(r.delta)}, {_p(r.p_holm)})"
        row["shuffled − true source (mu), p"] = (
            f"{_pp(control.delta)} [{_pp(control.ci_low)}, {_pp(control.ci_high)}], {_p(control.p_holm)}"
        )
        rows.append(row)
    if not rows:
        return "_Not run yet: `python scripts/experiments.py paper-four` (or scripts/device_check.sh on a GPU)._"
    return _md(pd.DataFrame(rows))


def drift(store: Store, fidelity: str) -> str:
    runs = store.runs(_ablation("drift", "T1M2_T2M1", fidelity))
    if runs.empty:
        return "_Not run yet: `python scripts/experiments.py drift`._"
    table = _vs_bench(runs).set_index("variant")
    cols = [c for c in runs.columns if c.startswith("mean_log_sigma_")]
    sig = runs.groupby("variant")[cols].mean()
    rows = []
    for variant in [v for v in runs.variant.unique() if v != BENCH]:
        r = table.loc[variant]
        rows.append(
            {
                "variant": variant,
                **{
                    f"source mean log σ ({c.removeprefix('mean_log_sigma_')})": f"{sig.loc[variant, c]:.2f}"
                    for c in cols
                },
                "n": r.n,
                "Δ pp vs benchmark": _pp(r.delta),
                "p (Holm)": _p(r.p_holm),
                "verdict": r.verdict,
            }
        )
    return _md(pd.DataFrame(rows))


def blocks(store: Store, fidelity: str = "quick") -> dict[str, Callable[[], str]]:
    """Each table by name. ``fidelity`` names the studies of the sweeps (quick in findings.md; smoke in the
    script's test); the calibrated and paper-fidelity cells have fidelities of their own."""
    return {
        "calibration": lambda: calibration(store),
        "budget-sigma": lambda: budget_sigma(store, fidelity),
        "shuffled": lambda: shuffled(store, fidelity),
        "paper-regime": lambda: paper_regime(store),
        "readings": lambda: _variant_table(
            store,
            [(c, _ablation("readings", c, fidelity)) for c in CASES],
            "_Not run yet: `python scripts/experiments.py readings`._",
        ),
        **{
            f"depth-{d.replace('_', '-')}": (
                lambda d=d: _variant_table(
                    store,
                    [(f"{c} ({d})", _ablation("transfer", c, fidelity, depth=d)) for c in CASES],
                    "_Not run yet: `python scripts/experiments.py readings`._",
                )
            )
            for d in ("unit_layers", "hidden_layers")
        },
        "paper-fidelity": lambda: _variant_table(
            store,
            [("T2M2_T1M1", _ablation("transfer", "T2M2_T1M1", "paper", init_log_sigma=-2.3))],
            "_Not run yet: `python scripts/experiments.py paper-fidelity`._",
        ),
        "paper-fidelity-shuffled": lambda: control(
            store, _ablation("shuffled-only", "T2M2_T1M1", "paper", init_log_sigma=-2.3, transfer="mu")
        ),
        "paper-four": lambda: paper_four(store),
        "drift": lambda: drift(store, fidelity),
        "prior": lambda: _variant_table(
            store,
            [("T1M2_T2M1", _ablation("transfer", "T1M2_T2M1", fidelity, prior_sigma=0.1))],
            "_Not run yet: `python scripts/experiments.py drift`._",
        ),
    }


def render(text: str, store: Store, only: list[str] | None = None, fidelity: str = "quick") -> str:
    for name, make in blocks(store, fidelity).items():
        if only and name not in only:
            continue
        pattern = re.compile(rf"(<!-- findings:{re.escape(name)} -->\n).*?(<!-- /findings:{re.escape(name)} -->)", re.S)
        if pattern.search(text):
            body = make().rstrip("\n") + "\n"
            text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", default="sqlite:///studies/runs/experiments.db")
    parser.add_argument("--file", type=Path, default=Path("docs/findings.md"))
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--fidelity", default="quick", help="the fidelity the sweeps ran at (experiments.py's)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="regenerate only this table (repeatable), e.g. when the storage holds some experiments only",
    )
    args = parser.parse_args(argv)
    names = list(blocks(None))  # type: ignore[arg-type]  # names only: no table is made
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        print(f"error: unknown table {unknown[0]!r}; choose from {', '.join(names)}", file=sys.stderr)
        return 2
    if not args.file.is_file():
        print(f"error: {args.file} is not a file", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        store = Store(args.storage)
    except AblateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = args.file.read_text()
    new = render(text, store, args.only, args.fidelity)
    if args.check:
        return 0 if new == text else 1
    args.file.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
