"""crossgen — Cross Generative Initialisation and the transfer baselines it is compared with.

It lives in ``cgi/crossgen/``: the top-level folder is ``cgi/``, but ``import cgi`` is the standard
library's module on Python 3.11 and 3.12, so the package inside it is ``crossgen`` and its folder has the
name it is imported by (tools that follow imports find it). Nothing here imports Optuna or the ``ablate`` toolkit.

The public names below are resolved lazily (PEP 562) so that ``import crossgen.errors`` or
``crossgen.config`` stays free of torch and Pyro: the statistics layer depends on the errors alone.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CASES": "crossgen.config",
    "TECHNIQUES": "crossgen.config",
    "BNNConfig": "crossgen.config",
    "CGIConfig": "crossgen.config",
    "DistillConfig": "crossgen.config",
    "Fidelity": "crossgen.config",
    "RunConfig": "crossgen.config",
    "ConfigError": "crossgen.errors",
    "CrossgenError": "crossgen.errors",
    "DataError": "crossgen.errors",
    "RunResult": "crossgen.runner",
    "load_run_tasks": "crossgen.runner",
    "run": "crossgen.runner",
    "DivergenceError": "crossgen.train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'crossgen' has no attribute {name!r}")
