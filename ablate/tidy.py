"""Read Optuna trials back as one tidy table: the bridge between studies and reports.

Every finished run becomes one row (case, variant, seed, technique, parameters, val/test accuracy, stage
timings). Only COMPLETE trials become rows; every other trial is counted so reports can show why n is
smaller than planned. Pairing by seed happens later, explicitly, on the ``seed`` column.
"""

from __future__ import annotations

from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from ablate.queue import FAIL_REASON

PARAM_COLUMNS = ("init", "generator", "scope", "bootstrap", "transfer", "covariance_type", "M", "K")


def _stages(attrs: dict[str, Any]) -> dict[str, float]:
    return {f"stage_{k}": v for k, v in (attrs.get("stages") or {}).items()}


def design_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per COMPLETE design trial (duplicates of a design point dropped, first kept)."""
    rows, seen = [], set()
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        a = t.user_attrs
        key = a.get("design_key")
        if key is None or key in seen:
            continue
        seen.add(key)
        row = {
            "study": study.study_name,
            "trial": t.number,
            "case": a["case"],
            "variant": a["variant"],
            "technique": a["technique"],
            "seed": int(a["seed"]),
            "val_accuracy": a.get("val_accuracy", t.value),
            "test_accuracy": a.get("test_accuracy"),
            "seconds": a.get("seconds"),
        }
        row.update({k: v for k, v in t.params.items() if k in PARAM_COLUMNS})
        row.update(_stages(a))
        rows.append(row)
    return pd.DataFrame(rows)


def sensitivity_frames(study: optuna.Study) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-trial frame, per-trial-and-seed frame) of a sampled study; pruned trials marked."""
    trials, seeds = [], []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        a = t.user_attrs
        row = {
            "study": study.study_name,
            "trial": t.number,
            "case": a.get("case"),
            "value": t.value,
            "test_accuracy": a.get("test_accuracy"),
            "transfer_gain": a.get("transfer_gain"),
            "transfer_gain_test": a.get("transfer_gain_test"),
            "seeds_run": a.get("seeds_run"),
            "pruned_after": a.get("pruned_after"),
            **t.params,
        }
        row.update(_stages(a))
        trials.append(row)
        for i in range(int(a.get("seeds_run") or 0)):
            seeds.append(
                {
                    "trial": t.number,
                    "case": a.get("case"),
                    "variant": f"trial {t.number}",
                    "seed": i,
                    "val_accuracy": a.get(f"seed{i}:val_accuracy"),
                    "test_accuracy": a.get(f"seed{i}:test_accuracy"),
                    **t.params,
                }
            )
    return pd.DataFrame(trials), pd.DataFrame(seeds)


def state_counts(study: optuna.Study, by: str = "variant") -> pd.DataFrame:
    """Trials per state (and per ``by`` attribute where trials carry it), with the failure reasons."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append(
            {
                by: t.user_attrs.get(by, ""),
                "case": t.user_attrs.get("case", ""),
                "state": t.state.name,
                "reason": t.user_attrs.get(FAIL_REASON, ""),
            }
        )
    if not rows:
        return pd.DataFrame(columns=["case", by, "state", "n"])
    df = pd.DataFrame(rows)
    return df.groupby(["case", by, "state"], dropna=False).size().reset_index(name="n")
