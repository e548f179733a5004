"""One answer across transfer cases: each case's confirmation side by side, under one family-wise correction.

Why: ``ablate study --case all --confirm K`` confirms each case's search on its own, so each confirmation report
answers for one case, with Holm over that case's K configurations only. A reader asking *which parts of CGI
matter, in which case* needs the cases in one table, a correction over every comparison they make (K per
case), and the switch settings that the confirmed winners of every case share. Numbers come from
:func:`ablate.experiment.confirmation.analyse`, per study; this module only joins them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from ablate import record
from ablate.analysis import confirmation, stats, tidy
from ablate.errors import AblateError
from ablate.io import write_atomic
from ablate.report.model import DASH, Section, Table, finite, fmt_mean_sd, fmt_p
from ablate.report.provenance import provenance_section
from ablate.report.render import write_report

__all__ = [
    "across_cases_sections",
    "across_name",
    "confirmations_by_fidelity",
    "shared_changes",
    "write_across_cases_report",
]


def _pp(x: Any) -> str:
    return f"{float(x) * 100:+.2f}" if finite(x) else DASH


def _verdict(row: pd.Series, alpha: float, rope: float | None) -> str:
    """stats.verdict on the across-case adjusted p (the same words and rules as every other table)."""
    if not finite(row["delta_vs_benchmark"]):
        return DASH
    ci = stats.CI(row["delta_vs_benchmark"], row["ci_low"], row["ci_high"], int(row["n_pairs"]), "reported")
    return stats.verdict(ci, row["p_holm_all"], alpha=alpha, rope=rope)


def _changes(changes: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (changes or {}).items()}


def confirmations_by_fidelity(studies: Sequence[optuna.Study]) -> dict[str, list[optuna.Study]]:
    """The confirmation studies among ``studies``, grouped by fidelity, keeping groups that span two or more cases."""
    groups: dict[str, list[optuna.Study]] = {}
    cases: dict[str, set[str]] = {}
    for study in studies:
        definition = record.read_definition(study)
        if record.confirmation_source(definition) is None:
            continue
        fidelity = str(definition.fidelity.get("name"))
        groups.setdefault(fidelity, []).append(study)
        cases.setdefault(fidelity, set()).update(definition.cases)
    return {f: g for f, g in groups.items() if len(cases[f]) >= 2}


def across_name(fidelity: str) -> str:
    return f"confirm-across-cases-{fidelity}"


def across_cases_sections(
    studies: Sequence[optuna.Study],
    *,
    metric: str = "test_accuracy",
    alpha: float = 0.05,
    rope: float | None = None,
    definitions: Sequence[record.Definition] | None = None,
) -> tuple[list[Section], pd.DataFrame]:
    """The sections of the across-case report and one row per confirmed configuration (every case);
    ``definitions``: the studies' own, in order, when the caller has read them already."""
    rows: list[dict[str, Any]] = []
    defaults: dict[str, dict[str, Any] | None] = {}
    definitions = list(definitions) if definitions is not None else [record.read_definition(s) for s in studies]
    for study, definition in zip(studies, definitions, strict=True):
        df = tidy.design_frame(study, definition)
        if df.empty:
            raise AblateError(f"study {study.study_name!r} has no COMPLETE trials to report")
        a = confirmation.analyse(df, definition, value=metric, alpha=alpha, rope=rope)
        case = ", ".join(definition.cases)
        defaults[case] = a.default_vs_benchmark
        means = df.groupby("variant")[metric].agg(["mean", "std"])
        for r in a.rows.itertuples():
            m = means.loc[r.variant] if r.variant in means.index else None
            rows.append(
                {
                    "case": case,
                    "study": study.study_name,
                    "rank": int(r.rank),
                    "configuration": str(r.variant),
                    "changes": _changes(r.changes),
                    "n": int(r.n),
                    "confirmed_val": float(r.confirmed_val),
                    "mean": float(m["mean"]) if m is not None else float("nan"),
                    "sd": float(m["std"]) if m is not None else float("nan"),
                    "delta_vs_benchmark": float(r.delta_vs_benchmark),
                    "p_holm_in_case": float(r.p_holm_vs_benchmark),
                    "verdict_in_case": str(r.verdict_vs_benchmark),
                    "delta_vs_default": float(r.delta_vs_default),
                    "p_holm_vs_default": float(r.p_holm_vs_default),
                    "verdict_vs_default": str(r.verdict_vs_default),
                    **_raw(a.vs_benchmark, str(r.variant)),
                }
            )
    every = pd.DataFrame(rows)
    if every.empty:
        raise AblateError("no confirmed configurations to report across cases")
    # one family: every configuration of every case against its case's benchmark
    every["p_holm_all"] = stats.holm(every["p"].to_numpy())
    every["verdict_all"] = [_verdict(row, alpha, rope) for _, row in every.iterrows()]
    order = list(dict.fromkeys(every["case"]))
    best = every.loc[every.groupby("case")["confirmed_val"].idxmax()]
    best = best.set_index("case").loc[order].reset_index()
    m = int(every["p"].notna().sum())
    labels = record.method_labels(definitions[0])
    sections = [_answer(every, best, defaults, m, alpha, metric, labels), _best_table(best, defaults, m, labels[0])]
    sections.append(_every_table(every, m))
    return sections, every


