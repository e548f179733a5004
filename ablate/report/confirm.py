"""The report of a confirmation study: the search's best configurations on fresh, paired seeds.

Answers, in order: which configurations hold against the no-transfer benchmark and against the paper's
default CGI (exact sign-flip, Holm over the K configurations of each family), how far each search value
overstated its configuration (the winner's curse, measured on fresh seeds), and whether the search ranked them
right (Kendall τ). Numbers come from :func:`ablate.experiment.confirmation.analyse`; this module only lays them out.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd

from ablate import record
from ablate.analysis import confirmation, tidy
from ablate.errors import AblateError
from ablate.report.model import DASH, Section, Table, finite, fmt_mean_sd, fmt_num, fmt_p
from ablate.report.sections import methods_section
from ablate.report.tables import format_comparisons

__all__ = ["confirm_report_sections"]


def _pp(x: float, signed: bool = True) -> str:
    return (f"{x * 100:+.2f}" if signed else f"{x * 100:.2f}") if finite(x) else DASH


def _summary(a: confirmation.Analysis, method: str = "CGI") -> Table:
    r = a.rows
    shown = pd.DataFrame(
        {
            "rank": [int(x) for x in r["rank"]],
            "configuration": list(r["variant"]),
            "n": [int(x) for x in r["n"]],
            "search val %": [_pp(x, False) for x in r["search_val"]],
            "confirmed val %": [
                fmt_mean_sd(m * 100, s * 100) for m, s in zip(r["confirmed_val"], r["confirmed_val_sd"], strict=True)
            ],
            "winner's curse pp": [_pp(x) for x in r["winners_curse_val"]],
            "confirmed rank": [f"{int(x)}" if finite(x) else DASH for x in r["confirmed_rank"]],
            "Δ vs benchmark pp": [_pp(x) for x in r["delta_vs_benchmark"]],
            "p (Holm)": [fmt_p(p) for p in r["p_holm_vs_benchmark"]],
            "vs benchmark": list(r["verdict_vs_benchmark"]),
            "seeds for power 0.8": list(r["seeds_needed_vs_benchmark"]),
            "Δ vs default pp": [_pp(x) for x in r["delta_vs_default"]],
            "p (Holm) ": [fmt_p(p) for p in r["p_holm_vs_default"]],
            f"vs default {method}": list(r["verdict_vs_default"]),
            "seeds for power 0.8 ": list(r["seeds_needed_vs_default"]),
        }
    )
    numeric = r.copy()
    numeric["changes"] = [str(c) for c in r["changes"]]
    return Table(
        data=shown,
        title="Confirmed configurations",
        caption="search val: the search objective (mean validation accuracy on the search's seeds); winner's curse "
        "= search val − confirmed val mean. Verdicts use the report metric; blank seeds = decided already.",
        numeric=numeric,
        warnings=list(a.warnings),
        slug="confirmed",
    )


def confirm_report_sections(
    study: optuna.Study,
    *,
    metric: str,
    alpha: float,
    rope: float | None,
    fig_dir: Path | None,
    definition: record.Definition | None = None,
) -> tuple[str, list[Section], pd.DataFrame]:
    """The sections of a confirmation study's report and the tidy runs they come from."""
    definition = definition or record.read_definition(study)
    link = record.confirmation_source(definition) or {}
    df = tidy.design_frame(study, definition)
    if df.empty:
        raise AblateError(f"study {study.study_name!r} has no COMPLETE trials to report")
    a = confirmation.analyse(df, definition, value=metric, alpha=alpha, rope=rope)
    method, benchmark = record.method_labels(definition)
    seeds = sorted(df["seed"].unique())
    k = len(a.rows)
    tau = (
        f"Kendall τ between the search rank and the confirmed rank (validation accuracy) over {k} configurations: "
        f"τ = {fmt_num(a.tau)}, p = {fmt_p(a.tau_p)}."
    )
    confirmed = [str(v) for v, ok in zip(a.rows["variant"], a.rows["confirmed"], strict=True) if ok]
    verdict = (
        f"Confirmed better than the benchmark: {', '.join(confirmed)}."
        if confirmed
        else f"No configuration is confirmed better than {benchmark}."
    )
    text = (
        f"Search: {link.get('study')} ({link.get('search_fidelity')} fidelity, seeds "
        f"{min(link.get('search_seeds') or [0])}–{max(link.get('search_seeds') or [0])}). Its {k} best distinct "
        f"configurations, the default {method} and {benchmark} were re-run on {len(seeds)} fresh seeds "
        f"({seeds[0]}–{seeds[-1]}, disjoint from the search's), paired by seed, at "
        f"{definition.fidelity.get('name')} fidelity. {verdict} Best confirmed (validation): {a.best}. "
        f"Mean winner's curse: {_pp(float(a.rows['winners_curse_val'].mean()))} pp. {tau}"
    )
    sections = [Section("Confirmation", text=text, tables=[_summary(a, method)])]
    if a.default_vs_benchmark is not None:
        d = a.default_vs_benchmark
        sections[0].text += (
            f" Context: {d['variant']} vs {d['reference']}: Δ = {_pp(d['delta'])} pp, p = {fmt_p(d['p'])} "
            f"({d['verdict']}, not in the Holm families)."
        )
    ns: list[int] = []
    for tab, ref, slug in (
        (a.vs_benchmark, benchmark, "vs-benchmark"),
        (a.vs_default, f"the default {method}", "vs-default"),
    ):
        if tab.empty:
            continue
        ns += [int(n) for n in tab.frame["n"]]
        sections.append(
            Section(
                f"Confirmed configurations vs {ref}",
                text=f"{metric}, paired by seed; exact sign-flip test, Holm over the {len(tab.frame)} configurations.",
                tables=[format_comparisons(tab, label="variant", rope=rope, title=f"vs {ref}", slug=slug)],
            )
        )
    if ns:
        sections.append(
            methods_section(
                ns, alpha, rope, 9999, 0, f"the {k} confirmed configurations (vs each reference separately)"
            )
        )
    return "confirmation", sections, df
