"""Paired, small-sample significance statistics for ablation and transfer tables.

Why this module exists: researchers paste these tables into papers, so every number must come from a
named, citable procedure, and every small-sample limitation must be said out loud (as a warning string
in the row) instead of being hidden behind a p-value.

Conventions
-----------
* Runs are paired by an explicit seed key (never by position): ``delta = variant - reference`` per seed.
* Higher values are better (accuracy). For a loss, negate the column before calling.
* Functions are pure; warnings are returned as strings (``warnings`` field/column, ``DataFrame.attrs``),
  never emitted through :mod:`warnings`, so that they end up in the report next to the number.
* The exact sign-flip test enumerates 2**n sign patterns: instant for n <= 16, about 5 s at n = 20;
  above 20 pairs a seeded Monte Carlo p with 99,999 patterns is used (flagged in the row's warnings).
* Bad input (duplicate seeds, NaN passed to a statistic, fewer than 3 variants for Friedman) raises
  :class:`StatsError`, which is both an :class:`~ablate.errors.AblateError` and a :class:`ValueError`.

API (names are stable)
----------------------
``paired(df, *, variant, reference, key="seed", value="test_accuracy", variant_col="variant") -> Paired``
    Inner join of two variants on ``key``; ``Paired(variant, reference, keys, a, b, n_dropped_variant,
    n_dropped_reference)`` plus ``.diff`` and ``.n``. Rows with a missing value count as dropped.
``bootstrap_ci(diff, *, confidence=0.95, n_resamples=9999, seed=0) -> CI``
    BCa bootstrap CI of the mean difference (percentile when n < 10 or BCa fails; a point when all
    differences are equal). ``CI(estimate, low, high, n, method, warnings)``.
``sign_flip_test(diff, *, alternative="two-sided", max_exact=20, n_resamples=99_999, seed=0,
n_examples=None, scale=1.0) -> float``
    Exact paired sign-flip permutation test of the mean difference (all 2**n sign patterns, n <= 20);
    ties counted exactly: on integer counts ``diff * n_examples``, else within ``TIE_RTOL * scale``.
``paired_t(diff) -> float``, ``min_attainable_p(n, *, alternative="two-sided") -> float``
``holm(pvalues) -> ndarray`` (NaN stays NaN and is left out of the family)
``cohens_dz(diff)``, ``a12(a, b)``, ``dz_magnitude(d)``, ``a12_magnitude(a)``
``verdict(delta_ci, p_adj, *, alpha=0.05, rope=None) -> str``
    One of ``"better" | "worse" | "equivalent" | "inconclusive" | "descriptives only"``.
``compare(pairs, *, alpha=0.05, rope=None, seed=0, n_resamples=9999, n_examples=None) -> dict``  (one row)
``ablation_table(df, *, reference, ..., n_examples=None) -> DataFrame``  (rows = variants, Holm across rows)
``transfer_verdicts(df, *, method, baseline, case_col="case", ..., n_examples=None) -> (DataFrame, dict)``
    ``n_examples``: the size N of the set the metric is a fraction of (an int, or the name of a column
    holding it per run; a missing column or NaN = the tolerance path), for integer tie counting.
``friedman(df_wide, *, alpha=0.05) -> dict``  (Friedman + average ranks + Nemenyi CD)
``marginal_tests(df, *, param, value, mode="one-vs-rest", alpha=0.05) -> DataFrame``
``methods_paragraph(*, n_seeds, alpha, rope, n_resamples, seed, corrected_over, ...) -> str``
"""

from __future__ import annotations

import itertools
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

__all__ = [
    "CI",
    "MIN_N_BCA",
    "MIN_N_TESTS",
    "TIE_RTOL",
    "TPE_CONFOUNDING_WARNING",
    "Paired",
    "StatsError",
    "a12",
    "a12_magnitude",
    "ablation_table",
    "bootstrap_ci",
    "cohens_dz",
    "compare",
    "dz_magnitude",
    "friedman",
    "holm",
    "marginal_tests",
    "methods_paragraph",
    "min_attainable_p",
    "paired",
    "paired_t",
    "sign_flip_test",
    "transfer_verdicts",
    "verdict",
]

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
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
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
        return 1.0 if alternative == "two-sided" or (d[0] > 0) != (alternative == "greater") else 0.5
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


