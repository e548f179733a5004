"""Tests for the ``precision`` regime switch: fp32 stays bit-for-bit, bf16 stays close, bf16 is refused without units.

The fp32 golden values were recorded with the code *before* bf16 existed (same machine, torch 2.13.0), so
the first test holds every fp32 run to what was stored before the change: the ``fp32`` path must not move a
bit. The bf16 tests check the maths, not speed (no timing in tests; ``ablate bench`` has the ratios).
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from ablate_testing.machine import machine

from crossgen import Fidelity, RunConfig, run
from crossgen.bnn import BayesianMLP, ElboGradient
from crossgen.config import RegimeConfig
from crossgen.data import Task, load_tasks
from crossgen.errors import ConfigError
from crossgen.nets import MLP, Bf16Linear
from crossgen.train import bf16_matmul_units, cpu_flags, fit_bnn, fit_deterministic, require_precision

SMOKE = Fidelity(
    name="smoke",
    data="digits",
    width=32,
    epochs=4,
    source_epochs=4,
    batch_size=64,
    lr=0.01,
    bnn_lr=0.01,
    eval_samples=4,
)
"""studies/fidelity.toml's smoke preset, spelled out so that this test does not depend on the presets file."""

GOLDEN_MACHINE = ("2.13.0+cpu", "AVX512", "AuthenticAMD")
"""(torch, CPU capability, CPU vendor) the golden values were recorded on: BLAS kernels round differently elsewhere."""

GOLDEN_RUNS: dict[str, tuple[str, str, dict[str, list[str]]]] = {
    # (val accuracy, test accuracy, losses per epoch), float.hex, seed 0, smoke fidelity, recorded pre-change
    "bnn/T1M2_T2M1": (
        "0x1.f193d40000000p-1",
        "0x1.ea5dc00000000p-1",
        {"target": ["0x1.c236aedb78c13p+6", "0x1.bdcf8f51f656fp+6", "0x1.b92e90d4fb2b8p+6", "0x1.b440ae5204d48p+6"]},
    ),
    "bnn/T2M1_T1M2": (
        "0x1.e8f8080000000p-1",
        "0x1.e7327e0000000p-1",
        {"target": ["0x1.2f3b4e546241bp+4", "0x1.17df902f34624p+4", "0x1.076fbad65f4c1p+4", "0x1.f6fe7cf7dc7c5p+3"]},
    ),
    "cgi/T1M2_T2M1": (
        "0x1.f8c9ea0000000p-1",
        "0x1.f193d40000000p-1",
        {
            "source": ["0x1.2df25088b1928p+4", "0x1.1351b61c141ffp+4", "0x1.04d7a241a3121p+4", "0x1.f56d5f9f50cbap+3"],
            "target": ["0x1.a18ed76f656f2p+6", "0x1.9c826f49826a4p+6", "0x1.97c8963c26a44p+6", "0x1.933b5a5304d48p+6"],
        },
    ),
    "cgi/T2M1_T1M2": (
        "0x1.ec831a0000000p-1",
        "0x1.e7327e0000000p-1",
        {
            "source": ["0x1.c278f2166a43ap+6", "0x1.be48d6aecade3p+6", "0x1.b9f3694e90e7ep+6", "0x1.b512062fe304dp+6"],
            "target": ["0x1.27b89e6ba736cp+4", "0x1.0c82996329bacp+4", "0x1.fc36eda8ef217p+3", "0x1.e80417012f0e8p+3"],
        },
    ),
    "none/T1M2_T2M1": (
        "0x1.f193d40000000p-1",
        "0x1.ea5dc00000000p-1",
        {"target": ["0x1.6932400000000p-1", "0x1.5ce8740000000p-1", "0x1.3ed4300000000p-1", "0x1.891b360000000p-2"]},
    ),
    "distill/T1M2_T2M1": (
        "0x1.039b0a0000000p-1",
        "0x1.039b0a0000000p-1",
        {
            "source": ["0x1.b6983c0000000p+0", "0x1.7f79440000000p-1", "0x1.23cc480000000p-2", "0x1.3352940000000p-3"],
            "target": ["0x1.ab0f9c0000000p+1", "0x1.7f15140000000p+1", "0x1.2f931c0000000p+1", "0x1.0d48f80000000p+1"],
        },
    ),
}
GOLDEN_STEP = {"loss": "0x1.0bed420000000p+1", "grad": "509bd63782b9ea66", "fit_bnn": "dd50dd190ab670d4"}
GOLDEN_FIT_DETERMINISTIC = "64970f930a8615fd"

HAS_BF16 = bf16_matmul_units("cpu") is not None
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason="this CPU has no bf16 matrix units (bf16 is refused here)")


golden_machine = pytest.mark.skipif(
    machine() != GOLDEN_MACHINE, reason=f"golden fp32 values were recorded on {GOLDEN_MACHINE}, this is {machine()}"
)


