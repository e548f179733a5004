"""Tests for crossgen.generators: GMM / single-Gaussian weight-point generators."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest

from crossgen.errors import ConfigError
from crossgen.generators import (
    COVARIANCE_TYPES,
    DEGENERATE_REG_COVAR,
    GeneratorSpec,
    WeightPointGenerator,
    fit_generator,
)

BLOB_MEANS = np.array([[0.0, 0.0], [6.0, -4.0], [-5.0, 7.0]])


def _blobs(n_per: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(m, 0.4, size=(n_per, 2)) for m in BLOB_MEANS])


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    return a[np.lexsort(a.T[::-1])]


def _nearest_component(g: WeightPointGenerator, x: np.ndarray) -> np.ndarray:
    return np.argmin(((x[:, None, :] - g.means_[None, :, :]) ** 2).sum(-1), axis=1)


# -- fitting ------


@pytest.mark.parametrize("k", [1, 2, 4])
def test_gmm_summary_shapes(k):
    g = fit_generator(_blobs(), GeneratorSpec(kind="gmm", n_components=k), seed=0)
    s = g.summary()
    assert s["kind"] == "gmm" and s["n_components"] == k
    assert len(s["weights"]) == k
    assert sum(s["weights"]) == pytest.approx(1.0, abs=1e-9)
    assert np.asarray(s["means"]).shape == (k, 2)
    assert np.asarray(s["covariances"]).shape == (k, 2, 2)
    assert s["n_fit_points"] == 1200
    assert isinstance(s["converged"], bool) and isinstance(s["bic"], float)


def test_gmm_recovers_blob_means():
    g = fit_generator(_blobs(), GeneratorSpec(n_components=3), seed=0)
    s = g.summary()
    assert s["converged"] and s["warnings"] == []
    np.testing.assert_allclose(_sorted_rows(np.asarray(s["means"])), _sorted_rows(BLOB_MEANS), atol=0.1)
    np.testing.assert_allclose(s["weights"], [1 / 3] * 3, atol=0.01)
    for cov in s["covariances"]:
        np.testing.assert_allclose(cov, 0.16 * np.eye(2), atol=0.04)


def test_gaussian_kind_matches_moments():
    rng = np.random.default_rng(1)
    X = rng.multivariate_normal([1.0, -3.0], [[2.0, 0.6], [0.6, 0.5]], size=2000)
    g = fit_generator(X, GeneratorSpec(kind="gaussian", n_components=7), seed=0)
    s = g.summary()
    assert s["kind"] == "gaussian" and s["n_components"] == 1 and s["weights"] == [1.0]
    np.testing.assert_allclose(s["means"][0], X.mean(axis=0), atol=1e-8)
    np.testing.assert_allclose(s["covariances"][0], np.cov(X.T, bias=True), atol=1e-5)
    np.testing.assert_allclose(s["covariances"][0], np.cov(X.T), rtol=2e-3)


def test_fit_is_deterministic_and_returns_self():
    X = _blobs()
    g = WeightPointGenerator(GeneratorSpec(n_components=4), random_state=3)
    assert g.fit(X) is g
    h = fit_generator(X, GeneratorSpec(n_components=4), seed=3)
    assert g.summary() == h.summary()
    # a numpy Generator as random_state is deterministic too
    a = fit_generator(X, GeneratorSpec(n_components=4), seed=np.random.default_rng(9))
    b = fit_generator(X, GeneratorSpec(n_components=4), seed=np.random.default_rng(9))
    assert a.summary() == b.summary()


def test_gmm_bic_prefers_true_k_over_single_gaussian():
    X = _blobs()
    gmm = fit_generator(X, GeneratorSpec(n_components=3), seed=0).summary()
    gauss = fit_generator(X, GeneratorSpec(kind="gaussian"), seed=0).summary()
    assert gmm["bic"] < gauss["bic"]


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_all_covariance_types_fit_and_sample(cov_type):
    g = fit_generator(_blobs(), GeneratorSpec(n_components=3, covariance_type=cov_type), seed=0)
    s = g.summary()
    assert s["covariance_type"] == cov_type
    covs = np.asarray(s["covariances"])
    assert covs.shape == (3, 2, 2)
    assert np.all(np.linalg.eigvalsh(covs) > 0)
    if cov_type in ("diag", "spherical"):
        assert np.all(covs[:, 0, 1] == 0)
    if cov_type == "spherical":
        assert np.allclose(covs[:, 0, 0], covs[:, 1, 1])
    if cov_type == "tied":
        assert np.allclose(covs, covs[0])
    x = g.sample(3000, np.random.default_rng(0))
    assert x.shape == (3000, 2) and np.isfinite(x).all()
    np.testing.assert_allclose(_sorted_rows(np.asarray(s["means"])), _sorted_rows(BLOB_MEANS), atol=0.15)


# -- sampling ------


def test_sample_shape_and_determinism():
    g = fit_generator(_blobs(), GeneratorSpec(n_components=3), seed=0)
    a = g.sample(500, np.random.default_rng(42))
    b = g.sample(500, np.random.default_rng(42))
    c = g.sample(500, np.random.default_rng(43))
    assert a.shape == (500, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(g.sample(500, 42), a)  # int seed == default_rng(seed)
    assert g.sample(0, 0).shape == (0, 2)


def test_sample_moments_match_fit():
    rng = np.random.default_rng(5)
    X = rng.multivariate_normal([0.5, -4.0], [[1.0, -0.3], [-0.3, 0.25]], size=3000)
    g = fit_generator(X, GeneratorSpec(kind="gaussian"), seed=0)
    s = g.summary()
    x = g.sample(200_000, np.random.default_rng(0))
    np.testing.assert_allclose(x.mean(axis=0), s["means"][0], atol=0.01)
    np.testing.assert_allclose(np.cov(x.T), s["covariances"][0], atol=0.01)

    gm = fit_generator(_blobs(), GeneratorSpec(n_components=3), seed=0)
    sm = gm.summary()
    y = gm.sample(100_000, np.random.default_rng(1))
    mix_mean = np.asarray(sm["weights"]) @ np.asarray(sm["means"])
    np.testing.assert_allclose(y.mean(axis=0), mix_mean, atol=0.05)
    freq = np.bincount(_nearest_component(gm, y), minlength=3) / len(y)
    np.testing.assert_allclose(freq, sm["weights"], atol=0.01)


def test_samples_not_sorted_by_component():
    g = fit_generator(_blobs(), GeneratorSpec(n_components=3), seed=0)
    labels = _nearest_component(g, g.sample(300, np.random.default_rng(0)))
    assert len(np.unique(labels)) == 3
    assert np.any(np.diff(labels) < 0) and np.any(np.diff(labels) > 0)  # not monotone either way
    assert np.count_nonzero(np.diff(labels)) > 100  # well mixed, not a few contiguous runs


def test_sample_validation():
    g = WeightPointGenerator(GeneratorSpec())
    with pytest.raises(RuntimeError, match="not fitted"):
        g.sample(3, 0)
    with pytest.raises(RuntimeError, match="not fitted"):
        g.summary()
    g.fit(_blobs())
    with pytest.raises(ConfigError, match="n"):
        g.sample(-1, 0)
    with pytest.raises(TypeError, match="rng"):
        g.sample(3, None)


# -- degenerate input ------


@pytest.mark.parametrize(
    "spec",
    [GeneratorSpec(kind="gaussian"), GeneratorSpec(kind="gmm", n_components=3)],
    ids=["gaussian", "gmm"],
)
def test_all_identical_points(spec):
    X = np.tile([0.7, -3.2], (100, 1))
    g = fit_generator(X, spec, seed=0)
    s = g.summary()
    assert any("identical" in w for w in s["warnings"])
    assert s["reg_covar_used"] >= DEGENERATE_REG_COVAR
    x = g.sample(1000, np.random.default_rng(0))
    assert x.shape == (1000, 2) and np.isfinite(x).all()
    np.testing.assert_allclose(x.mean(axis=0), [0.7, -3.2], atol=0.02)
    json.dumps(s)


@pytest.mark.parametrize(
    "spec",
    [GeneratorSpec(kind="gaussian"), GeneratorSpec(kind="gmm", n_components=1)],
    ids=["gaussian", "gmm"],
)
def test_single_point(spec):
    g = fit_generator(np.array([[1.5, -2.0]]), spec, seed=0)
    s = g.summary()
    assert s["n_components"] == 1 and s["n_fit_points"] == 1
    assert s["warnings"] and np.isfinite(s["bic"]) and np.isfinite(s["lower_bound"])
    np.testing.assert_allclose(s["means"], [[1.5, -2.0]])
    np.testing.assert_allclose(s["covariances"][0], s["reg_covar_used"] * np.eye(2))
    x = g.sample(50, 0)
    assert x.shape == (50, 2) and np.isfinite(x).all()
    json.dumps(s)


def test_fewer_distinct_points_than_k_warns():
    X = np.repeat(np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 4.0]]), 40, axis=0)
    g = fit_generator(X, GeneratorSpec(n_components=5), seed=0)
    s = g.summary()
    assert any("collapsed" in w for w in s["warnings"])
    assert s["reg_covar_used"] >= DEGENERATE_REG_COVAR
    assert sum(s["weights"]) == pytest.approx(1.0)
    assert np.isfinite(g.sample(200, 0)).all()


def test_ill_defined_covariance_escalates_reg_covar(monkeypatch):
    import crossgen.generators as gen_mod

    real_fit = gen_mod.GaussianMixture.fit

    def flaky_fit(self, X, y=None):
        if self.reg_covar < 5e-5:
            raise ValueError("Fitting failed: some components have ill-defined empirical covariance")
        return real_fit(self, X, y)

    monkeypatch.setattr(gen_mod.GaussianMixture, "fit", flaky_fit)
    g = fit_generator(_blobs(), GeneratorSpec(n_components=3, reg_covar=1e-6), seed=0)
    s = g.summary()
    assert s["reg_covar_used"] == pytest.approx(1e-4)
    assert sum("ill-defined" in w for w in s["warnings"]) == 2

    def always_fail(self, X, y=None):
        raise ValueError("some components have ill-defined empirical covariance")

    monkeypatch.setattr(gen_mod.GaussianMixture, "fit", always_fail)
    with pytest.raises(ValueError, match="reg_covar=0.01"):
        fit_generator(_blobs(), GeneratorSpec(n_components=3), seed=0)
    # a reg_covar above the ceiling is never lowered to it: the fit fails at the value asked for
    with pytest.raises(ValueError, match=r"even at reg_covar=0\.5;"):
        fit_generator(_blobs(), GeneratorSpec(n_components=3, reg_covar=0.5), seed=0)


@pytest.mark.parametrize(("smallest", "noted"), [(9e-7, True), (1e-6, False)])
def test_a_component_that_collapsed_during_em_is_noted(monkeypatch, smallest, noted):
    # EM rarely drives a weight below 1e-6 on data small enough for a test, so sklearn's fitted weights are
    # set after its real fit: what is under test is the note, not EM
    import crossgen.generators as gen_mod

    real_fit = gen_mod.GaussianMixture.fit

    def collapsing_fit(self, X, y=None):
        real_fit(self, X, y)
        self.weights_ = np.array([1.0 - smallest, smallest])
        return self

    monkeypatch.setattr(gen_mod.GaussianMixture, "fit", collapsing_fit)
    g = fit_generator(_blobs(), GeneratorSpec(n_components=2), seed=0)
    notes = [w for w in g.summary()["warnings"] if "negligible weight" in w]
    assert notes == (["components [1] have negligible weight (< 1e-6): they collapsed during EM"] if noted else [])


def test_non_convergence_is_recorded_not_raised():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn's ConvergenceWarning must not escape
        g = fit_generator(_blobs(), GeneratorSpec(n_components=5, max_iter=1), seed=0)
    s = g.summary()
    assert s["converged"] is False and s["n_iter"] == 1
    assert any("did not converge" in w for w in s["warnings"])
    assert np.isfinite(g.sample(10, 0)).all()


def test_k_exceeding_n_is_config_error():
    with pytest.raises(ConfigError, match=r"K=5 exceeds the number of weight points n=3"):
        fit_generator(np.random.default_rng(0).normal(size=(3, 2)), GeneratorSpec(n_components=5), seed=0)
    # the gaussian kind ignores K
    fit_generator(np.random.default_rng(0).normal(size=(3, 2)), GeneratorSpec(kind="gaussian", n_components=5))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_points_raise_value_error(bad):
    X = _blobs()
    X[[3, 10, 20], 1] = bad
    X[10, 0] = bad  # three bad rows over two columns: the count is of rows
    with pytest.raises(ValueError, match=r"weight points contain NaN or inf \(n_bad=3\)"):
        fit_generator(X, GeneratorSpec(), seed=0)


@pytest.mark.parametrize("X", [np.zeros(10), np.zeros((0, 2)), np.zeros((2, 2, 2))], ids=["1d", "empty", "3d"])
def test_malformed_points_raise_value_error(X):
    with pytest.raises(ValueError, match="weight points"):
        fit_generator(X, GeneratorSpec(kind="gaussian"), seed=0)


# -- spec validation ------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "vae"}, "kind"),
        ({"n_components": 0}, "n_components"),
        ({"n_components": 2.5}, "n_components"),
        ({"n_components": True}, "n_components"),
        ({"covariance_type": "banded"}, "covariance_type"),
        ({"reg_covar": 0.0}, "reg_covar"),
        ({"reg_covar": -1e-6}, "reg_covar"),
        ({"reg_covar": float("nan")}, "reg_covar"),
        ({"reg_covar": True}, "reg_covar"),
        ({"reg_covar": "1e-6"}, "reg_covar"),
        ({"max_iter": 0}, "max_iter"),
        ({"n_init": 0}, "n_init"),
    ],
)
def test_spec_validation(kwargs, field):
    with pytest.raises(ConfigError, match=field) as info:
        GeneratorSpec(**kwargs)
    assert "\n" not in str(info.value)


def test_bad_random_state():
    with pytest.raises(ConfigError, match="random_state"):
        WeightPointGenerator(GeneratorSpec(), random_state=-1)
    with pytest.raises(ConfigError, match="random_state"):
        WeightPointGenerator(GeneratorSpec(), random_state="seed")


def test_summary_is_json_serialisable():
    for spec in (GeneratorSpec(n_components=3, covariance_type="tied"), GeneratorSpec(kind="gaussian")):
        s = fit_generator(_blobs(), spec, seed=0).summary()
        assert json.loads(json.dumps(s)) == s
        for key in (
            "kind",
            "n_components",
            "covariance_type",
            "weights",
            "means",
            "covariances",
            "converged",
            "n_iter",
            "bic",
            "lower_bound",
            "n_fit_points",
            "reg_covar_used",
            "warnings",
        ):
            assert key in s


def test_distinct_row_count_matches_numpy_unique() -> None:
    from crossgen.generators import _count_distinct_rows

    rng = np.random.default_rng(1)
    for _ in range(200):
        X = rng.integers(0, 3, (int(rng.integers(1, 40)), int(rng.integers(1, 4)))).astype(float)
        assert _count_distinct_rows(X) == np.unique(X, axis=0).shape[0]


# -- internals that decide what a fit means ------


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_covariances_round_trip_through_their_full_form(cov_type):
    """sklearn stores each covariance type in its own shape; the generator works on full matrices and back."""
    from sklearn.mixture import GaussianMixture

    from crossgen.generators import _full_covariances, _native_covariances

    gm = GaussianMixture(n_components=3, covariance_type=cov_type, random_state=0).fit(_blobs(50))
    full = _full_covariances(gm.covariances_, cov_type, 3, 2)
    assert full.shape == (3, 2, 2)
    np.testing.assert_allclose(_native_covariances(full, cov_type), gm.covariances_)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(("k", "d"), [(1, 1), (3, 2), (4, 5)])
def test_parameter_count_is_sklearns(cov_type, k, d):
    """BIC needs the free-parameter count; it must be scikit-learn's own for every covariance type."""
    from sklearn.mixture import GaussianMixture

    from crossgen.generators import _n_parameters

    gm = GaussianMixture(n_components=k, covariance_type=cov_type, random_state=0)
    gm.fit(np.random.default_rng(0).normal(size=(max(20, 4 * k), d)))
    assert _n_parameters(cov_type, k, d) == gm._n_parameters()


