"""The Provenance section every report ends with: what made the study, and a warning when combined studies differ.

Why: numbers from different library versions, commits, machines or data files are not comparable by default;
the report says where its runs came from (short here, in full in the JSON metadata) and warns when the studies
it combines disagree on any of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
import pandas as pd

from ablate import record
from ablate.execution import provenance
from ablate.report.model import Section, Table

__all__ = ["provenance_section", "report_provenance"]


def report_provenance(
    study: optuna.Study, definition: record.Definition | None = None
) -> list[tuple[str, dict[str, Any] | None]]:
    """The study's provenance, then that of the studies it builds on (a confirmation's search)."""
    definition = definition or record.read_definition(study)
    out = [(study.study_name, record.provenance_of(definition))]
    link = record.confirmation_source(definition)
    if link is not None:
        out.append((str(link.get("study")), link.get("source_provenance")))
    return out


def provenance_section(studies: Sequence[tuple[str, Mapping[str, Any] | None]]) -> Section:
    """One short table per study (the first is the report's own) and the differences between them as warnings."""
    frames = []
    for name, prov in studies:
        rows = provenance.summary_rows(prov)
        frames.append(
            Table(
                data=pd.DataFrame({"item": [r[0] for r in rows], "value": [r[1] for r in rows]}),
                title=f"Provenance of {name}",
                slug=f"provenance-{len(frames)}",
            )
        )
    warnings = provenance.differences(list(studies)) if len(studies) > 1 else []
    if len(studies) == 1 and studies[0][1] is None:
        warnings = []
    return Section(
        "Provenance",
        text="Recorded when each study was created; the full record is in this report's JSON metadata.",
        tables=list(frames),
        warnings=warnings,
    )
