"""Tests of crossgen.weightpoints: one weight's posterior as the point (μ/s, log σ), its groups, and resampling.

The run-level checks of how CGI uses these points (cross initialisation, generated target weights) are in
test_cgi.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ablate_testing.weights import contained, make_bnn

from crossgen import ConfigError
from crossgen.weightpoints import (
    GROUPS,
    assign,
    bayesian_bootstrap_weights,
    bootstrap,
    extract,
    group_sizes,
    layer_group,
    subsample,
)


def test_group_sizes_and_layer_groups() -> None:
    bnn = make_bnn([64, 16, 16, 2])
    assert group_sizes(bnn) == {"middle": 64 * 16 + 16 + 16 * 16 + 16, "classification": 16 * 2 + 2}
    assert [layer_group(i, 3) for i in range(3)] == ["middle", "middle", "classification"]
    assert group_sizes(make_bnn([5, 3])) == {"middle": 0, "classification": 18}


def test_extract_standardises_by_fan_in_and_keeps_layer_order() -> None:
    bnn = make_bnn([64, 16, 9, 2])
    pts = extract(bnn)
    assert set(pts) == set(GROUPS)
    expected: dict[str, list[np.ndarray]] = {g: [] for g in GROUPS}
    for i, layer in enumerate(bnn.layers):
        s = layer.n_in**-0.5  # s = fan_in^-1/2
        assert layer.scale == pytest.approx(s)
        g = layer_group(i, len(bnn.layers))
        for loc, ls in ((layer.w_loc, layer.w_log_sigma), (layer.b_loc, layer.b_log_sigma)):
            mu = loc.detach().reshape(-1).double().numpy() * math.sqrt(layer.n_in)
            expected[g].append(np.stack([mu, ls.detach().reshape(-1).double().numpy()], axis=1))
    for g in GROUPS:
        assert pts[g].shape == (group_sizes(bnn)[g], 2)
        np.testing.assert_allclose(pts[g], np.concatenate(expected[g]), rtol=1e-6, atol=1e-7)


def test_standardised_init_is_width_free() -> None:
    """At init every layer's μ/s is U(-1, 1), whatever its fan-in: the point of standardising."""
    bnn = make_bnn([64, 40, 7, 8])
    for i, layer in enumerate(bnn.layers):
        mu = torch.cat([layer.w_loc.reshape(-1), layer.b_loc]).detach() / layer.scale
        assert mu.abs().max().item() <= 1.0 + 1e-6, f"layer {i}"
        assert mu.abs().max().item() > 0.8, f"layer {i}"
    pts = extract(bnn)
    for g in GROUPS:
        assert np.abs(pts[g][:, 0]).max() <= 1.0 + 1e-6
        assert np.allclose(pts[g][:, 1].mean(), -5.0, atol=0.05)


def test_weight_points_round_trip() -> None:
    a, b = make_bnn([64, 16, 16, 8], seed=1), make_bnn([64, 16, 16, 8], seed=2, init_log_sigma=-1.0)
    pts = extract(a)
    assign(b, pts)
    back = extract(b)
    for g in GROUPS:
        np.testing.assert_allclose(back[g], pts[g], rtol=1e-6, atol=1e-7)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


def test_assign_across_widths_rescales_by_the_target_fan_in() -> None:
    # a standardised point μ/s = 0.5 becomes loc = 0.5 / sqrt(fan_in) in whichever layer receives it
    bnn = make_bnn([36, 4, 2])
    sizes = group_sizes(bnn)
    pts = {g: np.tile([[0.5, -2.0]], (n, 1)) for g, n in sizes.items()}
    assign(bnn, pts)
    torch.testing.assert_close(bnn.layers[0].w_loc, torch.full((4, 36), 0.5 / 6))
    torch.testing.assert_close(bnn.layers[1].b_loc, torch.full((2,), 0.25))
    torch.testing.assert_close(bnn.layers[1].w_log_sigma, torch.full((2, 4), -2.0))


