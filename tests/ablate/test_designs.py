"""Tests of ablate.designs: which (case, variant, seed) points a design runs, their keys and their order.

The queue skips a point whose key it already holds, so two points sharing a key silently drop a run; and the
queue runs points in design order, so that order decides what a stopped study holds. Both are checked through
a real Optuna study and the real queue.
"""

from __future__ import annotations

import itertools

import optuna
import pytest
from optuna.trial import TrialState

from ablate import queue, record
from ablate.designs import load_ablation_design, load_table_design
from crossgen.config import CASES

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _study() -> optuna.Study:
    return optuna.create_study(direction="maximize")  # Optuna's in-memory storage


@pytest.mark.parametrize("design", ["ofat", "factorial"])
def test_multi_case_keys_are_unique_and_every_point_is_enqueued(design: str) -> None:
    d = load_ablation_design(design)
    cases, seeds = list(CASES[:2]), 2
    points = d.points(cases, seeds)
    expected = {(c, v.label, s) for c, v, s in itertools.product(cases, d.variants, range(seeds))}
    assert len(points) == len(expected) == len(cases) * len(d.variants) * seeds
    assert {(p.case, p.variant.label, p.seed) for p in points} == expected
    assert len({p.key for p in points}) == len(points)

    study = _study()
    assert queue.enqueue_points(study, points) == len(points)
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert len(waiting) == len(points)
    enqueued = {(t.user_attrs["case"], t.user_attrs["variant"], t.user_attrs["seed"]) for t in waiting}
    assert enqueued == expected
    for case in cases:  # the second case is not shadowed by the first
        assert sum(t.user_attrs["case"] == case for t in waiting) == len(d.variants) * seeds


def test_points_are_seed_major_so_every_block_of_v_is_one_complete_seed() -> None:
    d = load_ablation_design("ofat")
    v = len(d.variants)
    labels = [x.label for x in d.variants]
    for cases in ([CASES[0]], list(CASES[:2])):
        points = d.points(cases, 3)
        assert {p.seed for p in points[:v]} == {0}
        assert [p.variant.label for p in points[:v]] == labels
        blocks = [points[i : i + v] for i in range(0, len(points), v)]
        assert [(b[0].case, b[0].seed) for b in blocks] == list(itertools.product(cases, range(3)))
        for block in blocks:
            assert {(p.case, p.seed) for p in block} == {(block[0].case, block[0].seed)}
            assert [p.variant.label for p in block] == labels


def test_a_run_stopped_after_v_trials_holds_one_complete_seed() -> None:
    """The queue runs points in design order: stopping it after V trials leaves seed 0 of every variant."""
    d = load_table_design("table2")
    v = len(d.variants)
    study = _study()
    queue.enqueue_points(study, d.points([CASES[0]], 5))
    calls = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal calls
        calls += 1
        if calls > v:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the study
        return 0.5

    with pytest.raises(KeyboardInterrupt):
        queue.work(study, objective)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(done) == v
    assert sorted((t.user_attrs["variant"], t.user_attrs["seed"]) for t in done) == sorted(
        (x.label, 0) for x in d.variants
    )
    assert all(t.user_attrs[record.KEY] for t in done)
