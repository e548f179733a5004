"""Stacked replicas (crossgen.stack, runner.run_many): each replica stays the run it stands for.

A stacked replica rounds differently from its unstacked run (one batched matmul instead of R), so these
tests hold the two together to float tolerance over the first epochs, where rounding has not yet grown;
docs/benchmarks.md's equivalence study covers whole runs. Swapping two replicas' seeds, labels or switches
moves a replica far outside that tolerance, so every test here fails on such a mix-up.
"""

from __future__ import annotations

import copy

import pytest
import torch

from crossgen import CGIConfig, Fidelity, RunConfig, run
from crossgen.bnn import BayesianMLP
from crossgen.config import BNNConfig, RegimeConfig
from crossgen.data import Task, load_tasks
from crossgen.runner import run_many
from crossgen.stack import Replica, StackedBNN, fit_bnn_stacked
from crossgen.train import DivergenceError, fit_bnn

SIZES = [64, 24, 24, 10]
FID = Fidelity(name="t", data="digits", width=16, epochs=2, source_epochs=2, batch_size=64, eval_samples=2)
QUIET = {"log": lambda *_: None}


def _bnn(seed: int, init_log_sigma: float = -3.0) -> BayesianMLP:
    return BayesianMLP(SIZES, init_log_sigma=init_log_sigma, generator=torch.Generator().manual_seed(seed))


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


def test_each_stacked_replica_matches_its_own_unstacked_run(data) -> None:
    """Own init (incl. init log σ), own labels, own order and noise streams: equal to float tolerance."""
    x, ys = data
    inits = [(0, -3.0), (1, -3.0), (2, -1.0)]
    alone, stacked = [], []
    for r, (seed, log_sigma) in enumerate(inits):
        bnn = _bnn(seed, log_sigma)
        twin = copy.deepcopy(bnn)
        losses = fit_bnn(
            bnn, x, ys[r], epochs=2, lr=0.01, batch_size=64, generator=_gen(10 + r), noise=_gen(20 + r)
        ).losses
        alone.append((bnn, losses))
        stacked.append(Replica(twin, ys[r], _gen(10 + r), _gen(20 + r)))
    fit_bnn_stacked(stacked, x, epochs=2, lr=0.01, batch_size=64)
    for (bnn, losses), replica in zip(alone, stacked, strict=True):
        assert replica.error is None
        assert replica.losses == pytest.approx(losses, rel=1e-6)
        for p, q in zip(bnn.parameters(), replica.bnn.parameters(), strict=True):
            torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)


def test_replica_parameters_are_views_of_the_stack() -> None:
    """After stacking, a replica's own BayesianMLP reads (and evaluates on) its slice of the stack."""
    bnns = [_bnn(0), _bnn(1)]
    stack = StackedBNN(bnns)
    with torch.no_grad():
        stack.w_loc[0][1].fill_(0.5)
    assert torch.all(bnns[1].layers[0].w_loc == 0.5)
    assert not torch.all(bnns[0].layers[0].w_loc == 0.5)


def test_a_diverging_or_stopped_replica_stops_alone(data) -> None:
    x, ys = data

    def stop(epoch: int, loss: float) -> None:
        raise RuntimeError("pruned")

    healthy = Replica(_bnn(0), ys[0], _gen(1), _gen(2))
    diverging = Replica(_bnn(1, init_log_sigma=60.0), ys[0], _gen(3), _gen(4), what="boom")
    stopped = Replica(_bnn(2), ys[0], _gen(5), _gen(6), on_epoch=stop)
    fit_bnn_stacked([healthy, diverging, stopped], x, epochs=2, lr=0.01, batch_size=64)
    assert healthy.error is None and len(healthy.losses) == 2
    assert isinstance(diverging.error, DivergenceError) and "boom" in str(diverging.error)
    assert isinstance(stopped.error, RuntimeError) and len(stopped.losses) == 1