# ------------------------------------------------------------------------------------------- compare


def _describe(x: np.ndarray, prefix: str) -> dict[str, float]:
    if x.size == 0:
        return {f"{prefix}_{k}": math.nan for k in ("mean", "sd", "median", "q1", "q3")}
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return {
        f"{prefix}_mean": float(x.mean()),
        f"{prefix}_sd": float(np.std(x, ddof=1)) if x.size > 1 else math.nan,
        f"{prefix}_median": float(med),
        f"{prefix}_q1": float(q1),
        f"{prefix}_q3": float(q3),
    }


def _compare_row(
    pairs: Paired, *, alpha: float, seed: int, n_resamples: int, n_examples: int | None = None
) -> tuple[dict[str, Any], CI]:
    """Everything of a row except the verdict, which depends on the family the row is corrected in."""
    d = pairs.diff
    n = pairs.n
    notes: list[str] = []
    if pairs.n_dropped_variant or pairs.n_dropped_reference:
        notes.append(
            f"unpaired or missing runs dropped: {pairs.n_dropped_variant} of {pairs.variant!r}, "
            f"{pairs.n_dropped_reference} of {pairs.reference!r}"
        )
    n_zero = int(np.sum(d == 0))
    n_nonzero = n - n_zero
    if n_zero:
        notes.append(
            f"{n_zero} of {n} paired differences are exactly zero (ties): they carry no sign information, "
            f"so the sign-flip test effectively uses {n_nonzero} pairs"
        )
    if n >= MIN_N_TESTS:
        ci = bootstrap_ci(d, n_resamples=n_resamples, seed=seed)
        scale = float(max(np.max(np.abs(pairs.a)), np.max(np.abs(pairs.b))))  # d != 0 makes it > 0
        p = sign_flip_test(d, seed=seed, n_examples=n_examples, scale=scale)
        p_t = paired_t(d)
        notes.extend(ci.warnings)
        if n > MAX_EXACT:
            notes.append(f"n={n} > {MAX_EXACT}: sign-flip p is Monte Carlo (99,999 sign patterns, seed {seed})")
        if np.isfinite(p_t) and (p < alpha) != (p_t < alpha):
            notes.append(f"unadjusted sign-flip p={p:.3g} and paired t p={p_t:.3g} disagree at alpha={alpha}")
    else:
        ci = CI(float(d.mean()) if n else math.nan, math.nan, math.nan, n, "none")
        p = p_t = math.nan
        notes.append(
            f"n={n} < {MIN_N_TESTS} paired seeds: descriptives only, no CI or p-value (the exact test's "
            f"smallest attainable p would be {min_attainable_p(n):.3g})"
        )
    dz = cohens_dz(d) if n else math.nan
    if n >= 2 and not np.isfinite(dz):
        notes.append("all paired differences are equal: d_z (and paired t) undefined")
    eff_a12 = a12(pairs.a, pairs.b)
    row: dict[str, Any] = {
        "variant": pairs.variant,
        "reference": pairs.reference,
        "n": n,
        "n_dropped_variant": pairs.n_dropped_variant,
        "n_dropped_reference": pairs.n_dropped_reference,
        **_describe(pairs.a, "variant"),
        **_describe(pairs.b, "reference"),
        "delta": ci.estimate,
        "delta_sd": float(np.std(d, ddof=1)) if n > 1 else math.nan,
        "ci_low": ci.low,
        "ci_high": ci.high,
        "ci_method": ci.method,
        "p": p,
        "p_t": p_t,
        "min_p": min_attainable_p(n_nonzero),
        "n_zero_diffs": n_zero,
        "d_z": dz,
        "d_z_label": dz_magnitude(dz),
        "a12": eff_a12,
        "a12_label": a12_magnitude(eff_a12),
        "verdict": None,
        "warnings": notes,
    }
    return row, ci


