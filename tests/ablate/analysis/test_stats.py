"""Tests for ablate.analysis.stats: each statistic against the library call or a hand computation, plus behaviour."""

import itertools
import math
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from ablate.analysis import stats as S


def tidy(values: dict[str, list[float]], seeds: dict[str, list[int]] | None = None) -> pd.DataFrame:
    rows = []
    for variant, vals in values.items():
        keys = seeds[variant] if seeds else range(len(vals))
        rows += [{"variant": variant, "seed": k, "test_accuracy": v} for k, v in zip(keys, vals, strict=True)]
    return pd.DataFrame(rows)


def study(effects: dict[str, float], *, n: int = 10, sd: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """Reference 'full' plus variants shifted by `effects`, with per-seed shared noise (paired design)."""
    rng = np.random.default_rng(seed)
    base = 80 + rng.normal(0, 2, n)  # seed effect shared by all variants
    vals = {"full": base + rng.normal(0, sd, n)}
    for name, eff in effects.items():
        vals[name] = base + eff + rng.normal(0, sd, n)
    return tidy({k: list(v) for k, v in vals.items()})


# ----------------------------------------------------------------------------------------------- paired


def test_paired_joins_on_seed_not_position_and_counts_dropped():
    df = tidy(
        {"full": [1.0, 2.0, 3.0, 4.0], "v": [13.0, 11.0, 15.0]},
        seeds={"full": [1, 2, 3, 4], "v": [3, 1, 9]},
    )
    pr = S.paired(df.sample(frac=1, random_state=3), variant="v", reference="full")
    assert pr.keys == (1, 3)
    np.testing.assert_array_equal(pr.a, [11.0, 13.0])
    np.testing.assert_array_equal(pr.b, [1.0, 3.0])
    np.testing.assert_array_equal(pr.diff, [10.0, 10.0])
    assert (pr.n, pr.n_dropped_variant, pr.n_dropped_reference) == (2, 1, 2)


def test_paired_counts_missing_values_as_dropped_and_rejects_duplicates():
    df = tidy({"full": [1.0, 2.0, 3.0], "v": [1.0, np.nan, 3.0]})
    pr = S.paired(df, variant="v", reference="full")
    assert pr.keys == (0, 2) and pr.n_dropped_variant == 1 and pr.n_dropped_reference == 1
    dup = tidy({"full": [1.0, 2.0], "v": [1.0, 2.0]}, seeds={"full": [0, 1], "v": [0, 0]})
    with pytest.raises(S.StatsError, match="several rows"):
        S.paired(dup, variant="v", reference="full")
    with pytest.raises(ValueError):
        S.paired(df, variant="full", reference="full")
    with pytest.raises(S.StatsError, match="column"):
        S.paired(df, variant="v", reference="full", value="acc")


# ------------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_is_scipy_bca_with_seeded_rng():
    d = np.array([0.3, 1.1, -0.2, 0.8, 0.5, 1.4, 0.1, 0.9, 0.6, -0.4, 0.7, 1.0])
    ci = S.bootstrap_ci(d, n_resamples=2000, seed=7)
    ref = sps.bootstrap((d,), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(7))
    assert ci.method == "BCa" and ci.warnings == () and ci.n == 12
    assert ci.estimate == pytest.approx(d.mean())
    assert (ci.low, ci.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), rel=1e-12)
    assert S.bootstrap_ci(d, n_resamples=2000, seed=7) == ci  # reproducible


def test_bootstrap_ci_percentile_below_10_and_degenerate_and_tiny():
    d = np.array([0.3, 1.1, -0.2, 0.8, 0.5, 1.4])
    ci = S.bootstrap_ci(d, n_resamples=2000, seed=1)
    ref = sps.bootstrap((d,), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(1))
    assert ci.method == "percentile" and any("percentile" in w for w in ci.warnings)
    assert (ci.low, ci.high) == pytest.approx(tuple(ref.confidence_interval), rel=1e-12)

    deg = S.bootstrap_ci(np.full(12, 0.5))
    assert (deg.low, deg.estimate, deg.high, deg.method) == (0.5, 0.5, 0.5, "degenerate") and deg.warnings

    one = S.bootstrap_ci([2.0])
    assert one.estimate == 2.0 and math.isnan(one.low) and one.warnings
    assert math.isnan(S.bootstrap_ci([]).estimate)
    with pytest.raises(ValueError, match="NaN"):
        S.bootstrap_ci([1.0, np.nan, 2.0])


# ------------------------------------------------------------------------------------------ sign flip


def test_sign_flip_matches_hand_enumeration_of_32_sign_patterns():
    d = np.array([0.5, 1.2, -0.3, 2.0, 0.8])
    obs = abs(d.mean())
    null = [abs(np.mean(np.array(s) * np.abs(d))) for s in itertools.product([-1, 1], repeat=5)]
    hand = sum(v >= obs - 1e-12 for v in null) / 32
    assert hand == pytest.approx(4 / 32)  # all-plus, flip -0.3 only, and their mirror images
    assert S.sign_flip_test(d) == pytest.approx(hand)
    direct = sps.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf)
    assert S.sign_flip_test(d) == pytest.approx(direct.pvalue)
    assert S.sign_flip_test(d, alternative="greater") == pytest.approx(2 / 32)


def test_sign_flip_edge_cases_and_min_attainable_p():
    assert math.isnan(S.sign_flip_test([]))
    assert S.sign_flip_test([3.0]) == 1.0
    # one pair, one-sided: the null is +|d| and -|d|, so p is 1/2 on the side d lies on and 1 on the other
    for d, greater, less in ((0.3, 0.5, 1.0), (-0.3, 1.0, 0.5)):
        assert S.sign_flip_test([d], alternative="greater") == greater
        assert S.sign_flip_test([d], alternative="less") == less
    assert S.sign_flip_test(np.zeros(8)) == 1.0
    assert S.sign_flip_test(np.ones(5)) == pytest.approx(S.min_attainable_p(5)) == pytest.approx(0.0625)
    assert S.min_attainable_p(10) == pytest.approx(2 / 1024)
    assert S.min_attainable_p(0) == 1.0 and S.min_attainable_p(1) == 1.0
    assert S.min_attainable_p(4, alternative="greater") == pytest.approx(1 / 16)


def f32(counts, n_examples: int, scale: float = 1.0) -> np.ndarray:
    """What a run stores: the float32 accuracy k/N (torch's mean of 0/1), read back as a Python float."""
    return np.float32(np.asarray(counts) * scale / n_examples).astype(float)


