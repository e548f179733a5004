"""Unit tests of ablate.execution.queue: exact totals from an enqueued queue, failure bookkeeping, stale-trial repair.

Every test runs against a real storage (a tmp SQLite file, or a tmp journal file) opened through
``ablate.execution.storages.open_storage``, with tiny in-process objectives — no training.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from ablate import record
from ablate.execution import queue
from ablate.execution.storages import open_storage
from ablate.experiment.designs import DesignPoint, Variant, load_ablation_design

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

CASE = "T1M1_T2M2"


def _new_study(tmp_path: Path, *, kind: str = "sqlite", **storage_kwargs) -> optuna.Study:
    url = f"sqlite:///{tmp_path}/queue.db" if kind == "sqlite" else str(tmp_path / "queue.log")
    storage_kwargs.setdefault("heartbeat_interval", None)
    storage = open_storage(url, **storage_kwargs)
    return optuna.create_study(storage=storage, study_name="queue-test", direction="maximize")


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    """A maximising study on a tmp SQLite file, without heartbeats."""
    return _new_study(tmp_path)


def _by_state(study: optuna.Study, state: TrialState) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(state,))


def _counter(values: list[object]) -> tuple[Callable[[optuna.Trial], float], list[int]]:
    """An objective returning (or raising) ``values`` in turn, recording the trial numbers it ran."""
    calls: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        calls.append(trial.number)
        value = values[min(len(calls), len(values)) - 1]
        if isinstance(value, BaseException):
            raise value
        return value  # type: ignore[return-value]

    return objective, calls


# --------------------------------------------------------------------------------------------------
# Filling the queue
# --------------------------------------------------------------------------------------------------


def test_enqueue_points_is_idempotent(study: optuna.Study) -> None:
    points = load_ablation_design("ofat").points([CASE], 1)
    keys = {p.key for p in points}
    assert len(keys) == len(points) > 2

    assert queue.enqueue_points(study, points) == len(points)
    assert queue.enqueue_points(study, points) == 0

    waiting = _by_state(study, TrialState.WAITING)
    assert len(study.trials) == len(points)
    assert {t.user_attrs["design_key"] for t in waiting} == keys
    first = waiting[0]
    assert first.user_attrs["case"] == CASE
    assert first.user_attrs["technique"] in ("cgi", "bnn")
    # the point's coordinates are Optuna params too (the dashboard plots and filters by them), from the same Point
    for t in waiting:
        assert t.params == {k: t.user_attrs[k] for k in record.POINT_PARAMS}
    assert set(waiting[0].distributions["variant"].choices) == {p.variant.label for p in points}

    # A point that is running or complete is not enqueued again either.
    running_id = study._pop_waiting_trial_id()
    done_id = study._pop_waiting_trial_id()
    study.tell(study._storage.get_trial(done_id).number, 0.5)
    assert {running_id, done_id} <= {t._trial_id for t in study.trials}
    assert queue.enqueue_points(study, points) == 0
    assert len(study.trials) == len(points)


def test_enqueue_points_adds_only_missing_points(study: optuna.Study) -> None:
    points = load_ablation_design("ofat").points([CASE], 2)
    half = points[: len(points) // 2]
    assert queue.enqueue_points(study, half) == len(half)
    assert queue.enqueue_points(study, points) == len(points) - len(half)
    keys = [t.user_attrs["design_key"] for t in study.trials]
    assert sorted(keys) == sorted(p.key for p in points)


def test_top_up_tickets_counts_finished_and_pending(study: optuna.Study) -> None:
    study.add_trial(optuna.create_trial(state=TrialState.COMPLETE, value=0.9))
    study.add_trial(optuna.create_trial(state=TrialState.PRUNED))
    study.add_trial(optuna.create_trial(state=TrialState.FAIL))  # a failure does not count towards the total
    study.ask()  # RUNNING
    study.enqueue_trial({})  # WAITING
    before = queue.counts(study)
    assert (before["COMPLETE"], before["PRUNED"], before["FAIL"], before["RUNNING"], before["WAITING"]) == (
        1,
        1,
        1,
        1,
        1,
    )

    assert queue.top_up_tickets(study, 6) == 2  # 6 - (complete + pruned + running + waiting)
    after = queue.counts(study)
    assert after["WAITING"] == 3
    tickets = [t for t in _by_state(study, TrialState.WAITING) if t.user_attrs.get(queue.TICKET_ATTR)]
    assert len(tickets) == 2

    assert queue.top_up_tickets(study, 6) == 0
    assert queue.top_up_tickets(study, 3) == 0  # never negative, never removes anything
    assert queue.counts(study) == after


def test_top_up_then_work_reaches_the_exact_total(study: optuna.Study) -> None:
    assert queue.top_up_tickets(study, 3) == 3
    objective, calls = _counter([0.1, 0.2, 0.3])
    stats = queue.work(study, objective)
    assert stats.completed == 3 and calls == [0, 1, 2]
    assert [t.value for t in study.trials] == [0.1, 0.2, 0.3]
    assert queue.top_up_tickets(study, 5) == 2  # resuming with a larger total adds only the difference


# --------------------------------------------------------------------------------------------------
# Failures inside work()
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("replace_failed", [True, False])
def test_failing_objective_is_recorded_and_the_study_goes_on(study: optuna.Study, replace_failed: bool) -> None:
    queue.top_up_tickets(study, 3)
    objective, calls = _counter([ValueError("boom\n  on two lines"), 0.5, 0.6, 0.7])
    stats = queue.work(study, objective, replace_failed=replace_failed)

    failed = _by_state(study, TrialState.FAIL)
    assert len(failed) == 1 and failed[0].number == 0
    reason = failed[0].user_attrs[queue.FAIL_REASON]
    assert reason == "ValueError: boom on two lines"
    assert stats.failed == 1 and stats.reasons == [reason]
    complete = _by_state(study, TrialState.COMPLETE)
    if replace_failed:
        assert stats.replaced == 1 and stats.completed == 3
        assert len(complete) == 3 and calls == [0, 1, 2, 3]
        replacement = study.trials[3]
        assert replacement.user_attrs[queue.TICKET_ATTR] is True and replacement.user_attrs["replaces"] == 0
        assert replacement.state == TrialState.COMPLETE
    else:
        assert stats.replaced == 0 and stats.completed == 2
        assert len(complete) == 2 and len(study.trials) == 3
    assert queue.counts(study)["WAITING"] == 0


def test_replacements_are_capped(study: optuna.Study) -> None:
    queue.top_up_tickets(study, 1)
    objective, calls = _counter([RuntimeError("always")])
    stats = queue.work(study, objective, replace_failed=True, max_replacements=2)
    assert stats.failed == 3 and stats.replaced == 2 and len(calls) == 3
    assert queue.counts(study)["FAIL"] == 3 and queue.counts(study)["WAITING"] == 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, None], ids=["nan", "inf", "none"])
def test_non_finite_value_fails_the_trial(study: optuna.Study, bad: float | None) -> None:
    queue.top_up_tickets(study, 2)
    objective, _ = _counter([bad, 0.4])
    stats = queue.work(study, objective)
    first, second = study.trials
    assert first.state == TrialState.FAIL and first.value is None
    assert first.user_attrs[queue.FAIL_REASON].startswith("objective returned a non-finite value")
    assert second.state == TrialState.COMPLETE and second.value == 0.4
    assert stats.failed == 1 and stats.completed == 1


def test_keyboard_interrupt_fails_the_trial_and_propagates(study: optuna.Study) -> None:
    queue.top_up_tickets(study, 2)
    objective, calls = _counter([KeyboardInterrupt()])
    with pytest.raises(KeyboardInterrupt):
        queue.work(study, objective, replace_failed=True)
    assert calls == [0]
    first, second = study.trials
    assert first.state == TrialState.FAIL
    assert first.user_attrs[queue.FAIL_REASON].startswith("interrupted")
    assert second.state == TrialState.WAITING  # the rest of the queue is left for the rerun
    assert queue.counts(study)["RUNNING"] == 0


def test_pruned_trial_counts_as_finished(study: optuna.Study) -> None:
    queue.top_up_tickets(study, 2)
    objective, _ = _counter([optuna.TrialPruned(), 0.3])
    stats = queue.work(study, objective, replace_failed=True)
    assert stats.pruned == 1 and stats.completed == 1 and stats.replaced == 0
    assert [t.state for t in study.trials] == [TrialState.PRUNED, TrialState.COMPLETE]
    assert queue.top_up_tickets(study, 2) == 0


def test_duplicate_design_point_is_failed_and_not_run(study: optuna.Study) -> None:
    point = DesignPoint(CASE, Variant("full", "cgi"), 0)
    other = DesignPoint(CASE, Variant("no transfer", "bnn"), 0)
    for p in (point, point, other):  # e.g. two coordinators raced to fill the same queue
        study.enqueue_trial({}, user_attrs=record.point_attrs(p.point()))
    objective, calls = _counter([0.8, 0.7])
    stats = queue.work(study, objective)

    assert calls == [0, 2]
    first, duplicate, third = study.trials
    assert first.state == TrialState.COMPLETE and first.value == 0.8
    assert duplicate.state == TrialState.FAIL
    assert duplicate.user_attrs[queue.FAIL_REASON].startswith("duplicate")
    assert third.state == TrialState.COMPLETE and third.user_attrs["design_key"] == other.key
    assert stats.skipped_duplicates == 1 and stats.completed == 2 and stats.failed == 0


def test_on_trial_sees_every_finished_trial(study: optuna.Study) -> None:
    queue.top_up_tickets(study, 3)
    seen: list[tuple[int, TrialState]] = []
    objective, _ = _counter([0.1, ValueError("x"), 0.3])
    queue.work(study, objective, on_trial=lambda t: seen.append((t.number, t.state)))
    assert seen == [(0, TrialState.COMPLETE), (1, TrialState.FAIL), (2, TrialState.COMPLETE)]


def test_deadline_in_the_past_runs_nothing(study: optuna.Study) -> None:
    queue.top_up_tickets(study, 2)
    objective, calls = _counter([0.1])
    stats = queue.work(study, objective, deadline=time.time() - 1)
    assert calls == [] and stats.completed == 0
    assert queue.counts(study)["WAITING"] == 2


# --------------------------------------------------------------------------------------------------
# Stale trials: heartbeats (RDB) and manual recovery (journal)
# --------------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_work_fails_and_requeues_a_stale_heartbeat_trial(tmp_path: Path) -> None:
    study = _new_study(tmp_path, heartbeat_interval=1, grace_period=1)
    queue.top_up_tickets(study, 2)
    orphan_id = study._pop_waiting_trial_id()  # a worker took it, sent one heartbeat and died
    study._storage.record_heartbeat(orphan_id)
    orphan = study._storage.get_trial(orphan_id)

    objective, calls = _counter([0.1, 0.2])
    stats = queue.work(study, objective, poll_s=0.1, deadline=time.time() + 45)

    trials = study.trials
    assert trials[orphan.number].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == orphan.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].user_attrs.get(queue.TICKET_ATTR) is True
    assert stats.completed == 2 and len(calls) == 2
    c = queue.counts(study)
    assert (c["COMPLETE"], c["FAIL"], c["RUNNING"], c["WAITING"]) == (2, 1, 0, 0)


@pytest.mark.timeout(60)
def test_work_does_not_wait_forever_on_a_running_trial_without_heartbeat(tmp_path: Path) -> None:
    """A worker killed (or Ctrl-C'd) between popping a trial and its first heartbeat leaves a trial that
    Optuna never considers stale; work() must still fail and re-queue it instead of waiting forever."""
    study = _new_study(tmp_path, heartbeat_interval=1, grace_period=1)
    queue.top_up_tickets(study, 2)
    orphan_id = study._pop_waiting_trial_id()  # the worker died before its first heartbeat
    orphan = study._storage.get_trial(orphan_id)

    objective, _ = _counter([0.1, 0.2])
    queue.work(study, objective, poll_s=0.1, deadline=time.time() + 30)  # the deadline only bounds a hang

    trials = study.trials
    assert trials[orphan.number].state == TrialState.FAIL
    assert trials[orphan.number].user_attrs[record.FAIL_REASON] == queue.ORPHAN_REASON  # failed as an orphan
    assert [t.state for t in trials if t.system_attrs.get("failed_trial") == orphan.number] == [TrialState.COMPLETE]
    assert queue.counts(study)["COMPLETE"] == 2


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_recover_leaves_young_running_trials_alone(tmp_path: Path, kind: str) -> None:
    study = _new_study(tmp_path, kind=kind)
    queue.top_up_tickets(study, 2)
    study._pop_waiting_trial_id()
    assert queue.recover(study, stale_after=3600) == []
    c = queue.counts(study)
    assert (c["RUNNING"], c["WAITING"], c["FAIL"]) == (1, 1, 0)


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_recover_fails_and_requeues_a_stale_trial(tmp_path: Path, kind: str) -> None:
    study = _new_study(tmp_path, kind=kind)
    queue.top_up_tickets(study, 2)
    stale_id = study._pop_waiting_trial_id()
    study._storage.set_trial_param(stale_id, "M", 100, optuna.distributions.IntDistribution(50, 5000, log=True))
    stale = study._storage.get_trial(stale_id)

    later = dt.datetime.now() + dt.timedelta(seconds=60)
    assert queue.recover(study, stale_after=30, now=later) == [stale.number]

    trials = study.trials
    failed = trials[stale.number]
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs[queue.FAIL_REASON].startswith("stale")
    copies = [t for t in trials if t.system_attrs.get("failed_trial") == stale.number]
    assert len(copies) == 1
    assert copies[0].state == TrialState.WAITING
    assert copies[0].params == {"M": 100}
    assert copies[0].user_attrs.get(queue.TICKET_ATTR) is True
    assert queue.recover(study, stale_after=30, now=later) == []  # nothing left to repair

    objective, calls = _counter([0.1, 0.2])
    queue.work(study, objective)
    c = queue.counts(study)
    assert (c["COMPLETE"], c["FAIL"], c["RUNNING"], c["WAITING"]) == (2, 1, 0, 0)


@pytest.mark.parametrize("raises", [False, True])
def test_trial_finished_elsewhere_is_discarded_not_a_crash(study: optuna.Study, raises: bool) -> None:
    """A stale check (or a claim race on a lock-less storage) may finish a trial while its worker still
    runs it: the first result stands, the worker discards its own and goes on with the queue."""
    queue.top_up_tickets(study, 2)

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 0:
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)  # "someone else"
            if raises:
                trial.set_user_attr("late", 1)  # the objective's own bookkeeping hits the finished trial
        return 0.5

    stats = queue.work(study, objective)
    assert stats.lost == 1 and stats.completed == 1
    trials = study.trials
    assert trials[0].state == TrialState.FAIL and queue.FAIL_REASON not in trials[0].user_attrs
    assert trials[1].state == TrialState.COMPLETE and trials[1].value == 0.5
    [note] = record.discarded_results(study)  # the discarded result is kept, not lost
    assert note["trial"] == 0 and note["stored_state"] == "FAIL"
    assert (note["state"], note["value"]) == (("FAIL", None) if raises else ("COMPLETE", 0.5))


# --------------------------------------------------------------------------------------------------
# The UpdateFinishedTrialError race (issue 14): how a worker came to compute a result it could not store
# --------------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_two_workers_never_claim_the_same_trial_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The root cause. Optuna's claim reads the trial, checks it is WAITING, then writes RUNNING; SQLite has no
    row lock (and pysqlite reads outside a transaction), so two workers that both read before either writes
    both claim the trial, both run it, and the slower one's ``tell`` raises UpdateFinishedTrialError. Here the
    interleaving is forced: each claimer, once it has read a WAITING trial, waits (up to 2 s) for the other."""
    url = f"sqlite:///{tmp_path}/race.db"
    study = optuna.create_study(storage=open_storage(url, heartbeat_interval=None), study_name="race")
    queue.top_up_tickets(study, 4)
    barrier = threading.Barrier(2)
    checked = RDBStorage.check_trial_is_updatable

    def read_then_wait(self: RDBStorage, trial_id: int, trial_state: TrialState) -> None:
        checked(self, trial_id, trial_state)
        if trial_state == TrialState.WAITING:  # inside a claim, between its read and its write
            # with the fix the other claimer cannot get here while this one holds the claim: the wait times out
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=2)

    monkeypatch.setattr(RDBStorage, "check_trial_is_updatable", read_then_wait)
    claimed: list[int | None] = [None, None]

    def worker(i: int) -> None:
        own = optuna.load_study(study_name="race", storage=open_storage(url, heartbeat_interval=None))
        claimed[i] = queue.claim(own)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert None not in claimed and claimed[0] != claimed[1]
    c = queue.counts(study)
    assert (c["RUNNING"], c["WAITING"]) == (2, 2)