def test_points_without_columns_are_refused():
    with pytest.raises(ValueError, match=r"weight points have no columns \(d=0\)"):
        fit_generator(np.zeros((3, 0)), GeneratorSpec(kind="gaussian"), seed=0)


def test_a_numpy_generator_seeds_the_fit_with_one_draw_below_2_31():
    from crossgen.generators import _seed_from

    expected = int(np.random.default_rng(7).integers(0, 2**31 - 1))
    assert _seed_from(np.random.default_rng(7)) == expected and 0 <= expected < 2**31 - 1
    # recorded draws (stored fits depend on them): seeds whose draw moves if the range's low end moves
    assert [_seed_from(np.random.default_rng(s)) for s in (6, 11)] == [955728254, 287335974]


def test_the_default_seed_is_zero():
    assert WeightPointGenerator(GeneratorSpec()).seed == 0
    a, b = WeightPointGenerator(GeneratorSpec(n_components=3)), WeightPointGenerator(GeneratorSpec(n_components=3), 0)
    np.testing.assert_array_equal(a.fit(_blobs()).means_, b.fit(_blobs()).means_)


def test_a_covariance_that_is_not_positive_definite_still_gets_a_square_root():
    from crossgen.generators import _safe_cholesky

    cov = np.array([[1.0, 1.0], [1.0, 1.0]])  # rank 1: Cholesky fails, the eigen square root does not
    root = _safe_cholesky(cov)
    np.testing.assert_allclose(root @ root.T, cov, atol=1e-12)
    # rounding can leave an eigenvalue just below zero: it is clipped to zero, not square-rooted into NaN
    cov = np.array([[1.0, 0.0], [0.0, -1e-9]])
    root = _safe_cholesky(cov)
    assert np.isfinite(root).all()
    np.testing.assert_allclose(root @ root.T, np.diag([1.0, 0.0]), atol=1e-12)