def _configs() -> list[RunConfig]:
    cgi = CGIConfig(M=40, K=2)
    out = []
    for seed in (0, 1):
        out.append(RunConfig(case="T2M2_T1M1", technique="bnn", seed=seed, fidelity=FID))
        out.append(RunConfig(case="T2M2_T1M1", technique="cgi", seed=seed, fidelity=FID, cgi=cgi))
        out.append(
            RunConfig(
                case="T2M2_T1M1",
                technique="cgi",
                seed=seed,
                fidelity=FID,
                cgi=CGIConfig(M=40, K=2, transfer="mu", source_labels="shuffled"),
                bnn=BNNConfig(init_log_sigma=-2.3),
            )
        )
    return out


def test_run_many_gives_every_run_its_unstacked_result(tasks) -> None:
    """Seeds, the benchmark and two CGI variants in one call: each run's source and target losses follow its
    own unstacked run (a swapped seed, label stream or switch would not), and its accuracies land within a
    few test examples of it."""
    configs = _configs()
    alone = [run(c, tasks=tasks, **QUIET) for c in configs]
    together = run_many(configs, tasks=tasks, **QUIET)
    for a, b in zip(alone, together, strict=True):
        assert not isinstance(b, Exception), b
        assert (b.case, b.technique, b.seed, b.config) == (a.case, a.technique, a.seed, a.config)
        assert set(b.history) == set(a.history)
        for stage in a.history:
            assert b.history[stage] == pytest.approx(a.history[stage], rel=1e-4), (a.technique, a.seed, stage)
        assert abs(b.test_accuracy - a.test_accuracy) <= 3 / b.n_test
        assert set(b.stages) == set(a.stages)


def test_run_many_keeps_one_runs_failure_to_itself(tasks) -> None:
    good = RunConfig(case="T2M2_T1M1", technique="bnn", seed=0, fidelity=FID)
    bad = good.with_(seed=1, bnn=BNNConfig(init_log_sigma=60.0))
    deterministic = good.with_(technique="none")
    results = run_many([good, bad, deterministic], tasks=tasks, **QUIET)
    assert results[0].val_accuracy == pytest.approx(run(good, tasks=tasks, **QUIET).val_accuracy, abs=0.05)
    assert isinstance(results[1], DivergenceError)
    assert results[2].val_accuracy == run(deterministic, tasks=tasks, **QUIET).val_accuracy  # not stacked: exact


def test_runs_that_cannot_share_a_stack_train_apart(tasks) -> None:
    """Another budget (target epochs) is another stack; both still follow their unstacked runs."""
    short = RunConfig(case="T2M2_T1M1", technique="bnn", seed=0, fidelity=FID)
    long = short.with_(regime=RegimeConfig(target_epochs=3))
    a, b = run_many([short, long], tasks=tasks, **QUIET)
    assert len(a.history["target"]) == 2 and len(b.history["target"]) == 3
    assert b.history["target"] == pytest.approx(run(long, tasks=tasks, **QUIET).history["target"], rel=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (torch.cuda.is_available() is False)")
def test_run_many_on_cuda_follows_the_unstacked_cuda_runs(tasks) -> None:
    configs = [c.with_(device="cuda") for c in _configs()]
    alone = [run(c, tasks=tasks, **QUIET) for c in configs]
    together = run_many(configs, tasks=tasks, **QUIET)
    for a, b in zip(alone, together, strict=True):
        assert not isinstance(b, Exception), b
        for stage in a.history:
            assert b.history[stage] == pytest.approx(a.history[stage], rel=1e-3), (a.technique, a.seed, stage)


def test_a_runs_seconds_cover_its_training_stacked_or_not(tasks) -> None:
    """RunResult.seconds is the run's whole time: its stages (training included) fit inside it."""
    configs = _configs()[:2]
    for result in [run(configs[1], tasks=tasks, **QUIET), *run_many(configs, tasks=tasks, **QUIET)]:
        assert result.seconds >= sum(result.stages.values()) * 0.999


def test_a_stack_of_one_is_the_unstacked_reference_bit_for_bit(tasks) -> None:
    config = _configs()[1]
    (alone,) = run_many([config], tasks=tasks, **QUIET)
    reference = run(config, tasks=tasks, **QUIET)
    assert alone.history == reference.history and alone.test_accuracy == reference.test_accuracy