def brute_force_p(k: list[int], alternative: str = "two-sided") -> float:
    """Exact p on integer differences by listing every sign pattern (independent of scipy and of the module)."""
    obs = sum(k)
    sums = [
        sum(s * abs(x) for s, x in zip(signs, k, strict=True)) for signs in itertools.product((-1, 1), repeat=len(k))
    ]
    hits = {
        "two-sided": sum(abs(t) >= abs(obs) for t in sums),
        "greater": sum(t >= obs for t in sums),
        "less": sum(t <= obs for t in sums),
    }[alternative]
    return hits / len(sums)


def null_sums_by_doubling(k: np.ndarray) -> np.ndarray:
    """All 2**n sign-flip sums of integers, built one pair at a time (exact in int64, about 1 s at n = 20)."""
    out = np.zeros(1, dtype=np.int64)
    for x in np.abs(k):
        out = np.concatenate([out + x, out - x])
    return out


# The issue's Table 2 example (smoke fidelity, T1M1_T2M2, 71 test images, 6 seeds): correct test images
# of CGI and of the benchmark, differences (0, -2, +1, +1, 0, -1).
ISSUE_N = 71
ISSUE_CGI = [68, 65, 69, 69, 69, 68]
ISSUE_BENCH = [68, 67, 68, 68, 69, 69]


def test_sign_flip_counts_ties_exactly_on_the_issue_example():
    # By hand: the non-zero |differences| are 2, 1, 1, 1 (total 5, odd), so every sign pattern has an odd
    # sum and |sum| >= 1 = |observed sum|: all 64 patterns are at least as extreme, p = 1 (the old code: 0.875).
    k = np.array(ISSUE_CGI) - np.array(ISSUE_BENCH)
    assert list(k) == [0, -2, 1, 1, 0, -1]
    assert brute_force_p(list(k)) == 1.0
    d = f32(ISSUE_CGI, ISSUE_N) - f32(ISSUE_BENCH, ISSUE_N)
    # the float32 copies are not tied in floating point: some patterns with the observed |sum| have a
    # smaller |mean| by about 1e-8, which a tie rule of float64 precision counts as less extreme
    assert any(
        abs(np.dot(signs, k)) == abs(k.sum()) and 0 < abs(np.mean(d)) - abs(np.dot(signs, d) / 6) < 1e-7
        for signs in itertools.product((-1, 1), repeat=6)
    )
    assert S.sign_flip_test(d) == 1.0  # tolerance path
    assert S.sign_flip_test(d, n_examples=ISSUE_N) == 1.0  # integer path
    assert S.sign_flip_test(k.astype(float)) == 1.0


def test_sign_flip_second_hand_example_with_three_tied_patterns():
    # Differences in correct images (+2, +1, +1, -1, +3) on 1,983 test images; |d| = 2, 1, 1, 1, 3 (total 8).
    # A pattern's sum is 8 - 2 * (sum of the |d| it makes negative); the observed one negates a 1: sum 6.
    # |sum| >= 6 needs a negated total <= 1 or >= 7: {} and the three single 1s, and their 4 mirror images.
    # Two-sided p = 8/32 = 0.25; greater = 4/32 (sum 8, and sum 6 three times); less = 31/32 (all but sum 8).
    kb = np.array([1950, 1940, 1960, 1932, 1971])
    ka = kb + np.array([2, 1, 1, -1, 3])
    d = f32(ka, 1983) - f32(kb, 1983)
    for alternative, hand in (("two-sided", 8 / 32), ("greater", 4 / 32), ("less", 31 / 32)):
        assert brute_force_p([2, 1, 1, -1, 3], alternative) == hand
        assert S.sign_flip_test(d, alternative=alternative) == hand  # old code: 0.1875 and 0.09375
        assert S.sign_flip_test(d, alternative=alternative, n_examples=1983) == hand


def test_sign_flip_odd_sum_case_is_one():
    # (+3, -1, -1, +2, -2): total |d| = 9 is odd, so no pattern sums to 0 and |observed sum| = 1 is the least
    # any pattern reaches: p = 1 exactly (the old code gave 0.8125 on these float32 accuracies of 8,017 images).
    kb = np.array([7602, 7308, 7997, 7812, 7982])
    ka = kb + np.array([3, -1, -1, 2, -2])
    d = f32(ka, 8017) - f32(kb, 8017)
    assert brute_force_p([3, -1, -1, 2, -2]) == 1.0
    assert S.sign_flip_test(d) == 1.0
    assert S.sign_flip_test(d, n_examples=8017) == 1.0


@settings(max_examples=60, deadline=None)
@given(
    k=st.lists(st.integers(-6, 6), min_size=1, max_size=10),
    n_examples=st.sampled_from([71, 289, 1983, 8017, 10_000, 60_000]),
    base=st.floats(0.3, 0.99),
    alternative=st.sampled_from(["two-sided", "greater", "less"]),
)
def test_sign_flip_equals_brute_force_on_integers_and_on_float32_accuracies(k, n_examples, base, alternative):
    hand = brute_force_p(k, alternative)
    assert S.sign_flip_test(np.array(k, dtype=float), alternative=alternative) == pytest.approx(hand, abs=1e-15)
    assert S.sign_flip_test(np.array(k, dtype=float), alternative=alternative, n_examples=1) == pytest.approx(
        hand, abs=1e-15
    )
    kb = np.full(len(k), round(base * n_examples)) - np.arange(len(k))  # different accuracies per seed
    d = f32(kb + np.array(k), n_examples) - f32(kb, n_examples)
    assert S.sign_flip_test(d, alternative=alternative) == pytest.approx(hand, abs=1e-15)
    assert S.sign_flip_test(d, alternative=alternative, n_examples=n_examples) == pytest.approx(hand, abs=1e-15)


def test_sign_flip_integer_path_is_scipys_own_exact_integer_test():
    # On integer data scipy compares with no tolerance at all; our integer path must be that very test.
    k = np.array([3, -1, 4, 1, -5, 9, 2, 6])
    ref = sps.permutation_test((k,), lambda x, axis: np.sum(x, axis=axis), permutation_type="samples")
    assert ref.null_distribution.dtype.kind == "i"
    assert S.sign_flip_test(k / 97.0, n_examples=97) == ref.pvalue


def test_sign_flip_refuses_a_wrong_example_count_and_bad_arguments():
    d = f32(ISSUE_CGI, ISSUE_N) - f32(ISSUE_BENCH, ISSUE_N)
    with pytest.raises(S.StatsError, match="not a whole number"):
        S.sign_flip_test(d, n_examples=70)
    for bad in (0, -3, 71.0, True, "71"):
        with pytest.raises(S.StatsError, match="n_examples"):
            S.sign_flip_test(d, n_examples=bad)
    with pytest.raises(S.StatsError, match="scale"):
        S.sign_flip_test(d, scale=0.0)
    with pytest.raises(S.StatsError, match="cannot resolve"):
        S.sign_flip_test(d, n_examples=10**7)
    with pytest.raises(S.StatsError, match="cannot resolve"):  # 2**20 examples: a tolerance of exactly half of one
        S.sign_flip_test(d, n_examples=2**20)


