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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from ablate import record
from ablate.analysis import tidy
from ablate.errors import AblateError
from ablate.experiment import confirm
from ablate.io import write_atomic
from ablate.report.curves import gain_curve_section
from ablate.report.model import Section, Table, png_pdf
from ablate.report.provenance import provenance_section, report_provenance
from ablate.report.render import render_markdown, write_report
from ablate.report.sections import ablation_report_sections, combined_methods_section, transfer_report_sections
from ablate.report.sensitivity import sensitivity_methods_section, sensitivity_report_sections
from ablate.report.summary import Scope, label_families, state_totals, summary_section

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
    return record.variant_titles({"variants": variants}).get(label, label)


def study_definition(definition: record.Definition) -> StudyDefinition:
    """From the definition stored in the study when it was created (never the TOML files again)."""
    kind = record.study_kind(definition)
    if kind == "sensitivity":
        params = [p["name"] for p in definition.space if p["type"] == "categorical"]
        return StudyDefinition("sensitivity", params=params)
    design = definition.design or {}
    variants = design.get("variants", [])
    baseline = _title(variants, design["baseline"])
    if kind == "ablation":
        return StudyDefinition("ablation", reference=_title(variants, design["reference"]), baseline=baseline)
    methods = [_title(variants, v["label"]) for v in variants if v["label"] != design["baseline"]]
    return StudyDefinition(kind, baseline=baseline, methods=methods)


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


def _labels(definition: record.Definition) -> tuple[str, str]:
    """The best trial's and the baseline's row labels in a sensitivity report (CGI's as the paper names them)."""
    method, benchmark = record.method_labels(definition)
    if method == "CGI":
        return "CGI (best trial)", "Without Transfer Benchmark"
    return f"{method} (best trial)", benchmark.removeprefix("the ").capitalize()


def _best_vs_benchmark(study: optuna.Study, definition: record.Definition, metric: str) -> pd.DataFrame:
    """Per seed: the best trial (chosen on validation) and the baseline, for a paired report."""
    best, baseline = _labels(definition)
    return tidy.benchmark_pairs(study, study.best_trial.number, metric, best, baseline)


def _gain_curves(
    study: optuna.Study,
    definition: record.Definition,
    methods: list[str],
    baseline: str | None,
    metric: str,
    alpha: float,
    fig_dir: Path | None,
) -> list[Section]:
    """Transfer-gain curves (ablate.report.curves) for studies whose records carry learning curves."""
    curves = tidy.curve_frame(study, definition)
    if curves.empty or baseline is None:
        return []
    found = (
        gain_curve_section(curves, method=m, baseline=baseline, value=metric, alpha=alpha, fig_dir=fig_dir)
        for m in methods
    )
    return [s for s in found if s is not None]


Sections = tuple[list[Section], pd.DataFrame]


@dataclass(frozen=True)
class ReportRequest:
    """What a report builder is asked for: the study, its definition (read once), and the report's settings."""

    study: optuna.Study
    definition: record.Definition
    metric: str
    alpha: float
    rope: float | None
    fig_dir: Path | None


def _confirmation_sections(r: ReportRequest) -> Sections:
    study, definition, metric, alpha, rope, fig_dir = r.study, r.definition, r.metric, r.alpha, r.rope, r.fig_dir
    from ablate.report.confirm import confirm_report_sections

    _kind, sections, df = confirm_report_sections(
        study, metric=metric, alpha=alpha, rope=rope, fig_dir=fig_dir, definition=definition
    )
    return sections, df


def _design_frame(study: optuna.Study, definition: record.Definition) -> pd.DataFrame:
    df = tidy.design_frame(study, definition)
    if df.empty:
        raise AblateError(f"study {study.study_name!r} has no COMPLETE trials to report")
    return df


def _ablation_sections(r: ReportRequest) -> Sections:
    study, definition, metric, alpha, rope, fig_dir = r.study, r.definition, r.metric, r.alpha, r.rope, r.fig_dir
    defn = study_definition(definition)
    df = _design_frame(study, definition)
    cases = sorted(df["case"].unique())
    shared = {"value": metric, "alpha": alpha, "rope": rope, "fig_dir": fig_dir, "cases": cases, "with_methods": False}
    sections = ablation_report_sections(df, reference=defn.reference, **shared)
    sections += transfer_report_sections(df, method=defn.reference, baseline=defn.baseline, **shared)
    label_families(sections, reference=str(defn.reference), baseline=str(defn.baseline))
    sections += _gain_curves(study, definition, [defn.reference], defn.baseline, metric, alpha, fig_dir)
    methods = combined_methods_section(sections, alpha=alpha, rope=rope)
    return sections + ([methods] if methods else []), df


