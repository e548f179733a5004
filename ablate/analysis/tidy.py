"""Trial records as tidy tables: the bridge between studies and reports.

Every finished run becomes one row (case, variant, seed, technique, switch values, val/test accuracy,
stage timings). Only COMPLETE trials become rows; every other trial is counted so reports can show why n is
smaller than planned. Pairing by seed happens later, explicitly, on the ``seed`` column. Rows come from
:func:`ablate.record.read_trial` only: no attribute name of the record appears here.
"""

from __future__ import annotations

import collections
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from ablate import record


def _stages(rec: record.TrialRecord) -> dict[str, float]:
    return {f"stage_{k}": v for k, v in rec.stages.items()}


def _titles(study: optuna.Study, definition: record.Definition | None = None) -> dict[str, str]:
    """Variant label -> the name reports show (every alias of a merged variant)."""
    design = (definition or record.read_definition(study)).design or {}
    labels = {v["label"] for v in design.get("variants", [])}
    return {k: t for k, t in record.variant_titles(design).items() if k in labels}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a frame whose integer columns stay integers where some rows lack them (K is 9, not 9.0, beside
    a benchmark's blank)."""
    df = pd.DataFrame(rows)
    for col in df.columns:
        values = [r[col] for r in rows if r.get(col) is not None]
        if values and df[col].dtype == float and all(type(v) is int for v in values):
            df[col] = df[col].astype("Int64")
    return df


def design_frame(study: optuna.Study, definition: record.Definition | None = None) -> pd.DataFrame:
    """One row per COMPLETE design trial (duplicates of a design point dropped, first kept); ``definition``: the
    study's, when the caller has read it already."""
    titles = _titles(study, definition)
    rows, seen = [], set()
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        rec = record.read_trial(t)
        if rec.key is None or rec.key in seen or not rec.seeds:
            continue
        seen.add(rec.key)
        run = rec.seeds[0]
        row = {
            "study": study.study_name,
            "trial": t.number,
            "case": rec.case,
            "variant": titles.get(rec.variant or "", rec.variant),
            "technique": rec.technique,
            "seed": run.seed,
            "val_accuracy": run.val_accuracy,
            "test_accuracy": run.test_accuracy,
            "seconds": run.seconds,
            "n_val": run.n_val,
            "n_test": run.n_test,
        }
        row.update(rec.config)
        row.update(_stages(rec))
        row.update(record.diagnostics_columns(rec.attrs))
        rows.append(row)
    return _frame(rows)


def curve_frame(study: optuna.Study, definition: record.Definition | None = None) -> pd.DataFrame:
    """Learning curves, long: one row per (design run, target epoch k) with val/test accuracy after k epochs."""
    titles = _titles(study, definition)
    rows, seen = [], set()
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        rec = record.read_trial(t)
        if rec.key is None or rec.key in seen or not rec.seeds or not rec.seeds[0].curve:
            continue
        seen.add(rec.key)
        run = rec.seeds[0]
        variant = titles.get(rec.variant or "", rec.variant)
        for k, (val, test) in enumerate(zip(run.curve["val"], run.curve["test"], strict=True), start=1):
            rows.append(
                {
                    "case": rec.case,
                    "variant": variant,
                    "seed": run.seed,
                    "epoch": k,
                    "val_accuracy": val,
                    "test_accuracy": test,
                    "n_val": run.n_val,
                    "n_test": run.n_test,
                }
            )
    return pd.DataFrame(rows)


def sensitivity_frames(study: optuna.Study) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-trial frame, per-trial-and-seed frame) of a sampled study; pruned trials marked."""
    trials, seeds = [], []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        rec = record.read_trial(t)
        row = {
            "study": study.study_name,
            "trial": t.number,
            "case": rec.case,
            "value": t.value,
            "test_accuracy": rec.test_accuracy,
            "transfer_gain": rec.attrs.get("transfer_gain"),
            "transfer_gain_test": rec.attrs.get("transfer_gain_test"),
            "seeds_run": len(rec.seeds),
            "pruned_after": rec.pruned_after,
            **t.params,
        }
        row.update(_stages(rec))
        trials.append(row)
        for s in rec.seeds:
            seeds.append(
                {
                    "trial": t.number,
                    "case": rec.case,
                    "variant": f"trial {t.number}",
                    "seed": s.seed,
                    "val_accuracy": s.val_accuracy,
                    "test_accuracy": s.test_accuracy,
                    "n_val": s.n_val,
                    "n_test": s.n_test,
                    **t.params,
                }
            )
    return pd.DataFrame(trials), pd.DataFrame(seeds)


def benchmark_pairs(
    study: optuna.Study, trial_number: int, metric: str, label: str, baseline: str = "Without Transfer Benchmark"
) -> pd.DataFrame:
    """One trial's seeds next to the baseline on the same seeds (long format, paired by seed)."""
    rec = record.read_trial(study.trials[trial_number])
    rows = []
    for s in rec.seeds:
        if not s.benchmark:
            continue
        common = {"case": rec.case, "seed": s.seed, "n_val": s.n_val, "n_test": s.n_test}
        rows.append({**common, "variant": label, metric: getattr(s, metric)})
        rows.append({**common, "variant": baseline, metric: s.benchmark[metric]})
    return pd.DataFrame(rows)


def state_counts(study: optuna.Study, by: str = "variant") -> pd.DataFrame:
    """Trials per state (and per ``by`` attribute where trials carry it), with the failure reasons."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        rec = record.read_trial(t)
        rows.append(
            {
                by: getattr(rec, by, None) or "",
                "case": rec.case or "",
                "state": rec.state,
                "reason": rec.fail_reason or "",
            }
        )
    if not rows:
        return pd.DataFrame(columns=["case", by, "state", "n", "fail reasons"])
    df = pd.DataFrame(rows)

    def reasons(values: pd.Series) -> str:
        seen = collections.Counter(v for v in values if v)
        return "; ".join(f"{r} (×{n})" if n > 1 else r for r, n in sorted(seen.items()))

    grouped = df.groupby(["case", by, "state"], dropna=False)["reason"]
    return grouped.agg(n="size", **{"fail reasons": reasons}).reset_index()