def test_sign_flip_tolerance_follows_the_scale_of_the_values():
    # Percentages (100 k/N as float32) carry 100 times the rounding of fractions: scale=100 says so.
    d = f32(ISSUE_CGI, ISSUE_N, 100.0) - f32(ISSUE_BENCH, ISSUE_N, 100.0)
    assert S.sign_flip_test(d, scale=100.0) == 1.0
    assert S.sign_flip_test(d, scale=100.0, n_examples=ISSUE_N) == 1.0  # counts come out as 100 x (0, -2, ...)


def test_sign_flip_at_n_20_is_exact_without_warning_and_at_21_monte_carlo():
    # n = 20 is the last exact n: all 2**20 patterns, p a multiple of 2**-20, no warning. The Monte Carlo p
    # (99,999 patterns, +1 correction) is not such a multiple and differs from it in the 3rd-4th decimal.
    k = np.array([5, -3, 2, 7, -1, 4, -6, 3, 2, -2, 8, -4, 1, 3, -5, 2, 6, -3, 1, -4])
    null = null_sums_by_doubling(k)
    exact = np.count_nonzero(np.abs(null) >= abs(k.sum())) / 2**20
    assert 0.05 < exact < 0.95
    kb = np.arange(250, 270)
    df = tidy({"full": list(f32(kb, 289)), "v": list(f32(kb + k, 289))})
    row = S.compare(S.paired(df, variant="v", reference="full"), n_resamples=999)
    assert row["n"] == 20 and row["p"] == exact
    assert not any("Monte Carlo" in w for w in row["warnings"])
    mc = S.sign_flip_test(k / 289.0, max_exact=19)
    assert mc != exact and mc == pytest.approx(exact, abs=0.01)
    # above max_exact, resamples that cover all 2**n patterns make scipy enumerate: exact again, no +1
    assert S.sign_flip_test(k / 289.0, max_exact=19, n_resamples=2**21) == exact
    assert S.sign_flip_test(k / 289.0, max_exact=19, n_resamples=2**20) == exact  # exactly 2**n is enough
    # the Monte Carlo draw is seeded, by default with 0
    d21 = np.array([*k, 3]) / 289.0
    default = S.sign_flip_test(d21, n_resamples=999)
    assert default == S.sign_flip_test(d21, n_resamples=999, seed=0) != S.sign_flip_test(d21, n_resamples=999, seed=1)

    df21 = tidy({"full": list(f32(np.arange(250, 271), 289)), "v": list(f32(np.arange(250, 271) + [*k, 3], 289))})
    row21 = S.compare(S.paired(df21, variant="v", reference="full"), n_resamples=999)
    assert row21["n"] == 21 and any("Monte Carlo" in w for w in row21["warnings"])


def test_paired_t_is_ttest_rel_and_nan_safe():
    a = np.array([81.0, 79.5, 80.2, 82.1, 78.9])
    b = np.array([80.0, 79.9, 79.1, 80.5, 78.0])
    assert S.paired_t(a - b) == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-12)
    assert math.isnan(S.paired_t([1.0]))
    assert math.isnan(S.paired_t([0.5, 0.5, 0.5]))
    assert S.paired_t([0.1, 0.3]) == pytest.approx(sps.ttest_1samp([0.1, 0.3], 0.0).pvalue, rel=1e-12)  # n = 2


# ----------------------------------------------------------------------------------------------- holm


@pytest.mark.parametrize("seed", range(20))
def test_holm_equals_multipletests_on_random_families_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 25))
    p = rng.choice([0.001, 0.01, 0.02, 0.05, 0.3, 1.0], size=m) if seed % 2 else rng.uniform(0, 1, size=m) ** 3
    np.testing.assert_allclose(S.holm(p), multipletests(p, method="holm")[1], rtol=0, atol=1e-15)


def test_holm_equals_multipletests_and_keeps_nan_out_of_the_family():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    np.testing.assert_allclose(S.holm(p), multipletests(p, method="holm")[1])
    np.testing.assert_array_equal(S.holm([0.0, 0.5, 1.0]), [0.0, 1.0, 1.0])  # 0 and 1 are p-values too
    out = S.holm([0.01, np.nan, 0.04, 0.03, np.nan, 0.2])
    assert np.isnan(out[[1, 4]]).all()
    np.testing.assert_allclose(out[[0, 2, 3, 5]], multipletests(p, method="holm")[1])
    assert np.isnan(S.holm([np.nan, np.nan])).all() and S.holm([]).size == 0
    with pytest.raises(ValueError):
        S.holm([0.5, 1.2])


# -------------------------------------------------------------------------------------------- effects


def test_effect_sizes_by_hand():
    # A12 on [1,2,3] vs [1,1,4]: 1 ties 1,1 (0.5+0.5), 2 beats 1,1, 3 beats 1,1 -> (1+2+2)/9
    assert S.a12([1, 2, 3], [1, 1, 4]) == pytest.approx(5 / 9)
    assert S.a12([1, 1, 4], [1, 2, 3]) == pytest.approx(4 / 9)
    assert math.isnan(S.a12([], [1.0]))
    d = [1.0, 2.0, 3.0]
    assert S.cohens_dz(d) == pytest.approx(2.0 / 1.0)
    assert math.isnan(S.cohens_dz([1.0])) and math.isnan(S.cohens_dz([2.0, 2.0]))
    assert S.cohens_dz([1.0, 3.0]) == pytest.approx(2.0 / math.sqrt(2.0))  # two pairs are enough


@pytest.mark.parametrize(
    ("d", "label"),
    [
        (0.0, "negligible"),
        (-0.19, "negligible"),
        (0.2, "small"),
        (-0.5, "medium"),
        (0.8, "large"),
        (float("nan"), "n/a"),
    ],
)
def test_dz_magnitude(d, label):
    assert S.dz_magnitude(d) == label


