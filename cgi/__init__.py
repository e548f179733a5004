"""crossgen — Cross Generative Initialisation and the transfer baselines it is compared with.

The folder is ``cgi/`` but the import name is ``crossgen``: ``import cgi`` is the standard library's
module on Python 3.11 and 3.12. Nothing here imports Optuna or the ``ablate`` toolkit.
"""

from crossgen.config import CASES, TECHNIQUES, BNNConfig, CGIConfig, DistillConfig, Fidelity, RunConfig
from crossgen.errors import ConfigError, CrossgenError, DataError
from crossgen.runner import RunResult, load_run_tasks, run
from crossgen.train import DivergenceError

__all__ = [
    "CASES",
    "TECHNIQUES",
    "BNNConfig",
    "CGIConfig",
    "ConfigError",
    "CrossgenError",
    "DataError",
    "DistillConfig",
    "DivergenceError",
    "Fidelity",
    "RunConfig",
    "RunResult",
    "load_run_tasks",
    "run",
]