def _finalize(row: dict[str, Any], ci: CI, p_adj: float, m: int, *, alpha: float, rope: float | None) -> None:
    """Verdict on the adjusted p, plus the caveats that depend on the family size m."""
    row["verdict"] = verdict(ci, p_adj, alpha=alpha, rope=rope)
    if not np.isfinite(p_adj):
        return
    threshold = alpha / max(m, 1)
    if row["min_p"] >= threshold and row["n"] > row["n_zero_diffs"]:
        where = (
            f"after Holm over {m} comparisons the first step needs p < {threshold:.3g}" if m > 1 else f"alpha={alpha}"
        )
        row["warnings"].append(
            f"with {row['n'] - row['n_zero_diffs']} non-zero pairs the smallest attainable p is "
            f"{row['min_p']:.3g}; {where}: no effect can reach significance, however large (add seeds)"
        )
    if rope is not None and row["verdict"] in ("better", "worse") and -rope <= ci.low and ci.high <= rope:
        row["warnings"].append(
            f"significant, but the whole CI lies inside the ROPE [-{rope:g}, {rope:g}]: practically negligible"
        )


def compare(
    pairs: Paired,
    *,
    alpha: float = 0.05,
    rope: float | None = None,
    seed: int = 0,
    n_resamples: int = 9999,
    n_examples: int | None = None,
) -> dict[str, Any]:
    """One table row for variant vs reference, with every small-sample caveat attached as a warning.

    ``verdict`` here treats the comparison as a family of one (p_adj = p); ablation_table and
    transfer_verdicts redo it on Holm-adjusted p. ``n_examples``: see :func:`sign_flip_test`.
    """
    row, ci = _compare_row(pairs, alpha=alpha, seed=seed, n_resamples=n_resamples, n_examples=n_examples)
    _finalize(row, ci, row["p"], 1, alpha=alpha, rope=rope)
    return row


def _holm_rows(rows: list[dict[str, Any]], cis: list[CI], *, alpha: float, rope: float | None) -> int:
    """Holm across the rows (the family), then verdicts on the adjusted p; returns the family size."""
    p_adj = holm([r["p"] for r in rows])
    m = int(np.sum(~np.isnan(p_adj)))
    for r, ci, pa in zip(rows, cis, p_adj, strict=True):
        r["p_holm"] = float(pa)
        _finalize(r, ci, float(pa), m, alpha=alpha, rope=rope)
    return m


def _n_examples_of(df: pd.DataFrame, spec: int | str | None, *, variant_col: str, names: tuple[str, str]) -> int | None:
    """The example count N of one comparison: given as a number, or read from a column of its runs.

    A frame without the column, or runs without a value in it (older studies), leave N unknown, which
    means the tolerance path (exact for float32 count ratios up to about two million n * N, see
    sign_flip_test); two different N in one comparison are refused: its runs were not measured on the
    same set.
    """
    if spec is None or (isinstance(spec, int | np.integer) and not isinstance(spec, bool)):
        return None if spec is None else int(spec)
    if not isinstance(spec, str):
        raise StatsError(f"n_examples must be a whole number or a column name, got {spec!r}")
    if spec not in df.columns:
        return None
    values = pd.unique(df.loc[df[variant_col].isin(names), spec].dropna())
    if len(values) == 0:
        return None
    if len(values) > 1:
        raise StatsError(
            f"{names[0]!r} vs {names[1]!r}: runs report different {spec!r} ({sorted(map(float, values))}): "
            "they were not measured on the same set"
        )
    n = float(values[0])
    if not n.is_integer() or n < 1:
        raise StatsError(f"{spec!r} must be a positive whole number of examples, got {values[0]!r}")
    return int(n)


_FIRST = ["variant", "reference", "n", "delta", "ci_low", "ci_high", "p", "p_holm", "p_t", "verdict"]