@pytest.mark.parametrize(
    ("a", "label"),
    [
        (0.5, "negligible"),
        (0.55, "negligible"),
        (0.56, "small"),
        (0.44, "small"),
        (0.64, "medium"),
        (0.36, "medium"),
        (0.71, "large"),
        (0.29, "large"),
        (1.0, "large"),
        (float("nan"), "n/a"),
    ],
)
def test_a12_magnitude_vargha_delaney_thresholds(a, label):
    assert S.a12_magnitude(a) == label


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=8),
    st.lists(st.integers(0, 5), min_size=1, max_size=8),
)
def test_a12_is_complementary_and_the_definition(x, y):
    assert S.a12(x, y) + S.a12(y, x) == pytest.approx(1.0)
    by_pairs = sum((u > v) + 0.5 * (u == v) for u in x for v in y) / (len(x) * len(y))
    assert S.a12(x, y) == pytest.approx(by_pairs, abs=1e-15)


# -------------------------------------------------------------------------------------------- verdict


def test_verdict_rules():
    ci = S.CI(estimate=1.0, low=0.5, high=1.5, n=10, method="BCa")
    assert S.verdict(ci, 0.01) == "better"
    assert S.verdict(S.CI(-1.0, -1.5, -0.5, 10, "BCa"), 0.01) == "worse"
    assert S.verdict(ci, 0.2) == "inconclusive"
    assert S.verdict(S.CI(0.1, -0.3, 0.4, 10, "BCa"), 0.6, rope=0.5) == "equivalent"
    assert S.verdict(S.CI(0.1, -0.3, 0.6, 10, "BCa"), 0.6, rope=0.5) == "inconclusive"
    assert S.verdict(ci, float("nan")) == "inconclusive"
    assert S.verdict(S.CI(1.0, 0.5, 1.5, 4, "percentile"), 0.001) == "descriptives only"
    with pytest.raises(ValueError):
        S.verdict(ci, 0.01, rope=0.0)


# -------------------------------------------------------------------------------------------- compare


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])
def test_compare_below_5_pairs_is_descriptives_only(n):
    rng = np.random.default_rng(n)
    seeds = {"full": [*range(n), 100], "v": [*range(n), 200]}  # one unpaired seed each side
    df = tidy({"full": list(rng.normal(80, 1, n + 1)), "v": list(rng.normal(82, 1, n + 1))}, seeds)
    row = S.compare(S.paired(df, variant="v", reference="full"))
    assert (row["n_dropped_variant"], row["n_dropped_reference"]) == (1, 1)
    assert row["verdict"] == "descriptives only" and row["n"] == n
    assert math.isnan(row["p"]) and math.isnan(row["p_t"]) and math.isnan(row["ci_low"])
    assert any("descriptives only" in w for w in row["warnings"])
    if n >= 1:
        assert row["variant_mean"] == pytest.approx(df[(df.variant == "v") & (df.seed < n)].test_accuracy.mean())
        assert row["delta"] == pytest.approx(row["variant_mean"] - row["reference_mean"])


def test_compare_all_zero_differences():
    vals = list(np.linspace(78, 82, 10))
    row = S.compare(S.paired(tidy({"full": vals, "v": vals}), variant="v", reference="full"))
    assert row["p"] == 1.0 and row["n_zero_diffs"] == 10 and row["ci_method"] == "degenerate"
    assert (row["ci_low"], row["ci_high"]) == (0.0, 0.0) and math.isnan(row["d_z"])
    assert row["verdict"] == "inconclusive" and row["a12"] == pytest.approx(0.5)
    text = " ".join(row["warnings"])
    assert "exactly zero" in text and "single point" in text and "d_z" in text


def test_compare_partial_ties_are_counted_and_reduce_effective_n():
    ref = [80.0, 81.0, 79.0, 80.5, 82.0, 78.0, 80.0]
    var = [81.0, 81.0, 80.0, 80.5, 83.0, 79.5, 80.5]
    row = S.compare(S.paired(tidy({"full": ref, "v": var}), variant="v", reference="full"))
    assert row["n"] == 7 and row["n_zero_diffs"] == 2
    assert row["min_p"] == pytest.approx(S.min_attainable_p(5))
    assert row["p"] == pytest.approx(0.0625)  # 5 positive differences: as extreme as possible
    text = " ".join(row["warnings"])
    assert "exactly zero" in text and "percentile" in text and "smallest attainable p" in text
    assert row["verdict"] == "inconclusive"


def test_compare_sds_are_sample_sds_by_hand():
    # variant 81, 79, 80, 84, 76: mean 80, squared deviations 1+1+0+16+16 = 34, SD = sqrt(34/4)
    # reference 80, 80, 78, 82, 80: mean 80, 0+0+4+4+0 = 8, SD = sqrt(8/4); differences 1, -1, 2, 2, -4:
    # mean 0, 1+1+4+4+16 = 26, SD = sqrt(26/4). ddof=1 throughout (sample SD, as the ± columns claim).
    a, b = [81.0, 79.0, 80.0, 84.0, 76.0], [80.0, 80.0, 78.0, 82.0, 80.0]
    row = S.compare(S.paired(tidy({"full": b, "v": a}), variant="v", reference="full"))
    assert row["variant_sd"] == pytest.approx(math.sqrt(34 / 4)) == pytest.approx(np.std(a, ddof=1))
    assert row["reference_sd"] == pytest.approx(math.sqrt(8 / 4)) == pytest.approx(np.std(b, ddof=1))
    assert row["delta_sd"] == pytest.approx(math.sqrt(26 / 4)) == pytest.approx(np.std(np.subtract(a, b), ddof=1))


