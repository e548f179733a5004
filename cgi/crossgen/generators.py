"""Generative models over 2-D weight points for Cross Generative Initialisation (CGI).

A *weight point* is one row ``(mu / s, log sigma)`` per Bayesian-NN weight. CGI fits a generative model to
the weight points of a trained network and samples fresh weight points from it to initialise another one.

Two kinds of generator sit behind one small scikit-learn-like interface (:meth:`WeightPointGenerator.fit` /
:meth:`WeightPointGenerator.sample` / :meth:`WeightPointGenerator.summary`):

* ``"gmm"``      -- a Gaussian mixture with ``K`` components (:class:`sklearn.mixture.GaussianMixture`);
* ``"gaussian"`` -- a single Gaussian, i.e. ``GaussianMixture(n_components=1)``, so that its summary and
  BIC are directly comparable with the mixture's.

Sampling does *not* use :meth:`GaussianMixture.sample`: that method returns samples grouped (sorted) by
component, which is wrong here because sample ``i`` is assigned to weight ``i``. Instead component labels
are drawn iid from the fitted weights with the caller's :class:`numpy.random.Generator`, and each sample is
``mean[label] + L[label] @ z`` with ``L`` the Cholesky factor of the component's full covariance.

Degenerate inputs (a single point, all points identical, fewer distinct points than components, sklearn
failing with an ill-defined covariance) never crash the fit: the covariance regularisation is escalated
and a warning is recorded in :meth:`WeightPointGenerator.summary`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits  # a hard dependency of scikit-learn

from .errors import ConfigError

__all__ = [
    "COVARIANCE_TYPES",
    "DEGENERATE_REG_COVAR",
    "GENERATOR_KINDS",
    "GeneratorSpec",
    "WeightPointGenerator",
    "fit_generator",
]

GENERATOR_KINDS = ("gmm", "gaussian")
COVARIANCE_TYPES = ("full", "diag", "tied", "spherical")

#: Ceiling of the ``reg_covar`` escalation ladder (x10 per retry), and the regularisation used outright for
#: degenerate inputs (one point, all points identical, fewer distinct points than components).
DEGENERATE_REG_COVAR = 1e-2

_ILL_DEFINED = "ill-defined empirical covariance"


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class GeneratorSpec:
    """What generator to fit. Validated on construction; invalid values raise :class:`ConfigError`."""

    kind: str = "gmm"
    """``"gmm"`` (Gaussian mixture) or ``"gaussian"`` (single Gaussian)."""
    n_components: int = 5
    """K, the number of mixture components; ignored (treated as 1) for ``kind="gaussian"``."""
    covariance_type: str = "full"
    """sklearn's covariance parametrisation: ``full``, ``diag``, ``tied`` or ``spherical``."""
    reg_covar: float = 1e-6
    """Non-negative regularisation added to the covariance diagonals; must be > 0 here."""
    max_iter: int = 100
    """Maximum number of EM iterations per initialisation."""
    n_init: int = 1
    """Number of EM initialisations; the best (highest lower bound) is kept."""

    def __post_init__(self) -> None:
        if self.kind not in GENERATOR_KINDS:
            raise ConfigError(
                f"generator.kind: unknown kind {self.kind!r} (expected one of: {', '.join(GENERATOR_KINDS)})"
            )
        if not _is_int(self.n_components) or self.n_components < 1:
            raise ConfigError(f"generator.n_components: K must be an integer >= 1, got {self.n_components!r}")
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ConfigError(
                f"generator.covariance_type: unknown covariance type {self.covariance_type!r} "
                f"(expected one of: {', '.join(COVARIANCE_TYPES)})"
            )
        if not _is_real(self.reg_covar) or not math.isfinite(self.reg_covar) or self.reg_covar <= 0:
            raise ConfigError(f"generator.reg_covar: must be a finite number > 0, got {self.reg_covar!r}")
        if not _is_int(self.max_iter) or self.max_iter < 1:
            raise ConfigError(f"generator.max_iter: must be an integer >= 1, got {self.max_iter!r}")
        if not _is_int(self.n_init) or self.n_init < 1:
            raise ConfigError(f"generator.n_init: must be an integer >= 1, got {self.n_init!r}")

    @property
    def effective_components(self) -> int:
        """K actually fitted: ``n_components`` for ``gmm``, 1 for ``gaussian``."""
        return 1 if self.kind == "gaussian" else int(self.n_components)


