"""Tests for cross generative initialisation (Algorithm 1): weight points and every CGI switch.

Run-level tests spy on the technique's calls (``fit_bnn``, ``assign``) to see the source and target BNNs at
the moment their training starts, and rebuild the untouched inits with the public ``new_bnn`` helper.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from ablate_testing.weights import contained

import crossgen.techniques.base as base_mod
from crossgen import CASES, CGIConfig, ConfigError, Fidelity, RunConfig, RunResult, run
from crossgen.data import Task, load_tasks
from crossgen.nets import layer_sizes
from crossgen.techniques.base import Context, StageTimer, new_bnn
from crossgen.weightpoints import (
    GROUPS,
    extract,
    group_sizes,
)

cgi_mod = importlib.import_module("crossgen.techniques.cgi")  # the package re-exports a function of that name

WIDTH = 16
FID = Fidelity(name="t", data="digits", width=WIDTH, epochs=1, source_epochs=1, eval_samples=2)


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    return load_tasks("digits", max_train=300, max_eval=120, log=lambda *_: None)  # small: keep the suite fast


def config(case: str = "T1M1_T2M2", seed: int = 0, **cgi: object) -> RunConfig:
    values: dict = {"M": 40, "K": 2} | cgi
    return RunConfig(case=case, technique="cgi", seed=seed, fidelity=FID, cgi=CGIConfig(**values))


def go(cfg: RunConfig, tasks: dict[str, Task]) -> RunResult:
    return run(cfg, tasks=tasks, log=lambda *_: None)


def context(cfg: RunConfig, tasks: dict[str, Task]) -> Context:
    case = cfg.case_spec
    return Context(cfg, tasks[case.source_task], tasks[case.target_task], torch.device("cpu"), StageTimer())


@dataclass
class Spy:
    """What the CGI technique did: the source/target weight points as training starts, and every assign."""

    source_start: dict[str, np.ndarray] | None = None
    target_start: dict[str, np.ndarray] | None = None
    target_streams: tuple[int, int] | None = None
    assigned: list[tuple[dict[str, int], dict[str, np.ndarray], str]] = field(default_factory=list)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    record = Spy()
    real_fit, real_assign = base_mod.fit_bnn, cgi_mod.assign

    def spy_fit(bnn, *args, **kwargs):
        if kwargs.get("what") == "source BNN":
            record.source_start = extract(bnn)
        if kwargs.get("what") == "target BNN":
            record.target_start = extract(bnn)
            record.target_streams = (kwargs["generator"].initial_seed(), kwargs["noise"].initial_seed())
        return real_fit(bnn, *args, **kwargs)

    def spy_assign(bnn, points, *, transfer="mu_sigma", input_layer="middle"):
        record.assigned.append((group_sizes(bnn), {g: np.array(p) for g, p in points.items()}, transfer))
        return real_assign(bnn, points, transfer=transfer, input_layer=input_layer)

    monkeypatch.setattr(base_mod, "fit_bnn", spy_fit)  # every technique's SVI goes through base.fit_bnn_on
    monkeypatch.setattr(cgi_mod, "assign", spy_assign)
    return record


# ---------------------------------------------------------------------------------------------- switches


def test_init_random_leaves_source_at_its_own_init(tasks: dict[str, Task], spy: Spy) -> None:
    cfg = config(init="random")
    result = go(cfg, tasks)
    assert "initialisation" not in result.stages
    fresh = extract(new_bnn(context(cfg, tasks), "source"))
    assert spy.source_start is not None
    for g in GROUPS:
        np.testing.assert_array_equal(spy.source_start[g], fresh[g])
    assert len(spy.assigned) == 1  # only the target gets generated points


def test_init_cross_draws_source_from_target_bootstrap(tasks: dict[str, Task], spy: Spy) -> None:
    m = 5
    cfg = config(init="cross", M=m)
    result = go(cfg, tasks)
    assert "initialisation" in result.stages
    ctx = context(cfg, tasks)
    target_init = extract(new_bnn(ctx, "target"))
    source_init = extract(new_bnn(ctx, "source"))
    assert spy.source_start is not None
    for g in GROUPS:
        start = spy.source_start[g]
        assert start.shape == source_init[g].shape
        # line 8: θ_init_s ← θ_bb_t, group by group, out of the M bootstrapped target points
        assert contained(start, target_init[g])
        other = "classification" if g == "middle" else "middle"
        assert not contained(start[:1], target_init[other])
        assert 1 <= len(np.unique(start.round(5), axis=0)) <= m
        assert not contained(start, source_init[g])
    source_sizes, _, transfer = spy.assigned[0]
    assert source_sizes == group_sizes(new_bnn(ctx, "source"))
    assert transfer == "mu_sigma"


def test_cross_init_can_start_the_source_from_every_bootstrapped_row(
    tasks: dict[str, Task], spy: Spy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Line 8 draws from all M rows of θ_bb_t: with small M and many source weights, every row is used.

    An off-by-one draw (rows 0..M-2 only) passes the containment checks above; it fails here.
    """
    m = 4
    theta_bb: list[np.ndarray] = []
    real = cgi_mod.bootstrap

    def keep_bootstrap(points, m, rng, *, method="uniform"):
        out = real(points, m, rng, method=method)
        theta_bb.append(out)
        return out

    monkeypatch.setattr(cgi_mod, "bootstrap", keep_bootstrap)
    cfg = config(init="cross", M=m)
    go(cfg, tasks)
    sizes = group_sizes(new_bnn(context(cfg, tasks), "source"))
    assert spy.source_start is not None and len(theta_bb) == len(GROUPS)
    for g, rows in zip(GROUPS, theta_bb, strict=True):
        assert sizes[g] >= 30 * m  # so missing a row by chance has probability < m (1 - 1/m)^(30 m) ≈ 1e-15
        assert len(np.unique(rows, axis=0)) == m  # distinct rows, so "every row used" is visible in the values
        start = spy.source_start[g]
        assert contained(start, rows)
        for row in rows:
            assert contained(row[None, :], start), f"{g}: bootstrapped row {row} never starts a source weight"