def test_callers_pass_the_example_count_or_fall_back_to_the_tolerance():
    a, b = f32(ISSUE_CGI, ISSUE_N), f32(ISSUE_BENCH, ISSUE_N)
    df = tidy({"full": list(b), "v": list(a)})
    pr = S.paired(df, variant="v", reference="full")
    assert S.compare(pr)["p"] == 1.0 and S.compare(pr, n_examples=ISSUE_N)["p"] == 1.0
    pct = tidy({"full": list(f32(ISSUE_BENCH, ISSUE_N, 100.0)), "v": list(f32(ISSUE_CGI, ISSUE_N, 100.0))})
    assert S.compare(S.paired(pct, variant="v", reference="full"))["p"] == 1.0  # scale read from the values
    with pytest.raises(S.StatsError, match="not a whole number"):
        S.compare(pr, n_examples=70)  # proves compare hands the count to the test
    assert S.ablation_table(df, reference="full", n_examples=ISSUE_N).frame.loc[0, "p"] == 1.0
    with pytest.raises(S.StatsError, match="not a whole number"):
        S.ablation_table(df, reference="full", n_examples=70)
    col = df.assign(n_test=ISSUE_N)
    assert S.ablation_table(col, reference="full", n_examples="n_test").frame.loc[0, "p"] == 1.0
    with pytest.raises(S.StatsError, match="not a whole number"):
        S.ablation_table(col.assign(n_test=70), reference="full", n_examples="n_test")
    # runs without the count (older studies): the tolerance path, same exact p
    assert S.ablation_table(col.assign(n_test=np.nan), reference="full", n_examples="n_test").frame.loc[0, "p"] == 1.0
    assert S.ablation_table(df, reference="full", n_examples="n_test").frame.loc[0, "p"] == 1.0  # no such column
    mixed = col.assign(n_test=np.where(col["variant"] == "v", 71, 72))
    with pytest.raises(S.StatsError, match="same set"):
        S.ablation_table(mixed, reference="full", n_examples="n_test")

    # transfer: cases differ in N, so the count comes from a column
    kb = np.array([1950, 1940, 1960, 1932, 1971])
    ka = kb + np.array([2, 1, 1, -1, 3])
    two = pd.concat(
        [
            col.replace({"v": "cgi", "full": "bnn"}).assign(case="A"),
            tidy({"bnn": list(f32(kb, 1983)), "cgi": list(f32(ka, 1983))}).assign(case="B", n_test=1983),
        ],
        ignore_index=True,
    )
    per_case, _ = S.transfer_verdicts(two, method="cgi", baseline="bnn", n_examples="n_test")
    assert list(per_case["p"]) == [1.0, 0.25]
    with pytest.raises(S.StatsError, match="not a whole number"):
        S.transfer_verdicts(two.assign(n_test=71), method="cgi", baseline="bnn", n_examples="n_test")


def test_known_effect_is_detected_and_null_is_not():
    df = study({"boost": 2.0, "null": 0.0}, n=10, sd=0.5, seed=11)
    t = S.ablation_table(df, reference="full", rope=0.5).frame.set_index("variant")
    assert t.loc["boost", "verdict"] == "better" and t.loc["boost", "p_holm"] < 0.05
    assert t.loc["boost", "ci_low"] > 1.0 and t.loc["boost", "d_z_label"] == "large"
    assert t.loc["null", "verdict"] in ("inconclusive", "equivalent") and t.loc["null", "p_holm"] >= 0.05
    np.testing.assert_allclose(t["p_holm"], multipletests(t["p"], method="holm")[1])
    worse = S.ablation_table(study({"drop": -2.0}, seed=2), reference="full").frame
    assert worse.loc[0, "verdict"] == "worse"


def test_sign_flip_false_positive_rate_under_null():
    rng = np.random.default_rng(2024)
    ps = np.array([S.sign_flip_test(rng.normal(0, 1, 10)) for _ in range(300)])
    rate = float(np.mean(ps < 0.05))
    assert 0.01 < rate < 0.09


def test_ablation_table_warns_when_alpha_over_m_is_unreachable():
    df = study({"a": 2.0, "b": 2.0, "c": 2.0}, n=6, sd=0.3, seed=5)
    result = S.ablation_table(df, reference="full")
    t = result.frame
    assert list(t["variant"]) == ["a", "b", "c"] and (t["n"] == 6).all()
    # 3 comparisons need p < 0.0167; 6 pairs reach at best 2/64 = 0.031
    assert result.warnings and "needs p < alpha/m = 0.0167 for the first rejection" in result.warnings[0]
    assert result.family == "3 variants vs 'full'" and result.alpha == 0.05
    assert all(any("after Holm over 3" in w for w in ws) for ws in t["warnings"])
    assert (t["verdict"] == "inconclusive").all()
    with pytest.raises(ValueError, match="reference"):
        S.ablation_table(df, reference="nope")


def test_ablation_table_reports_unpaired_seeds():
    df = study({"v": 1.0}, n=8)
    df = df[~((df.variant == "v") & (df.seed == 3))]
    row = S.ablation_table(df, reference="full").frame.iloc[0]
    assert row["n"] == 7 and row["n_dropped_reference"] == 1 and row["n_dropped_variant"] == 0
    assert any("dropped" in w for w in row["warnings"])


# ------------------------------------------------------------------------------------------- transfer


def test_transfer_verdicts_negative_transfer_wtl_and_wilcoxon_warning():
    parts = []
    for i, (case, eff) in enumerate({"A": 2.0, "B": 1.5, "C": 0.0, "D": -2.0}.items()):
        d = study({"cgi": eff}, n=10, sd=0.4, seed=100 + i).replace({"full": "scratch"})
        parts.append(d.assign(case=case))
    df = pd.concat(parts, ignore_index=True)
    per_case, summary = S.transfer_verdicts(df, method="cgi", baseline="scratch")
    v = per_case.set_index("case")
    assert list(v["verdict"]) == ["better", "better", "inconclusive", "worse"]
    assert list(v["negative_transfer"]) == [False, False, False, True]
    np.testing.assert_allclose(v["p_holm"], multipletests(v["p"], method="holm")[1])
    assert (summary["wins"], summary["ties"], summary["losses"]) == (2, 1, 1)
    assert summary["negative_transfer_cases"] == ["D"]
    assert summary["wilcoxon_p"] == pytest.approx(sps.wilcoxon(v["delta"].to_numpy()).pvalue)
    assert summary["wilcoxon_min_p"] == pytest.approx(0.125)
    assert any("cannot be significant" in w for w in summary["warnings"])


# ------------------------------------------------------------------------------------ friedman/nemenyi


def test_friedman_matches_scipy_and_nemenyi_cd_table_value():
    rng = np.random.default_rng(3)
    wide = pd.DataFrame({"a": rng.normal(80, 1, 10), "b": rng.normal(81, 1, 10), "c": rng.normal(79, 1, 10)})
    res = S.friedman(wide)
    ref = sps.friedmanchisquare(wide["a"], wide["b"], wide["c"])
    assert res["statistic"] == pytest.approx(ref.statistic) and res["p"] == pytest.approx(ref.pvalue)
    assert res["q_alpha"] == pytest.approx(2.343, abs=1e-3)  # Demšar (2006), Table 5a, k = 3
    assert res["cd"] == pytest.approx(2.343 * math.sqrt(3 * 4 / 60), abs=1e-3)
    assert res["cd"] == pytest.approx(1.048, abs=1e-3)
    assert (res["n"], res["k"]) == (10, 3) and res["warnings"]
    assert res["ranks"].sum() == pytest.approx(6.0)  # 1 + 2 + 3 per row


def test_friedman_ranks_by_hand_and_errors():
    wide = pd.DataFrame({"a": [3.0, 3.0, 1.0], "b": [2.0, 2.0, 2.0], "c": [1.0, 1.0, 3.0], "d": [0, 0, 0.0]})
    ranks = S.friedman(wide)["ranks"]
    assert list(ranks) == pytest.approx([(1 + 1 + 3) / 3, 2.0, (3 + 3 + 1) / 3, 4.0])
    with pytest.raises(ValueError, match="at least 3"):
        S.friedman(wide[["a", "b"]])


