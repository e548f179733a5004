"""The seeds advisor: how many paired seeds detect a difference Δ under the exact sign-flip test with Holm.

Why: with few seeds the exact test cannot reach α at all (5 pairs: p >= 0.0625), and Holm over m comparisons
raises the bar to α/m for the first rejection. A researcher needs the number of seeds *before* running, for the
test the reports actually use, so power is simulated for that test rather than read off a t-test formula.

Model: paired differences are independent N(Δ, sd²). Each simulated experiment draws m comparisons with the
same Δ, tests each with the two-sided sign-flip test of the mean (every one of the 2**n sign patterns when
2**n <= ``patterns``, else ``patterns`` random ones, seeded), Holm-adjusts the m p-values, and counts a
detection when a comparison is rejected at α with the sign of Δ. The noncentral t (statsmodels'
``TTestPower`` at α/m, Holm's first step) is the cross-check. For one comparison the permutation test needs
a few more seeds than it; over m comparisons that share Δ it can need fewer, because Holm's later steps
test at α/(m−1), …, α (seen in a confirmation: 63 simulated against 77 by the t).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ablate import record
from ablate.analysis import stats, tidy
from ablate.errors import AblateError

__all__ = ["Advice", "exact_floor", "from_differences", "power", "seeds_needed", "t_seeds"]

N_MAX = 200
_CHUNK = 512


@dataclass(frozen=True)
class Advice:
    """How many paired seeds a comparison needs; ``n`` is None when even ``n_max`` seeds are not enough."""

    n: int | None
    power_at_n: float
    delta: float
    sd: float
    alpha: float
    m: int
    target: float
    t_n: int | None  # the noncentral-t answer at alpha/m (cross-check)
    n_max: int
    sims: int
    seed: int

    def text(self) -> str:
        if self.n is None:
            return f"more than {self.n_max}"
        return str(self.n)

    def shown(self) -> str:
        """The figure a report shows wherever it gives this comparison's seeds (one text in every table): the
        simulated exact-test answer, and past ``n_max`` the noncentral t's, which is not capped."""
        if self.n is None and self.t_n is not None and self.t_n > self.n_max:
            return f"{self.text()}, ≈ {self.t_n} by the noncentral t"
        return self.text()


def _check(delta: float, sd: float, alpha: float, m: int, target: float) -> None:
    if not (math.isfinite(delta) and math.isfinite(sd)):
        raise AblateError(f"delta={delta} and sd={sd} must be finite numbers")
    if sd < 0:
        raise AblateError(f"sd={sd} must be >= 0")
    if not 0 < alpha < 1:
        raise AblateError(f"alpha={alpha} must be in (0, 1)")
    if m < 1:
        raise AblateError(f"m={m} comparisons must be >= 1")
    if not 0 < target < 1:
        raise AblateError(f"power={target} must be in (0, 1)")


