"""Paired, small-sample significance statistics for ablation and transfer tables (the API; over 600 lines
because its docstring lists every public name and convention, as rliable's does).

Why this module exists: researchers paste these tables into papers, so every number must come from a
named, citable procedure, and every small-sample limitation must be said out loud (as a warning string
in the row) instead of being hidden behind a p-value.

Conventions
-----------
* Runs are paired by an explicit seed key (never by position): ``delta = variant - reference`` per seed.
* Higher values are better (accuracy). For a loss, negate the column before calling.
* Functions are pure; warnings are returned as strings (a row's ``warnings`` field or column, a table's
  :class:`~ablate.analysis.results.TableResult` ``warnings``), never emitted through :mod:`warnings`, so that
  they end up in the report next to the number.
* The exact sign-flip test enumerates 2**n sign patterns: instant for n <= 16, about 5 s at n = 20;
  above 20 pairs a seeded Monte Carlo p with 99,999 patterns is used (flagged in the row's warnings).
* Bad input (duplicate seeds, NaN passed to a statistic, fewer than 3 variants for Friedman) raises
  :class:`StatsError`, which is both an :class:`~ablate.errors.AblateError` and a :class:`ValueError`.

Layout: the procedures (pairing, intervals, tests, effects, verdict) live in :mod:`ablate.analysis.procedures`;
this module builds the tables from them and re-exports them, so ``from ablate.analysis import stats`` is the
whole function-first API (as rliable's is).

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
``ablation_table(df, *, reference, ..., n_examples=None) -> TableResult``  (rows = variants, Holm across rows)
    ``TableResult(frame, warnings, alpha, family)``: the rows, and the warnings that hold for the whole table.
``transfer_verdicts(df, *, method, baseline, case_col="case", ..., n_examples=None) -> (DataFrame, dict)``
    ``n_examples``: the size N of the set the metric is a fraction of (an int, or the name of a column
    holding it per run; a missing column or NaN = the tolerance path), for integer tie counting.
``friedman(df_wide, *, alpha=0.05) -> dict``  (Friedman + average ranks + Nemenyi CD)
``marginal_tests(df, *, param, value, mode="one-vs-rest", alpha=0.05) -> TableResult``
``methods_paragraph(*, n_seeds, alpha, rope, n_resamples, seed, corrected_over, ...) -> str``
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from ablate.analysis.procedures import (
    CI,
    MAX_EXACT,
    MIN_N_BCA,
    MIN_N_TESTS,
    TIE_RTOL,
    TPE_CONFOUNDING_WARNING,
    Paired,
    StatsError,
    a12,
    a12_magnitude,
    bootstrap_ci,
    ci_label,
    cohens_dz,
    dz_magnitude,
    holm,
    min_attainable_p,
    paired,
    paired_t,
    sign_flip_test,
    verdict,
)
from ablate.analysis.results import TableResult

__all__ = [
    "CI",
    "MIN_N_BCA",
    "MIN_N_TESTS",
    "TIE_RTOL",
    "TPE_CONFOUNDING_WARNING",
    "Paired",
    "TableResult",
    "StatsError",
    "a12",
    "a12_magnitude",
    "ablation_table",
    "bootstrap_ci",
    "ci_label",
    "cohens_dz",
    "compare",
    "dz_magnitude",
    "friedman",
    "gain_curve",
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
) -> TableResult:
    """One row per variant vs ``reference``, Holm-adjusted over the rows of this table.

    Returns a :class:`TableResult`: the rows in ``frame``; table-level warnings (e.g. alpha/m unreachable for
    some rows) in ``warnings``; the Holm family in ``family``.
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
    return TableResult(out, tuple(table_notes), alpha=alpha, family=f"{m} variants vs {reference!r}")


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
) -> TableResult:
    """Welch t and Mann–Whitney U per level of a categorical parameter (vs the rest, or pairwise), Holm.

    For sensitivity studies whose trials are unpaired. Returns a :class:`TableResult`; the TPE confounding
    caveat is always among its ``warnings`` because it applies by construction.
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
    notes = [TPE_CONFOUNDING_WARNING]
    dropped = len(df) - len(data)
    if dropped:
        notes.append(f"{dropped} trials with a missing {param!r} or {value!r} were dropped")
    return TableResult(out, tuple(notes), alpha=alpha, family=f"the levels of {param!r} ({mode})")


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

    ``curves`` is long: case, variant, seed, epoch, value (``ablate.analysis.tidy.curve_frame``). With a constant
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