def _frame(rows: list[dict[str, Any]], first: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    return out[first + [c for c in out.columns if c not in first]]


def ablation_table(
    df: pd.DataFrame,
    *,
    reference: str,
    value: str = "test_accuracy",
    key: str = "seed",
    variant_col: str = "variant",
    alpha: float = 0.05,
    rope: float | None = None,
    seed: int = 0,
    n_resamples: int = 9999,
    n_examples: int | str | None = None,
) -> pd.DataFrame:
    """One row per variant vs ``reference``, Holm-adjusted over the rows of this table.

    Table-level warnings (e.g. alpha/m unreachable for some rows) are in ``out.attrs["warnings"]``.
    ``n_examples``: N of the metric (an int or a column name), for exact tie counting (sign_flip_test).
    """
    if variant_col not in df.columns:
        raise StatsError(f"column {variant_col!r} not found")
    names = list(pd.unique(df[variant_col].dropna()))
    if reference not in names:
        raise StatsError(f"reference {reference!r} not among variants {names}")
    rows, cis = [], []
    for name in names:
        if name == reference:
            continue
        pr = paired(df, variant=name, reference=reference, key=key, value=value, variant_col=variant_col)
        n_ex = _n_examples_of(df, n_examples, variant_col=variant_col, names=(name, reference))
        row, ci = _compare_row(pr, alpha=alpha, seed=seed, n_resamples=n_resamples, n_examples=n_ex)
        rows.append(row)
        cis.append(ci)
    m = _holm_rows(rows, cis, alpha=alpha, rope=rope)
    out = _frame(rows, _FIRST)
    table_notes = []
    blocked = [r["variant"] for r in rows if np.isfinite(r["p_holm"]) and r["min_p"] >= alpha / max(m, 1)]
    if blocked:
        table_notes.append(
            f"Holm over {m} comparisons needs p < alpha/m = {alpha / max(m, 1):.3g} for the first rejection; "
            f"the exact test cannot reach that for: {', '.join(map(str, blocked))} (add seeds)"
        )
    out.attrs["warnings"] = table_notes
    out.attrs["alpha"] = alpha
    out.attrs["corrected_over"] = f"{m} variants vs {reference!r}"
    return out


def transfer_verdicts(
    df: pd.DataFrame,
    *,
    method: str,
    baseline: str,
    case_col: str = "case",
    value: str = "test_accuracy",
    key: str = "seed",
    variant_col: str = "variant",
    alpha: float = 0.05,
    rope: float | None = None,
    seed: int = 0,
    n_resamples: int = 9999,
    n_examples: int | str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per case: method vs baseline on paired seeds (Holm across cases); across cases: W/T/L + Wilcoxon.

    ``negative_transfer`` = significantly worse than the baseline after Holm. The across-case Wilcoxon
    signed-rank test on per-case mean differences follows Demšar (2006); with few cases it cannot reach
    alpha, which is reported rather than left for the reader to discover. ``n_examples``: N of the metric
    (an int, or a column name: cases differ in N, so a column is the usual choice), see sign_flip_test.
    """
    if case_col not in df.columns:
        raise StatsError(f"column {case_col!r} not found")
    rows, cis = [], []
    for case in pd.unique(df[case_col].dropna()):
        sub = df[df[case_col] == case]
        pr = paired(sub, variant=method, reference=baseline, key=key, value=value, variant_col=variant_col)
        n_ex = _n_examples_of(sub, n_examples, variant_col=variant_col, names=(method, baseline))
        row, ci = _compare_row(pr, alpha=alpha, seed=seed, n_resamples=n_resamples, n_examples=n_ex)
        rows.append({"case": case, **row})
        cis.append(ci)
    _holm_rows(rows, cis, alpha=alpha, rope=rope)
    for r in rows:
        r["negative_transfer"] = r["verdict"] == "worse"
    per_case = _frame(rows, ["case", *_FIRST, "negative_transfer"])

    verdicts = [r["verdict"] for r in rows]
    deltas = np.array([r["delta"] for r in rows if r["n"] > 0], dtype=float)
    notes: list[str] = []
    n_cases = deltas.size
    n_nonzero = int(np.sum(deltas != 0))
    stat = p_w = math.nan
    if n_nonzero == 0:
        p_w = 1.0 if n_cases else math.nan
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sps.wilcoxon(deltas)
        stat, p_w = float(res.statistic), float(res.pvalue)
    wmin = min_attainable_p(n_nonzero)
    if wmin >= alpha:
        notes.append(
            f"Wilcoxon signed-rank over {n_nonzero} case(s) with a non-zero mean difference cannot be "
            f"significant: smallest attainable p is "
            f"{wmin:.3g} >= alpha={alpha}; report the per-case verdicts and win/tie/loss instead"
        )
    small = [str(r["case"]) for r in rows if r["n"] < MIN_N_TESTS]
    if small:
        notes.append(f"cases with fewer than {MIN_N_TESTS} paired seeds (descriptives only): {', '.join(small)}")
    summary: dict[str, Any] = {
        "method": method,
        "baseline": baseline,
        "n_cases": len(rows),
        "wins": verdicts.count("better"),
        "ties": len(verdicts) - verdicts.count("better") - verdicts.count("worse"),
        "losses": verdicts.count("worse"),
        "n_equivalent": verdicts.count("equivalent"),
        "n_descriptives_only": verdicts.count("descriptives only"),
        "negative_transfer_cases": [r["case"] for r in rows if r["negative_transfer"]],
        "mean_delta": float(deltas.mean()) if n_cases else math.nan,
        "wilcoxon_statistic": stat,
        "wilcoxon_p": p_w,
        "wilcoxon_min_p": wmin,
        "warnings": notes,
    }
    return per_case, summary


# ------------------------------------------------------------------------------------ several variants


def friedman(df_wide: pd.DataFrame, *, alpha: float = 0.05) -> dict[str, Any]:
    """Friedman test over >= 3 variants on the same seeds, average ranks and the Nemenyi CD (Demšar 2006).

    Rows = seeds, columns = variants; rank 1 = highest value. Two variants differ (Nemenyi) when their
    average ranks differ by more than ``cd``; interpret that only if the Friedman p is below alpha.
    """
    k = df_wide.shape[1]
    if k < 3:
        raise StatsError(f"Friedman needs at least 3 variants (columns), got {k}; use compare() for two")
    notes: list[str] = []
    data = df_wide.dropna()
    if len(data) < len(df_wide):
        notes.append(f"{len(df_wide) - len(data)} seeds with a missing variant were dropped (complete blocks)")
    n = len(data)
    if n < 2:
        raise StatsError(f"Friedman needs at least 2 complete seeds (rows), got {n}")
    x = data.to_numpy(dtype=float)
    ranks = sps.rankdata(-x, axis=1).mean(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.friedmanchisquare(*x.T)
    q = float(sps.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))
    cd = q * math.sqrt(k * (k + 1) / (6 * n))
    if n <= 10 or k <= 5:
        notes.append(
            f"p uses the chi-square approximation, which Demšar (2006) considers adequate for N > 10 and "
            f"k > 5; with N={n}, k={k} treat it as approximate"
        )
    p = float(res.pvalue)
    if not np.isfinite(p) or p >= alpha:
        notes.append(
            "Friedman test not significant (or undefined): do not interpret Nemenyi (CD) differences between ranks"
        )
    return {
        "ranks": pd.Series(ranks, index=data.columns, name="average_rank"),
        "statistic": float(res.statistic),
        "p": p,
        "cd": cd,
        "q_alpha": q,
        "alpha": alpha,
        "n": n,
        "k": k,
        "warnings": notes,
    }


def marginal_tests(
    df: pd.DataFrame,
    *,
    param: str,
    value: str,
    mode: Literal["one-vs-rest", "pairwise"] = "one-vs-rest",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Welch t and Mann–Whitney U per level of a categorical parameter (vs the rest, or pairwise), Holm.

    For sensitivity studies whose trials are unpaired; the TPE confounding caveat is always attached in
    ``out.attrs["warnings"]`` because it applies by construction.
    """
    for col in (param, value):
        if col not in df.columns:
            raise StatsError(f"column {col!r} not found")
    data = df[[param, value]].dropna()
    levels = list(pd.unique(data[param]))
    groups = {lv: data.loc[data[param] == lv, value].to_numpy(dtype=float) for lv in levels}
    if mode == "one-vs-rest":
        specs = [(lv, "rest", groups[lv], data.loc[data[param] != lv, value].to_numpy(dtype=float)) for lv in levels]
    elif mode == "pairwise":
        specs = [(u, v, groups[u], groups[v]) for u, v in itertools.combinations(levels, 2)]
    else:
        raise StatsError(f"mode must be 'one-vs-rest' or 'pairwise', got {mode!r}")
    rows = []
    for lv, other, x, y in specs:
        notes = []
        p_w = p_u = math.nan
        if x.size >= 2 and y.size >= 2 and (np.std(x) > 0 or np.std(y) > 0):
            p_w = float(sps.ttest_ind(x, y, equal_var=False).pvalue)
        else:
            notes.append("Welch t undefined (fewer than 2 trials in a group, or no variance)")
        if x.size >= 1 and y.size >= 1:
            p_u = float(sps.mannwhitneyu(x, y, alternative="two-sided").pvalue)
        if min(x.size, y.size) < 5:
            notes.append(f"small groups ({x.size} vs {y.size} trials)")
        rows.append(
            {
                "param": param,
                "level": lv,
                "other": other,
                "n_level": x.size,
                "n_other": y.size,
                "mean_level": float(x.mean()) if x.size else math.nan,
                "mean_other": float(y.mean()) if y.size else math.nan,
                "delta": float(x.mean() - y.mean()) if x.size and y.size else math.nan,
                "p_welch": p_w,
                "p_mwu": p_u,
                "a12": a12(x, y),
                "warnings": notes,
            }
        )
    out = pd.DataFrame(rows)
    if not out.empty:
        out["p_welch_holm"] = holm(out["p_welch"])
        out["p_mwu_holm"] = holm(out["p_mwu"])
        out["a12_label"] = [a12_magnitude(v) for v in out["a12"]]
    out.attrs["warnings"] = [TPE_CONFOUNDING_WARNING]
    out.attrs["alpha"] = alpha
    dropped = len(df) - len(data)
    if dropped:
        out.attrs["warnings"].append(f"{dropped} trials with a missing {param!r} or {value!r} were dropped")
    return out


# ------------------------------------------------------------------------------------------- methods


def methods_paragraph(
    *,
    n_seeds: int,
    alpha: float,
    rope: float | None,
    n_resamples: int,
    seed: int,
    corrected_over: str,
    friedman_used: bool = False,
    wilcoxon_used: bool = False,
    confidence: float = 0.95,
) -> str:
    """A paste-ready Methods paragraph, so the paper states exactly the procedure that made the numbers."""
    min_p = min_attainable_p(n_seeds)
    exact = f"all 2^{n_seeds} = {2**n_seeds:,} sign patterns" if n_seeds <= MAX_EXACT else "99,999 random sign patterns"
    ci_kind = (
        "bias-corrected and accelerated (BCa) bootstrap (Efron, 1987)"
        if n_seeds >= MIN_N_BCA
        else "percentile bootstrap (BCa is unstable for fewer than 10 pairs; with so few seeds "
        "such intervals tend to under-cover)"
    )
    parts = [
        f"Each configuration was trained with {n_seeds} random seeds, and runs were paired by seed. "
        f"For each comparison we tested the mean of the per-seed differences with an exact paired sign-flip "
        f"permutation test ({exact}; two-sided), which makes no normality assumption; with {n_seeds} pairs "
        f"its smallest attainable p-value is {min_p:.3g}. A paired t-test is reported as a sensitivity "
        f"analysis. P-values were corrected with the Holm (1979) step-down procedure over {corrected_over} "
        f"(significance level alpha = {alpha:g}). "
        f"{confidence:.0%} confidence intervals of the mean difference use the {ci_kind} with "
        f"{n_resamples:,} resamples of seed pairs and a fixed random seed ({seed}). "
        "Effect sizes are Cohen's d_z (mean difference / SD of differences; |d_z| < 0.2 negligible, "
        "< 0.5 small, < 0.8 medium, otherwise large; Cohen, 1988) and the Vargha-Delaney A12 "
        "(probability that a run of one configuration beats a run of the other, ties counted one half; "
        "|A12 - 0.5| < 0.06 negligible, < 0.14 small, < 0.21 medium, otherwise large; Vargha & Delaney, "
        "2000). ",
    ]
    if rope is not None:
        parts.append(
            f"A difference was called equivalent when the whole confidence interval lay inside a region of "
            f"practical equivalence (ROPE) of ±{rope:g} (Kruschke, 2018), and better or worse when the "
            "Holm-adjusted p-value was below alpha; all other outcomes are reported as inconclusive. "
        )
    else:
        parts.append(
            "A difference was called better or worse when the Holm-adjusted p-value was below alpha; "
            "otherwise it is reported as inconclusive (not as evidence of no difference). "
        )
    parts.append(f"Comparisons with fewer than {MIN_N_TESTS} paired seeds are reported descriptively only. ")
    if friedman_used:
        parts.append(
            "Across three or more configurations measured on the same seeds we used the Friedman test "
            "with average ranks and the Nemenyi critical difference (Demšar, 2006). "
        )
    if wilcoxon_used:
        parts.append(
            "Across transfer cases we report win/tie/loss counts and a Wilcoxon signed-rank test on the "
            "per-case mean differences (Demšar, 2006); with few cases this test has little power and its "
            "smallest attainable p-value is reported alongside. "
        )
    return "".join(parts).strip()


def gain_curve(
    curves: pd.DataFrame,
    *,
    method: str,
    baseline: str,
    value: str = "test_accuracy",
    alpha: float = 0.05,
    n_examples: int | str | None = None,
    seed: int = 0,
    n_resamples: int = 9999,
) -> pd.DataFrame:
    """Transfer gain after k target epochs: Δ(k) = method − baseline, paired by seed, one row per (case, k).

    ``curves`` is long: case, variant, seed, epoch, value (``ablate.tidy.curve_frame``). With a constant
    learning rate epoch k of a long run *is* a k-epoch run, so one run gives every budget. Each k is one
    paired comparison (exact sign-flip test, :func:`bootstrap_ci`); Holm runs over the budgets of a case, the family a
    reader scans when asking "is there any budget where CGI helps?".
    """
    for col in ("case", "variant", "seed", "epoch", value):
        if col not in curves.columns:
            raise StatsError(f"column {col!r} not found in the curves frame")
    rows: list[dict[str, Any]] = []
    for case, per_case in curves.groupby("case", sort=False):
        family: list[dict[str, Any]] = []
        cis: list[CI] = []
        for k, at_k in per_case.groupby("epoch", sort=True):
            if not {method, baseline} <= set(at_k["variant"]):
                continue
            pairs = paired(at_k, variant=method, reference=baseline, value=value)
            if pairs.n < 2:
                continue
            n_ex = _n_examples_of(at_k, n_examples, variant_col="variant", names=(method, baseline))
            row, ci = _compare_row(pairs, alpha=alpha, seed=seed, n_resamples=n_resamples, n_examples=n_ex)
            row.update(case=case, epoch=int(k))
            family.append(row)
            cis.append(ci)
        if family:
            _holm_rows(family, cis, alpha=alpha, rope=None)
            rows.extend(family)
    return _frame(rows, ["case", "epoch", *_FIRST])