# ------------------------------------------------------------------------------------------- marginal


def test_marginal_tests_match_scipy_and_carry_tpe_warning():
    rng = np.random.default_rng(9)
    df = pd.DataFrame({"opt": ["adam"] * 8 + ["sgd"] * 6 + ["rms"] * 5})
    df["acc"] = rng.normal(80, 1, len(df)) + (df["opt"] == "adam") * 1.5
    result = S.marginal_tests(df, param="opt", value="acc")
    out = result.frame
    row = out.set_index("level").loc["adam"]
    x, y = df.acc[df.opt == "adam"], df.acc[df.opt != "adam"]
    assert row["p_welch"] == pytest.approx(sps.ttest_ind(x, y, equal_var=False).pvalue)
    assert row["p_mwu"] == pytest.approx(sps.mannwhitneyu(x, y).pvalue)
    np.testing.assert_allclose(out["p_welch_holm"], multipletests(out["p_welch"], method="holm")[1])
    assert S.TPE_CONFOUNDING_WARNING in result.warnings
    pw = S.marginal_tests(df, param="opt", value="acc", mode="pairwise").frame
    assert len(pw) == 3 and set(pw["other"]) <= {"sgd", "rms"}


# ---------------------------------------------------------------------------------------------- misc


def test_methods_paragraph_names_every_procedure():
    text = S.methods_paragraph(
        n_seeds=10,
        alpha=0.05,
        rope=0.5,
        n_resamples=9999,
        seed=0,
        corrected_over="the 4 ablations",
        friedman_used=True,
        wilcoxon_used=True,
    )
    for phrase in (
        "sign-flip permutation",
        "2^10",
        "paired t-test",
        "Holm",
        "the 4 ablations",
        "BCa",
        "9,999",
        "seed (0)",
        "d_z",
        "A12",
        "Vargha",
        "ROPE",
        "Friedman",
        "Nemenyi",
        "Wilcoxon",
    ):
        assert phrase in text, phrase
    small = S.methods_paragraph(n_seeds=6, alpha=0.05, rope=None, n_resamples=999, seed=1, corrected_over="x")
    assert "percentile" in small and "ROPE" not in small and "Friedman" not in small


def test_stats_module_stays_free_of_torch_and_optuna():
    code = "import sys, ablate.analysis.stats; print(any(m in sys.modules for m in ('torch', 'optuna')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


# ------------------------------------------------------------------------------ caveats at their boundaries
def test_compare_defaults_to_alpha_005_and_warns_only_when_the_two_tests_disagree():
    df = study({"boost": 2.0}, n=10, sd=0.3, seed=4)
    row = S.compare(S.paired(df, variant="boost", reference="full"))
    assert row["verdict"] == "better" and row["p"] < 0.05 and row["p_t"] < 0.05
    assert not any("disagree" in w for w in row["warnings"])
    assert not any("smallest attainable p" in w for w in row["warnings"])  # 10 pairs can reach p < 0.05
    reachable = S.ablation_table(study({"a": 2.0, "b": 2.0}, n=10, sd=0.3, seed=5), reference="full")
    assert reachable.warnings == () and list(reachable.frame.columns[:10]) == S._FIRST  # the answer's columns first


def test_a_small_family_says_how_many_non_zero_pairs_it_has():
    """Six pairs, two of them tied: four non-zero pairs reach p = 1/8 at best, never below alpha."""
    df = tidy({"full": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "v": [1.0, 2.0, 4.0, 5.0, 6.0, 7.0]})
    row = S.compare(S.paired(df, variant="v", reference="full"))
    said = [w for w in row["warnings"] if "smallest attainable p" in w]
    assert said == [
        "with 4 non-zero pairs the smallest attainable p is 0.125; alpha=0.05: no effect can reach significance, "
        "however large (add seeds)"
    ]


def test_the_rope_note_needs_the_whole_interval_inside_the_rope():
    """Significant and partly outside the ROPE: no 'practically negligible' note; wholly inside: the note."""
    outside = S.compare(
        S.paired(study({"drop": -1.0}, n=10, sd=0.2, seed=1), variant="drop", reference="full"), rope=0.5
    )
    assert outside["verdict"] == "worse" and outside["ci_low"] < -0.5 and outside["ci_high"] <= 0.5
    assert not any("ROPE" in w for w in outside["warnings"])
    inside = S.compare(
        S.paired(study({"nudge": 0.3}, n=12, sd=0.02, seed=2), variant="nudge", reference="full"), rope=0.5
    )
    assert inside["verdict"] == "better" and inside["ci_low"] >= -0.5 and inside["ci_high"] <= 0.5
    assert any("practically negligible" in w for w in inside["warnings"])


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_an_example_count_must_be_a_positive_whole_number(n: float):
    with pytest.raises(S.StatsError, match="'n_test' must be a positive whole number"):  # named by its column
        S.ablation_table(study({"v": 1.0}).assign(n_test=n), reference="full", n_examples="n_test")


def test_only_cases_with_too_few_seeds_are_named_as_descriptives_only():
    few = study({"cgi": 1.0}, n=S.MIN_N_TESTS - 1, seed=3).assign(case="A")
    enough = study({"cgi": 1.0}, n=S.MIN_N_TESTS, seed=4).assign(case="B")
    _, summary = S.transfer_verdicts(pd.concat([few, enough]), method="cgi", baseline="full")
    said = [w for w in summary["warnings"] if "descriptives only" in w]
    assert said == [f"cases with fewer than {S.MIN_N_TESTS} paired seeds (descriptives only): A"]


@pytest.mark.parametrize(("n", "k", "approximate"), [(10, 6, True), (11, 6, False), (11, 5, True)])
def test_friedman_says_when_its_chi_square_is_approximate(n: int, k: int, approximate: bool):
    rng = np.random.default_rng(n * k)
    wide = pd.DataFrame(rng.normal(0, 1, (n, k)) + np.arange(k), columns=[f"v{i}" for i in range(k)])
    notes = S.friedman(wide)["warnings"]
    assert any("chi-square approximation" in w for w in notes) is approximate


def test_welch_is_undefined_for_a_level_with_one_trial():
    df = pd.DataFrame({"opt": ["adam"] + ["sgd"] * 6, "acc": [0.9, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75]})
    row = S.marginal_tests(df, param="opt", value="acc").frame.set_index("level").loc["adam"]
    assert math.isnan(row["p_welch"]) and any("Welch t undefined" in w for w in row["warnings"])