@pytest.mark.timeout(60)
def test_a_result_whose_trial_went_stale_is_noted_and_its_copy_completes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker alive but cut off from the database stops beating; another worker's stale check fails its
    trial and re-queues a copy. The cut-off worker's result can no longer be stored: it is kept as a note,
    the FAIL says why, and the design point still completes exactly once (through the copy)."""
    study = _new_study(tmp_path, heartbeat_interval=1, grace_period=1)
    point = DesignPoint(CASE, Variant("full", "cgi"), 0)
    queue.enqueue_points(study, [point])
    other_storage = open_storage(f"sqlite:///{tmp_path}/queue.db", heartbeat_interval=1, grace_period=1)
    other = optuna.load_study(study_name=study.study_name, storage=other_storage)
    beat = RDBStorage.record_heartbeat
    cut_off: set[int] = set()
    monkeypatch.setattr(RDBStorage, "record_heartbeat", lambda self, i: None if i in cut_off else beat(self, i))

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 0:
            cut_off.add(trial._trial_id)  # from its first beat on, nothing reaches the database
            beat(study._storage._backend, trial._trial_id)  # ... but one did, as the thread beats at once
            while trial._trial_id not in queue.stale_trial_ids(other):
                time.sleep(0.2)
            queue._fail_stale(other)  # another worker's loop
            return 0.8
        return 0.7

    stats = queue.work(study, objective, poll_s=0.1, deadline=time.time() + 45)

    first, copy_ = study.trials
    assert first.state == TrialState.FAIL and first.user_attrs[queue.FAIL_REASON].startswith("stale")
    assert copy_.state == TrialState.COMPLETE and copy_.value == 0.7 and copy_.system_attrs["failed_trial"] == 0
    assert queue.FAIL_REASON not in copy_.user_attrs
    [note] = record.discarded_results(study)
    assert (note["trial"], note["state"], note["value"], note["stored_state"]) == (0, "COMPLETE", 0.8, "FAIL")
    assert stats.lost == 1 and stats.completed == 1


@pytest.mark.timeout(60)
def test_recover_never_fails_a_trial_that_still_beats(tmp_path: Path) -> None:
    """``recover --stale-after S`` on an RDB storage while workers run: a trial older than S whose worker still
    beats is left alone (it used to be failed by start time, and its worker's result then discarded)."""
    study = _new_study(tmp_path, heartbeat_interval=1)
    queue.top_up_tickets(study, 2)
    tool = optuna.load_study(
        study_name=study.study_name, storage=open_storage(f"sqlite:///{tmp_path}/queue.db", heartbeat_interval=None)
    )
    repaired: list[list[int]] = []

    def objective(trial: optuna.Trial) -> float:
        # the heartbeat thread's first beat is asynchronous: on a loaded machine recover could run before it
        from ablate.execution._optuna_compat import stale_trial_ids

        for _ in range(100):
            if trial._trial_id in stale_trial_ids(tool, -3600.0):
                break
            time.sleep(0.05)
        later = dt.datetime.now() + dt.timedelta(hours=1)  # the trial started an hour "ago"
        repaired.append(queue.recover(tool, stale_after=600, now=later))  # a user runs recover meanwhile
        return 0.5

    stats = queue.work(study, objective, deadline=time.time() + 30)  # the deadline only bounds a failure
    assert repaired == [[], []]
    assert stats.completed == 2 and stats.lost == 0 and record.discarded_results(study) == []
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]


