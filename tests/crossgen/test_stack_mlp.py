"""Stacked deterministic MLPs (crossgen.stack_mlp, runner.run_many on Experiment 1): each replica stays its run.

As for stacked BNNs (test_stack.py), a stacked replica rounds differently from its unstacked run, so these
tests hold the two together to float tolerance over the first epochs. Swapping two replicas' minibatch
streams, labels or inputs moves a replica far outside that tolerance, so every test here fails on such a
mix-up.
"""

from __future__ import annotations

import copy

import pytest
import torch

from crossgen import Fidelity, RunConfig, run
from crossgen.data import Task, load_tasks
from crossgen.nets import MLP
from crossgen.runner import run_many
from crossgen.stack_mlp import MLPReplica, StackedMLP, fit_deterministic_stacked
from crossgen.train import DivergenceError, bf16_matmul_units, fit_deterministic

SIZES = [64, 24, 24, 10]
FID = Fidelity(name="t", data="digits", width=16, epochs=2, source_epochs=2, batch_size=64, eval_samples=2)
QUIET = {"log": lambda *_: None}


def _mlp(seed: int, sizes: list[int] = SIZES) -> MLP:
    torch.manual_seed(seed)
    return MLP(sizes)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = _gen(0)
    x = torch.rand(300, SIZES[0], generator=g)
    labels = torch.randint(0, SIZES[-1], (300,), generator=g)
    return x, [labels, labels[torch.randperm(300, generator=g)], labels[torch.randperm(300, generator=g)]]


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    return load_tasks("digits", max_train=300, max_eval=120, **QUIET)


def _alone_and_stacked(x_of, ys, *, precision: str = "fp32", epochs: int = 2):
    """Three replicas (own init, labels, order; inputs ``x_of(r)``), each also trained alone."""
    alone, stacked = [], []
    for r in range(3):
        net = _mlp(r)
        twin = copy.deepcopy(net)
        losses = fit_deterministic(
            net, x_of(r), ys[r], epochs=epochs, lr=0.01, batch_size=64, generator=_gen(10 + r), precision=precision
        ).losses
        alone.append((net, losses))
        stacked.append(MLPReplica(twin, ys[r], _gen(10 + r)))
    return alone, stacked


def _assert_each_follows_its_own_run(alone, stacked, rel: float = 1e-5) -> None:
    for (net, losses), replica in zip(alone, stacked, strict=True):
        assert replica.error is None
        assert replica.losses == pytest.approx(losses, rel=rel)
        for (name, p), q in zip(net.named_parameters(), replica.net.parameters(), strict=True):
            torch.testing.assert_close(q, p, rtol=rel * 10, atol=rel, msg=name)


def test_each_stacked_replica_matches_its_own_unstacked_run(data) -> None:
    """Shared inputs; own init, own labels, own minibatch order: equal to float tolerance (parameters, losses)."""
    x, ys = data
    alone, stacked = _alone_and_stacked(lambda r: x, ys)
    fit_deterministic_stacked(stacked, x, epochs=2, lr=0.01, batch_size=64)
    _assert_each_follows_its_own_run(alone, stacked)


def test_each_replica_trains_on_its_own_inputs(data) -> None:
    """x of shape (R, N, d): each replica reads its own rows (the feature technique's target)."""
    x, ys = data
    xs = torch.stack([x, x.flip(0), x.roll(7, dims=1)])
    alone, stacked = _alone_and_stacked(lambda r: xs[r], ys)
    fit_deterministic_stacked(stacked, xs, epochs=2, lr=0.01, batch_size=64)
    _assert_each_follows_its_own_run(alone, stacked)


@pytest.mark.skipif(bf16_matmul_units("cpu") is None, reason="this CPU has no bf16 matrix units")
def test_bf16_stacked_replicas_follow_their_bf16_runs(data) -> None:
    x, ys = data
    alone, stacked = _alone_and_stacked(lambda r: x, ys, precision="bf16", epochs=1)
    fit_deterministic_stacked(stacked, x, epochs=1, lr=0.01, batch_size=64, precision="bf16")
    _assert_each_follows_its_own_run(alone, stacked, rel=2e-3)


def test_replica_parameters_are_views_of_the_stack() -> None:
    """After stacking, a replica's own MLP reads (and evaluates on, and extracts features from) its slice."""
    nets = [_mlp(0), _mlp(1)]
    stack = StackedMLP(nets)
    with torch.no_grad():
        stack.weights[0][1].fill_(0.5)
        stack.biases[-1][1].fill_(-2.0)
    assert torch.all(nets[1].hidden[0].weight == 0.5) and torch.all(nets[1].head.bias == -2.0)
    assert not torch.all(nets[0].hidden[0].weight == 0.5)
    x = torch.rand(5, SIZES[0])
    torch.testing.assert_close(stack.forward(torch.stack([x, x]))[1], nets[1](x))