def digest(tensors: list[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    return load_tasks("digits", log=lambda *_: None)


def smoke(technique: str, case: str, tasks: dict[str, Task], precision: str | None = None) -> object:
    cfg = RunConfig(case=case, technique=technique, seed=0, fidelity=SMOKE)
    if precision is not None:
        cfg = cfg.with_(regime=RegimeConfig(precision=precision))
    return run(cfg, tasks=tasks, log=lambda *_: None)


def toy(n: int = 300, n_in: int = 64, classes: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, n_in, generator=g), torch.randint(0, classes, (n,), generator=g)


# ------------------------------------------------------------------------------------------- fp32: unchanged


@golden_machine
@pytest.mark.parametrize(
    ("key", "precision"),
    [(key, None) for key in sorted(GOLDEN_RUNS)] + [("bnn/T2M1_T1M2", "fp32"), ("cgi/T1M2_T2M1", "fp32")],
)
def test_fp32_smoke_runs_are_bit_for_bit_what_they_were_before_bf16(
    key: str, precision: str | None, tasks: dict[str, Task]
) -> None:
    """The default (None) and an explicit fp32 give exactly the pre-change accuracies and per-epoch losses."""
    technique, case = key.split("/")
    result = smoke(technique, case, tasks, precision)
    val, test, losses = GOLDEN_RUNS[key]
    assert result.val_accuracy.hex() == val
    assert result.test_accuracy.hex() == test
    assert {k: [v.hex() for v in vs] for k, vs in result.history.items()} == losses


@golden_machine
def test_fp32_step_and_fits_are_bit_for_bit_what_they_were_before_bf16() -> None:
    x, y = toy()
    bnn = BayesianMLP([64, 32, 32, 8], generator=torch.Generator().manual_seed(1))
    loss = ElboGradient(bnn).step(x, y, torch.arange(100), 300, torch.Generator().manual_seed(2))
    assert loss.item().hex() == GOLDEN_STEP["loss"]
    assert digest([p.grad for p in bnn.parameters()]) == GOLDEN_STEP["grad"]
    fit_bnn(bnn, x, y, epochs=2, lr=0.01, batch_size=64, generator=torch.Generator().manual_seed(3), precision="fp32")
    assert digest(list(bnn.parameters())) == GOLDEN_STEP["fit_bnn"]
    torch.manual_seed(4)
    net = MLP([64, 32, 32, 8])
    fit_deterministic(net, x, y, epochs=2, lr=0.01, batch_size=64, generator=torch.Generator().manual_seed(3))
    assert digest(list(net.parameters())) == GOLDEN_FIT_DETERMINISTIC


# ------------------------------------------------------------------------------------------- bf16: close

STEP_TOLERANCE = 0.08
"""Largest relative L2 error ‖g_bf16 - g_fp32‖ / ‖g_fp32‖ allowed per parameter tensor in one step.

bf16 keeps 8 significant bits (relative rounding 2^-9 ≈ 0.2%); a minibatch gradient sums 128 per-example
terms of both signs, and that cancellation magnifies the operands' rounding to a few percent on the inner
layers (measured 2-5% at init on 784-400-400-8 and on this test's net). Far below the minibatch's own
sampling noise, and far below what a wrong term in the step gives (≥ 30% on some tensor)."""


@needs_bf16
@pytest.mark.parametrize("sizes", [[64, 48, 32, 8], [64, 32, 32, 32, 8], [64, 8]])
def test_bf16_step_gradient_is_within_tolerance_of_the_fp32_step(sizes: list[int]) -> None:
    x, y = toy(n=256)
    n_total = 256  # a small N: the KL's gradient (∝ 1/N) is a visible part of every tensor's gradient
    a = BayesianMLP(sizes, generator=torch.Generator().manual_seed(1), init_log_sigma=-2.0, prior_sigma=0.5)
    b = copy.deepcopy(a)
    loss32 = ElboGradient(a, "fp32").step(x, y, torch.arange(128), n_total, torch.Generator().manual_seed(2))
    with warnings.catch_warnings():
        # a workspace buffer of the wrong shape would be resized by torch's out= (with a warning) and the
        # step would still be right: the error filter holds every buffer to its shape
        warnings.simplefilter("error")
        loss16 = ElboGradient(b, "bf16").step(x, y, torch.arange(128), n_total, torch.Generator().manual_seed(2))
    assert loss16.dtype == torch.float32
    assert loss16.item() == pytest.approx(loss32.item(), rel=2e-3)
    for (name, p32), p16 in zip(a.named_parameters(), b.parameters(), strict=True):
        assert p16.dtype == p16.grad.dtype == torch.float32  # fp32 master weights and gradients
        rel = ((p16.grad - p32.grad).norm() / p32.grad.norm()).item()
        assert rel < STEP_TOLERANCE, f"{name}: relative error {rel:.3g}"
        assert F.cosine_similarity(p16.grad.flatten(), p32.grad.flatten(), 0) > 0.995, name


@needs_bf16
def test_bf16_linear_matches_fp32_autograd_with_and_without_an_input_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 96, generator=g)
    layer = torch.nn.Linear(96, 40)
    upstream = torch.randn(128, 40, generator=g)
    for needs_x in (True, False):
        xa, xb = x.clone().requires_grad_(needs_x), x.clone().requires_grad_(needs_x)
        ref = F.linear(xa, layer.weight, layer.bias)
        (ref * upstream).sum().backward()
        ref_grads = [layer.weight.grad.clone(), layer.bias.grad.clone()]
        layer.zero_grad()
        out = Bf16Linear.apply(xb, layer.weight, layer.bias)
        (out * upstream).sum().backward()
        assert out.dtype == layer.weight.grad.dtype == torch.float32
        assert (out - ref).norm() / ref.norm() < 1e-2
        for got, want in zip([layer.weight.grad, layer.bias.grad], ref_grads, strict=True):
            assert (got - want).norm() / want.norm() < 1e-2
        if needs_x:
            assert (xb.grad - xa.grad).norm() / xa.grad.norm() < 1e-2
        else:
            assert xb.grad is None
        layer.zero_grad()


@needs_bf16
def test_mlp_precision_block_restores_fp32_even_when_training_fails() -> None:
    net = MLP([8, 4, 2])
    with pytest.raises(RuntimeError), net.precision("bf16"):
        assert net.bf16
        raise RuntimeError("boom")
    assert not net.bf16
    x, y = toy(n=64, n_in=8, classes=2)
    fit_deterministic(net, x, y, epochs=1, lr=0.01, batch_size=32, generator=torch.Generator(), precision="bf16")
    assert not net.bf16  # evaluation after training runs the fp32 layers
    with pytest.raises(ValueError, match="precision"), net.precision("fp16"):
        pass


@needs_bf16
@pytest.mark.parametrize("technique", ["bnn", "cgi", "distill"])
def test_bf16_reaches_the_techniques_and_trains_as_well(technique: str, tasks: dict[str, Task]) -> None:
    """The switch is threaded through: bf16 changes the losses (so it ran) but not what is learnt.

    ``distill`` covers the MLP loop on both sides (source and target, main and auxiliary head); ``none`` and
    ``feature`` call the same two fit helpers. Trajectories of the smoke MLPs (lr 0.01) drift apart by 10-15%
    in loss from any rounding change, hence the loose bound on the losses.
    """
    fp32 = smoke(technique, "T2M1_T1M2", tasks, "fp32")
    bf16 = smoke(technique, "T2M1_T1M2", tasks, "bf16")
    assert bf16.config["regime"]["precision"] == "bf16"
    assert set(bf16.history) == set(fp32.history)
    for key, losses in fp32.history.items():
        assert bf16.history[key] != losses, key
        assert bf16.history[key] == pytest.approx(losses, rel=0.25), key
    assert abs(bf16.test_accuracy - fp32.test_accuracy) < 0.1


@needs_bf16
def test_bf16_fit_keeps_fp32_parameters_and_learns() -> None:
    x, y = toy(n=512)
    y = (x[:, :8].sum(1) > 4).long()  # a learnable rule
    bnn = BayesianMLP([64, 32, 2], generator=torch.Generator().manual_seed(0))
    hist = fit_bnn(
        bnn, x, y, epochs=15, lr=0.01, batch_size=64, generator=torch.Generator().manual_seed(0), precision="bf16"
    )
    assert all(p.dtype == torch.float32 for p in bnn.parameters())
    assert hist.losses[-1] < hist.losses[0]


# ------------------------------------------------------------------------------------------- refusal


def test_bf16_is_refused_in_one_line_without_bf16_units() -> None:
    x, y = toy(n=64)
    for flags in (frozenset({"avx2", "fma"}), frozenset({"avx512f", "avx512bw"}), frozenset()):
        with pytest.raises(ConfigError, match="precision=bf16 needs bf16 matrix units") as info:
            require_precision("bf16", "cpu", flags)
        assert "\n" not in str(info.value)
    require_precision("fp32", "cpu", frozenset())  # fp32 needs nothing
    for flag in ("avx512_bf16", "amx_bf16"):
        require_precision("bf16", "cpu", frozenset({"avx2", flag}))
    with pytest.raises(ConfigError, match="not one of fp32, bf16"):
        require_precision("fp16", "cpu")


@pytest.mark.skipif(HAS_BF16, reason="this CPU has bf16 matrix units")
def test_bf16_run_is_refused_before_training_on_this_cpu(tasks: dict[str, Task]) -> None:
    with pytest.raises(ConfigError, match="precision=bf16"):
        smoke("bnn", "T2M1_T1M2", tasks, "bf16")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: X\nflags\t\t: fpu avx2 avx512_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_bf16", "amx_tile"}
    assert bf16_matmul_units("cpu", cpu_flags(info)) == "avx512_bf16"
    assert cpu_flags(tmp_path / "missing") == frozenset()
    assert bf16_matmul_units("meta", cpu_flags(info)) is None


def test_elbo_gradient_rejects_an_unknown_precision() -> None:
    with pytest.raises(ValueError, match="precision"):
        ElboGradient(BayesianMLP([4, 2], generator=torch.Generator()), "fp16")
