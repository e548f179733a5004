"""The alternative readings of Algorithm 1 and the regime switches (issue 11): each does what it says.

Weight-point level tests pin the meaning of ``points`` and ``input_layer``; smoke runs show every switch
is wired through a real run (it changes the result where it should, and the default reproduces itself).
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch

from crossgen.bnn import BayesianMLP
from crossgen.config import CGIConfig, Fidelity, RegimeConfig, RunConfig
from crossgen.nets import layer_sizes
from crossgen.runner import load_run_tasks, run
from crossgen.techniques.base import Context, StageTimer, source_task
from crossgen.weightpoints import assign, bootstrap, extract, group_sizes, groups, layer_group

SMOKE = Fidelity(
    name="smoke",
    data="digits",
    width=16,
    epochs=2,
    source_epochs=2,
    batch_size=64,
    lr=0.01,
    bnn_lr=0.01,
    eval_samples=2,
)


def _bnn(sizes: list[int], seed: int = 0) -> BayesianMLP:
    return BayesianMLP(sizes, init_log_sigma=-3.0, jitter=0.1, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------- weight points
def test_points_mu_and_sample_are_one_column_and_mu_keeps_sigma() -> None:
    bnn = _bnn([8, 6, 3])
    two = extract(bnn)
    mu = extract(bnn, points="mu")
    assert all(mu[g].shape == (len(two[g]), 1) for g in groups())
    assert all(np.array_equal(mu[g][:, 0], two[g][:, 0]) for g in groups())
    sampled = extract(bnn, points="sample", rng=np.random.default_rng(0))
    again = extract(bnn, points="sample", rng=np.random.default_rng(0))
    assert all(np.array_equal(sampled[g], again[g]) for g in groups())
    # w/s = μ/s + (σ/s) ε: the spread around μ/s is σ/s, not 0
    diff = sampled["middle"][:, 0] - two["middle"][:, 0]
    assert np.std(diff) > 0 and np.allclose(np.mean(diff), 0, atol=0.05)

    before = [layer.w_log_sigma.detach().clone() for layer in bnn.layers]
    new = {g: np.full((n, 1), 0.5) for g, n in group_sizes(bnn).items()}
    assign(bnn, new)
    assert all(torch.equal(layer.w_log_sigma, b) for layer, b in zip(bnn.layers, before, strict=True))
    assert all(torch.allclose(layer.w_loc, 0.5 * layer.scale * torch.ones_like(layer.w_loc)) for layer in bnn.layers)


def test_input_layer_readings_change_the_groups() -> None:
    bnn = _bnn([8, 6, 6, 3])
    sizes = [layer.w_loc.numel() + layer.b_loc.numel() for layer in bnn.layers]
    assert group_sizes(bnn) == {"middle": sizes[0] + sizes[1], "classification": sizes[2]}
    assert group_sizes(bnn, "own") == {"input": sizes[0], "middle": sizes[1], "classification": sizes[2]}
    assert group_sizes(bnn, "keep") == {"middle": sizes[1], "classification": sizes[2]}
    assert [layer_group(i, 3, "keep") for i in range(3)] == [None, "middle", "classification"]
    # keep: the input layer is never written
    first = bnn.layers[0].w_loc.detach().clone()
    assign(bnn, {g: np.zeros((n, 2)) for g, n in group_sizes(bnn, "keep").items()}, input_layer="keep")
    assert torch.equal(bnn.layers[0].w_loc, first) and torch.count_nonzero(bnn.layers[1].w_loc) == 0


def test_depth_readings() -> None:
    count = {
        d: {m: len(layer_sizes(m, 784, 8, 10, bayesian=True, depth=d)) - 2 for m in ("M1", "M2")}
        for d in ("weight_layers", "unit_layers", "hidden_layers")
    }
    assert count == {
        "weight_layers": {"M1": 4, "M2": 2},
        "unit_layers": {"M1": 3, "M2": 1},
        "hidden_layers": {"M1": 5, "M2": 3},
    }


def test_bootstrap_all_draws_as_many_points_as_the_group_has() -> None:
    pts = np.arange(20.0).reshape(10, 2)
    assert bootstrap(pts, len(pts), np.random.default_rng(0)).shape == (10, 2)


# ------------------------------------------------------------------------------------- smoke runs
@pytest.fixture(scope="module")
def tasks():
    return load_run_tasks(RunConfig(case="T2M1_T1M2", technique="cgi", fidelity=SMOKE), log=lambda *a: None)


def _run(tasks, technique: str = "cgi", **changes):
    groups_ = {"cgi": {}, "bnn": {}, "regime": {}}
    for k, v in changes.items():
        group = (
            "regime"
            if k in RegimeConfig.__dataclass_fields__
            else "bnn"
            if k in ("depth", "prior_sigma", "init_log_sigma")
            else "cgi"
        )
        groups_[group][k] = v
    from crossgen.config import BNNConfig

    cfg = RunConfig(
        case="T2M1_T1M2",
        technique=technique,
        fidelity=SMOKE,
        cgi=CGIConfig(**groups_["cgi"]),
        bnn=BNNConfig(**groups_["bnn"]),
        regime=RegimeConfig(**groups_["regime"]),
    )
    return run(cfg, tasks=tasks, log=lambda *a: None)


@pytest.mark.parametrize(
    "change",
    [
        {"points": "mu"},
        {"points": "sample"},
        {"M": "all"},
        {"input_layer": "own"},
        {"input_layer": "keep"},
        {"source_labels": "shuffled"},
        {"depth": "hidden_layers"},
        {"target_epochs": 3},
        {"source_epochs": 1},
        {"bnn_lr": 0.003},
        {"optimizer": "sgd"},
        {"kl_weight": 0.1},
    ],
)
def test_each_switch_changes_a_cgi_run(tasks, change: dict) -> None:
    default = _run(tasks)
    changed = _run(tasks, **change)
    assert (changed.val_accuracy, changed.test_accuracy, changed.history["target"]) != (
        default.val_accuracy,
        default.test_accuracy,
        default.history["target"],
    )


def test_defaults_reproduce_and_curves_do_not_change_results(tasks) -> None:
    a = _run(tasks)
    b = _run(tasks)
    assert (a.val_accuracy, a.test_accuracy, a.history["target"]) == (
        b.val_accuracy,
        b.test_accuracy,
        b.history["target"],
    )
    cfg = RunConfig(case="T2M1_T1M2", technique="bnn", fidelity=SMOKE)
    plain = run(cfg, tasks=tasks, log=lambda *x: None)
    curved = run(cfg.with_(record_curve=True), tasks=tasks, log=lambda *x: None)
    assert curved.history["target"] == plain.history["target"] and curved.val_accuracy == plain.val_accuracy
    assert len(curved.history["curve_val"]) == SMOKE.epochs
    assert curved.history["curve_val"][-1] == curved.val_accuracy
    assert curved.history["curve_test"][-1] == curved.test_accuracy


def test_m_all_and_fit_ratio_are_recorded(tasks) -> None:
    r = _run(tasks, M="all", max_fit_points="none")
    # target T1 on M2 (2 hidden layers of 16, 64 inputs, 8 classes); source T2 on M1 (4 hidden, 2 classes)
    assert r.artefacts["fit_ratio"] == {
        "middle": {"target": 64 * 16 + 16 + 16 * 16 + 16, "source": 64 * 16 + 16 + 3 * (16 * 16 + 16)},
        "classification": {"target": 16 * 8 + 8, "source": 16 * 2 + 2},
    }
    assert set(r.artefacts["mean_log_sigma"]) == {"middle", "classification"}
    capped = _run(tasks, M=50, max_fit_points=100)
    assert capped.artefacts["fit_ratio"]["middle"] == {"target": 50, "source": 100}


def test_clip_log_sigma_caps_generated_sigma(tasks, monkeypatch: pytest.MonkeyPatch) -> None:
    cgi_mod = importlib.import_module("crossgen.techniques.cgi")  # the package re-exports a function `cgi`
    seen = {}
    real = cgi_mod.assign

    def spy(bnn, points, **kw):
        seen.setdefault("calls", []).append({g: p.copy() for g, p in points.items()})
        return real(bnn, points, **kw)

    monkeypatch.setattr(cgi_mod, "assign", spy)
    _run(tasks, clip_log_sigma=True, prior_sigma=0.1)
    generated = seen["calls"][-1]
    assert max(p[:, 1].max() for p in generated.values()) <= math.log(0.1) + 1e-12


def test_shuffled_source_labels_are_a_seeded_permutation(tasks) -> None:
    cfg = RunConfig(case="T2M1_T1M2", technique="cgi", fidelity=SMOKE, cgi=CGIConfig(source_labels="shuffled"))
    source = tasks["T2"]
    ctx = Context(config=cfg, source=source, target=tasks["T1"], device=torch.device("cpu"), timer=StageTimer())
    shuffled = source_task(ctx)
    assert torch.equal(shuffled.train.x, source.train.x)
    assert sorted(shuffled.train.y.tolist()) == sorted(source.train.y.tolist())
    assert not torch.equal(shuffled.train.y, source.train.y)
    assert torch.equal(source_task(ctx).train.y, shuffled.train.y)  # seeded
    assert (
        source_task(
            Context(
                config=cfg.with_(cgi=CGIConfig()),
                source=source,
                target=tasks["T1"],
                device=torch.device("cpu"),
                timer=StageTimer(),
            )
        )
        is source
    )


def test_kl_weight_scales_only_the_kl_part_of_the_gradient() -> None:
    """∇(NLL + w·KL/N) is linear in w: the gradient at w = 0.3 is 0.7·∇(w = 0) + 0.3·∇(w = 1)."""
    from crossgen.bnn import ElboGradient

    x = torch.rand(32, 8, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(2))
    idx = torch.arange(16)

    def grads(w: float) -> list[torch.Tensor]:
        bnn = _bnn([8, 6, 3])
        ElboGradient(bnn, kl_weight=w).step(x, y, idx, 100, torch.Generator().manual_seed(3))
        return [p.grad.clone() for p in bnn.parameters()]

    g0, g1, g3 = grads(0.0), grads(1.0), grads(0.3)
    for a, b, c in zip(g0, g1, g3, strict=True):
        assert torch.allclose(c, 0.7 * a + 0.3 * b, atol=1e-6)
    assert any(not torch.allclose(a, b) for a, b in zip(g0, g1, strict=True))