def test_recover_fails_a_trial_whose_heartbeat_is_old(tmp_path: Path) -> None:
    study = _new_study(tmp_path, heartbeat_interval=1)
    queue.top_up_tickets(study, 1)
    trial_id = queue.claim(study)
    study._storage.record_heartbeat(trial_id)
    tool = optuna.load_study(
        study_name=study.study_name, storage=open_storage(f"sqlite:///{tmp_path}/queue.db", heartbeat_interval=None)
    )
    assert queue.recover(tool, stale_after=3600) == []  # it beat just now
    assert queue.recover(tool, stale_after=-1) == [0]  # any beat is older than -1 s
    assert study.trials[0].user_attrs[queue.FAIL_REASON].startswith("stale")
    assert study.trials[1].state == TrialState.WAITING


# --------------------------------------------------------------------------------------------------
# Interrupts after a claim, and batches of claims
# --------------------------------------------------------------------------------------------------


class _InterruptingSampler(optuna.samplers.RandomSampler):
    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        raise KeyboardInterrupt


class _Batch:
    """A batch objective: each claimed trial's value (or exception) from ``values``, in claim order."""

    def __init__(self, values: list[object]) -> None:
        self.values, self.batches = list(values), []

    def __call__(self, trial: optuna.Trial) -> float:  # pragma: no cover - work() calls run_batch
        raise AssertionError("a batch objective is called through run_batch")

    def run_batch(self, trials: list[optuna.Trial]) -> list[object]:
        self.batches.append([t.number for t in trials])
        out = [self.values.pop(0) for _ in trials]
        for value in out:
            if isinstance(value, KeyboardInterrupt):
                raise value
        return out