def test_mean_log_likelihood_is_sklearns_score():
    from sklearn.mixture import GaussianMixture

    from crossgen.generators import _mean_log_likelihood

    X = _blobs(60)
    gm = GaussianMixture(n_components=3, covariance_type="full", random_state=0).fit(X)
    assert _mean_log_likelihood(X, gm.weights_, gm.means_, gm.covariances_) == pytest.approx(gm.score(X), rel=1e-10)


def test_points_that_are_not_numbers_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"weight points must be a numeric \(n, d\) array"):
        fit_generator([[1.0, {"a": 1}], [2.0, 3.0]], GeneratorSpec(kind="gaussian"), seed=0)
    with pytest.raises(ConfigError, match="random_state"):
        fit_generator(_blobs(5), GeneratorSpec(kind="gaussian"), seed=2**32)
    fit_generator(_blobs(5), GeneratorSpec(kind="gaussian"), seed=2**32 - 1)


def test_two_points_are_fitted_by_sklearn_and_one_point_is_its_own_mean():
    two = fit_generator(np.array([[0.0, 0.0], [2.0, 2.0]]), GeneratorSpec(kind="gaussian"), seed=0)
    np.testing.assert_allclose(two.means_[0], [1.0, 1.0])
    one = fit_generator(np.array([[3.0, 4.0]]), GeneratorSpec(kind="gaussian"), seed=0)
    assert one.n_iter_ == 0 and one.converged_
    assert one.bic_ == pytest.approx(-2.0 * one.lower_bound_)  # log(n) = 0: the parameters cost nothing