def test_a_diverging_or_stopped_replica_stops_alone(data) -> None:
    x, ys = data

    def stop(epoch: int, loss: float) -> None:
        raise RuntimeError("pruned")

    boom = _mlp(1)
    with torch.no_grad():
        boom.head.weight.fill_(float("nan"))
    healthy = MLPReplica(_mlp(0), ys[0], _gen(1))
    diverging = MLPReplica(boom, ys[1], _gen(3), what="boom")
    stopped = MLPReplica(_mlp(2), ys[2], _gen(5), on_epoch=stop)
    reference = copy.deepcopy(healthy.net)
    losses = fit_deterministic(reference, x, ys[0], epochs=3, lr=0.01, batch_size=64, generator=_gen(1)).losses
    fit_deterministic_stacked([healthy, diverging, stopped], x, epochs=3, lr=0.01, batch_size=64)
    assert healthy.error is None and healthy.losses == pytest.approx(losses, rel=1e-5)
    assert isinstance(diverging.error, DivergenceError) and "boom" in str(diverging.error)
    assert isinstance(stopped.error, RuntimeError) and len(stopped.losses) == 1
    # the stopped replica keeps the model it stopped with: one epoch, as its unstacked run would have
    once = _mlp(2)
    fit_deterministic(once, x, ys[2], epochs=1, lr=0.01, batch_size=64, generator=_gen(5))
    for p, q in zip(once.parameters(), stopped.net.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)


def _configs() -> list[RunConfig]:
    return [
        RunConfig(case=case, technique=technique, seed=seed, fidelity=FID)
        for case in ("T2M2_T1M1", "T1M1_T2M2")
        for technique in ("none", "feature", "distill")
        for seed in (0, 1, 2)
    ]


def test_run_many_gives_every_deterministic_run_its_unstacked_result(tasks) -> None:
    """none, feature and distill, three seeds, two cases in one call: each run's source and target losses
    follow its own unstacked run (a swapped seed, label stream or feature input would not) and its
    accuracies land within a couple of examples of it."""
    configs = _configs()
    alone = [run(c, tasks=tasks, **QUIET) for c in configs]
    together = run_many(configs, tasks=tasks, **QUIET)
    for a, b in zip(alone, together, strict=True):
        assert not isinstance(b, Exception), b
        assert (b.case, b.technique, b.seed, b.config) == (a.case, a.technique, a.seed, a.config)
        assert set(b.history) == set(a.history)
        for stage in a.history:
            assert b.history[stage] == pytest.approx(a.history[stage], rel=1e-5), (a.technique, a.seed, stage)
        assert abs(b.test_accuracy - a.test_accuracy) <= 2 / b.n_test
        assert abs(b.val_accuracy - a.val_accuracy) <= 2 / b.n_val
        assert set(b.stages) == set(a.stages)
        assert b.seconds >= sum(b.stages.values()) * 0.999


def test_run_many_stacks_the_mlp_fits(tasks, monkeypatch: pytest.MonkeyPatch) -> None:
    """The source fits of none/feature/distill seeds and the targets of none and of feature stack; only
    distillation's student (its own loss) trains alone."""
    import crossgen.runner as runner

    sizes: list[tuple[str, int, tuple]] = []
    real = runner.fit_deterministic_stacked

    def spy(replicas, x, **settings):
        sizes.append((replicas[0].what, len(replicas), tuple(x.shape)))
        return real(replicas, x, **settings)

    monkeypatch.setattr(runner, "fit_deterministic_stacked", spy)
    configs = [c for c in _configs() if c.case == "T2M2_T1M1"]
    run_many(configs, tasks=tasks, **QUIET)
    n = len(tasks["T1"].train)
    assert sorted(sizes) == sorted(
        [
            ("source MLP", 6, (len(tasks["T2"].train), 64)),  # feature's and distill's sources, shared inputs
            ("target MLP", 3, (n, 64)),  # none's targets on the shared pixels
            ("target MLP", 3, (3, n, FID.width)),  # feature's targets, each on its own source's features
        ]
    )


def test_a_stopped_deterministic_run_stops_alone_in_run_many(tasks) -> None:
    """A run pruned by its epoch callback ends with its exception; its stack mates finish as alone."""
    configs = [RunConfig(case="T2M2_T1M1", technique="none", seed=s, fidelity=FID) for s in (0, 1, 2)]

    def prune(epoch: int, acc: float) -> None:
        raise RuntimeError("pruned")

    results = run_many(configs, tasks=tasks, on_target_epoch=[None, prune, None], **QUIET)
    assert isinstance(results[1], RuntimeError)
    for i in (0, 2):
        reference = run(configs[i], tasks=tasks, **QUIET)
        assert results[i].history["target"] == pytest.approx(reference.history["target"], rel=1e-5)


def test_a_stack_of_one_mlp_is_the_unstacked_reference_bit_for_bit(tasks) -> None:
    for technique in ("none", "feature"):
        config = RunConfig(case="T1M1_T2M2", technique=technique, seed=3, fidelity=FID)
        (alone,) = run_many([config], tasks=tasks, **QUIET)
        reference = run(config, tasks=tasks, **QUIET)
        assert alone.history == reference.history
        assert (alone.val_accuracy, alone.test_accuracy) == (reference.val_accuracy, reference.test_accuracy)