@pytest.mark.parametrize(
    ("n", "exact", "bca"),
    [(20, "all 2^20 = 1,048,576 sign patterns", True), (21, "99,999 random", True), (9, "all 2^9", False)],
)
def test_the_methods_paragraph_names_the_procedures_used_at_that_n(n: int, exact: str, bca: bool):
    text = S.methods_paragraph(n_seeds=n, alpha=0.05, rope=None, n_resamples=9999, seed=0, corrected_over="3 variants")
    assert exact in text and "). 95% confidence intervals" in text
    assert ("bias-corrected and accelerated (BCa)" in text) is bca and ("percentile bootstrap" in text) is not bca
    text = S.methods_paragraph(n_seeds=11, alpha=0.05, rope=None, n_resamples=9999, seed=0, corrected_over="3 variants")
    assert "bias-corrected and accelerated (BCa)" in text  # above MIN_N_BCA too, not only at it


def test_gain_curve_compares_every_budget_with_two_or_more_pairs():
    rows = [{"case": "A", "variant": "bnn", "seed": 0, "epoch": 0, "test_accuracy": 0.5}]  # no method at 0: skipped
    rows += [{"case": "A", "variant": v, "seed": 0, "epoch": 0.5, "test_accuracy": 0.5} for v in ("bnn", "cgi")]
    for seed in range(6):
        for epoch in (1, 2):
            rows.append(
                {"case": "A", "variant": "bnn", "seed": seed, "epoch": epoch, "test_accuracy": 0.5 + seed / 100}
            )
            rows.append(
                {"case": "A", "variant": "cgi", "seed": seed, "epoch": epoch, "test_accuracy": 0.6 + seed / 100}
            )
    rows.append({"case": "A", "variant": "bnn", "seed": 0, "epoch": 3, "test_accuracy": 0.5})
    rows.append({"case": "A", "variant": "cgi", "seed": 0, "epoch": 3, "test_accuracy": 0.6})  # one pair: left out
    out = S.gain_curve(pd.DataFrame(rows), method="cgi", baseline="bnn")
    assert list(out["epoch"]) == [1, 2] and (out["n"] == 6).all()
    assert out["delta"].tolist() == pytest.approx([0.1, 0.1])


def test_friedman_runs_on_two_complete_seeds_and_says_only_what_it_dropped():
    wide = pd.DataFrame({"a": [1.0, 2.0, np.nan], "b": [2.0, 3.0, 1.0], "c": [3.0, 4.0, 2.0]})
    dropped = S.friedman(wide)
    assert dropped["n"] == 2 and any("1 seeds with a missing variant were dropped" in w for w in dropped["warnings"])
    assert not any("dropped" in w for w in S.friedman(wide.dropna())["warnings"])


def test_marginal_rows_carry_each_level_mean_and_a_level_alone_gets_no_test():
    df = pd.DataFrame({"opt": ["adam"] * 3 + ["sgd"] * 3, "acc": [0.9, 0.8, 0.7, 0.5, 0.6, 0.4]})
    row = S.marginal_tests(df, param="opt", value="acc").frame.set_index("level").loc["adam"]
    assert (row["mean_level"], row["mean_other"], row["delta"]) == pytest.approx((0.8, 0.5, 0.3))
    alone = S.marginal_tests(df.assign(opt="adam"), param="opt", value="acc").frame.iloc[0]
    assert alone["n_other"] == 0 and math.isnan(alone["p_mwu"]) and math.isnan(alone["delta"])


def test_different_example_counts_name_both_variants_in_order():
    df = study({"v": 1.0}).assign(n_test=np.where(study({"v": 1.0})["variant"] == "v", 71, 72))
    with pytest.raises(S.StatsError, match="'v' vs 'full': runs report different 'n_test'"):
        S.ablation_table(df, reference="full", n_examples="n_test")


def test_friedman_warns_against_nemenyi_only_when_it_is_not_significant():
    rng = np.random.default_rng(1)
    strong = pd.DataFrame(rng.normal(0, 0.1, (12, 4)) + np.arange(4) * 3, columns=list("abcd"))
    result = S.friedman(strong)
    assert result["p"] < 0.05 and not any("not significant" in w for w in result["warnings"])
    flat = pd.DataFrame(rng.normal(0, 1, (12, 4)), columns=list("abcd"))
    assert any("not significant" in w for w in S.friedman(flat)["warnings"])


def test_two_equal_differences_leave_d_z_undefined_and_say_so():
    row = S.compare(S.paired(tidy({"full": [1.0, 2.0], "v": [2.0, 3.0]}), variant="v", reference="full"))
    assert row["n"] == 2 and math.isnan(row["d_z"])
    assert any("all paired differences are equal" in w for w in row["warnings"])


def test_the_defaults_are_the_seed_and_resamples_the_methods_paragraph_states():
    """seed 0 and 9,999 resamples: a default call gives exactly the numbers of the explicit one."""
    df = study({"v": 0.4}, n=10, sd=0.5, seed=8)
    pairs = S.paired(df, variant="v", reference="full")
    assert S.compare(pairs) == S.compare(pairs, seed=0, n_resamples=9999)
    cases = pd.concat([df.assign(case="A"), study({"v": 0.2}, n=10, seed=9).assign(case="B")])
    default, _ = S.transfer_verdicts(cases, method="v", baseline="full")
    explicit, _ = S.transfer_verdicts(cases, method="v", baseline="full", seed=0, n_resamples=9999)
    assert default[["ci_low", "ci_high"]].equals(explicit[["ci_low", "ci_high"]])
    curves = cases.assign(epoch=1)
    assert S.gain_curve(curves, method="v", baseline="full")[["ci_low", "ci_high"]].equals(
        S.gain_curve(curves, method="v", baseline="full", seed=0, n_resamples=9999)[["ci_low", "ci_high"]]
    )


def test_marginal_tests_flag_small_groups_and_test_a_group_of_one():
    small = pd.DataFrame({"opt": ["a"] * 3 + ["b"] * 3, "acc": [0.9, 0.8, 0.7, 0.5, 0.6, 0.4]})
    row = S.marginal_tests(small, param="opt", value="acc").frame.iloc[0]
    assert any("small groups (3 vs 3 trials)" in w for w in row["warnings"])
    large = pd.DataFrame({"opt": ["a"] * 6 + ["b"] * 6, "acc": np.linspace(0.4, 0.9, 12)})
    assert not any(
        "small groups" in w for w in S.marginal_tests(large, param="opt", value="acc").frame.iloc[0]["warnings"]
    )
    one = pd.DataFrame({"opt": ["a"] * 4 + ["b"], "acc": [0.9, 0.8, 0.7, 0.85, 0.1]})
    row = S.marginal_tests(one, param="opt", value="acc").frame.set_index("level").loc["a"]
    assert row["n_other"] == 1 and row["p_mwu"] == pytest.approx(sps.mannwhitneyu([0.9, 0.8, 0.7, 0.85], [0.1]).pvalue)


