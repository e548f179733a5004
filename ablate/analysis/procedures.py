"""The paired procedures behind every table: pairing by seed, intervals, the exact sign-flip test, Holm,
effect sizes and the verdict. Pure functions of arrays; :mod:`ablate.analysis.stats` builds tables from them
and is the API (its docstring lists every name and convention).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats as sps

from ablate.errors import AblateError

Alternative = Literal["two-sided", "greater", "less"]

#: Below this many pairs no test is run: the exact sign-flip test cannot reach p < 0.05 (2/2**4 = 0.125).
MIN_N_TESTS = 5
#: Below this many pairs BCa's jackknife acceleration is too unstable; the percentile interval is used.
MIN_N_BCA = 10
#: Largest n for which the sign-flip test enumerates all 2**n sign patterns (n=20 takes a few seconds).
MAX_EXACT = 20
#: Sign-flip ties without a known example count: null means within TIE_RTOL x (magnitude of the values) of
#: the observed one are ties. Four times the float32 rounding of a difference (see sign_flip_test).
TIE_RTOL = 2.0**-21

TPE_CONFOUNDING_WARNING = (
    "Trials were sampled adaptively (e.g. TPE), so the levels of a parameter were not assigned at random: "
    "later trials concentrate where earlier ones did well and co-vary with the other parameters. Marginal "
    "comparisons are therefore confounded and their p-values are descriptive, not confirmatory; confirm any "
    "effect with a dedicated paired-seed ablation."
)


class StatsError(AblateError, ValueError):
    """Input the statistics cannot be computed on honestly (duplicate seeds, NaN, too few variants)."""


# --------------------------------------------------------------------------------------------- pairing


@dataclass(frozen=True, eq=False)
class Paired:
    """Values of two variants joined on seed; dropped counts are kept so reports can show them."""

    variant: str
    reference: str
    keys: tuple[Any, ...]
    a: np.ndarray  # variant values, aligned with keys
    b: np.ndarray  # reference values, aligned with keys
    n_dropped_variant: int  # variant rows without a reference partner (or with a missing value)
    n_dropped_reference: int  # reference rows without a variant partner (or with a missing value)

    @property
    def n(self) -> int:
        return len(self.keys)

    @property
    def diff(self) -> np.ndarray:
        """Per-seed ``variant - reference``."""
        return self.a - self.b


def paired(
    df: pd.DataFrame,
    *,
    variant: str,
    reference: str,
    key: str = "seed",
    value: str = "test_accuracy",
    variant_col: str = "variant",
) -> Paired:
    """Pair two variants by explicit seed key, because positional pairing silently mismatches seeds."""
    for col in (key, value, variant_col):
        if col not in df.columns:
            raise StatsError(f"column {col!r} not found (columns: {', '.join(map(str, df.columns))})")
    sides = {}
    dropped = {}
    if variant == reference:
        raise StatsError(f"variant and reference are both {variant!r}")
    for name in (variant, reference):
        rows = df.loc[df[variant_col] == name, [key, value]]
        dup = rows[key][rows[key].duplicated()].unique()
        if len(dup):
            raise StatsError(
                f"variant {name!r} has several rows for {key}={list(dup)}: aggregate or deduplicate them first"
            )
        ok = rows.dropna(subset=[key, value])
        sides[name] = ok
        dropped[name] = len(rows) - len(ok)
    joined = pd.merge(
        sides[variant].rename(columns={value: "_a"}),
        sides[reference].rename(columns={value: "_b"}),
        on=key,
        how="inner",
        sort=True,
    )
    n = len(joined)
    a, b = joined["_a"].to_numpy(dtype=float, copy=True), joined["_b"].to_numpy(dtype=float, copy=True)
    a.setflags(write=False)
    b.setflags(write=False)
    return Paired(
        variant=variant,
        reference=reference,
        keys=tuple(joined[key].tolist()),
        a=a,
        b=b,
        n_dropped_variant=dropped[variant] + len(sides[variant]) - n,
        n_dropped_reference=dropped[reference] + len(sides[reference]) - n,
    )


def _vec(x: ArrayLike, name: str = "diff") -> np.ndarray:
    """1-D float array; NaN is refused so that missing runs are dropped explicitly (and counted) upstream."""
    arr = np.asarray(x, dtype=float).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise StatsError(f"{name} contains NaN or inf: drop missing runs with paired(), which counts them")
    return arr


# ------------------------------------------------------------------------------------------ interval


@dataclass(frozen=True)
class CI:
    """Bootstrap CI of a mean difference; carries estimate and n so verdict() needs nothing else."""

    estimate: float
    low: float
    high: float
    n: int
    method: str  # "BCa" | "percentile" | "degenerate" | "none"
    warnings: tuple[str, ...] = ()


def _scipy_ci(
    d: np.ndarray, method: str, confidence: float, n_resamples: int, seed: int
) -> tuple[float, float, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = sps.bootstrap(
            (d,),
            np.mean,
            confidence_level=confidence,
            n_resamples=n_resamples,
            method=method,
            rng=np.random.default_rng(seed),
        )
    msgs = [f"scipy.stats.bootstrap ({method}): {w.message}" for w in caught]
    return float(res.confidence_interval.low), float(res.confidence_interval.high), msgs


_CI_NAMES = {"BCa": "BCa", "percentile": "percentile bootstrap"}


def ci_label(methods: Iterable[str], confidence: float = 0.95) -> str:
    """What a caption calls the CIs of its rows, from the methods :func:`bootstrap_ci` used for them (a row's
    ``ci_method``): "BCa 95% CI", "percentile bootstrap 95% CI" (fewer than MIN_N_BCA seeds), or both named
    when the rows differ. Degenerate and missing intervals name no method."""
    used = [_CI_NAMES[m] for m in dict.fromkeys(methods) if m in _CI_NAMES]
    level = f"{confidence * 100:g}% CI"
    if len(used) == 1:
        return f"{used[0]} {level}"
    if used:
        return f"{level}: BCa, percentile bootstrap where BCa is unstable (n < {MIN_N_BCA}) or failed"
    return level


def bootstrap_ci(diff: ArrayLike, *, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0) -> CI:
    """BCa CI of the mean paired difference; resampling differences = resampling whole seed pairs.

    Falls back to the percentile interval when n < 10 (BCa's acceleration is unstable there) or when BCa
    fails; all differences equal gives the point itself, flagged, because no resampling variability exists.
    """
    if not 0 < confidence < 1:
        raise StatsError(f"confidence must be in (0, 1), got {confidence}")
    d = _vec(diff)
    n = d.size
    if n == 0:
        return CI(math.nan, math.nan, math.nan, 0, "none", ("no paired seeds: no estimate and no CI",))
    est = float(d.mean())
    if n == 1:
        return CI(est, math.nan, math.nan, 1, "none", ("n=1: a CI cannot be estimated from one pair",))
    if np.all(d == d[0]):
        msg = (
            f"all {n} paired differences equal {est:g}: the bootstrap distribution is a single point, "
            "so the CI is reported as [estimate, estimate]; it shows no sampling variability, not certainty"
        )
        return CI(est, est, est, n, "degenerate", (msg,))
    notes: list[str] = []
    method = "BCa"
    if n < MIN_N_BCA:
        method = "percentile"
        notes.append(
            f"n={n} < {MIN_N_BCA}: percentile bootstrap CI instead of BCa; with so few seeds bootstrap "
            "intervals tend to be too narrow (coverage below the nominal level)"
        )
    low, high, msgs = _scipy_ci(d, method, confidence, n_resamples, seed)
    if method == "BCa" and not (np.isfinite(low) and np.isfinite(high)):
        notes.extend(msgs)
        notes.append("BCa interval could not be computed; fell back to the percentile interval")
        method = "percentile"
        low, high, msgs = _scipy_ci(d, method, confidence, n_resamples, seed)
    notes.extend(msgs)
    return CI(est, low, high, n, method, tuple(notes))


# ---------------------------------------------------------------------------------------------- tests


def _mean_stat(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def _sum_stat(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Sum of integer counts stays an integer array, so scipy counts its ties with no tolerance at all."""
    return np.sum(x, axis=axis)


def _as_counts(d: np.ndarray, n_examples: int, scale: float) -> np.ndarray:
    """``d * n_examples`` as int64 counts of examples, refused unless every one is a whole number.

    Each accuracy carries float32 rounding of at most 2**-24 times its magnitude, so a count may be off
    a whole number by ``n_examples * 2**-23 * scale``; four times that (``TIE_RTOL``) is allowed.
    """
    if isinstance(n_examples, bool) or not isinstance(n_examples, int | np.integer) or n_examples < 1:
        raise StatsError(f"n_examples must be a positive whole number of examples, got {n_examples!r}")
    tol = TIE_RTOL * scale * int(n_examples)
    if tol >= 0.5:
        raise StatsError(
            f"n_examples={n_examples}: float32 values of scale {scale:g} cannot resolve single examples of a "
            "set this large; use n_examples=None"
        )
    z = d * int(n_examples)
    k = np.rint(z)
    dev = np.abs(z - k)
    if np.any(dev > max(tol, 1e-9)):
        i = int(np.argmax(dev))
        raise StatsError(
            f"difference {d[i]:.10g} times n_examples={n_examples} is {z[i]:.6g}, not a whole number of "
            "examples: the metric is not a count ratio over that many examples (pass the size of the "
            "set it was measured on, or n_examples=None)"
        )
    return k.astype(np.int64)


def _p_from_null(null: np.ndarray, observed: float, gamma: float, alternative: Alternative, *, exact: bool) -> float:
    """scipy.stats.permutation_test's p (same comparisons, same +1 Monte Carlo correction) with our ``gamma``.

    scipy counts null values within ``100 * eps * |observed|`` (about 2e-14 relative) as ties, which misses
    sign patterns that equal the observed mean mathematically but differ from it by float32 rounding.
    """
    adj = 0 if exact else 1
    m = null.size
    p_less = (np.count_nonzero(null <= observed + gamma) + adj) / (m + adj)
    p_greater = (np.count_nonzero(null >= observed - gamma) + adj) / (m + adj)
    p = {"less": p_less, "greater": p_greater, "two-sided": 2 * min(p_less, p_greater)}[alternative]
    return float(min(1.0, p))


def sign_flip_test(
    diff: ArrayLike,
    *,
    alternative: Alternative = "two-sided",
    max_exact: int = MAX_EXACT,
    n_resamples: int = 99_999,
    seed: int = 0,
    n_examples: int | None = None,
    scale: float = 1.0,
) -> float:
    """Exact paired sign-flip permutation test of the mean difference, with ties counted exactly.

    Under H0 (variant and reference exchangeable within a seed) each difference is equally likely to have
    either sign; enumerating all 2**n sign patterns gives an exact p with no normality assumption, which
    is what n = 5..20 seeds needs. Above ``max_exact`` pairs a seeded Monte Carlo p (conservative +1
    correction) is returned. n=0 gives NaN; all-zero differences give 1.0, and so does n=1 two-sided.

    Ties matter: accuracies are ratios k/N of small test sets, so many sign patterns have exactly the
    observed mean (the p counts them as "at least as extreme"); stored as float32 they differ from it by
    about 1e-8, and scipy's own tie tolerance (about 2e-14 relative) misses them, making p too small.

    * ``n_examples`` (N, the size of the set the metric was measured on): the test runs on the integer
      counts ``diff * N`` (refused with :class:`StatsError` unless whole numbers to within float32
      rounding), whose sums scipy compares exactly. Any N that makes every difference whole gives the
      same p (scaling does not change the test): N serves a fraction and a percentage alike (the latter
      gives 100 times the counts; pass ``scale=100`` with it, as for the tolerance below).
    * Without it, null means within ``TIE_RTOL * scale`` of the observed mean count as ties. ``scale`` is
      the magnitude of the measured values (1 for accuracies and other fractions); float32 values carry
      at most 2**-24 relative rounding, so two tied means differ by at most 2**-22 * scale, and
      ``TIE_RTOL`` = 2**-21 doubles that. For count ratios this is exact while n * N < 2**21 (about two
      million: 10 seeds on 200,000 examples); beyond that pass ``n_examples``.

    Enumeration stays with ``scipy.stats.permutation_test`` (the cited procedure and its Monte Carlo
    path); only its tie rule is replaced, by exact integer arithmetic or by the tolerance above.
    """
    d = _vec(diff)
    n = d.size
    if n == 0:
        return math.nan
    if np.all(d == 0):
        return 1.0
    if n == 1:  # scipy wants two observations; the null is just +|d| and -|d|
        return 1.0 if alternative == "two-sided" or (d.item() > 0) != (alternative == "greater") else 0.5
    if not (np.isfinite(scale) and scale > 0):
        raise StatsError(f"scale must be a positive magnitude of the measured values, got {scale}")
    if n_examples is not None:
        data, statistic, gamma = _as_counts(d, n_examples, scale), _sum_stat, 0.0
    else:
        data, statistic, gamma = d, _mean_stat, TIE_RTOL * scale
    exact = n <= max_exact or n_resamples >= 2**n  # scipy enumerates whenever n_resamples covers 2**n
    res = sps.permutation_test(
        (data,),
        statistic,
        permutation_type="samples",
        vectorized=True,
        n_resamples=np.inf if n <= max_exact else n_resamples,
        batch=2**16,
        alternative=alternative,
        rng=np.random.default_rng(seed),
    )
    return _p_from_null(np.asarray(res.null_distribution), float(res.statistic), gamma, alternative, exact=exact)


def paired_t(diff: ArrayLike) -> float:
    """Paired t-test p (two-sided), kept as a parametric sensitivity check; NaN when n < 2 or sd == 0."""
    d = _vec(diff)
    if d.size < 2 or np.std(d) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(sps.ttest_1samp(d, 0.0).pvalue)


def min_attainable_p(n: int, *, alternative: Alternative = "two-sided") -> float:
    """Smallest p an exact sign-flip test can give with n non-zero pairs (all signs agree): 2 / 2**n.

    Why: with few seeds the test may be unable to reach alpha at all, whatever the effect size.
    """
    if n < 0:
        raise StatsError(f"n must be >= 0, got {n}")
    return float(min(1.0, (2.0 if alternative == "two-sided" else 1.0) / 2.0**n))


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN (untested rows) stay NaN and do not enlarge the family.

    The same numbers as statsmodels' ``multipletests(p, method="holm")`` (the tests hold the two equal on
    random families with ties), written out because statsmodels runs ``gc.collect()`` on every Holm call:
    in a large process (a report with many families, the test suite) one call took 0.4 s, and one power
    simulation made 200 of them. Holm is three lines: sort, scale the i-th smallest by (m - i), take the
    running maximum, clip at 1.
    """
    p = np.asarray(pvalues, dtype=float).reshape(-1)
    out = np.full(p.shape, math.nan)
    mask = ~np.isnan(p)
    if np.any((p[mask] < 0) | (p[mask] > 1)):
        raise StatsError("p-values must lie in [0, 1]")
    tested = p[mask]
    m = tested.size
    if m:
        order = np.argsort(tested, kind="stable")
        adjusted = np.minimum(np.maximum.accumulate(tested[order] * np.arange(m, 0, -1)), 1.0)
        unsorted = np.empty(m)
        unsorted[order] = adjusted
        out[mask] = unsorted
    return out


# ------------------------------------------------------------------------------------------- effects


def cohens_dz(diff: ArrayLike) -> float:
    """Standardised mean paired difference mean/sd (ddof=1); NaN when undefined (n < 2 or sd == 0)."""
    d = _vec(diff)
    if d.size < 2:
        return math.nan
    sd = float(np.std(d, ddof=1))
    return math.nan if sd == 0 else float(d.mean() / sd)


def a12(a: ArrayLike, b: ArrayLike) -> float:
    """Vargha–Delaney A12 = P(A > B) + 0.5 P(A = B) over all (a_i, b_j) pairs.

    Robust, unit-free "probability that a variant run beats a reference run". It is the Mann–Whitney U
    of ``a`` scaled to [0, 1]: A12 = U / (n m), with ``scipy.stats.mannwhitneyu``'s U (ties count one half
    through mid-ranks). It ignores the seed pairing on purpose (d_z covers the paired view).
    """
    x, y = _vec(a, "a"), _vec(b, "b")
    if x.size == 0 or y.size == 0:
        return math.nan
    with warnings.catch_warnings():  # only U is used; its p-value may warn on all-tied samples
        warnings.simplefilter("ignore")
        u = sps.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic").statistic
    return float(u / (x.size * y.size))


def dz_magnitude(d: float) -> str:
    """Cohen (1988) labels on |d|: negligible < 0.2 <= small < 0.5 <= medium < 0.8 <= large."""
    if d is None or not np.isfinite(d):
        return "n/a"
    m = abs(d)
    return "negligible" if m < 0.2 else "small" if m < 0.5 else "medium" if m < 0.8 else "large"


def a12_magnitude(a: float) -> str:
    """Vargha & Delaney (2000) labels on |A12 - 0.5|: negligible < .06 <= small < .14 <= medium < .21."""
    if a is None or not np.isfinite(a):
        return "n/a"
    m = round(abs(a - 0.5), 12)  # so that A12 = 0.71 is "large" despite 0.71 - 0.5 = 0.20999...
    return "negligible" if m < 0.06 else "small" if m < 0.14 else "medium" if m < 0.21 else "large"


# ------------------------------------------------------------------------------------------- verdict


def verdict(delta_ci: CI, p_adj: float, *, alpha: float = 0.05, rope: float | None = None) -> str:
    """Translate adjusted p and CI into the word a reader will quote; never "equivalent" from p alone.

    n < 5 -> "descriptives only"; p_adj < alpha -> "better"/"worse" by the sign of the mean difference;
    otherwise "equivalent" if a ROPE half-width is given and the whole CI lies in [-rope, rope];
    otherwise "inconclusive" (absence of evidence is not evidence of absence).
    """
    if rope is not None and not rope > 0:
        raise StatsError(f"rope must be a positive half-width, got {rope}")
    if delta_ci.n < MIN_N_TESTS:
        return "descriptives only"
    if p_adj is not None and np.isfinite(p_adj) and p_adj < alpha and delta_ci.estimate != 0:
        return "better" if delta_ci.estimate > 0 else "worse"
    if (
        rope is not None
        and np.isfinite(delta_ci.low)
        and np.isfinite(delta_ci.high)
        and -rope <= delta_ci.low
        and delta_ci.high <= rope
    ):
        return "equivalent"
    return "inconclusive"
