"""Tests for crossgen.bnn and the variational fit loop in crossgen.train.

The objective (:meth:`BayesianMLP.negative_elbo`: local reparameterisation plus the analytic KL / N) is
checked against torch.distributions' KL and Pyro's own ``TraceMeanField_ELBO`` on the model/guide pair; the
written-out gradient that training uses (:class:`ElboGradient`: hand-written backward with the KL's
gradient folded in, no autograd graph) is checked against autograd on that objective with the same noise,
and against finite differences.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro.poutine.util import site_is_subsample
from torch.distributions import Normal, kl_divergence

from crossgen.bnn import BayesianMLP, BayesLinear, ElboGradient
from crossgen.data import Task, load_tasks
from crossgen.train import DivergenceError, accuracy_bnn, fit_bnn


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    return load_tasks("digits", log=lambda *_: None)


def make_bnn(
    sizes: list[int], *, seed: int = 0, init_log_sigma: float = -5.0, prior_sigma: float = 1.0, jitter: float = 0.1
) -> BayesianMLP:
    return BayesianMLP(
        sizes,
        prior_sigma=prior_sigma,
        init_log_sigma=init_log_sigma,
        jitter=jitter,
        generator=torch.Generator().manual_seed(seed),
    )


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def torch_kl(bnn: BayesianMLP) -> torch.Tensor:
    """KL(q || p) built from torch.distributions alone, summed over every weight and bias."""
    total = torch.zeros((), dtype=bnn.layers[0].w_loc.dtype)
    for layer in bnn.layers:
        prior = Normal(torch.zeros_like(layer.w_loc[0, 0]), torch.full_like(layer.w_loc[0, 0], bnn.prior_sigma))
        for loc, log_sigma in ((layer.w_loc, layer.w_log_sigma), (layer.b_loc, layer.b_log_sigma)):
            total = total + kl_divergence(Normal(loc, log_sigma.exp()), prior).sum()
    return total


def reference_negative_elbo(bnn: BayesianMLP, x: torch.Tensor, y: torch.Tensor, n_total: int, g: torch.Generator):
    """-ELBO/N with plain autograd everywhere: LRT logits (same noise order) + torch.distributions KL / N."""
    return F.cross_entropy(bnn.logits_lrt(x, g), y) + torch_kl(bnn) / n_total


# ------------------------------------------------------------------------------------------------- init


def test_bayes_linear_init_scale_and_shapes() -> None:
    layer = BayesLinear(64, 16, init_log_sigma=-5.0, jitter=0.1, generator=gen(0))
    assert layer.scale == pytest.approx(64**-0.5)
    assert layer.w_loc.shape == layer.w_log_sigma.shape == (16, 64)
    assert layer.b_loc.shape == layer.b_log_sigma.shape == (16,)
    for loc in (layer.w_loc, layer.b_loc):
        assert loc.abs().max() <= layer.scale
        assert loc.abs().max() > 0.8 * layer.scale  # uniform over the whole [-s, s], not a narrower range
    ls = torch.cat([layer.w_log_sigma.reshape(-1), layer.b_log_sigma])
    assert ls.mean().item() == pytest.approx(-5.0, abs=0.03)
    assert ls.std().item() == pytest.approx(0.1, rel=0.2)


def test_bnn_init_is_a_function_of_the_generator() -> None:
    a, b, c = make_bnn([8, 5, 3], seed=1), make_bnn([8, 5, 3], seed=1), make_bnn([8, 5, 3], seed=2)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)


# ------------------------------------------------------------------------------------------------- KL


@pytest.mark.parametrize("prior_sigma", [1.0, 0.3, 2.5])
def test_kl_matches_torch_distributions(prior_sigma: float) -> None:
    bnn = make_bnn([7, 5, 4, 3], init_log_sigma=-1.0, jitter=0.5, prior_sigma=prior_sigma)
    with torch.no_grad():  # move the locs away from the narrow init so μ² matters
        for layer in bnn.layers:
            layer.w_loc.mul_(3.0)
            layer.b_loc.add_(0.5)
    torch.testing.assert_close(bnn.kl(), torch_kl(bnn), rtol=1e-5, atol=1e-4)


def test_kl_closed_form_by_hand() -> None:
    # one weight layer 1 -> 1: KL = Σ log σp - log σ + (σ² + μ²)/(2σp²) - 1/2 over weight and bias
    bnn = make_bnn([1, 1], prior_sigma=2.0)
    with torch.no_grad():
        layer = bnn.layers[0]
        layer.w_loc.fill_(0.5)
        layer.w_log_sigma.fill_(math.log(0.1))
        layer.b_loc.fill_(-1.0)
        layer.b_log_sigma.fill_(math.log(3.0))

    def kl1(mu: float, s: float, sp: float = 2.0) -> float:
        return math.log(sp / s) + (s * s + mu * mu) / (2 * sp * sp) - 0.5

    assert bnn.kl().item() == pytest.approx(kl1(0.5, 0.1) + kl1(-1.0, 3.0), rel=1e-5)


def _grads(loss: torch.Tensor, bnn: BayesianMLP) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(bnn.parameters())))


def test_negative_elbo_value_is_nll_plus_kl_over_n(tasks: dict[str, Task]) -> None:
    """KL is scaled by the number of training examples N, not by the number of weight elements."""
    x, y = tasks["T1"].train.x[:64], tasks["T1"].train.y[:64]
    bnn = make_bnn([64, 16, 8])
    n_total = len(tasks["T1"].train)
    with torch.no_grad():
        ce = F.cross_entropy(bnn.logits_lrt(x, gen(3)), y)
        got = bnn.negative_elbo(x, y, n_total, gen(3))
        kl = bnn.kl()
    n_weights = sum(p.numel() for p in bnn.parameters()) // 2
    assert n_weights != n_total
    torch.testing.assert_close(got, ce + kl / n_total, rtol=1e-5, atol=1e-5)
    # the KL term is not negligible here, so dividing by the element count instead would be caught
    assert abs((kl / n_weights - kl / n_total).item()) > 1e-2
    # isolate the KL part of the value: same noise, two N, the difference is KL·(1/N1 - 1/N2)
    with torch.no_grad():
        a, b = bnn.negative_elbo(x, y, 50, gen(7)), bnn.negative_elbo(x, y, 5000, gen(7))
    assert ((a - b) / (1 / 50 - 1 / 5000)).item() == pytest.approx(torch_kl(bnn).item(), rel=1e-4)


def test_negative_elbo_matches_torch_distributions_reference(tasks: dict[str, Task]) -> None:
    """negative_elbo (Pyro's KL) == CE(LRT logits, same noise) + torch.distributions KL / N, value and gradient."""
    x, y = tasks["T1"].train.x[:40].double(), tasks["T1"].train.y[:40]
    bnn = make_bnn([64, 6, 5, 8], init_log_sigma=-1.5, jitter=0.4, prior_sigma=0.8).double()
    ours = bnn.negative_elbo(x, y, 700, gen(11))
    ref = reference_negative_elbo(bnn, x, y, 700, gen(11))
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)  # kl() builds its prior in float32
    for (name, _), g_ours, g_ref in zip(bnn.named_parameters(), _grads(ours, bnn), _grads(ref, bnn), strict=True):
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-5, atol=1e-7, msg=f"gradient of {name}")


