"""Cross generative initialisation (Algorithm 1), every ambiguous step a switch of :class:`CGIConfig`.

Line numbers refer to the paper's Algorithm 1; docs/method.md gives the full reading.

1. Target BNN at its standard init, optionally warmed up (``target_warmup_epochs``).
2. ① Cross init (lines 5–11): bootstrap M weight points per group from the target → θ_bb_t; with
   ``init="cross"`` the source's weight points are drawn from θ_bb_t group by group (line 8).
3. Source inference (line 12): SVI of the source BNN on the source task → θ_s.
4. ② Generative init (lines 14–20): per generator, X = concat(θ_bb_t, θ_s) (line 15), fit a GMM or a
   single Gaussian, sample one weight point per target weight (line 17), write them into the target.
5. Fine-tune the target on the target task with the same budget as the no-transfer benchmark.
"""

from __future__ import annotations

import numpy as np

from crossgen.generators import GeneratorSpec, WeightPointGenerator
from crossgen.seeding import numpy_generator
from crossgen.techniques.base import Context, Outcome, bnn_outcome, fit_bnn_on, fit_target_bnn, new_bnn
from crossgen.weightpoints import GROUPS, assign, bootstrap, extract, group_sizes, subsample

FIGURE_POINTS = 1000
"""Weight points per group and kind kept in the artefacts for the source-vs-generated figure."""


def cgi(ctx: Context) -> Outcome:
    cfg = ctx.config.cgi
    fid = ctx.config.fidelity
    seed = ctx.config.seed
    history: dict[str, list[float]] = {}

    target = new_bnn(ctx, "target")
    if cfg.target_warmup_epochs:
        history["target_warmup"] = fit_bnn_on(
            ctx,
            target,
            ctx.target,
            epochs=cfg.target_warmup_epochs,
            stream="target_warmup",
            stage="target_warmup",
            what="target BNN warm-up",
        )

    # ① cross initialisation: θ_bb_t, M bootstrapped weight points per group of the target.
    with ctx.timer("bootstrap"):
        rng = numpy_generator(seed, "cgi_bootstrap")
        target_points = extract(target)
        theta_bb = {g: bootstrap(target_points[g], cfg.M, rng, method=cfg.bootstrap) for g in GROUPS}

    source = new_bnn(ctx, "source")
    if cfg.init == "cross":
        with ctx.timer("initialisation"):
            rng = numpy_generator(seed, "cgi_cross")
            need = group_sizes(source)
            drawn = {g: theta_bb[g][rng.integers(0, cfg.M, size=need[g])] for g in GROUPS}
            assign(source, drawn, transfer=cfg.transfer)

    history["source"] = fit_bnn_on(
        ctx, source, ctx.source, epochs=fid.source_epochs, stream="source", stage="source_training", what="source BNN"
    )

    # ② generative initialisation: fit on concat(θ_bb_t, θ_s), sample a point for every target weight.
    with ctx.timer("generator_fit"):
        rng = numpy_generator(seed, "cgi_fit")
        theta_s = {g: subsample(p, cfg.max_fit_points, rng) for g, p in extract(source).items()}
        spec = GeneratorSpec(
            kind=cfg.generator,
            n_components=cfg.K,
            covariance_type=cfg.covariance_type,
            reg_covar=cfg.reg_covar,
        )
        fit_seed = int(rng.integers(2**31 - 1))
        if cfg.scope == "separate":
            data = {g: np.concatenate([theta_bb[g], theta_s[g]]) for g in GROUPS}
        else:
            data = {"shared": np.concatenate([theta_bb[g] for g in GROUPS] + [theta_s[g] for g in GROUPS])}
        generators = {name: WeightPointGenerator(spec, random_state=fit_seed).fit(X) for name, X in data.items()}

    with ctx.timer("sampling"):
        rng = numpy_generator(seed, "cgi_sample")
        need = group_sizes(target)
        generated = {g: generators[g if cfg.scope == "separate" else "shared"].sample(need[g], rng) for g in GROUPS}
        if not all(np.isfinite(p).all() for p in generated.values()):
            raise ValueError("the generator produced non-finite weight points")
        assign(target, generated, transfer=cfg.transfer)

    fit_target_bnn(ctx, target, history)

    artefacts: dict = {"n_generators": len(generators), "fit_points": {k: len(v) for k, v in data.items()}}
    if ctx.config.record_generators:
        artefacts["generators"] = {name: gen.summary() for name, gen in generators.items()}
        rng = numpy_generator(seed, "cgi_figure")
        artefacts["points"] = {
            g: {
                "source_posterior": subsample(theta_s[g], FIGURE_POINTS, rng).round(5).tolist(),
                "target_bootstrap": subsample(theta_bb[g], FIGURE_POINTS, rng).round(5).tolist(),
                "generated": subsample(generated[g], FIGURE_POINTS, rng).round(5).tolist(),
            }
            for g in GROUPS
        }
    return bnn_outcome(ctx, target, history, **artefacts)