def _raw(vs_benchmark: stats.TableResult, variant: str) -> dict[str, float]:
    """The unadjusted p, the CI and the pair count of one configuration vs its case's benchmark."""
    keys = {"p": "p", "ci_low": "ci_low", "ci_high": "ci_high", "n_pairs": "n"}
    frame = vs_benchmark.frame
    if frame.empty or variant not in set(frame["variant"]):
        return {k: float("nan") for k in keys} | {"n_pairs": 0}
    row = frame.loc[frame["variant"] == variant].iloc[0]
    return {k: float(row[c]) for k, c in keys.items()}


def shared_changes(best: pd.DataFrame) -> dict[str, str]:
    """Switch settings every case's best confirmed configuration has (changes from the default CGI)."""
    common: dict[str, str] | None = None
    for changes in best["changes"]:
        common = dict(changes) if common is None else {k: v for k, v in common.items() if changes.get(k) == v}
    return common or {}


def _answer(
    every: pd.DataFrame,
    best: pd.DataFrame,
    defaults: dict[str, dict[str, Any] | None],
    m: int,
    alpha: float,
    metric: str,
    labels: tuple[str, str] = ("CGI", "the no-transfer benchmark"),
) -> Section:
    method, benchmark = labels
    cases = list(best["case"])
    won = every[every["verdict_all"] == "better"]
    lost = every[every["verdict_all"] == "worse"]
    if m == 0:
        head = (
            f"No comparison could be tested: every configuration has fewer than {stats.MIN_N_TESTS} paired seeds "
            "(descriptives only); confirm on more seeds."
        )
    elif len(won):
        found = "; ".join(f"{r.case}: {r.configuration} ({_pp(r.delta_vs_benchmark)} pp)" for r in won.itertuples())
        head = f"Confirmed better than {benchmark} after Holm over all {m} comparisons: {found}."
    else:
        head = f"No configuration is confirmed better than {benchmark} after Holm over all {m} comparisons."
    if len(lost):
        head += f" Confirmed worse: {len(lost)} of {len(every)} ({', '.join(sorted(set(lost['case'])))})."
    verdicts: dict[str, list[str]] = {}
    for case, d in defaults.items():
        verdicts.setdefault(str(d["verdict"]) if d else "not run", []).append(case)
    default = "; ".join(f"{v} in {', '.join(cs)}" for v, cs in sorted(verdicts.items()))
    shared = shared_changes(best)
    common = (
        ", ".join(f"{k}={v}" for k, v in shared.items())
        if shared
        else f"no switch setting (the confirmed winners differ in every change from the default {method})"
    )
    seeds = ", ".join(sorted({str(int(n)) for n in every["n"]}))
    text = (
        f"{len(cases)} cases ({', '.join(cases)}), each its own search confirmed on fresh paired seeds "
        f"({seeds} per configuration); {metric}. {head} The default {method} against the benchmark (context, each "
        f"case's own test): {default}. The best confirmed configuration (by validation) of every case sets: "
        f"{common}."
    )
    return Section(
        "Across cases",
        text=text,
        warnings=[
            f"Holm over all cases treats the {m} comparisons with the benchmark as one family: stricter than each "
            "confirmation report's own (Holm over its case's configurations), which the 'in case' columns show."
        ]
        if m
        else [],
    )