def _table_sections(r: ReportRequest) -> Sections:
    study, definition, metric, alpha, rope, fig_dir = r.study, r.definition, r.metric, r.alpha, r.rope, r.fig_dir
    defn = study_definition(definition)
    df = _design_frame(study, definition)
    sections = transfer_report_sections(
        df, method=defn.methods, baseline=defn.baseline, value=metric, alpha=alpha, rope=rope, fig_dir=fig_dir
    )
    sections += _gain_curves(study, definition, defn.methods, defn.baseline, metric, alpha, fig_dir)
    return sections, df


def _sensitivity_sections(r: ReportRequest) -> Sections:
    study, definition, metric, alpha, rope, fig_dir = r.study, r.definition, r.metric, r.alpha, r.rope, r.fig_dir
    defn = study_definition(definition)
    trials, _per_seed = tidy.sensitivity_frames(study)
    if trials.empty:
        raise AblateError(f"study {study.study_name!r} has no COMPLETE trials to report")
    frame = trials.rename(columns={"value": "val_accuracy"})
    params = [p for p in defn.params if p in frame]
    labels, defaults, conditions = switch_info(definition)
    sections = sensitivity_report_sections(
        frame,
        importances(study),
        value="val_accuracy",
        params=params,
        alpha=alpha,
        fig_dir=fig_dir,
        labels=labels,
        defaults=defaults,
        conditions=conditions,
    )
    paired = _best_vs_benchmark(study, definition, metric)
    if not paired.empty:
        best_label, baseline_label = _labels(definition)
        sections += transfer_report_sections(
            paired,
            method=best_label,
            baseline=baseline_label,
            value=metric,
            alpha=alpha,
            rope=rope,
            fig_dir=None,
            cases=sorted(paired["case"].unique()),
            with_methods=False,
        )
        sections.append(
            Section(
                "Selection note",
                "The best trial was chosen on validation accuracy among all trials; its test accuracy above "
                "is therefore optimistic (winner's curse). For an unbiased comparison run `ablate ablation` "
                "with the chosen configuration on fresh seeds.",
            )
        )
    sections.append(
        sensitivity_methods_section(
            n_trials=len(frame),
            seeds=definition.seeds,
            value="val_accuracy",
            alpha=alpha,
            sampler=definition.extra.get("sampler"),
            benchmark_pairs=int(paired["seed"].nunique()) if not paired.empty else 0,
        )
    )
    return sections, frame


# The report of each kind of study (record.study_kind), built from the study and its definition alone.
BUILDERS: dict[str, Callable[[ReportRequest], Sections]] = {
    "confirmation": _confirmation_sections,
    "ablation": _ablation_sections,
    "table": _table_sections,
    "sensitivity": _sensitivity_sections,
}


def sections_for(
    study: optuna.Study,
    definition: record.Definition,
    *,
    metric: str,
    alpha: float,
    rope: float | None,
    fig_dir: Path | None,
) -> tuple[str, list[Section], pd.DataFrame]:
    """The study's kind (:func:`ablate.record.study_kind`), its report's sections, and the tidy runs they were
    built from."""
    kind = record.study_kind(definition)
    sections, df = BUILDERS[kind](ReportRequest(study, definition, metric, alpha, rope, fig_dir))
    return kind, sections, df


def switch_info(definition: record.Definition) -> tuple[dict[str, str], dict[str, Any], dict[str, str]]:
    """Per parameter: the label a reader sees, its default level, and when a conditional parameter exists
    (``generator=gmm``). The label is the switch's name (``covariance_type``): what Optuna's params, the
    dashboard, ``--set``, space and design files all call it (the CLI flag, ``--covariance-type``, is the one
    place it is spelt otherwise)."""
    labels = {s["name"]: str(s["name"]) for s in definition.switches}
    defaults = {s["name"]: s.get("default") for s in definition.switches}
    conditions = {
        p["name"]: " and ".join(f"{labels.get(k, k)}={v}" for k, v in p["when"].items())
        for p in definition.space
        if p.get("when")
    }
    return labels, defaults, conditions


