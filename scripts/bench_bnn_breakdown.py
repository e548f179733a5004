"""Where one BNN training step's time goes: the full step against its irreducible parts, timed alone.

Shapes are ``ablate bench``'s (784-400-400-8, batch 128, T1's training images). Each part is timed in a
loop over ``--steps`` minibatches, the parts interleaved over ``--repeats`` rounds, the median kept:

* ``step``: ``ElboGradient.step`` + fused Adam, as ``fit_bnn`` runs it;
* ``matmuls``: the step's matmuls alone (forward mean/variance, both weight gradients, both input gradients);
* ``adam``: fused Adam over the BNN's parameters;
* ``exp``: σ² = exp(2 log σ) for every layer;
* ``noise``: the step's ``torch.randn`` draws.

``step`` minus the sum of the parts is activation-sized elementwise work and Python. Usage::

    python scripts/bench_bnn_breakdown.py [--threads 1] [--steps 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from crossgen.bnn import BayesianMLP, ElboGradient
from crossgen.data import load_tasks

SIZES = [784, 400, 400, 8]
BATCH = 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    task = load_tasks("mnist", None, log=lambda *_: None)["T1"]
    x, y = task.train.x, task.train.y
    n = x.shape[0]
    bnn = BayesianMLP(SIZES, generator=torch.Generator().manual_seed(0))
    elbo_grad = ElboGradient(bnn)
    opt = torch.optim.Adam(bnn.parameters(), lr=1e-3, fused=True)
    noise = torch.Generator().manual_seed(0)
    batches = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: args.steps * BATCH].split(BATCH)
    layers = list(bnn.layers)
    w_var = [torch.exp(2 * layer.w_log_sigma.detach()) for layer in layers]

    def step(idx: torch.Tensor) -> None:
        elbo_grad.step(x, y, idx, n, noise)
        opt.step()

    @torch.no_grad()
    def matmuls(idx: torch.Tensor) -> None:
        h = x.index_select(0, idx)
        inputs = []
        for layer, var in zip(layers, w_var, strict=True):
            inputs.append(h)
            h_sq = h * h
            h_sq @ var.t()
            h = (h @ layer.w_loc.t()).clamp_min_(0)
        g = torch.randn(BATCH, SIZES[-1])
        for i in range(len(layers) - 1, -1, -1):
            g.t() @ inputs[i]
            g.t() @ (inputs[i] * inputs[i])
            if i > 0:
                g = g @ layers[i].w_loc + g @ w_var[i]

    def adam(_: torch.Tensor) -> None:
        opt.step()

    @torch.no_grad()
    def exp(_: torch.Tensor) -> None:
        for layer in layers:
            layer.w_log_sigma.mul(2).exp_()
            layer.b_log_sigma.mul(2).exp_()

    def randn(_: torch.Tensor) -> None:
        for size in SIZES[1:]:
            torch.randn(BATCH, size, generator=noise)

    parts: dict[str, Callable[[torch.Tensor], None]] = {
        "step": step,
        "matmuls": matmuls,
        "adam": adam,
        "exp": exp,
        "noise": randn,
    }
    for fn in parts.values():  # warm-up
        for idx in batches[:20]:
            fn(idx)
    samples: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(args.repeats):
        for name, fn in parts.items():
            start = time.perf_counter()
            for idx in batches:
                fn(idx)
            samples[name].append((time.perf_counter() - start) / len(batches) * 1e3)
    ms = {k: statistics.median(v) for k, v in samples.items()}
    steps_per_epoch = -(-n // BATCH)
    out = {
        "torch_threads": torch.get_num_threads(),
        "ms_per_step": ms,
        "s_per_epoch": {k: v * steps_per_epoch / 1e3 for k, v in ms.items()},
        "unaccounted_ms_per_step": ms["step"] - sum(v for k, v in ms.items() if k != "step"),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