def _interrupt_at(step: str, monkeypatch: pytest.MonkeyPatch, study: optuna.Study) -> object:
    """Make ``step`` of the claim path raise KeyboardInterrupt; return the objective work() should get."""
    boom = KeyboardInterrupt()

    def raise_(*_a: object, **_k: object) -> None:
        raise boom

    if step == "sampler.before_trial":
        study.sampler = _InterruptingSampler()
    elif step == "duplicate check":
        monkeypatch.setattr(queue, "_is_duplicate", raise_)
    elif step == "heartbeat start":
        monkeypatch.setattr(queue, "heartbeat_thread", raise_)
    elif step == "second claim":
        real, calls = queue.claim, []

        def claim(s: optuna.Study) -> int | None:
            calls.append(1)
            if len(calls) == 2:
                raise boom
            return real(s)

        monkeypatch.setattr(queue, "claim", claim)
    elif step == "finishing the first of two":
        real_finish = queue._finish

        def finish(*args: object, **kwargs: object) -> bool:
            monkeypatch.setattr(queue, "_finish", real_finish)
            raise boom

        monkeypatch.setattr(queue, "_finish", finish)
    elif step == "objective":
        return _Batch([boom, boom])
    return _Batch([0.5, 0.6])


STEPS = [
    "second claim",
    "sampler.before_trial",
    "duplicate check",
    "heartbeat start",
    "objective",
    "finishing the first of two",
]


