"""The seeds advisor: its simulated power agrees with the real test (ablate.analysis.stats), its n the smallest."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from ablate.analysis import power, stats


def power_with_the_real_test(n: int, delta: float, sd: float, *, alpha: float, m: int, reps: int, seed: int) -> float:
    """Independent check: the exact sign-flip test and Holm of ablate.analysis.stats, the ones every report uses."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        d = rng.normal(delta, sd, size=(m, n))
        raw = [stats.sign_flip_test(row) for row in d]
        # Holm of a family of one is the p itself; statsmodels' Holm runs gc.collect() on every call
        p_adj = np.asarray(raw) if m == 1 else stats.holm(raw)
        hits += int(np.sum((p_adj < alpha) & (np.sign(d.mean(axis=1)) == np.sign(delta))))
    return hits / (reps * m)


@pytest.mark.parametrize(
    ("n", "delta", "sd", "m"),
    [(8, 0.01, 0.012, 1), (10, 0.008, 0.01, 3)],
    ids=["n8-m1", "n10-holm3"],
)
def test_simulated_power_matches_the_real_test_within_5pp(n: int, delta: float, sd: float, m: int) -> None:
    advised = power.power(n, delta, sd, alpha=0.05, m=m, sims=4000, seed=1)
    real = power_with_the_real_test(n, delta, sd, alpha=0.05, m=m, reps=600 // m, seed=2)
    assert 0.15 < real < 0.95  # a setting where power is neither trivially 0 nor 1
    assert advised == pytest.approx(real, abs=0.05)


def test_seeds_needed_is_the_smallest_n_reaching_the_target() -> None:
    a = power.seeds_needed(0.01, 0.01, alpha=0.05, m=1, target=0.8, sims=2000)
    assert a.n is not None and a.power_at_n >= 0.8
    assert power.power(a.n - 1, 0.01, 0.01, alpha=0.05, m=1, sims=2000) < 0.8
    assert a.t_n is not None and abs(a.n - a.t_n) <= 2  # the noncentral t agrees for one comparison


def test_holm_needs_more_seeds_and_small_n_can_never_reach_alpha() -> None:
    one = power.seeds_needed(0.01, 0.01, m=1, sims=1000).n
    three = power.seeds_needed(0.01, 0.01, m=3, sims=1000).n
    assert one is not None and three is not None and three > one
    # a huge effect: the answer is the smallest n whose unanimous signs give p = 2/2**n < alpha/m
    assert power.seeds_needed(1.0, 0.001, m=3).n == math.ceil(math.log2(2 * 3 / 0.05)) == 7
    assert power.power(5, 1.0, 0.001, m=1) == 0.0  # 5 pairs: p >= 0.0625 whatever the effect


def test_cli_prints_the_advice(env, run_cli) -> None:
    r = run_cli("seeds", "--sd", "0.01", "--delta", "0.01", "--sims", 1000)
    assert r.code == 0, r.err
    assert str(power.seeds_needed(0.01, 0.01, sims=1000).n) in r.out
    r = run_cli("seeds", "--delta", "0.01")
    assert r.code == 2 and r.err.startswith("error: give a study, or both --sd and --delta")


def test_a_huge_effect_the_t_solver_cannot_place_is_none_and_silent() -> None:
    """statsmodels' root finder fails for an effect this large; the answer is None, and its
    ConvergenceWarning must not reach the user's terminal. A fresh interpreter, because the bug only
    shows on the first import of statsmodels' warning classes (which install an "always" filter)."""
    code = "from ablate.analysis import power; print(power.t_seeds(10.0, 0.001, m=3))"
    r = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "None"
    assert "ConvergenceWarning" not in r.stderr, r.stderr
