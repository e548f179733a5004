"""What a table-building function returns: the table and what holds for all of it.

Why a type of its own and not ``DataFrame.attrs``: pandas documents ``attrs`` as experimental and keeps them
through some operations but not others, so a warning that applies to a whole table (Holm cannot reject at
this n; trials were dropped; TPE confounds the levels) could silently vanish between the statistics and the
report. A field cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class TableResult:
    """One table of results and the notes that apply to the whole of it.

    Parameters
    ----------
    frame
        The rows, one per comparison, variant or cell, as the function documents.
    warnings
        Table-level warnings, to be shown next to the table (row-level ones stay in the rows).
    alpha
        The significance level the rows were judged at, when they were.
    family
        The multiple-comparison family, in words (``"3 variants vs 'full'"``), when there is one.
    """

    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    warnings: tuple[str, ...] = ()
    alpha: float | None = None
    family: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.frame, pd.DataFrame):
            raise TypeError(f"frame must be a DataFrame, got {type(self.frame).__name__}")
        object.__setattr__(self, "warnings", tuple(str(w) for w in self.warnings))

    @property
    def empty(self) -> bool:
        """True when the table has no rows (as ``DataFrame.empty``)."""
        return self.frame.empty