@pytest.mark.parametrize("step", STEPS)
def test_an_interrupt_at_any_step_after_a_claim_fails_every_claimed_trial_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """No window between the claim and the objective's end where Ctrl-C / SIGTERM leaves a RUNNING orphan."""
    study = _new_study(tmp_path, heartbeat_interval=60)
    queue.top_up_tickets(study, 3)
    objective = _interrupt_at(step, monkeypatch, study)
    with pytest.raises(KeyboardInterrupt):
        queue.work(study, objective, batch=2)  # type: ignore[arg-type]
    c = queue.counts(study)
    assert c["RUNNING"] == 0, step
    failed = _by_state(study, TrialState.FAIL)
    assert failed and all(t.user_attrs[record.FAIL_REASON] == "interrupted (Ctrl-C / SIGTERM)" for t in failed)
    assert c["FAIL"] + c["COMPLETE"] + c["WAITING"] == 3


def test_a_batch_claims_several_trials_and_ends_each_on_its_own(study: optuna.Study) -> None:
    queue.top_up_tickets(study, 5)
    objective = _Batch([0.5, ValueError("diverged"), optuna.TrialPruned(), 0.7, float("nan")])
    stats = queue.work(study, objective, batch=2, replace_failed=False)  # type: ignore[arg-type]
    assert objective.batches == [[0, 1], [2, 3], [4]]
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED, TrialState.COMPLETE, TrialState.FAIL]
    assert study.trials[1].user_attrs[record.FAIL_REASON] == "ValueError: diverged"
    assert (stats.completed, stats.failed, stats.pruned) == (2, 2, 1)