def test_assign_transfer_mu_keeps_sigma() -> None:
    a, b = make_bnn([64, 16, 8], seed=1, init_log_sigma=-1.0), make_bnn([64, 16, 8], seed=2)
    sigma_before = [layer.w_log_sigma.detach().clone() for layer in b.layers] + [
        layer.b_log_sigma.detach().clone() for layer in b.layers
    ]
    loc_before = [layer.w_loc.detach().clone() for layer in b.layers]
    assign(b, extract(a), transfer="mu")
    sigma_after = [layer.w_log_sigma for layer in b.layers] + [layer.b_log_sigma for layer in b.layers]
    for before, after in zip(sigma_before, sigma_after, strict=True):
        assert torch.equal(before, after)
    for before, layer_a, layer_b in zip(loc_before, a.layers, b.layers, strict=True):
        assert not torch.equal(before, layer_b.w_loc)
        torch.testing.assert_close(layer_b.w_loc, layer_a.w_loc)
    # and mu_sigma does write σ
    assign(b, extract(a), transfer="mu_sigma")
    torch.testing.assert_close(b.layers[0].w_log_sigma, a.layers[0].w_log_sigma)


def test_assign_rejects_wrong_sizes_and_unknown_transfer() -> None:
    bnn = make_bnn([64, 16, 2])
    pts = extract(bnn)
    with pytest.raises(ValueError, match="middle"):
        assign(bnn, {"middle": pts["middle"][:-1], "classification": pts["classification"]})
    with pytest.raises(ValueError, match="classification"):
        assign(bnn, {"middle": pts["middle"], "classification": np.zeros((3, 2))})
    with pytest.raises(ConfigError, match="transfer="):
        assign(bnn, pts, transfer="sigma")


@pytest.mark.parametrize("method", ["uniform", "bayesian"])
@pytest.mark.parametrize("m", [1, 7, 500])
def test_bootstrap_draws_m_existing_points(method: str, m: int) -> None:
    points = np.random.default_rng(0).normal(size=(30, 2))
    out = bootstrap(points, m, np.random.default_rng(1), method=method)
    assert out.shape == (m, 2)
    assert contained(out, points, tol=0.0)
    again = bootstrap(points, m, np.random.default_rng(1), method=method)
    np.testing.assert_array_equal(out, again)


def test_bootstrap_rejects_unknown_method_and_empty_input() -> None:
    with pytest.raises(ConfigError, match="bootstrap="):
        bootstrap(np.zeros((3, 2)), 2, np.random.default_rng(0), method="parametric")
    with pytest.raises(ValueError, match="empty"):
        bootstrap(np.zeros((0, 2)), 2, np.random.default_rng(0))


def test_bayesian_bootstrap_weights_sum_to_one() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 10, 1000):
        w = bayesian_bootstrap_weights(n, rng)
        assert w.shape == (n,)
        assert (w >= 0).all()
        assert w.sum() == pytest.approx(1.0, abs=1e-12)
    w = bayesian_bootstrap_weights(1000, rng)
    assert w.std() > 0.5 / 1000  # Dirichlet(1,…,1) weights vary (sd ≈ 1/n), they are not all 1/n


def test_bayesian_bootstrap_resamples_by_dirichlet_weights_uniform_does_not() -> None:
    points = np.arange(5, dtype=float)[:, None].repeat(2, axis=1)
    freq = {}
    for method in ("uniform", "bayesian"):
        out = bootstrap(points, 20000, np.random.default_rng(3), method=method)
        freq[method] = np.bincount(out[:, 0].astype(int), minlength=5) / 20000
    assert np.abs(freq["uniform"] - 0.2).max() < 0.02
    assert np.abs(freq["bayesian"] - 0.2).max() > 0.05


def test_subsample() -> None:
    points = np.random.default_rng(0).normal(size=(100, 2))
    rng = np.random.default_rng(1)
    assert subsample(points, 100, rng) is points
    assert subsample(points, 500, rng) is points
    sub = subsample(points, 30, rng)
    assert sub.shape == (30, 2)
    assert len(np.unique(sub, axis=0)) == 30  # without replacement
    assert contained(sub, points, tol=0.0)


@pytest.mark.parametrize(("input_layer", "first"), [("middle", "middle"), ("own", "input"), ("keep", None)])
def test_input_layer_decides_the_group_of_the_first_layer_only(input_layer: str, first: str | None) -> None:
    assert [layer_group(i, 4, input_layer) for i in range(4)] == [first, "middle", "middle", "classification"]
    assert layer_group(0, 1, input_layer) == "classification"  # a single layer is the output layer
    bnn = make_bnn([64, 16, 8, 2])
    sizes = group_sizes(bnn, input_layer)
    first_layer = 64 * 16 + 16
    assert sizes["classification"] == 8 * 2 + 2
    assert sizes["middle"] == 16 * 8 + 8 + (first_layer if first == "middle" else 0)
    assert sizes.get("input", 0) == (first_layer if first == "input" else 0)


