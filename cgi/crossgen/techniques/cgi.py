"""Cross generative initialisation (Algorithm 1), every ambiguous step a switch of :class:`CGIConfig`.

Line numbers refer to the paper's Algorithm 1; docs/method.md gives the full reading.

1. Target BNN at its standard init, optionally warmed up (``target_warmup_epochs``).
2. ① Cross init (lines 5–11): bootstrap M weight points per group from the target → θ_bb_t (``M="all"``: as
   many as the target group has weights); with ``init="cross"`` the source's weight points are drawn from
   θ_bb_t group by group (line 8).
3. Source inference (line 12): SVI of the source BNN on the source task → θ_s (``source_labels="shuffled"``:
   on permuted labels, a control with nothing to transfer).
4. ② Generative init (lines 14–20): per generator, X = concat(θ_bb_t, θ_s) (line 15), fit a GMM or a
   single Gaussian, sample one weight point per target weight (line 17), write them into the target.
   What a point is (``points``) and where the input layer belongs (``input_layer``): crossgen.weightpoints.
5. Fine-tune the target on the target task with the same budget as the no-transfer benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Generator

import numpy as np

from crossgen.generators import GeneratorSpec, WeightPointGenerator
from crossgen.seeding import numpy_generator
from crossgen.techniques.base import (
    Context,
    FitRequest,
    Outcome,
    bnn_outcome,
    fit_bnn_on,
    fit_target_bnn,
    new_bnn,
    source_task,
)
from crossgen.weightpoints import POINT_COLUMNS, assign, bootstrap, extract, group_sizes, subsample

FIGURE_POINTS = 1000
"""Weight points per group and kind kept in the artefacts for the source-vs-generated figure."""


def cgi(ctx: Context) -> Generator[FitRequest, list[float], Outcome]:
    cfg = ctx.config.cgi
    seed = ctx.config.seed
    layer = cfg.input_layer
    history: dict[str, list[float]] = {}

    target = new_bnn(ctx, "target")
    if cfg.target_warmup_epochs:
        history["target_warmup"] = yield from fit_bnn_on(
            ctx,
            target,
            ctx.target,
            epochs=cfg.target_warmup_epochs,
            stream="target_warmup",
            stage="target_warmup",
            what="target BNN warm-up",
        )
    target_need = group_sizes(target, layer)
    active = [g for g, n in target_need.items() if n > 0]  # groups the target has weights in

    # ① cross initialisation: θ_bb_t, M bootstrapped weight points per group of the target.
    with ctx.timer("bootstrap"):
        rng = numpy_generator(seed, "cgi_bootstrap")
        target_points = extract(
            target, input_layer=layer, points=cfg.points, rng=numpy_generator(seed, "cgi_points_target")
        )
        theta_bb = {
            g: bootstrap(target_points[g], target_need[g] if cfg.M == "all" else cfg.M, rng, method=cfg.bootstrap)
            for g in active
        }

    source = new_bnn(ctx, "source")
    if cfg.init == "cross":
        with ctx.timer("initialisation"):
            rng = numpy_generator(seed, "cgi_cross")
            need = group_sizes(source, layer)
            drawn = {g: theta_bb[g][rng.integers(0, len(theta_bb[g]), size=need[g])] for g in active if need.get(g, 0)}
            assign(source, drawn, transfer=cfg.transfer, input_layer=layer)

    history["source"] = yield from fit_bnn_on(
        ctx,
        source,
        source_task(ctx),
        epochs=ctx.config.source_epochs,
        stream="source",
        stage="source_training",
        what="source BNN",
    )

    # ② generative initialisation: fit on concat(θ_bb_t, θ_s), sample a point for every target weight.
    with ctx.timer("generator_fit"):
        rng = numpy_generator(seed, "cgi_fit")
        limit = None if cfg.max_fit_points == "none" else cfg.max_fit_points
        source_points = extract(
            source, input_layer=layer, points=cfg.points, rng=numpy_generator(seed, "cgi_points_source")
        )
        theta_s = {g: subsample(p, limit, rng) for g, p in source_points.items()}
        spec = GeneratorSpec(
            kind=cfg.generator,
            n_components=cfg.K,
            covariance_type=cfg.covariance_type,
            reg_covar=cfg.reg_covar,
        )
        fit_seed = int(rng.integers(2**31 - 1))
        if cfg.scope == "separate":
            data = {g: np.concatenate([theta_bb[g], theta_s[g]]) for g in active}
            ratio = {g: {"target": len(theta_bb[g]), "source": len(theta_s[g])} for g in active}
        else:
            data = {"shared": np.concatenate([theta_bb[g] for g in active] + [theta_s[g] for g in active])}
            ratio = {
                "shared": {
                    "target": sum(len(theta_bb[g]) for g in active),
                    "source": sum(len(theta_s[g]) for g in active),
                }
            }
        generators = {name: WeightPointGenerator(spec, random_state=fit_seed).fit(X) for name, X in data.items()}

    with ctx.timer("sampling"):
        rng = numpy_generator(seed, "cgi_sample")
        generated = {
            g: generators[g if cfg.scope == "separate" else "shared"].sample(target_need[g], rng) for g in active
        }
        if not all(np.isfinite(p).all() for p in generated.values()):
            raise ValueError("the generator produced non-finite weight points")
        if cfg.clip_log_sigma and POINT_COLUMNS[cfg.points] == 2:
            ceiling = math.log(ctx.config.bnn.prior_sigma)
            for p in generated.values():
                np.minimum(p[:, 1], ceiling, out=p[:, 1])
        assign(target, generated, transfer=cfg.transfer, input_layer=layer)

    yield from fit_target_bnn(ctx, target, history)

    artefacts: dict = {
        "n_generators": len(generators),
        "fit_points": {k: len(v) for k, v in data.items()},
        "fit_ratio": ratio,
        "mean_log_sigma": _mean_log_sigma(source, target_points),
    }
    if ctx.config.record_generators:
        artefacts["generators"] = {name: gen.summary() for name, gen in generators.items()}
        if POINT_COLUMNS[cfg.points] == 2:
            rng = numpy_generator(seed, "cgi_figure")
            artefacts["points"] = {
                g: {
                    "source_posterior": subsample(theta_s[g], FIGURE_POINTS, rng).round(5).tolist(),
                    "target_bootstrap": subsample(theta_bb[g], FIGURE_POINTS, rng).round(5).tolist(),
                    "generated": subsample(generated[g], FIGURE_POINTS, rng).round(5).tolist(),
                }
                for g in active
            }
    return bnn_outcome(ctx, target, history, **artefacts)


def _mean_log_sigma(source, target_points: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean log σ per group of the trained source (the drift the KL causes) — read off its parameters."""
    out = {}
    for g, p in extract(source).items():
        if len(p):
            out[g] = float(p[:, 1].mean())
    return out