def test_an_objective_without_run_batch_runs_one_trial_at_a_time(study: optuna.Study) -> None:
    queue.top_up_tickets(study, 2)
    objective, calls = _counter([0.1, 0.2])
    assert queue.work(study, objective, batch=4).completed == 2 and calls == [0, 1]


@pytest.mark.parametrize(
    ("running", "shown"),
    [
        (3, "#0, #1, #2;"),
        (5, "#0, #1, #2, #3, #4;"),
        (6, "#0, #1, #2, #3, #4 and 1 more;"),
        (7, "#0, #1, #2, #3, #4 and 2 more;"),
    ],
)
def test_a_worker_leaves_young_running_trials_alone_and_says_which_it_waits_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, running: int, shown: str
) -> None:
    """Running trials of other workers that have not beaten yet but started less than a grace period ago are
    not orphans: they are waited for, named once (five at most), and left RUNNING."""
    study = _new_study(tmp_path, heartbeat_interval=60, grace_period=3600)
    queue.top_up_tickets(study, running)
    for _ in range(running):
        study._pop_waiting_trial_id()
    told: set[int] = set()
    with caplog.at_level("WARNING", logger=queue.log.name):
        queue._adopt_orphans(study, _by_state(study, TrialState.RUNNING), told)
        queue._adopt_orphans(study, _by_state(study, TrialState.RUNNING), told)  # said once per trial
    assert queue.counts(study)["RUNNING"] == running and queue.counts(study)["FAIL"] == 0
    said = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert said == [
        f"waiting for {running} running trial(s) of other workers ({shown} one that never beats is re-queued "
        "after 3600 s)"
    ]
    assert told == set(range(running))