def test_sklearns_convergence_warning_becomes_a_note():
    g = fit_generator(_blobs(), GeneratorSpec(n_components=5, max_iter=1), seed=0)
    assert any(w.startswith("sklearn: ") for w in g.summary()["warnings"])


def test_samples_come_from_every_component_of_two():
    g = fit_generator(_blobs(200)[:400], GeneratorSpec(n_components=2), seed=0)  # the first two blobs
    near = _nearest_component(g, g.sample(400, 1))
    assert set(near) == {0, 1}


def test_no_points_at_all_are_refused_as_such():
    with pytest.raises(ValueError, match=r"no weight points to fit \(n=0\)"):
        fit_generator(np.zeros((0, 3)), GeneratorSpec(kind="gaussian"), seed=0)


def test_a_spec_is_frozen_once_validated():
    spec = GeneratorSpec(n_components=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.reg_covar = -1.0  # type: ignore[misc]


def test_the_warnings_of_the_last_fit_are_a_list_property():
    g = fit_generator(np.zeros((5, 2)), GeneratorSpec(kind="gaussian"), seed=0)
    assert isinstance(g.warnings, list) and g.warnings == g.summary()["warnings"] and g.warnings


def test_em_runs_single_threaded(monkeypatch):
    # weight points are low-dimensional: BLAS threads only add overhead there (generators.py says by how much)
    from threadpoolctl import threadpool_info

    import crossgen.generators as gen_mod

    real_fit, seen = gen_mod.GaussianMixture.fit, []

    def watched_fit(self, X, y=None):
        seen.extend(pool["num_threads"] for pool in threadpool_info())
        return real_fit(self, X, y)

    monkeypatch.setattr(gen_mod.GaussianMixture, "fit", watched_fit)
    fit_generator(_blobs(), GeneratorSpec(n_components=3), seed=0)
    assert seen and set(seen) == {1}