def _signs(n: int, patterns: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """All 2**n sign patterns (exact) or ``patterns`` random ones; rows are patterns."""
    if 2**n <= patterns:
        grid = ((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1).astype(float)
        return 1.0 - 2.0 * grid, True
    return rng.choice(np.array([-1.0, 1.0]), size=(patterns, n)), False


def sign_flip_p(diffs: np.ndarray, signs: np.ndarray, exact: bool) -> np.ndarray:
    """Two-sided sign-flip p of each row's mean (rows: experiments), ties counted as extreme."""
    out = np.empty(diffs.shape[0])
    for start in range(0, diffs.shape[0], _CHUNK):
        d = diffs[start : start + _CHUNK]
        observed = np.abs(d.sum(axis=1))
        null = np.abs(np.abs(d) @ signs.T)  # |sum of |d_i| * s_i| per pattern
        tol = 1e-9 * np.maximum(1.0, np.abs(d).sum(axis=1))
        count = (null >= (observed - tol)[:, None]).sum(axis=1)
        out[start : start + _CHUNK] = count / signs.shape[0] if exact else (count + 1) / (signs.shape[0] + 1)
    return np.minimum(out, 1.0)


def holm_rows(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values along each row (the family is a row's m comparisons)."""
    m = p.shape[1]
    order = np.argsort(p, axis=1)
    ranked = np.take_along_axis(p, order, axis=1) * (m - np.arange(m))[None, :]
    ranked = np.minimum(np.maximum.accumulate(ranked, axis=1), 1.0)
    out = np.empty_like(p)
    np.put_along_axis(out, order, ranked, axis=1)
    return out


def power(
    n: int,
    delta: float,
    sd: float,
    *,
    alpha: float = 0.05,
    m: int = 1,
    sims: int = 2000,
    seed: int = 0,
    patterns: int = 4096,
) -> float:
    """Probability that one of m comparisons with true mean difference Δ is detected (Holm, α) with n seeds."""
    _check(delta, sd, alpha, m, 0.5)
    if n < 1 or delta == 0:
        return 0.0 if n < 1 else float("nan")
    rng = np.random.default_rng(seed)
    diffs = rng.normal(delta, sd, size=(sims * m, n)) if sd > 0 else np.full((sims * m, n), float(delta))
    signs, exact = _signs(n, patterns, rng)
    p = holm_rows(sign_flip_p(diffs, signs, exact).reshape(sims, m))
    right_way = np.sign(diffs.sum(axis=1)).reshape(sims, m) == np.sign(delta)
    return float(np.mean((p < alpha) & right_way))


def t_seeds(delta: float, sd: float, *, alpha: float = 0.05, m: int = 1, target: float = 0.8) -> int | None:
    """Paired seeds for power ``target`` by the noncentral t (statsmodels TTestPower, two-sided, at α/m)."""
    from statsmodels.stats.power import TTestPower

    # Imported before our filter on purpose: importing this module installs statsmodels' own "always"
    # filter for ConvergenceWarning, which would otherwise land in front of ours on the first failure.
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    _check(delta, sd, alpha, m, target)
    if delta == 0:
        return None
    if sd == 0:
        return 2
    try:
        with warnings.catch_warnings():  # no convergence (huge effects) is the nan handled below
            warnings.simplefilter("ignore", ConvergenceWarning)
            n = TTestPower().solve_power(effect_size=abs(delta) / sd, alpha=alpha / m, power=target)
    except (ValueError, RuntimeError):
        return None
    n = float(np.asarray(n).reshape(-1)[0])
    return int(math.ceil(n)) if math.isfinite(n) else None


def exact_floor(*, alpha: float = 0.05, m: int = 1) -> int:
    """The fewest paired seeds with which the exact sign-flip test can reach α/m at all (Holm's first step):
    with n seeds its smallest two-sided p is 2/2ⁿ, whatever the effect."""
    return max(2, math.ceil(math.log2(2 * m / alpha)))


def seeds_needed(
    delta: float,
    sd: float,
    *,
    alpha: float = 0.05,
    m: int = 1,
    target: float = 0.8,
    n_max: int = N_MAX,
    sims: int = 2000,
    seed: int = 0,
) -> Advice:
    """The smallest n with simulated power >= ``target`` (searched from the smallest n that can reach α/m)."""
    _check(delta, sd, alpha, m, target)

    memo: dict[int, float] = {}

    def pw(n: int) -> float:
        if n not in memo:
            memo[n] = power(n, delta, sd, alpha=alpha, m=m, sims=sims, seed=seed)
        return memo[n]

    t_n = t_seeds(delta, sd, alpha=alpha, m=m, target=target)
    advice = dict(delta=delta, sd=sd, alpha=alpha, m=m, target=target, t_n=t_n, n_max=n_max, sims=sims, seed=seed)
    if delta == 0:
        return Advice(None, 0.0, **advice)
    lo = exact_floor(alpha=alpha, m=m)  # below this even unanimous signs give p >= alpha/m
    if lo > n_max or pw(n_max) < target:
        return Advice(None, pw(min(lo, n_max)) if lo > n_max else pw(n_max), **advice)
    if pw(lo) >= target:
        return Advice(lo, pw(lo), **advice)
    hi = lo
    while True:  # exponential search for a bracket, then bisection
        hi = min(n_max, hi * 2)
        if pw(hi) >= target:
            break
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pw(mid) >= target:
            hi = mid
        else:
            lo = mid
    return Advice(hi, pw(hi), **advice)


def from_differences(diffs: ArrayLike, **kw: float | int) -> Advice:
    """Seeds for the Δ and sd observed in a study's paired differences (the plan for a follow-up)."""
    d = np.asarray(diffs, dtype=float).reshape(-1)
    d = d[np.isfinite(d)]
    if d.size < 2:
        raise AblateError(f"{d.size} paired difference(s): need at least 2 to estimate their spread")
    return seeds_needed(float(d.mean()), float(d.std(ddof=1)), **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Observed:
    """One comparison of a design study, as the seeds advisor plans from it: its paired differences' mean and SD."""

    label: str
    delta: float
    sd: float
    n: int


def observed_differences(study: Any, metric: str) -> list[Observed]:
    """Per comparison of a design or confirmation study (each variant vs the design's baseline, per case): the
    mean and SD of its paired differences, for the comparisons with at least 2 paired seeds."""
    name = study.study_name
    definition = record.read_definition(study)
    if definition.kind != "design":
        raise AblateError(
            f"study {name!r} is a {definition.kind} study: give a design or confirmation study, or --sd and --delta"
        )
    df = tidy.design_frame(study, definition)
    design = definition.design or {}
    titles = record.variant_titles(design)
    reference = titles.get(design.get("baseline", ""), design.get("baseline", ""))
    rows = []
    for c in sorted(df["case"].unique()) if not df.empty else []:
        sub = df[df["case"] == c]
        for v in sub["variant"].unique():
            if v == reference:
                continue
            pr = stats.paired(sub, variant=v, reference=reference, value=metric)
            if pr.n >= 2:
                diff = pr.diff
                rows.append(Observed(f"{c}: {v} vs {reference}", float(diff.mean()), float(diff.std(ddof=1)), pr.n))
    if not rows:
        raise AblateError(f"study {name!r} has no comparison with at least 2 paired seeds")
    return rows