def test_a_batch_objective_runs_one_trial_at_a_time_unless_asked(study: optuna.Study) -> None:
    """``batch`` defaults to 1: an objective able to run batches still gets one trial per call by default."""
    calls: list[int] = []

    class Both(_Batch):
        def __call__(self, trial: optuna.Trial) -> float:
            calls.append(trial.number)
            return 0.5

    queue.top_up_tickets(study, 3)
    objective = Both([0.1, 0.2, 0.3])
    assert queue.work(study, objective).completed == 3  # type: ignore[arg-type]
    assert calls == [0, 1, 2] and objective.batches == []


def test_failing_a_trial_that_finished_meanwhile_changes_nothing(study: optuna.Study) -> None:
    """A stale check that loses the race with the trial's own end leaves the finished trial as it is, queues no
    copy, and says so (False), so ``recover`` does not count it as repaired."""
    queue.top_up_tickets(study, 1)
    trial_id = study._pop_waiting_trial_id()
    study._storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.5])
    retry = optuna.storages.RetryFailedTrialCallback()
    assert queue._fail_and_requeue(study, trial_id, "stale: test", retry) is False
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE and trial.value == 0.5 and record.FAIL_REASON not in trial.user_attrs


@pytest.mark.timeout(60)
def test_a_trial_that_beats_is_never_adopted_however_old(tmp_path: Path) -> None:
    """Orphans are trials that never beat: a long-running trial whose worker is alive keeps its claim."""
    study = _new_study(tmp_path, heartbeat_interval=60, grace_period=1)
    queue.top_up_tickets(study, 1)
    trial_id = study._pop_waiting_trial_id()
    time.sleep(1.2)  # older than the grace period
    study._storage.record_heartbeat(trial_id)  # and beating
    queue._adopt_orphans(study, _by_state(study, TrialState.RUNNING), set())
    assert [t.state for t in study.trials] == [TrialState.RUNNING]


def test_a_sampled_study_replaces_at_most_fifty_failed_trials_by_default(study: optuna.Study) -> None:
    """A method that fails every run must not keep a sampled study going for ever: 50 replacements, then stop."""
    queue.top_up_tickets(study, 1)
    objective, calls = _counter([ValueError("always")])
    stats = queue.work(study, objective, replace_failed=True)
    assert (stats.failed, stats.replaced, len(calls)) == (51, 50, 51)


def test_a_failure_reason_is_one_line_of_at_most_500_characters() -> None:
    reason = queue._one_line(ValueError("x\n" * 400))
    assert len(reason) == 500 and "\n" not in reason and reason.startswith("ValueError: x x")


@pytest.mark.parametrize(
    ("url", "lock"),
    [("sqlite://", None), ("sqlite:///:memory:", None), ("sqlite:///{tmp}/q.db", "{tmp}/q.db.queue.lock")],
)
def test_only_a_sqlite_file_gets_a_lock_file(tmp_path: Path, url: str, lock: str | None) -> None:
    """An in-memory database has no file to lock beside it (none is made in the working folder)."""
    storage = RDBStorage(url.format(tmp=tmp_path))
    try:
        assert queue._sqlite_lock_path(storage) == (lock.format(tmp=tmp_path) if lock else None)
    finally:
        storage.engine.dispose()
