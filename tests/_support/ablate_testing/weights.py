"""Small BNNs and a containment check shared by the weight-point and CGI tests."""

from __future__ import annotations

import numpy as np
import torch

from crossgen.bnn import BayesianMLP


def make_bnn(sizes: list[int], seed: int = 0, init_log_sigma: float = -5.0) -> BayesianMLP:
    return BayesianMLP(sizes, init_log_sigma=init_log_sigma, jitter=0.1, generator=torch.Generator().manual_seed(seed))


def contained(points: np.ndarray, pool: np.ndarray, tol: float = 1e-5) -> bool:
    """Every row of ``points`` is (up to float32 round-off) a row of ``pool``."""
    pool_t = torch.as_tensor(pool)
    for chunk in torch.as_tensor(points).split(512):
        if torch.cdist(chunk, pool_t, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values.max().item() > tol:
            return False
    return True