def test_wilcoxon_over_cases_is_1_when_no_case_moves():
    same = pd.concat([study({"cgi": 0.0}, n=6, sd=0.0, seed=s).assign(case=c) for s, c in ((1, "A"), (2, "B"))])
    _, summary = S.transfer_verdicts(same, method="cgi", baseline="full")
    assert summary["wilcoxon_p"] == 1.0 and summary["n_cases"] == 2


def test_welch_needs_variance_somewhere_and_uses_whatever_there_is():
    flat = pd.DataFrame({"opt": ["a"] * 3 + ["b"] * 3, "acc": [0.5, 0.5, 0.5, 0.75, 0.75, 0.75]})
    row = S.marginal_tests(flat, param="opt", value="acc").frame.iloc[0]
    assert math.isnan(row["p_welch"]) and any("Welch t undefined" in w for w in row["warnings"])
    one_sided = pd.DataFrame({"opt": ["a"] * 3 + ["b"] * 3, "acc": [0.5, 0.5, 0.5, 0.7, 0.71, 0.72]})
    row = S.marginal_tests(one_sided, param="opt", value="acc").frame.iloc[0]
    assert math.isfinite(row["p_welch"]) and not any("Welch" in w for w in row["warnings"])


def test_a_level_of_one_trial_still_gets_its_rank_test_and_four_trials_are_a_small_group():
    df = pd.DataFrame({"opt": ["a"] * 4 + ["b"], "acc": [0.9, 0.8, 0.7, 0.85, 0.1]})
    rows = S.marginal_tests(df, param="opt", value="acc").frame.set_index("level")
    assert math.isfinite(rows.loc["b", "p_mwu"]) and rows.loc["b", "n_level"] == 1
    four = pd.DataFrame({"opt": ["a"] * 4 + ["b"] * 6, "acc": np.linspace(0.4, 0.9, 10)})
    assert any(
        "small groups (4 vs 6" in w for w in S.marginal_tests(four, param="opt", value="acc").frame.iloc[0]["warnings"]
    )


def test_trials_without_the_parameter_are_counted_as_dropped():
    df = pd.DataFrame({"opt": ["a", "a", None, "b", "b"], "acc": [0.9, 0.8, 0.7, 0.5, 0.6]})
    result = S.marginal_tests(df, param="opt", value="acc")
    assert "1 trials with a missing 'opt' or 'acc' were dropped" in result.warnings


def test_one_comparison_is_a_family_of_one_for_holm():
    result = S.ablation_table(study({"v": 2.0}, n=5, sd=0.1, seed=3), reference="full")
    assert result.warnings and "Holm over 1 comparisons needs p < alpha/m = 0.05 " in result.warnings[0]


def test_welch_runs_with_variance_in_either_group_and_two_trials_each():
    cases = [
        [0.5, 0.6, 0.7, 0.75, 0.75, 0.75],  # variance in the first group only
        [0.5, 0.6, 0.8, 0.9, 0.95],  # two trials against three
    ]
    for acc in cases:
        df = pd.DataFrame({"opt": ["a"] * (len(acc) - 3) + ["b"] * 3, "acc": acc})
        rows = S.marginal_tests(df, param="opt", value="acc").frame  # each level against the other
        assert rows["p_welch"].map(math.isfinite).all(), acc


def test_a_budget_with_more_variants_than_the_two_compared_is_still_compared():
    rows = [
        {"case": "A", "variant": v, "seed": s, "epoch": 1, "test_accuracy": base + s / 100}
        for s in range(4)
        for v, base in (("bnn", 0.5), ("cgi", 0.6), ("other", 0.7))
    ]
    out = S.gain_curve(pd.DataFrame(rows), method="cgi", baseline="bnn")
    assert list(out["epoch"]) == [1] and out["delta"].tolist() == pytest.approx([0.1])


def test_ties_use_the_tolerance_of_fractions_by_default():
    """A null mean 7e-7 below the observed one is no tie for values of magnitude 1 (tolerance 2**-21, about
    4.8e-7) and is one for magnitude 2: the default is the magnitude of an accuracy."""
    d = [7e-7, 1.0]
    assert S.sign_flip_test(d, alternative="greater") == 0.25 == S.sign_flip_test(d, alternative="greater", scale=1.0)
    assert S.sign_flip_test(d, alternative="greater", scale=2.0) == 0.5


def test_ci_labels_name_the_level_and_a_level_outside_0_1_is_refused():
    assert S.ci_label(["BCa"]) == "BCa 95% CI" and S.ci_label(["percentile"], 0.9) == "percentile bootstrap 90% CI"
    assert S.ci_label([]) == "95% CI"
    for bad in (-0.5, 0.0, 1.0, 1.5):
        with pytest.raises(S.StatsError, match="confidence must be in"):
            S.bootstrap_ci([1.0, 2.0, 3.0], confidence=bad)


def test_procedures_at_their_edges():
    """One pair has n=1; 18 pairs are enumerated exactly (2/2^18), 21 take the Monte Carlo +1 correction; A12 of
    an empty group is undefined."""
    assert S.bootstrap_ci([0.5]).n == 1 and S.bootstrap_ci([]).n == 0
    d = np.linspace(-1.0, 2.0, 12) ** 3
    assert S.bootstrap_ci(d) == S.bootstrap_ci(d, n_resamples=9999) != S.bootstrap_ci(d, n_resamples=9998)  # default
    with pytest.raises(S.StatsError, match="n must be >= 0"):
        S.min_attainable_p(-1)
    assert S.sign_flip_test(np.ones(18)) == 2 / 2**18
    # none of the 99,999 seeded patterns is as extreme: (0 + 1) / (99,999 + 1), doubled for two sides
    assert S.sign_flip_test(np.ones(21)) == pytest.approx(2 * 1 / 100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # undefined, said by NaN, without scipy or numpy warning on the way
        assert math.isnan(S.a12([], [1.0, 2.0])) and math.isnan(S.a12([1.0], []))
    # BCa that cannot be computed (one resample: no spread to correct) falls back to the percentile interval
    ci = S.bootstrap_ci(np.linspace(-1.0, 2.0, 12), n_resamples=1)
    assert ci.method == "percentile" and "fell back to the percentile interval" in " ".join(ci.warnings)
    assert np.isfinite(ci.low) and np.isfinite(ci.high)