@pytest.mark.parametrize(("scope", "names"), [("shared", {"shared"}), ("separate", {"middle", "classification"})])
def test_scope_controls_the_number_of_generators(tasks: dict[str, Task], scope: str, names: set[str]) -> None:
    m = 30
    cfg = config(scope=scope, M=m)
    art = go(cfg, tasks).artefacts
    assert art["n_generators"] == len(names)
    assert set(art["generators"]) == names
    assert set(art["fit_points"]) == names
    source = group_sizes(new_bnn(context(cfg, tasks), "source"))
    if scope == "shared":
        assert art["fit_points"]["shared"] == 2 * m + sum(source.values())
    else:
        assert art["fit_points"] == {g: m + source[g] for g in GROUPS}
    for name in names:
        assert art["generators"][name]["n_fit_points"] == art["fit_points"][name]


@pytest.mark.parametrize(("generator", "k", "expected"), [("gmm", 1, 1), ("gmm", 3, 3), ("gaussian", 3, 1)])
def test_k_components_are_used(tasks: dict[str, Task], generator: str, k: int, expected: int) -> None:
    art = go(config(generator=generator, K=k), tasks).artefacts
    for summary in art["generators"].values():
        assert summary["kind"] == generator
        assert summary["n_components"] == expected
        assert len(summary["weights"]) == expected
        assert np.array(summary["means"]).shape == (expected, 2)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "tied", "spherical"])
def test_covariance_type_reaches_the_generator(tasks: dict[str, Task], covariance_type: str) -> None:
    art = go(config(covariance_type=covariance_type), tasks).artefacts
    assert {s["covariance_type"] for s in art["generators"].values()} == {covariance_type}


def test_m_points_are_drawn_and_fit_points_capped(tasks: dict[str, Task]) -> None:
    m, cap = 25, 30
    cfg = config(M=m, max_fit_points=cap)
    art = go(cfg, tasks).artefacts
    source = group_sizes(new_bnn(context(cfg, tasks), "source"))
    assert source["middle"] > cap  # so the cap bites on the middle group
    assert art["fit_points"] == {g: m + min(source[g], cap) for g in GROUPS}
    for g in GROUPS:
        assert len(art["points"][g]["target_bootstrap"]) == m  # θ_bb_t has M rows (all kept for the figure)
        assert len(art["points"][g]["source_posterior"]) == min(source[g], cap)


def test_generated_points_are_what_the_target_starts_from(tasks: dict[str, Task], spy: Spy) -> None:
    cfg = config()
    art = go(cfg, tasks).artefacts
    assert spy.target_start is not None
    for g in GROUPS:
        generated = np.array(art["points"][g]["generated"])
        assert len(generated) == min(1000, group_sizes(new_bnn(context(cfg, tasks), "target"))[g])
        assert contained(generated, spy.target_start[g], tol=1e-4)  # artefacts are rounded to 5 decimals


@pytest.mark.parametrize("transfer", ["mu", "mu_sigma"])
def test_transfer_mu_leaves_sigma_at_init(tasks: dict[str, Task], spy: Spy, transfer: str) -> None:
    cfg = config(transfer=transfer)
    go(cfg, tasks)
    ctx = context(cfg, tasks)
    target_init, source_init = extract(new_bnn(ctx, "target")), extract(new_bnn(ctx, "source"))
    assert spy.target_start is not None and spy.source_start is not None
    assert all(t == transfer for _, _, t in spy.assigned) and len(spy.assigned) == 2
    for g in GROUPS:
        assert not np.allclose(spy.target_start[g][:, 0], target_init[g][:, 0])  # μ always transferred
        assert not np.allclose(spy.source_start[g][:, 0], source_init[g][:, 0])
        same_target_sigma = np.array_equal(spy.target_start[g][:, 1], target_init[g][:, 1])
        same_source_sigma = np.array_equal(spy.source_start[g][:, 1], source_init[g][:, 1])
        assert same_target_sigma == same_source_sigma == (transfer == "mu")


def test_target_warmup(tasks: dict[str, Task]) -> None:
    result = go(config(target_warmup_epochs=2), tasks)
    assert "target_warmup" in result.stages
    assert len(result.history["target_warmup"]) == 2
    assert "target_warmup" not in go(config(), tasks).stages


