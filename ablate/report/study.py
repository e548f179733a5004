"""``ablate report``: read a study's COMPLETE trials, pick the right analyses for its kind, write, publish.

* designed ablations → per-case ablation significance tables (every variant vs the full method), the
  full method vs the no-transfer benchmark, Friedman / CD diagram, figures, methods paragraph;
* the paper's tables → the paper layout plus per-case verdicts against the benchmark;
* sampled sensitivity studies → PED-ANOVA and fANOVA importances side by side, marginal comparisons
  (with the adaptive-sampling warning), the M × K response, and the best configuration vs the benchmark.

Reports never re-run anything. What a study *is* (its kind, reference, baseline, parameter names) is read
in one place, :func:`study_definition`; everything else works from that and the tidy runs.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from ablate import record, tidy
from ablate.errors import AblateError
from ablate.report.model import Section, Table, png_pdf
from ablate.report.render import render_markdown, write_report
from ablate.report.sections import ablation_report_sections, sensitivity_report_sections, transfer_report_sections
from crossgen.io import write_atomic

__all__ = [
    "StudyDefinition",
    "StudyReport",
    "importances",
    "publish_sections",
    "sections_for",
    "study_definition",
    "write_study_report",
]

log = logging.getLogger("ablate.report")


@dataclass
class StudyReport:
    study: str
    kind: str
    paths: list[Path]
    runs: int
    counts: pd.DataFrame


# ---------------------------------------------------------------------------------------- study definition
@dataclass(frozen=True)
class StudyDefinition:
    """What a report needs to know about a study beyond its trials.

    ``kind``: ``ablation``, ``table`` or ``sensitivity``. ``reference``: the full method an ablation's
    variants are compared with. ``baseline``: the no-transfer benchmark. ``methods``: the techniques a
    paper table compares with the baseline. ``params``: the categorical parameters tested marginally in a
    sensitivity study. Names are the variants' report titles (merged variants carry every label).
    """

    kind: str
    reference: str | None = None
    baseline: str | None = None
    methods: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)


def _title(variants: list[dict[str, Any]], label: str) -> str:
    for v in variants:
        if v["label"] == label:
            return " ≡ ".join([label, *v.get("aliases", [])])
    return label


def study_definition(study: optuna.Study) -> StudyDefinition:
    """From the definition stored in the study when it was created (never the TOML files again)."""
    definition = record.read_definition(study)
    if definition.kind == "sensitivity":
        params = [p["name"] for p in definition.space if p["type"] == "categorical"]
        return StudyDefinition("sensitivity", params=params)
    design = definition.design or {}
    variants = design.get("variants", [])
    baseline = _title(variants, design["baseline"])
    if design["name"].startswith("ablation"):
        return StudyDefinition("ablation", reference=_title(variants, design["reference"]), baseline=baseline)
    methods = [_title(variants, v["label"]) for v in variants if v["label"] != design["baseline"]]
    return StudyDefinition("table", baseline=baseline, methods=methods)


# ---------------------------------------------------------------------------------------- sections


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
    return tidy.benchmark_pairs(study, study.best_trial.number, metric, "CGI (best trial)")


def sections_for(
    study: optuna.Study, *, metric: str, alpha: float, rope: float | None, fig_dir: Path | None
) -> tuple[str, list[Section], pd.DataFrame]:
    """The report's sections for the study's kind, and the tidy runs they were built from."""
    defn = study_definition(study)
    if defn.kind in ("ablation", "table"):
        df = tidy.design_frame(study)
        if df.empty:
            raise AblateError(f"study {study.study_name!r} has no COMPLETE trials to report")
        if defn.kind == "ablation":
            cases = sorted(df["case"].unique())
            sections = ablation_report_sections(
                df, reference=defn.reference, value=metric, alpha=alpha, rope=rope, fig_dir=fig_dir, cases=cases
            )
            sections += transfer_report_sections(
                df,
                method=defn.reference,
                baseline=defn.baseline,
                value=metric,
                alpha=alpha,
                rope=rope,
                fig_dir=fig_dir,
                cases=cases,
            )
            return "ablation", sections, df
        sections = transfer_report_sections(
            df, method=defn.methods, baseline=defn.baseline, value=metric, alpha=alpha, rope=rope, fig_dir=fig_dir
        )
        return "table", sections, df
    trials, _per_seed = tidy.sensitivity_frames(study)
    if trials.empty:
        raise AblateError(f"study {study.study_name!r} has no COMPLETE trials to report")
    frame = trials.rename(columns={"value": "val_accuracy"})
    params = [p for p in defn.params if p in frame]
    sections = sensitivity_report_sections(
        frame, importances(study), value="val_accuracy", params=params, alpha=alpha, fig_dir=fig_dir
    )
    paired = _best_vs_benchmark(study, metric)
    if not paired.empty:
        sections += transfer_report_sections(
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
            Section(
                "Selection note",
                "The best trial was chosen on validation accuracy among all trials; its test accuracy above "
                "is therefore optimistic (winner's curse). For an unbiased comparison run `ablate ablation` "
                "with the chosen configuration on fresh seeds.",
            )
        )
    return "sensitivity", sections, frame


# ---------------------------------------------------------------------------------------- writing


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
    """Write ``STUDY.{md,tex,html,json,csv}`` + ``STUDY-runs.csv`` + figures, and (``publish``) the dashboard note."""
    kind, sections, df = sections_for(study, metric=metric, alpha=alpha, rope=rope, fig_dir=out_dir / "figures")
    counts = tidy.state_counts(study)
    not_complete = counts[counts["state"] != "COMPLETE"]
    if not not_complete.empty:
        sections.append(
            Section(
                "Trials not in this report",
                "Only COMPLETE trials are analysed; these were pruned, failed or unfinished (n per case, variant "
                "and state):",
                tables=[Table(not_complete.reset_index(drop=True), title="Excluded trials", slug="excluded")],
            )
        )
    meta: dict[str, Any] = {"study": study.study_name, "kind": kind, "metric": metric, "alpha": alpha, "rope": rope}
    paths = write_report(out_dir, study.study_name, sections, formats=formats, title=study.study_name, metadata=meta)
    paths += write_atomic({out_dir / f"{study.study_name}-runs.csv": df.to_csv(index=False)})
    if publish:
        publish_sections(study, sections, study.study_name)
    return StudyReport(study.study_name, kind, paths, len(df), counts)


def publish_sections(study: optuna.Study, sections: list[Section], title: str) -> None:
    """Save the markdown report as the study's dashboard note and its figures as artifacts."""
    from ablate import dashboard  # lazy: optuna-dashboard is only needed when publishing

    figures = [Path(png) for s in sections for png, _pdf in (png_pdf(f) for f in s.figures)]
    dashboard.publish(study, render_markdown(sections, title=title), [f for f in figures if f.exists()])
