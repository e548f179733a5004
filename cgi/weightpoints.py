"""Weight points: one weight's variational posterior as the pair (μ/s, log σ), and their groups.

s = fan_in^-1/2 is the layer's init scale. Dividing μ by it puts layers of different widths and depths on
one scale, so a single distribution can describe — and generate — the weights of a 784-wide first layer
and a 400-wide fifth layer alike. Biases are weight points of their own layer (same s, same group).
"""

from __future__ import annotations

import numpy as np
import torch

from crossgen.bnn import BayesianMLP
from crossgen.errors import ConfigError

GROUPS: tuple[str, ...] = ("middle", "classification")
"""Layer groups: every hidden weight layer is *middle*, the output layer is *classification*."""


def layer_group(index: int, n_layers: int) -> str:
    return "classification" if index == n_layers - 1 else "middle"


def group_sizes(bnn: BayesianMLP) -> dict[str, int]:
    """Number of weight points (weights + biases) per group."""
    sizes = dict.fromkeys(GROUPS, 0)
    for i, layer in enumerate(bnn.layers):
        sizes[layer_group(i, len(bnn.layers))] += layer.w_loc.numel() + layer.b_loc.numel()
    return sizes


@torch.no_grad()
def extract(bnn: BayesianMLP) -> dict[str, np.ndarray]:
    """All weight points of ``bnn``, grouped: {group: array (n, 2) of (μ/s, log σ)} in layer order."""
    parts: dict[str, list[np.ndarray]] = {g: [] for g in GROUPS}
    for i, layer in enumerate(bnn.layers):
        group = layer_group(i, len(bnn.layers))
        for loc, log_sigma in ((layer.w_loc, layer.w_log_sigma), (layer.b_loc, layer.b_log_sigma)):
            mu = (loc.reshape(-1) / layer.scale).double().cpu().numpy()
            ls = log_sigma.reshape(-1).double().cpu().numpy()
            parts[group].append(np.stack([mu, ls], axis=1))
    return {g: np.concatenate(p) if p else np.empty((0, 2)) for g, p in parts.items()}


@torch.no_grad()
def assign(bnn: BayesianMLP, points: dict[str, np.ndarray], *, transfer: str = "mu_sigma") -> None:
    """Write weight points into ``bnn`` (de-standardised by each layer's s), in :func:`extract`'s order.

    With ``transfer="mu"`` only μ is written and every log σ keeps its current value.
    """
    if transfer not in ("mu_sigma", "mu"):
        raise ConfigError(f"transfer={transfer!r} is not one of mu_sigma, mu")
    need = group_sizes(bnn)
    for group, n in need.items():
        have = len(points[group])
        if have != n:
            raise ValueError(f"group {group!r} needs {n} weight points, got {have}")
    offset = dict.fromkeys(GROUPS, 0)
    for i, layer in enumerate(bnn.layers):
        group = layer_group(i, len(bnn.layers))
        for loc, log_sigma in ((layer.w_loc, layer.w_log_sigma), (layer.b_loc, layer.b_log_sigma)):
            n = loc.numel()
            block = torch.as_tensor(points[group][offset[group] : offset[group] + n], dtype=loc.dtype)
            block = block.to(loc.device)
            loc.copy_((block[:, 0] * layer.scale).reshape(loc.shape))
            if transfer == "mu_sigma":
                log_sigma.copy_(block[:, 1].reshape(log_sigma.shape))
            offset[group] += n


def bayesian_bootstrap_weights(n: int, rng: np.random.Generator) -> np.ndarray:
    """Rubin's (1981) Bayesian bootstrap: Dirichlet(1, …, 1) weights over n points (they sum to one)."""
    return rng.dirichlet(np.ones(n))


def bootstrap(points: np.ndarray, m: int, rng: np.random.Generator, *, method: str = "uniform") -> np.ndarray:
    """Draw ``m`` weight points from ``points`` with replacement.

    ``uniform`` is the ordinary non-parametric bootstrap (every point equally likely); ``bayesian`` first
    draws Dirichlet(1, …, 1) weights over the points, then resamples by those weights.
    """
    if len(points) == 0:
        raise ValueError("cannot bootstrap from an empty set of weight points")
    if method == "uniform":
        idx = rng.integers(0, len(points), size=m)
    elif method == "bayesian":
        idx = rng.choice(len(points), size=m, replace=True, p=bayesian_bootstrap_weights(len(points), rng))
    else:
        raise ConfigError(f"bootstrap={method!r} is not one of uniform, bayesian")
    return points[idx]


def subsample(points: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` points, drawn without replacement (all of them when there are fewer)."""
    if len(points) <= limit:
        return points
    return points[rng.choice(len(points), size=limit, replace=False)]