def test_record_generators_off(tasks: dict[str, Task]) -> None:
    result = go(config().with_(record_generators=False), tasks)
    assert "generators" not in result.artefacts and "points" not in result.artefacts
    assert result.artefacts["n_generators"] == 2


# ------------------------------------------------------------------------------------------------ shapes


def _expected_groups(model: str, n_classes: int) -> dict[str, int]:
    sizes = layer_sizes(model, 64, n_classes, WIDTH, bayesian=True)
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    middle = sum(a * b + b for a, b in pairs[:-1])
    a, b = pairs[-1]
    return {"middle": middle, "classification": a * b + b}


@pytest.mark.parametrize("case", CASES)
def test_generated_shapes_match_every_architecture_pair(tasks: dict[str, Task], spy: Spy, case: str) -> None:
    cfg = config(case=case)
    result = go(cfg, tasks)
    spec = cfg.case_spec
    (src_sizes, src_points, _), (tgt_sizes, tgt_points, _) = spy.assigned
    assert src_sizes == _expected_groups(spec.source_model, tasks[spec.source_task].n_classes)
    assert tgt_sizes == _expected_groups(spec.target_model, tasks[spec.target_task].n_classes)
    for g in GROUPS:
        assert src_points[g].shape == (src_sizes[g], 2)
        assert tgt_points[g].shape == (tgt_sizes[g], 2)
        assert np.isfinite(tgt_points[g]).all()
    assert 0.0 <= result.val_accuracy <= 1.0 and 0.0 <= result.test_accuracy <= 1.0


# ------------------------------------------------------------------------------------------- degenerate


@pytest.mark.parametrize(("generator", "k"), [("gmm", 1), ("gaussian", 1), ("gaussian", 4)])
def test_single_bootstrap_point_does_not_crash(tasks: dict[str, Task], spy: Spy, generator: str, k: int) -> None:
    result = go(config(M=1, K=k, generator=generator), tasks)
    assert math.isfinite(result.val_accuracy) and math.isfinite(result.test_accuracy)
    # with M = 1 every source weight point of a group starts from the same bootstrapped point
    assert spy.source_start is not None
    for g in GROUPS:
        assert len(np.unique(spy.source_start[g], axis=0)) == 1
        assert len(result.artefacts["points"][g]["target_bootstrap"]) == 1


def test_m_smaller_than_k_is_rejected_at_construction() -> None:
    with pytest.raises(ConfigError, match="M=2 is smaller than K=5"):
        CGIConfig(M=2, K=5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"K": 0}, "K="),
        ({"M": 0}, "M="),
        ({"init": "warm"}, "init="),
        ({"generator": "flow"}, "generator="),
        ({"scope": "per_layer"}, "scope="),
        ({"bootstrap": "parametric"}, "bootstrap="),
        ({"transfer": "sigma"}, "transfer="),
    ],
)
def test_invalid_cgi_config_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        CGIConfig(**kwargs)


# ----------------------------------------------------------------------------------------- determinism


def test_same_seed_same_result_other_seed_differs(tasks: dict[str, Task]) -> None:
    a, b = go(config(seed=3), tasks), go(config(seed=3), tasks)
    assert (a.val_accuracy, a.test_accuracy) == (b.val_accuracy, b.test_accuracy)
    assert a.history == b.history
    assert a.artefacts["generators"] == b.artefacts["generators"]
    assert a.artefacts["points"] == b.artefacts["points"]
    c = go(config(seed=4), tasks)
    assert c.history != a.history
    assert c.artefacts["generators"]["middle"]["means"] != a.artefacts["generators"]["middle"]["means"]


@pytest.mark.parametrize(
    "switch", [{"init": "random"}, {"bootstrap": "bayesian"}, {"transfer": "mu"}, {"scope": "shared"}]
)
def test_switches_do_not_shift_other_streams(tasks: dict[str, Task], spy: Spy, switch: dict) -> None:
    """Each stage draws from its own named stream: the target's minibatch order and noise never move, and
    θ_bb_t moves only with the bootstrap switch itself."""
    base = go(config(), tasks)
    base_streams = spy.target_streams
    other = go(config(**switch), tasks)
    assert spy.target_streams == base_streams
    for g in GROUPS:
        same = base.artefacts["points"][g]["target_bootstrap"] == other.artefacts["points"][g]["target_bootstrap"]
        assert same == ("bootstrap" not in switch)


@pytest.mark.parametrize("method", ["uniform", "bayesian"])
def test_bootstrap_switch_and_m_reach_the_bootstrap(
    tasks: dict[str, Task], monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    calls: list[tuple[int, int, str]] = []
    real = cgi_mod.bootstrap

    def spy_bootstrap(points, m, rng, *, method="uniform"):
        out = real(points, m, rng, method=method)
        calls.append((len(out), m, method))
        return out

    monkeypatch.setattr(cgi_mod, "bootstrap", spy_bootstrap)
    go(config(M=17, bootstrap=method), tasks)
    assert calls == [(17, 17, method)] * len(GROUPS)  # M points per group, by the configured method