def elbo_gradient(
    bnn: BayesianMLP,
    x: torch.Tensor,
    y: torch.Tensor,
    n_total: int,
    g: torch.Generator,
    step: ElboGradient | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(value, gradients) from the written-out step on the whole of x (idx = every row, in order)."""
    step = step or ElboGradient(bnn)
    loss = step.step(x, y, torch.arange(x.shape[0]), n_total, g)
    return loss, [p.grad.clone() for p in bnn.parameters()]


@pytest.mark.parametrize("sizes", [[64, 8], [64, 5, 8], [64, 6, 5, 8], [64, 7, 6, 5, 8]])
def test_elbo_gradient_matches_autograd_on_negative_elbo(tasks: dict[str, Task], sizes: list[int]) -> None:
    """Value = CE of the same LRT draw; gradient = autograd's ∇(-ELBO/N), for 1 to 4 weight layers."""
    x, y = tasks["T1"].train.x[:24].double(), tasks["T1"].train.y[:24]
    bnn = make_bnn(sizes, init_log_sigma=-1.0, jitter=0.2, prior_sigma=0.8).double()
    loss, grads = elbo_gradient(bnn, x, y, 300, gen(2))
    ce = F.cross_entropy(bnn.logits_lrt(x, gen(2)), y)
    torch.testing.assert_close(loss, ce, rtol=1e-10, atol=1e-10)
    ref = reference_negative_elbo(bnn, x, y, 300, gen(2))
    for (name, _), a, b in zip(bnn.named_parameters(), grads, _grads(ref, bnn), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10, msg=f"gradient of {name}")


def test_elbo_gradient_overwrites_and_reuses_its_buffers(tasks: dict[str, Task]) -> None:
    """Repeated steps (and a second batch size, as in an epoch's last batch) neither accumulate nor leak."""
    x, y = tasks["T1"].train.x[:40].double(), tasks["T1"].train.y[:40]
    bnn = make_bnn([64, 6, 5, 8], init_log_sigma=-1.5, jitter=0.4).double()
    step = ElboGradient(bnn)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a buffer of the wrong shape would be resized by out= (with a warning)
        first = elbo_gradient(bnn, x, y, 700, gen(11), step)
        elbo_gradient(bnn, x[:13], y[:13], 700, gen(3), step)  # another batch size in between
    again = elbo_gradient(bnn, x, y, 700, gen(11), step)
    torch.testing.assert_close(first[0], again[0], rtol=0, atol=0)
    for a, b in zip(first[1], again[1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    small = elbo_gradient(bnn, x[:13], y[:13], 700, gen(3), step)
    ref = reference_negative_elbo(bnn, x[:13], y[:13], 700, gen(3))
    for a, b in zip(small[1], _grads(ref, bnn), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_elbo_gradient_takes_the_indexed_minibatch(tasks: dict[str, Task]) -> None:
    x, y = tasks["T2"].train.x[:30].double(), tasks["T2"].train.y[:30]
    bnn = make_bnn([64, 5, 2], init_log_sigma=-1.0).double()
    idx = torch.tensor([7, 3, 29, 0, 11])
    loss = ElboGradient(bnn).step(x, y, idx, 90, gen(5))
    grads = [p.grad.clone() for p in bnn.parameters()]
    ref = reference_negative_elbo(bnn, x[idx], y[idx], 90, gen(5))
    torch.testing.assert_close(loss, F.cross_entropy(bnn.logits_lrt(x[idx], gen(5)), y[idx]))
    for a, b in zip(grads, _grads(ref, bnn), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_elbo_gradient_kl_part_equals_pyro_kl_gradient(tasks: dict[str, Task]) -> None:
    """Isolate the folded-in KL gradient: same noise, ∇(N1) - ∇(N2) = ∇KL · (1/N1 - 1/N2)."""
    x, y = tasks["T2"].train.x[:32].double(), tasks["T2"].train.y[:32]
    bnn = make_bnn([64, 6, 5, 2], init_log_sigma=-2.0, jitter=0.3, prior_sigma=0.7).double()
    n1, n2 = 50, 5000
    _, g1 = elbo_gradient(bnn, x, y, n1, gen(7))
    _, g2 = elbo_gradient(bnn, x, y, n2, gen(7))
    g_kl = _grads(torch_kl(bnn), bnn)
    g_pyro_kl = _grads(bnn.kl(), bnn)
    for (name, _), a, b, ref, ref_pyro in zip(bnn.named_parameters(), g1, g2, g_kl, g_pyro_kl, strict=True):
        folded = (a - b) / (1 / n1 - 1 / n2)
        torch.testing.assert_close(folded, ref, rtol=1e-7, atol=1e-8, msg=f"KL gradient of {name}")
        torch.testing.assert_close(folded, ref_pyro, rtol=1e-5, atol=1e-6, msg=f"Pyro KL gradient of {name}")


def test_elbo_gradient_finite_differences(tasks: dict[str, Task]) -> None:
    """Coordinate by coordinate, central differences of -ELBO/N (fixed noise) against the written-out gradient."""
    x, y = tasks["T1"].train.x[:6].double(), tasks["T1"].train.y[:6]
    x = x[:, ::8]  # 8 inputs keep the number of coordinates small
    bnn = make_bnn([8, 3, 4, 8], init_log_sigma=-0.7, jitter=0.3, prior_sigma=1.3).double()
    n_total = 37
    _, grads = elbo_gradient(bnn, x, y, n_total, gen(4))

    def value() -> float:
        with torch.no_grad():
            return reference_negative_elbo(bnn, x, y, n_total, gen(4)).item()

    delta = 1e-6
    with torch.no_grad():
        for (name, p), g in zip(bnn.named_parameters(), grads, strict=True):
            flat = p.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + delta
                up = value()
                flat[i] = old - delta
                down = value()
                flat[i] = old
                assert g.view(-1)[i].item() == pytest.approx((up - down) / (2 * delta), rel=1e-5, abs=1e-7), name


# ------------------------------------------------------------------------------------------------ Pyro


def test_objective_agrees_with_pyro_trace_mean_field_elbo(tasks: dict[str, Task]) -> None:
    """E[Pyro's -ELBO] == N·E[our -ELBO/N] (different estimators of one quantity; averaged over draws)."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    x, y = tasks["T2"].train.x[:16], tasks["T2"].train.y[:16]
    n_total = 200
    bnn = make_bnn([64, 8, 2], init_log_sigma=-1.5)
    elbo = pyro.infer.TraceMeanField_ELBO()
    draws = 200
    g = gen(1)
    with torch.no_grad():
        theirs = np.array([elbo.differentiable_loss(bnn.model, bnn.guide, x, y, n_total).item() for _ in range(draws)])
        ours = np.array([n_total * bnn.negative_elbo(x, y, n_total, g).item() for _ in range(draws)])
        kl = bnn.kl().item()
    pyro.clear_param_store()
    assert theirs.mean() == pytest.approx(ours.mean(), rel=0.03)
    # the likelihood parts on their own (the KL is exact in both, so this is where a scaling bug would hide)
    nll_theirs, nll_ours = theirs.mean() - kl, ours.mean() - kl
    se = math.sqrt(theirs.var() / draws + ours.var() / draws)
    assert nll_ours > 0
    assert abs(nll_theirs - nll_ours) < 4 * se + 0.02 * nll_ours


def test_pyro_model_and_guide_trace_the_same_sites() -> None:
    bnn = make_bnn([5, 4, 3])
    x, y = torch.rand(6, 5), torch.randint(0, 3, (6,))
    pyro.clear_param_store()
    guide_trace = pyro.poutine.trace(bnn.guide).get_trace(x, y, 6)
    model_trace = pyro.poutine.trace(pyro.poutine.replay(bnn.model, trace=guide_trace)).get_trace(x, y, 6)
    latent = {
        n
        for n, s in model_trace.nodes.items()
        if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)
    }
    assert latent == {"0.weight", "0.bias", "1.weight", "1.bias"}
    assert {n for n, s in guide_trace.nodes.items() if s["type"] == "sample"} == latent
    assert model_trace.nodes["data"]["fn"].size == 6
    assert model_trace.nodes["y"]["is_observed"]
    pyro.clear_param_store()


def test_pyro_model_is_the_relu_network_of_the_guides_draw() -> None:
    # ReLU after every layer but the output, on the weights the guide drew; without n_total the plate is the batch
    bnn = make_bnn([5, 4, 4, 3], init_log_sigma=-1.0)
    x, y = torch.randn(6, 5, generator=gen(3)), torch.randint(0, 3, (6,), generator=gen(4))
    pyro.clear_param_store()
    guide_trace = pyro.poutine.trace(bnn.guide).get_trace(x, y)
    model_trace = pyro.poutine.trace(pyro.poutine.replay(bnn.model, trace=guide_trace)).get_trace(x, y)
    h = x
    for i in range(3):
        h = F.linear(h, guide_trace.nodes[f"{i}.weight"]["value"], guide_trace.nodes[f"{i}.bias"]["value"])
        h = torch.relu(h) if i < 2 else h
    assert (h < 0).any()  # the output is not passed through a ReLU
    torch.testing.assert_close(model_trace.nodes["_RETURN"]["value"], h)
    assert model_trace.nodes["data"]["fn"].size == 6
    pyro.clear_param_store()


def test_default_init_jitters_log_sigma_by_a_tenth() -> None:
    bnn = BayesianMLP([64, 32, 10], generator=gen(0))
    ls = torch.cat([layer.w_log_sigma.detach().reshape(-1) for layer in bnn.layers])
    assert ls.mean().item() == pytest.approx(-5.0, abs=0.01) and ls.std().item() == pytest.approx(0.1, rel=0.05)


# -------------------------------------------------------------------------------------------- training


def test_fit_bnn_elbo_falls_and_accuracy_beats_chance(tasks: dict[str, Task]) -> None:
    t1 = tasks["T1"]
    bnn = make_bnn([64, 16, 16, t1.n_classes])
    before = accuracy_bnn(bnn, t1.val.x, t1.val.y, samples=4, generator=gen(2))
    history = fit_bnn(bnn, t1.train.x, t1.train.y, epochs=5, lr=1e-2, batch_size=64, generator=gen(1))
    assert len(history.losses) == 5
    assert all(math.isfinite(v) for v in history.losses)
    assert history.losses[-1] < history.losses[0]
    assert history.losses[-1] < 0.9 * history.losses[0]
    after = accuracy_bnn(bnn, t1.val.x, t1.val.y, samples=4, generator=gen(2))
    chance = 1 / t1.n_classes
    assert after > 0.6 > 3 * chance
    assert after > before


def test_fit_bnn_history_is_negative_elbo_per_example(tasks: dict[str, Task]) -> None:
    """With lr = 0 nothing moves, so the logged loss must be exactly mean minibatch NLL + KL / N."""
    t2 = tasks["T2"]
    x, y, n = t2.train.x, t2.train.y, len(t2.train)
    bnn = make_bnn([64, 8, 2], init_log_sigma=-2.0)
    history = fit_bnn(bnn, x, y, epochs=1, lr=0.0, batch_size=50, generator=gen(1))
    g = gen(1)  # the fit draws the epoch's permutation first, then the noise, from the same generator
    batches = torch.randperm(n, generator=g).split(50)
    with torch.no_grad():
        nll = torch.stack([F.cross_entropy(bnn.logits_lrt(x[i], g), y[i]) for i in batches]).mean()
        expected = nll.item() + bnn.kl().item() / n
    assert bnn.kl().item() / n > 1.0  # the KL part matters at this σ
    assert history.losses[0] == pytest.approx(expected, rel=1e-5)


def test_fit_bnn_is_reproducible_and_calls_on_epoch(tasks: dict[str, Task]) -> None:
    t2 = tasks["T2"]
    seen: list[tuple[int, float]] = []
    runs = []
    for callback in (None, lambda e, loss: seen.append((e, loss))):
        bnn = make_bnn([64, 8, 2])
        h = fit_bnn(bnn, t2.train.x, t2.train.y, epochs=2, lr=1e-2, batch_size=32, generator=gen(4), on_epoch=callback)
        runs.append((h.losses, [p.detach().clone() for p in bnn.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    assert [e for e, _ in seen] == [0, 1]
    assert [v for _, v in seen] == runs[1][0]


def test_fit_bnn_noise_generator_changes_the_fit(tasks: dict[str, Task]) -> None:
    t2 = tasks["T2"]
    losses = []
    for noise_seed in (5, 6):
        bnn = make_bnn([64, 8, 2], init_log_sigma=-1.0)
        fit = fit_bnn(
            bnn, t2.train.x, t2.train.y, epochs=1, lr=1e-2, batch_size=32, generator=gen(4), noise=gen(noise_seed)
        )
        losses.append(fit.losses)
    assert losses[0] != losses[1]


def test_predict_proba_rows_sum_to_one(tasks: dict[str, Task]) -> None:
    bnn = make_bnn([64, 8, 8], init_log_sigma=-1.0)
    x = tasks["T1"].val.x[:80]  # more rows (80) than features (64): chunks run over rows
    probs = bnn.predict_proba(x, samples=3, generator=gen(0), chunk=24)  # chunking across a ragged edge
    assert probs.shape == (80, 8) and not probs.requires_grad  # no autograd graph is kept while predicting
    assert (probs >= 0).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(80), rtol=0, atol=1e-5)
    # same generator seed -> same predictive; the chunk size does not change it
    torch.testing.assert_close(probs, bnn.predict_proba(x, samples=3, generator=gen(0), chunk=8192))


def test_predict_proba_with_tiny_sigma_is_the_mean_network(tasks: dict[str, Task]) -> None:
    bnn = make_bnn([64, 8, 3], init_log_sigma=-30.0, jitter=0.0)
    x = tasks["T1"].val.x[:20]
    h = x
    for i, layer in enumerate(bnn.layers):
        h = F.linear(h, layer.w_loc, layer.b_loc)
        if i < len(bnn.layers) - 1:
            h = torch.relu(h)
    torch.testing.assert_close(bnn.predict_proba(x, samples=2, generator=gen(0)), torch.softmax(h.detach(), -1))


@pytest.mark.parametrize("param", ["w_loc", "w_log_sigma", "b_loc", "b_log_sigma"])
def test_nan_parameters_raise_divergence_error(tasks: dict[str, Task], param: str) -> None:
    t2 = tasks["T2"]
    bnn = make_bnn([64, 8, 2])
    with torch.no_grad():
        getattr(bnn.layers[0], param).view(-1)[0] = float("nan")
    with pytest.raises(DivergenceError, match="non-finite"):
        fit_bnn(bnn, t2.train.x, t2.train.y, epochs=2, lr=1e-2, batch_size=64, generator=gen(0), what="probe")


def test_divergence_error_stops_before_calling_on_epoch(tasks: dict[str, Task]) -> None:
    t2 = tasks["T2"]
    bnn = make_bnn([64, 8, 2])
    with torch.no_grad():
        bnn.layers[1].w_loc.fill_(float("inf"))
    calls: list[int] = []
    with pytest.raises(DivergenceError, match="epoch 0"):
        fit_bnn(bnn, t2.train.x, t2.train.y, epochs=3, lr=1e-2, batch_size=64, generator=gen(0), on_epoch=calls.append)
    assert calls == []