def _best_table(best: pd.DataFrame, defaults: dict[str, dict[str, Any] | None], m: int, method: str = "CGI") -> Section:
    shown = pd.DataFrame(
        {
            "case": best["case"],
            "best confirmed (validation)": best["configuration"],
            "n": best["n"],
            "test %": [fmt_mean_sd(a * 100, s * 100) for a, s in zip(best["mean"], best["sd"], strict=True)],
            "Δ vs benchmark pp": [_pp(x) for x in best["delta_vs_benchmark"]],
            "p (Holm, all cases)": [fmt_p(p) for p in best["p_holm_all"]],
            "vs benchmark": best["verdict_all"],
            "Δ vs default pp": [_pp(x) for x in best["delta_vs_default"]],
            "p (Holm, in case)": [fmt_p(p) for p in best["p_holm_vs_default"]],
            f"vs default {method}": best["verdict_vs_default"],
            f"default {method} vs benchmark pp": [
                f"{_pp(d['delta'])} ({d['verdict']})" if d else DASH for d in (defaults[c] for c in best["case"])
            ],
        }
    )
    numeric = best.assign(changes=[str(c) for c in best["changes"]])
    table = Table(
        data=shown,
        title="Best confirmed configuration per case",
        caption=f"Chosen per case on confirmed validation accuracy; Δ and p on the report metric. p (Holm, all "
        f"cases): over the {m} comparisons of every case with its benchmark.",
        numeric=numeric,
        slug="best",
    )
    return Section("Per case", tables=[table])


def _every_table(every: pd.DataFrame, m: int) -> Section:
    shown = pd.DataFrame(
        {
            "case": every["case"],
            "search rank": every["rank"],
            "configuration": every["configuration"],
            "n": every["n"],
            "Δ vs benchmark pp": [_pp(x) for x in every["delta_vs_benchmark"]],
            "p (Holm, in case)": [fmt_p(p) for p in every["p_holm_in_case"]],
            "p (Holm, all cases)": [fmt_p(p) for p in every["p_holm_all"]],
            "vs benchmark": every["verdict_all"],
        }
    )
    table = Table(
        data=shown,
        title="Every confirmed configuration",
        caption=f"Exact sign-flip test per comparison, paired by seed; Holm within each case and over all {m}.",
        numeric=every.assign(changes=[str(c) for c in every["changes"]]),
        slug="every",
    )
    return Section("All configurations", tables=[table])


def write_across_cases_report(
    studies: Sequence[optuna.Study],
    out_dir: Path,
    *,
    formats: tuple[str, ...],
    metric: str = "test_accuracy",
    alpha: float = 0.05,
    rope: float | None = None,
) -> list[Path]:
    """Write ``confirm-across-cases-FIDELITY.{md,...}`` and its runs-free CSV of every confirmed configuration.

    Each study's definition is read once, here."""
    definitions = [record.read_definition(s) for s in studies]
    fidelity = str(definitions[0].fidelity.get("name"))
    name = across_name(fidelity)
    sections, every = across_cases_sections(studies, metric=metric, alpha=alpha, rope=rope, definitions=definitions)
    provs = [(s.study_name, record.provenance_of(d)) for s, d in zip(studies, definitions, strict=True)]
    provenance = provenance_section(provs)
    if not provenance.warnings:  # the same everywhere: one table says it
        provenance.tables = provenance.tables[:1]
        provenance.text += f" All {len(provs)} studies recorded the same; the first is shown."
    sections.append(provenance)
    meta = {"studies": [s.study_name for s in studies], "kind": "confirm-across-cases", "metric": metric}
    method = record.method_labels(definitions[0])[0]
    title = f"{method}'s confirmed configurations across cases ({fidelity} fidelity)"
    paths = write_report(out_dir, name, sections, formats=formats, title=title, metadata=meta | {"alpha": alpha})
    csv = every.assign(changes=[str(c) for c in every["changes"]]).to_csv(index=False)
    return paths + write_atomic({out_dir / f"{name}-configurations.csv": csv})
