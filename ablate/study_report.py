"""``ablate report``: read a study's COMPLETE trials, pick the right analyses for its kind, write, publish.

* designed ablations → per-case ablation significance tables (every variant vs the full method), the
  full method vs the no-transfer benchmark, Friedman / CD diagram, figures, methods paragraph;
* the paper's tables → the paper layout plus per-case verdicts against the benchmark;
* sampled sensitivity studies → PED-ANOVA and fANOVA importances side by side, marginal comparisons
  (with the adaptive-sampling warning), the M × K response, and the best configuration vs the benchmark.

Reports never re-run anything; statistics come from :mod:`ablate.stats`, formatting from :mod:`ablate.report`.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from ablate import report, tidy
from ablate.errors import AblateError

log = logging.getLogger("ablate.report")


@dataclass
class StudyReport:
    study: str
    kind: str
    paths: list[Path]
    runs: int
    counts: pd.DataFrame


def importances(study: optuna.Study) -> dict[str, dict[str, float]]:
    """PED-ANOVA (Optuna 5's default) and fANOVA importances over COMPLETE trials, for a maximised value."""
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances

    out: dict[str, dict[str, float]] = {}
    for name, evaluator in (
        ("PED-ANOVA", PedAnovaImportanceEvaluator()),
        ("fANOVA", FanovaImportanceEvaluator(seed=0)),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[name] = {k: float(v) for k, v in get_param_importances(study, evaluator=evaluator).items()}
        except (ValueError, RuntimeError) as exc:  # too few trials, a constant objective, …
            log.warning("%s importance not computed: %s", name, exc)
    return out


def _best_vs_benchmark(study: optuna.Study, metric: str) -> pd.DataFrame:
    """Per seed: the best trial (chosen on validation) and the no-transfer benchmark, for a paired report."""
    best = study.best_trial
    rows = []
    for i in range(int(best.user_attrs.get("seeds_run") or 0)):
        bench = study.user_attrs.get(f"benchmark:{best.user_attrs.get('case')}:{i}")
        if bench is None:
            continue
        case = best.user_attrs.get("case")
        rows.append(
            {"case": case, "variant": "CGI (best trial)", "seed": i, metric: best.user_attrs.get(f"seed{i}:{metric}")}
        )
        rows.append({"case": case, "variant": "Without Transfer Benchmark", "seed": i, metric: bench[metric]})
    return pd.DataFrame(rows)


def sections_for(
    study: optuna.Study, *, metric: str, alpha: float, rope: float | None, fig_dir: Path | None
) -> tuple[str, list[report.Section], pd.DataFrame]:
    kind = study.user_attrs.get("ablate_kind")
    design = study.user_attrs.get("design", "")
    if kind == "design":
        df = tidy.design_frame(study)
        if df.empty:
            raise AblateError(f"study {study.study_name!r} has no COMPLETE trials to report")
        if design.startswith("ablation"):
            from ablate.designs import load_ablation_design

            dsg = load_ablation_design(design.split("-", 1)[1])
            cases = sorted(df["case"].unique())
            sections = report.ablation_report_sections(
                df, reference=dsg.reference, value=metric, alpha=alpha, rope=rope, fig_dir=fig_dir, cases=cases
            )
            sections += report.transfer_report_sections(
                df,
                method=dsg.reference,
                baseline=dsg.baseline,
                value=metric,
                alpha=alpha,
                rope=rope,
                fig_dir=fig_dir,
                cases=cases,
            )
            return "ablation", sections, df
        from ablate.designs import load_table_design

        dsg = load_table_design(design)
        methods = [v.label for v in dsg.variants if v.label != dsg.baseline]
        sections = report.transfer_report_sections(
            df, method=methods, baseline=dsg.baseline, value=metric, alpha=alpha, rope=rope, fig_dir=fig_dir
        )
        return "table", sections, df
    if kind == "sensitivity":
        trials, _per_seed = tidy.sensitivity_frames(study)
        if trials.empty:
            raise AblateError(f"study {study.study_name!r} has no COMPLETE trials to report")
        frame = trials.rename(columns={"value": "val_accuracy"})
        params = [p for p in ("init", "generator", "scope", "bootstrap", "transfer", "covariance_type") if p in frame]
        sections = report.sensitivity_report_sections(
            frame, importances(study), value="val_accuracy", params=params, alpha=alpha, fig_dir=fig_dir
        )
        paired = _best_vs_benchmark(study, metric)
        if not paired.empty:
            sections += report.transfer_report_sections(
                paired,
                method="CGI (best trial)",
                baseline="Without Transfer Benchmark",
                value=metric,
                alpha=alpha,
                rope=rope,
                fig_dir=None,
                cases=sorted(paired["case"].unique()),
            )
            sections.append(
                report.Section(
                    "Selection note",
                    "The best trial was chosen on validation accuracy among all trials; its test accuracy above "
                    "is therefore optimistic (winner's curse). For an unbiased comparison run `ablate ablation` "
                    "with the chosen configuration on fresh seeds.",
                )
            )
        return "sensitivity", sections, frame
    raise AblateError(f"study {study.study_name!r} was not created by ablate (no ablate_kind attribute)")


def write_study_report(
    study: optuna.Study,
    out_dir: Path,
    *,
    formats: tuple[str, ...],
    metric: str = "test_accuracy",
    alpha: float = 0.05,
    rope: float | None = None,
    publish: bool = True,
) -> StudyReport:
    kind, sections, df = sections_for(study, metric=metric, alpha=alpha, rope=rope, fig_dir=out_dir / "figures")
    counts = tidy.state_counts(study)
    not_complete = counts[counts["state"] != "COMPLETE"]
    if not not_complete.empty:
        sections.append(
            report.Section(
                "Trials not in this report",
                "Only COMPLETE trials are analysed; these were pruned, failed or unfinished (n per case, variant "
                "and state):",
                tables=[report.Table(not_complete.reset_index(drop=True), title="Excluded trials", slug="excluded")],
            )
        )
    meta: dict[str, Any] = {"study": study.study_name, "kind": kind, "metric": metric, "alpha": alpha, "rope": rope}
    paths = report.write_report(
        out_dir, study.study_name, sections, formats=formats, title=study.study_name, metadata=meta
    )
    paths += report.write_atomic({out_dir / f"{study.study_name}-runs.csv": df.to_csv(index=False)})
    if publish:
        from ablate.reproduce import publish as publish_to_dashboard

        publish_to_dashboard(study, sections, study.study_name)
    return StudyReport(study.study_name, kind, paths, len(df), counts)
