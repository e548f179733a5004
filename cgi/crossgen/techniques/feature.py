"""Mid-level feature extraction (Oquab et al. 2014): the target learns from a frozen source's features."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace

import torch

from crossgen.data import Split
from crossgen.nets import MLP
from crossgen.techniques.base import AnyFitRequest, Context, Outcome, new_mlp
from crossgen.techniques.none import fit_source_mlp, fit_target_mlp
from crossgen.train import accuracy_deterministic


@torch.no_grad()
def _featurise(source: MLP, split: Split) -> Split:
    source.eval()
    return Split(source.features(split.x), split.y)


def feature(ctx: Context) -> Generator[AnyFitRequest, list[float], Outcome]:
    """Train the source, freeze it, and train the target on its middle hidden layer's activations.

    The target keeps its own architecture (hidden layers, width, head); only its input changes from pixels
    to the source's mid-level features, computed once since the source is frozen.
    """
    history: dict[str, list[float]] = {}
    source = new_mlp(ctx, "source")
    yield from fit_source_mlp(ctx, source, history)
    for p in source.parameters():
        p.requires_grad_(False)
    with ctx.timer("feature_extraction"):
        tgt = ctx.target
        featured = replace(
            tgt,
            train=_featurise(source, tgt.train),
            val=_featurise(source, tgt.val),
            test=_featurise(source, tgt.test),
            n_features=ctx.config.fidelity.width,
        )
    net = new_mlp(ctx, "target", n_in=featured.n_features)
    yield from fit_target_mlp(ctx, net, featured, history)

    def accuracy(x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.no_grad():
            return accuracy_deterministic(net, source.features(x), y)

    return Outcome(accuracy, history, {"feature_dim": featured.n_features})