def test_sampled_points_are_one_draw_of_q_per_weight_standardised() -> None:
    """points="sample": w/s with w = μ + σ ε, ε ~ N(0, 1) drawn in layer order (weights, then biases)."""
    bnn = make_bnn([9, 4, 3], init_log_sigma=-1.0)
    pts = extract(bnn, points="sample", rng=np.random.default_rng(5))
    eps = np.random.default_rng(5)
    expected: dict[str, list[np.ndarray]] = {g: [] for g in GROUPS}
    for i, layer in enumerate(bnn.layers):
        for loc, ls in ((layer.w_loc, layer.w_log_sigma), (layer.b_loc, layer.b_log_sigma)):
            mu, sigma = loc.detach().reshape(-1).double().numpy(), ls.detach().reshape(-1).double().exp().numpy()
            expected[layer_group(i, 2)].append((mu + sigma * eps.standard_normal(mu.size)) / layer.scale)
    for g in GROUPS:
        assert pts[g].shape == (group_sizes(bnn)[g], 1)
        np.testing.assert_allclose(pts[g][:, 0], np.concatenate(expected[g]), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="needs an rng"):
        extract(bnn, points="sample")


@pytest.mark.parametrize(("points", "width"), [("mu_logsigma", 2), ("mu", 1), ("sample", 1)])
def test_an_empty_group_has_the_width_of_the_points(points: str, width: int) -> None:
    # a one-layer network has no middle layer; the empty block still has the points' width, so that
    # groups concatenate and generators see (0, d), not a shape error further on
    pts = extract(make_bnn([5, 3]), points=points, rng=np.random.default_rng(0))
    assert pts["middle"].shape == (0, width) and pts["classification"].shape == (18, width)


def test_a_kept_input_layer_is_skipped_and_the_layers_after_it_are_extracted_and_assigned() -> None:
    a, b = make_bnn([9, 4, 4, 3], seed=1), make_bnn([9, 4, 4, 3], seed=2)
    pts = extract(a, input_layer="keep")
    assert {g: len(p) for g, p in pts.items()} == group_sizes(a, "keep") == {"middle": 20, "classification": 15}
    first = b.layers[0].w_loc.detach().clone()
    assign(b, pts, input_layer="keep")
    assert torch.equal(b.layers[0].w_loc, first)  # kept
    for layer_a, layer_b in zip(a.layers[1:], b.layers[1:], strict=True):
        torch.testing.assert_close(layer_b.w_loc, layer_a.w_loc)


def test_a_group_left_out_of_the_points_keeps_its_values_and_the_next_group_is_still_written() -> None:
    a, b = make_bnn([9, 4, 3], seed=1), make_bnn([9, 4, 3], seed=2)
    middle = b.layers[0].w_loc.detach().clone()
    assign(b, {"classification": extract(a)["classification"]})
    assert torch.equal(b.layers[0].w_loc, middle)
    torch.testing.assert_close(b.layers[1].w_loc, a.layers[1].w_loc)


def test_a_group_the_network_lacks_may_come_empty_but_not_with_points() -> None:
    bnn = make_bnn([9, 4, 3])
    pts = extract(bnn)
    assign(bnn, {**pts, "input": np.empty((0, 2))})  # a source's own input group, empty: nothing to write
    with pytest.raises(ValueError, match=r"group 'input' needs 0 weight points, got 3"):
        assign(bnn, {**pts, "input": np.zeros((3, 2))})


def test_one_column_points_write_mu_only_even_under_mu_sigma() -> None:
    a, b = make_bnn([9, 4, 3], seed=1), make_bnn([9, 4, 3], seed=2, init_log_sigma=-1.0)
    sigma = [layer.w_log_sigma.detach().clone() for layer in b.layers]
    assign(b, extract(a, points="mu"), transfer="mu_sigma")
    for before, layer_a, layer_b in zip(sigma, a.layers, b.layers, strict=True):
        assert torch.equal(layer_b.w_log_sigma, before)
        torch.testing.assert_close(layer_b.w_loc, layer_a.w_loc)


def test_the_options_of_extract_assign_and_bootstrap_are_keyword_only() -> None:
    # positional options would let extract(bnn, "mu") read "mu" as input_layer: the API refuses them
    bnn = make_bnn([9, 4, 3])
    with pytest.raises(TypeError):
        extract(bnn, "middle")  # type: ignore[misc]
    with pytest.raises(TypeError):
        assign(bnn, extract(bnn), "mu")  # type: ignore[misc]
    with pytest.raises(TypeError):
        bootstrap(np.zeros((3, 2)), 2, np.random.default_rng(0), "bayesian")  # type: ignore[misc]
