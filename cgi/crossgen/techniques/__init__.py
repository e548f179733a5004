"""The transfer techniques, each a function ``Context -> Outcome`` (see :mod:`crossgen.techniques.base`)."""

from __future__ import annotations

from collections.abc import Callable

from crossgen.techniques.base import Context, Outcome
from crossgen.techniques.cgi import cgi
from crossgen.techniques.distill import distill
from crossgen.techniques.feature import feature
from crossgen.techniques.none import bnn, none

TECHNIQUE_FUNCTIONS: dict[str, Callable[[Context], Outcome]] = {
    "none": none,
    "feature": feature,
    "distill": distill,
    "bnn": bnn,
    "cgi": cgi,
}

__all__ = ["TECHNIQUE_FUNCTIONS", "Context", "Outcome"]