def report_scope(
    study: optuna.Study,
    definition: record.Definition,
    kind: str,
    metric: str,
    alpha: float,
    best: dict[str, Any] | None = None,
) -> Scope:
    """What the study covered, for the Summary (from the stored definition and the trials' states); ``best``: a
    search's best configuration (:func:`best_configuration`)."""
    totals = state_totals(tidy.state_counts(study))
    fidelity = str(definition.fidelity.get("name", "?"))
    method, benchmark = record.method_labels(definition)
    maker = confirm.made_by(definition)
    ablate_ = "ablate" if maker == "cgi" else f"ablate --method {maker}"  # the default method needs no flag
    cases = tuple(definition.cases) or ((definition.case,) if definition.case else ())
    design = definition.design or {}
    if kind == "sensitivity":
        case = definition.case or (cases[0] if cases else "all")
        next_command = f"{ablate_} confirm {study.study_name}"
        metric = "val_accuracy (objective); test accuracy vs the benchmark"
    elif kind == "ablation":
        design_name = str(design.get("name", "ablation-ofat")).removeprefix("ablation-")
        case = cases[0] if len(cases) == 1 else "all"
        next_command = f"{ablate_} ablation --case {case} --design {design_name} --fidelity {fidelity}"
    else:
        next_command = f"{ablate_} reproduce {design.get('name', 'table2')} --fidelity {fidelity}"
    return Scope(
        kind=kind,
        study=study.study_name,
        cases=cases,
        fidelity=fidelity,
        seeds=int(definition.seeds),
        metric=metric,
        alpha=alpha,
        reference=design.get("reference"),
        baseline=design.get("baseline"),
        sampler=definition.extra.get("sampler"),
        next_command=next_command,
        best=best,
        method=method,
        benchmark=benchmark,
        **totals,
    )


def best_configuration(study: optuna.Study, definition: record.Definition) -> dict[str, Any] | None:
    """The search's best trial as ``ablate confirm`` ranks it (its changes from the method's defaults), or None."""

    try:
        (best, *_), _base = confirm.top_configurations(study, 1, definition=definition)
    except AblateError:
        return None
    return {
        "trial": best.trial,
        "configuration": best.label.split(": ", 1)[1],
        "val_accuracy": best.value,
        "test_accuracy": best.test_accuracy,
        "seeds": int(definition.seeds),
    }


def report_title(scope: Scope) -> str:
    """A title that says what the report is about; the study name stays in the Summary and metadata."""
    what = {
        "ablation": f"Ablation of {scope.method}",
        "table": "CGI against the paper's tables" if scope.method == "CGI" else f"{scope.method}: tables",
        "sensitivity": f"Sensitivity of {scope.method}",
    }
    cases = ", ".join(c.replace("_", " → ") for c in scope.cases)
    return f"{what.get(scope.kind, scope.kind)}: {cases} ({scope.fidelity} fidelity, {scope.study})"


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
    """Write ``STUDY.{md,tex,html,json,csv}`` + ``STUDY-runs.csv`` + figures, and (``publish``) the dashboard note.

    The study's stored definition is read here, once, and everything below is computed from it and the trials:
    sections (compute), then the Summary and the metadata (model), then the files (render)."""
    definition = record.read_definition(study)
    kind, sections, df = sections_for(
        study, definition, metric=metric, alpha=alpha, rope=rope, fig_dir=out_dir / "figures"
    )
    counts = tidy.state_counts(study)
    not_complete = counts[counts["state"] != "COMPLETE"]
    if not not_complete.empty:
        sections.append(
            Section(
                "Trials not in this report",
                "Only COMPLETE trials are analysed; these were pruned, failed or unfinished (n per case, variant "
                "and state, with each failed trial's reason):",
                tables=[Table(not_complete.reset_index(drop=True), title="Excluded trials", slug="excluded")],
            )
        )
    meta: dict[str, Any] = {"study": study.study_name, "kind": kind, "metric": metric, "alpha": alpha, "rope": rope}
    provenance = report_provenance(study, definition)
    sections.append(provenance_section(provenance))
    meta["provenance"] = dict(provenance)
    best = best_configuration(study, definition) if kind == "sensitivity" else None
    if kind == "sensitivity":
        meta["best"] = best
    title = study.study_name
    if kind in ("ablation", "table", "sensitivity") and not (sections and sections[0].title == "Summary"):
        scope = report_scope(study, definition, kind, metric, alpha, best)
        sections.insert(0, summary_section(scope, sections))
        title = report_title(scope)
    paths = write_report(out_dir, study.study_name, sections, formats=formats, title=title, metadata=meta)
    paths += write_atomic({out_dir / f"{study.study_name}-runs.csv": df.to_csv(index=False)})
    if publish:
        publish_sections(study, sections, title)
    return StudyReport(study.study_name, kind, paths, len(df), counts)


def publish_sections(study: optuna.Study, sections: list[Section], title: str) -> None:
    """Save the markdown report as the study's dashboard note and its figures as artifacts."""
    from ablate.execution import dashboard  # lazy: optuna-dashboard is only needed when publishing

    figures = [Path(png) for s in sections for png, _pdf in (png_pdf(f) for f in s.figures)]
    dashboard.publish(study, lambda links: render_markdown(sections, title=title, figure_links=links), figures)
