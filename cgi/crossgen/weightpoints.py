"""Weight points: one weight's variational posterior as a point, and the layer groups they belong to.

s = fan_in^-1/2 is the layer's init scale. Dividing by it puts layers of different widths and depths on
one scale, so a single distribution can describe — and generate — the weights of a 784-wide first layer
and a 400-wide fifth layer alike. Biases are weight points of their own layer (same s, same group).

What a point is (the ``points`` switch, docs/method.md): ``mu_logsigma`` the pair (μ/s, log σ);
``mu`` μ/s alone; ``sample`` one draw w ~ q, as w/s. One-column points are written into μ only.
Which group a layer belongs to (the ``input_layer`` switch): the output layer is *classification*, hidden
layers are *middle*; the input layer is *middle* too, or a group of its own (``own``), or in no group
(``keep``: it keeps its initialisation and is never bootstrapped, fitted or generated).
"""

from __future__ import annotations

import numpy as np
import torch

from crossgen.bnn import BayesianMLP
from crossgen.errors import ConfigError

GROUPS: tuple[str, ...] = ("middle", "classification")
"""Layer groups of the default reading: every hidden weight layer is *middle*, the output layer is
*classification*."""

GROUPS_BY_INPUT_LAYER: dict[str, tuple[str, ...]] = {
    "middle": GROUPS,
    "own": ("input", "middle", "classification"),
    "keep": GROUPS,
}
POINT_COLUMNS: dict[str, int] = {"mu_logsigma": 2, "mu": 1, "sample": 1}


def groups(input_layer: str = "middle") -> tuple[str, ...]:
    return GROUPS_BY_INPUT_LAYER[input_layer]


def layer_group(index: int, n_layers: int, input_layer: str = "middle") -> str | None:
    """The group of weight layer ``index``; None for an input layer that keeps its own initialisation."""
    if index == n_layers - 1:
        return "classification"
    if index == 0 and input_layer != "middle":
        return "input" if input_layer == "own" else None
    return "middle"


def group_sizes(bnn: BayesianMLP, input_layer: str = "middle") -> dict[str, int]:
    """Number of weight points (weights + biases) per group."""
    sizes = dict.fromkeys(groups(input_layer), 0)
    for i, layer in enumerate(bnn.layers):
        group = layer_group(i, len(bnn.layers), input_layer)
        if group is not None:
            sizes[group] += layer.w_loc.numel() + layer.b_loc.numel()
    return sizes


@torch.no_grad()
def extract(
    bnn: BayesianMLP,
    *,
    input_layer: str = "middle",
    points: str = "mu_logsigma",
    rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """All weight points of ``bnn``, grouped: {group: array (n, d)} in layer order.

    d = 2, (μ/s, log σ), for ``points="mu_logsigma"``; d = 1 for ``mu`` (μ/s) and ``sample`` (w/s with
    w = μ + σ ε, ε ~ N(0, 1) drawn from ``rng``).
    """
    if points == "sample" and rng is None:
        raise ValueError("points='sample' needs an rng")
    width = POINT_COLUMNS[points]
    parts: dict[str, list[np.ndarray]] = {g: [] for g in groups(input_layer)}
    for i, layer in enumerate(bnn.layers):
        group = layer_group(i, len(bnn.layers), input_layer)
        if group is None:
            continue
        for loc, log_sigma in ((layer.w_loc, layer.w_log_sigma), (layer.b_loc, layer.b_log_sigma)):
            mu = (loc.reshape(-1) / layer.scale).double().cpu().numpy()
            ls = log_sigma.reshape(-1).double().cpu().numpy()
            if points == "mu_logsigma":
                parts[group].append(np.stack([mu, ls], axis=1))
            elif points == "mu":
                parts[group].append(mu[:, None])
            else:
                assert rng is not None
                eps = rng.standard_normal(mu.shape[0])
                parts[group].append((mu + np.exp(ls) / layer.scale * eps)[:, None])
    return {g: np.concatenate(p) if p else np.empty((0, width)) for g, p in parts.items()}


@torch.no_grad()
def assign(
    bnn: BayesianMLP, points: dict[str, np.ndarray], *, transfer: str = "mu_sigma", input_layer: str = "middle"
) -> None:
    """Write weight points into ``bnn`` (de-standardised by each layer's s), in :func:`extract`'s order.

    With ``transfer="mu"``, or one-column points, only μ is written and every log σ keeps its current value.
    A group absent from ``points`` keeps its current values (e.g. a source group the target has no weights in).
    """
    if transfer not in ("mu_sigma", "mu"):
        raise ConfigError(f"transfer={transfer!r} is not one of mu_sigma, mu")
    need = group_sizes(bnn, input_layer)
    for group, block in points.items():
        if len(block) != need.get(group, 0):
            raise ValueError(f"group {group!r} needs {need.get(group, 0)} weight points, got {len(block)}")
    offset = dict.fromkeys(need, 0)
    for i, layer in enumerate(bnn.layers):
        group = layer_group(i, len(bnn.layers), input_layer)
        if group is None or group not in points:
            continue
        for loc, log_sigma in ((layer.w_loc, layer.w_log_sigma), (layer.b_loc, layer.b_log_sigma)):
            n = loc.numel()
            block = torch.as_tensor(points[group][offset[group] : offset[group] + n], dtype=loc.dtype)
            block = block.to(loc.device)
            loc.copy_((block[:, 0] * layer.scale).reshape(loc.shape))
            if transfer == "mu_sigma" and block.shape[1] > 1:
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


def subsample(points: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` points, drawn without replacement (all of them when there are fewer, or no limit)."""
    if limit is None or len(points) <= limit:
        return points
    return points[rng.choice(len(points), size=limit, replace=False)]