# ------------------------------------------------------------------------------------------------------------
# covariance helpers
# ------------------------------------------------------------------------------------------------------------


def _full_covariances(covariances: np.ndarray, covariance_type: str, k: int, d: int) -> np.ndarray:
    """sklearn's ``covariances_`` (any covariance type) as a ``(k, d, d)`` array of full matrices."""
    cov = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        return cov.reshape(k, d, d).copy()
    if covariance_type == "tied":
        return np.broadcast_to(cov.reshape(d, d), (k, d, d)).copy()
    if covariance_type == "diag":
        return np.stack([np.diag(row) for row in cov.reshape(k, d)])
    # spherical: one variance per component
    return cov.reshape(k)[:, None, None] * np.eye(d)[None, :, :]


def _native_covariances(full: np.ndarray, covariance_type: str) -> np.ndarray:
    """Inverse of :func:`_full_covariances` for covariances that are already of the given structure."""
    if covariance_type == "full":
        return full.copy()
    if covariance_type == "tied":
        return full[0].copy()
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in full])
    return np.array([float(np.mean(np.diag(c))) for c in full])


def _safe_cholesky(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a symmetric PSD matrix; falls back to an eigen square root if not PD."""
    sym = 0.5 * (cov + cov.T)
    try:
        return np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(sym)
        return vecs * np.sqrt(np.clip(vals, 0.0, None))[None, :]


def _n_parameters(covariance_type: str, k: int, d: int) -> int:
    """Free parameters of a Gaussian mixture (same count as sklearn's ``GaussianMixture._n_parameters``)."""
    if covariance_type == "full":
        cov_params = k * d * (d + 1) // 2
    elif covariance_type == "diag":
        cov_params = k * d
    elif covariance_type == "tied":
        cov_params = d * (d + 1) // 2
    else:
        cov_params = k
    return int(cov_params + k * d + k - 1)


def _mean_log_likelihood(X: np.ndarray, weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> float:
    """Average per-point log-likelihood of ``X`` under a mixture given by full covariances."""
    n, d = X.shape
    log_terms = np.empty((n, len(weights)))
    for j, (w, mu, cov) in enumerate(zip(weights, means, covs, strict=True)):
        chol = np.linalg.cholesky(cov)
        sol = np.linalg.solve(chol, (X - mu).T)
        maha = np.sum(sol**2, axis=0)
        logdet = 2.0 * np.sum(np.log(np.diag(chol)))
        log_terms[:, j] = math.log(w) - 0.5 * (d * math.log(2.0 * math.pi) + logdet + maha)
    top = log_terms.max(axis=1, keepdims=True)
    return float(np.mean(top[:, 0] + np.log(np.sum(np.exp(log_terms - top), axis=1))))


# ------------------------------------------------------------------------------------------------------------
# generator
# ------------------------------------------------------------------------------------------------------------


def _validate_points(X: Any) -> np.ndarray:
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"weight points must be a numeric (n, d) array: {exc}") from None
    if arr.ndim != 2:
        raise ValueError(f"weight points must be a 2-D array of shape (n, d), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("no weight points to fit (n=0)")
    if arr.shape[1] == 0:
        raise ValueError("weight points have no columns (d=0)")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise ValueError(f"weight points contain NaN or inf (n_bad={int(bad.sum())})")
    return arr


def _count_distinct_rows(X: np.ndarray) -> int:
    """Number of distinct rows; a lexsort and one comparison pass (``np.unique(axis=0)`` is ~4x slower)."""
    if X.shape[0] < 2:
        return int(X.shape[0])
    rows = X[np.lexsort(X.T[::-1])]
    return int(1 + np.any(rows[1:] != rows[:-1], axis=1).sum())


def _seed_from(random_state: Any) -> int:
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    if _is_int(random_state) and 0 <= int(random_state) < 2**32:
        return int(random_state)
    raise ConfigError(f"random_state: must be an integer in [0, 2**32) or a numpy Generator, got {random_state!r}")


def _as_generator(rng: Any) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if _is_int(rng):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy Generator or an integer seed, got {type(rng).__name__}")


class WeightPointGenerator:
    """A Gaussian-mixture (or single-Gaussian) generative model over weight points.

    Parameters
    ----------
    spec:
        What to fit (:class:`GeneratorSpec`).
    random_state:
        Seed for the fit (k-means initialisation of EM). An ``int`` or a :class:`numpy.random.Generator`
        (one integer seed is drawn from it at construction); default 0. Same seed + same data => same fit.
    """

    def __init__(self, spec: GeneratorSpec | None = None, random_state: int | np.random.Generator = 0):
        if spec is None:
            spec = GeneratorSpec()
        if not isinstance(spec, GeneratorSpec):
            raise TypeError(f"spec must be a GeneratorSpec, got {type(spec).__name__}")
        self.spec = spec
        self.seed = _seed_from(random_state)
        self._fitted = False
        self._warnings: list[str] = []
        self._bic: float | None = None
        self._bic_points: np.ndarray | None = None

    # -- fitting ------

    def fit(self, X: np.ndarray) -> WeightPointGenerator:
        """Fit to weight points ``X`` of shape ``(n, d)``; returns ``self``.

        Raises :class:`ConfigError` when ``K`` exceeds ``n`` and :class:`ValueError` for NaN/inf or a
        malformed array. Degenerate data and non-convergence are recorded as warnings, not raised.
        """
        self._fitted = False  # a failed refit must not leave a half-updated model usable
        X = _validate_points(X)
        spec = self.spec
        n, d = X.shape
        k = spec.effective_components
        if n < k:
            raise ConfigError(
                f"generator.n_components: K={k} exceeds the number of weight points n={n}, lower K or raise M"
            )

        notes: list[str] = []
        n_distinct = _count_distinct_rows(X)
        reg = float(spec.reg_covar)
        if n_distinct == 1 or n_distinct < k:
            reg_new = max(reg, DEGENERATE_REG_COVAR)
            what = "all weight points are identical" if n_distinct == 1 else "collapsed components"
            notes.append(
                f"degenerate input: {what} (n={n}, distinct={n_distinct}, K={k}); "
                f"reg_covar raised from {reg:g} to {reg_new:g}"
            )
            reg = reg_new

        if n < 2:
            self._fit_single_point(X, reg)
        else:
            reg = self._fit_sklearn(X, reg, notes)

        tiny = [j for j, w in enumerate(self.weights_) if w < 1e-6]  # K = 1 has weight 1: never tiny
        if tiny:
            notes.append(f"components {tiny} have negligible weight (< 1e-6): they collapsed during EM")
        if not self.converged_:
            notes.append(
                f"EM did not converge within max_iter={spec.max_iter} (n_iter={self.n_iter_}); "
                "the last estimate is used"
            )

        self.n_fit_points_ = n
        self.n_distinct_points_ = n_distinct
        self.n_features_ = d
        self.reg_covar_used_ = reg
        self._cholesky = np.stack([_safe_cholesky(c) for c in self.covariances_full_])
        self._warnings = notes
        self._fitted = True
        return self

    def _fit_single_point(self, X: np.ndarray, reg: float) -> None:
        """n == 1 (sklearn needs >= 2 samples): mean = the point, covariance = reg * I."""
        d = X.shape[1]
        self.weights_ = np.ones(1)
        self.means_ = X[:1].copy()
        self.covariances_full_ = (reg * np.eye(d))[None, :, :]
        self.covariances_ = _native_covariances(self.covariances_full_, self.spec.covariance_type)
        ll = _mean_log_likelihood(X, self.weights_, self.means_, self.covariances_full_)
        self.lower_bound_ = ll
        self._bic = -2.0 * ll  # BIC = -2 n ll + p log n with n = 1: the parameters cost nothing
        self.converged_ = True
        self.n_iter_ = 0
        self.model_ = None

    def _fit_sklearn(self, X: np.ndarray, reg: float, notes: list[str]) -> float:
        """Fit sklearn's GaussianMixture, escalating reg_covar x10 (up to the ceiling) on ill-defined
        covariances. Returns the reg_covar finally used."""
        spec = self.spec
        while True:
            gm = GaussianMixture(
                n_components=spec.effective_components,
                covariance_type=spec.covariance_type,
                reg_covar=reg,
                max_iter=spec.max_iter,
                n_init=spec.n_init,
                random_state=self.seed,
            )
            try:
                # Weight points are low-dimensional: BLAS/OpenMP threading only adds overhead (3-8x slower
                # on small d, measured), so EM runs single-threaded.
                with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=1):
                    warnings.simplefilter("always")
                    gm.fit(X)
            except ValueError as exc:
                if _ILL_DEFINED not in str(exc):
                    raise
                if reg >= DEGENERATE_REG_COVAR:
                    raise ValueError(
                        f"Gaussian-mixture fit failed with ill-defined covariances even at "
                        f"reg_covar={reg:g}; rescale the weight points or lower K"
                    ) from exc
                reg_new = min(reg * 10.0, DEGENERATE_REG_COVAR)
                notes.append(f"ill-defined covariance at reg_covar={reg:g}; retrying with {reg_new:g}")
                reg = reg_new
                continue
            break

        for w in caught:
            if issubclass(w.category, ConvergenceWarning):
                msg = " ".join(str(w.message).split())
                if msg not in notes:
                    notes.append(f"sklearn: {msg}")
            else:  # not ours to swallow
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

        k, d = spec.effective_components, X.shape[1]
        self.model_ = gm
        self.weights_ = np.asarray(gm.weights_, dtype=np.float64)
        self.means_ = np.asarray(gm.means_, dtype=np.float64)
        self.covariances_ = np.asarray(gm.covariances_, dtype=np.float64)
        self.covariances_full_ = _full_covariances(self.covariances_, spec.covariance_type, k, d)
        self.converged_ = bool(gm.converged_)
        self.n_iter_ = int(gm.n_iter_)
        self.lower_bound_ = float(gm.lower_bound_)
        self._bic = None  # computed on first use: a full extra E-step that most runs never read
        self._bic_points = X
        return reg

    @property
    def bic_(self) -> float:
        """Bayesian information criterion on the fitted points (lower is better)."""
        self._check_fitted()
        if self._bic is None:
            self._bic = float(self.model_.bic(self._bic_points))
            self._bic_points = None
        return self._bic

    # -- sampling ------

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError("WeightPointGenerator is not fitted: call fit(X) first")

    def sample(self, n: int, rng: np.random.Generator | int) -> np.ndarray:
        """Draw ``n`` weight points, shape ``(n, d)``, deterministically from ``rng``.

        Component labels are drawn iid from the fitted weights (so samples are *not* grouped by component),
        then ``mean + L @ z`` with ``z ~ N(0, I)`` and ``L`` the Cholesky factor of the full covariance.
        """
        self._check_fitted()
        if not _is_int(n) or n < 0:
            raise ConfigError(f"n: number of samples must be an integer >= 0, got {n!r}")
        gen = _as_generator(rng)
        k, d = len(self.weights_), self.n_features_
        p = np.clip(self.weights_, 0.0, None)
        p = p / p.sum()
        labels = gen.choice(k, size=int(n), p=p) if k > 1 else np.zeros(int(n), dtype=np.intp)
        z = gen.standard_normal((int(n), d))
        out = np.empty((int(n), d))
        for j in range(k):
            idx = labels == j
            if idx.any():
                out[idx] = self.means_[j] + z[idx] @ self._cholesky[j].T
        return out

    # -- reporting ------

    @property
    def warnings(self) -> list[str]:
        """Warnings recorded by the last fit (degenerate input, escalation, non-convergence)."""
        return list(self._warnings)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable description of the fitted model.

        ``covariances`` are always full ``(K, d, d)`` matrices (whatever the covariance type) so summaries of
        different covariance types are comparable; ``weights`` has K entries, ``means`` is ``(K, d)``.
        """
        self._check_fitted()
        return {
            "kind": self.spec.kind,
            "n_components": int(len(self.weights_)),
            "covariance_type": self.spec.covariance_type,
            "weights": [float(w) for w in self.weights_],
            "means": self.means_.astype(float).tolist(),
            "covariances": self.covariances_full_.astype(float).tolist(),
            "converged": bool(self.converged_),
            "n_iter": int(self.n_iter_),
            "bic": float(self.bic_),
            "lower_bound": float(self.lower_bound_),
            "n_fit_points": int(self.n_fit_points_),
            "n_distinct_points": int(self.n_distinct_points_),
            "n_features": int(self.n_features_),
            "reg_covar_used": float(self.reg_covar_used_),
            "seed": int(self.seed),
            "warnings": list(self._warnings),
        }

    def __repr__(self) -> str:
        state = "fitted" if self._fitted else "unfitted"
        return f"WeightPointGenerator({self.spec!r}, random_state={self.seed}, {state})"


def fit_generator(
    X: np.ndarray, spec: GeneratorSpec | None = None, seed: int | np.random.Generator = 0
) -> WeightPointGenerator:
    """Convenience: ``WeightPointGenerator(spec, seed).fit(X)``."""
    return WeightPointGenerator(spec, random_state=seed).fit(X)
