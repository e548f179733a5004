"""The retry loop and the error wording of ``ablate.execution.storages.retries``, in-process and fast.

The storage tests (test_storage.py, test_connections.py) drive the same code through real servers; these
pin the arithmetic and the wording those can only sample: how long a full server is waited out, where the
backoff starts, what a restart is ridden out for, and what one line says. The exceptions are the drivers'
own classes, so the classification is the one a real outage meets.
"""

from __future__ import annotations

import math
import random

import psycopg
import pymysql
import pytest
import sqlalchemy
from optuna.exceptions import StorageInternalError

from ablate.execution.storages import retries

FULL_PG = sqlalchemy.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("sorry, too many clients already"))
DROPPED = sqlalchemy.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("server closed the connection"))


def _run(errors: list[BaseException], policy: retries.RetryPolicy, *, ride_out: bool = False):
    """Call a function that raises ``errors`` in turn, then returns "ok"; (result or exception, the
    (try, delay) of each backoff, calls)."""
    calls, waits = [], []

    def func() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "ok"

    try:
        out: object = retries._call_with_retries(
            func, policy, retries.is_transient_error, lambda k, e, d: waits.append((k, d)), ride_out=ride_out
        )
    except Exception as exc:  # noqa: BLE001 - the test looks at which one escaped
        out = exc
    return out, waits, len(calls)


def test_the_default_policy_is_the_documented_backoff() -> None:
    """0.2 s doubling to 3 s, jittered in [0.5, 1]; a full server from 1 s doubling to 30 s, in [0, 1]."""
    p = retries.RetryPolicy()
    assert (p.attempts, p.full_wait, p.down_wait) == (5, 900.0, 120.0)
    rng = random.getstate()
    try:
        random.seed(3)
        first = [p.delay(1) for _ in range(400)]
        doubled = [p.delay(k) for k in (2, 3) for _ in range(400)]
        late = [p.delay(9) for _ in range(400)]
        full_first = [p.full_delay(1) for _ in range(400)]
        full_late = [p.full_delay(9) for _ in range(400)]
    finally:
        random.setstate(rng)
    assert 0.1 <= min(first) < 0.11 and 0.19 < max(first) <= 0.2
    assert min(doubled[:400]) >= 0.2 and max(doubled[:400]) <= 0.4 and max(doubled[400:]) <= 0.8  # doubling
    assert 1.5 <= min(late) < 1.6 and 2.9 < max(late) <= 3.0
    assert 0.0 <= min(full_first) < 0.05 and 0.95 < max(full_first) <= 1.0
    assert 0.0 <= min(full_late) < 1.0 and 29.0 < max(full_late) <= 30.0


def test_a_full_server_is_waited_out_for_full_wait_in_all_and_no_longer() -> None:
    policy = retries.RetryPolicy(
        attempts=2, base_delay=0.0, max_delay=0.0, full_wait=0.05, full_base_delay=0.02, full_max_delay=0.02
    )
    out, waits, calls = _run([FULL_PG] * 500, policy)
    full, tries = [d for _, d in waits if d > 0], [d for _, d in waits if d == 0]
    assert len(full) >= 2 and math.fsum(full) == pytest.approx(0.05, abs=1e-9)  # the last is cut to what is left
    assert len(tries) == 1 and out is FULL_PG and calls == len(waits) + 1  # then the 2 tries: full is transient


def test_the_first_full_backoff_starts_at_full_base_delay() -> None:
    policy = retries.RetryPolicy(full_wait=60.0, full_base_delay=0.004, full_max_delay=1.0)
    state = random.getstate()
    try:
        random.seed(11)
        expected = [0.004 * 2**k * random.uniform(0.0, 1.0) for k in range(3)]
        random.seed(11)
        out, waits, _ = _run([FULL_PG] * 3, policy)
    finally:
        random.setstate(state)
    assert out == "ok"
    assert [d for _, d in waits] == pytest.approx(expected, rel=1e-12)
    assert [k for k, _ in waits] == [1, 1, 1]  # a full server spends no try


def test_transient_errors_spend_the_tries_then_escape() -> None:
    policy = retries.RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.001)
    out, waits, calls = _run([DROPPED] * 10, policy)
    assert out is DROPPED and calls == 3 and [k for k, _ in waits] == [1, 2]
    out, _, calls = _run([DROPPED] * 2, policy)
    assert (out, calls) == ("ok", 3)


def test_a_storage_that_was_open_rides_out_a_restart_for_down_wait() -> None:
    policy = retries.RetryPolicy(attempts=2, base_delay=0.002, max_delay=0.002, down_wait=0.02)
    out, waits, calls = _run([DROPPED] * 200, policy, ride_out=True)
    assert out is DROPPED
    ridden = [d for k, d in waits if k >= policy.attempts]
    assert 0.02 <= math.fsum(ridden) < 0.02 + 0.002 + 1e-9 and calls == len(waits) + 1
    out, _, calls = _run([DROPPED] * 6, policy, ride_out=True)
    assert (out, calls) == ("ok", 7)  # came back within down_wait: the call succeeds


def test_errors_that_are_not_transient_escape_at_once() -> None:
    denied = sqlalchemy.exc.OperationalError("SELECT 1", {}, pymysql.err.OperationalError(1045, "Access denied"))
    out, waits, calls = _run([denied], retries.RetryPolicy(attempts=5), ride_out=True)
    assert out is denied and (waits, calls) == ([], 1)


@pytest.mark.parametrize(
    ("error", "full"),
    [
        (FULL_PG, True),
        (psycopg.OperationalError('FATAL:  too many connections for role "w"'), True),
        (psycopg.OperationalError("remaining connection slots are reserved for superuser"), True),
        (pymysql.err.OperationalError(1040, "Too many connections"), True),
        (pymysql.err.OperationalError(1040, "x"), True),  # by its code alone
        (pymysql.err.OperationalError(1203, "x"), True),
        (pymysql.err.OperationalError(1203, "User w already has more than 'max_user_connections'"), True),
        (pymysql.err.OperationalError(1045, "Access denied for user"), False),
        (DROPPED, False),
    ],
)
def test_a_full_server_is_told_from_other_errors(error: BaseException, full: bool) -> None:
    wrapped = StorageInternalError("wrapped")
    wrapped.__cause__ = error
    assert retries.is_server_full(error) is full and retries.is_server_full(wrapped) is full


def test_a_reason_is_one_password_free_line() -> None:
    mysql = sqlalchemy.exc.OperationalError("SELECT", {}, pymysql.err.OperationalError(1045, "Access denied"))
    assert retries._db_reason(mysql, None) == "Access denied (MySQL error 1045)"
    pg = psycopg.OperationalError('FATAL:  password authentication failed for user "u" (s3cret)\nDETAIL: more')
    assert retries._db_reason(pg, "s3cret") == 'password authentication failed for user "u" (***)'
    wrapped = StorageInternalError("invalid data in the commit")
    wrapped.__cause__ = mysql
    assert retries._db_reason(wrapped, None) == "Access denied (MySQL error 1045)"
    long = retries._db_reason(psycopg.OperationalError("x" * 400), None)
    assert len(long) == 300 and long.endswith("...")
    assert retries._db_reason(psycopg.OperationalError("y" * 300), None) == "y" * 300
    assert retries._db_reason(psycopg.OperationalError("ERROR: trailing."), None) == "trailing"
    assert retries._db_reason(psycopg.OperationalError(""), None) == "OperationalError"


@pytest.mark.parametrize(
    ("reason", "kind", "hint"),
    [
        ("Access denied for user 'x'", "mysql", "check the user name and password"),
        ('role "nobody" does not exist', "postgresql", "check the user name and password"),
        ('database "nope" does not exist', "postgresql", "createdb NAME"),
        ("Unknown database 'nope'", "mysql", "CREATE DATABASE name"),
        ("DB index is out of range", "redis", "Redis database number"),
        ("Connection refused", "postgresql", "check that the server is running"),
    ],
)
def test_each_failure_gets_the_hint_that_fixes_it(reason: str, kind: str, hint: str) -> None:
    assert hint in retries._hint(reason, kind)


def test_values_compare_as_stored_nan_included() -> None:
    same = retries._same_values
    assert same([0.5], None) and same(None, None)
    assert not same(None, [0.5]) and not same([0.5], [0.5, 0.5]) and not same([0.5], [0.25])
    assert same([math.nan, 0.5], [math.nan, 0.5]) and not same([math.nan], [0.5])


def _free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_connection_fails_at_once_unless_told_to_wait(caplog: pytest.LogCaptureFixture) -> None:
    from ablate.errors import StorageError
    from ablate.execution import storages as st

    url = f"postgresql+psycopg://nobody@127.0.0.1:{_free_port()}/none"
    spec = st.parse_storage(url)
    with caplog.at_level("WARNING", logger="ablate.execution.storages"):
        with pytest.raises(StorageError, match="check that the server is running"):
            retries._connect_retrying(spec, lambda: st.RetryingRDBStorage(url))
        assert "refused the connection" not in caplog.text  # no wait by default: a wrong URL says so at once
        with pytest.raises(StorageError, match="check that the server is running"):
            retries._connect_retrying(spec, lambda: st.RetryingRDBStorage(url), wait=0.3)
    said = [r.getMessage() for r in caplog.records if "refused the connection" in r.getMessage()]
    assert len(said) == 1 and said[0].endswith("waiting up to 0 s for it")  # said once, however many tries


def test_a_one_argument_driver_error_still_gives_a_reason() -> None:
    assert retries._db_reason(pymysql.err.OperationalError(2003), None) == "2003"


def test_finishing_a_trial_twice_is_still_an_error(tmp_path) -> None:  # noqa: ANN001
    """The read-back before a retry is for a retry only: a first attempt on a trial finished elsewhere with
    the same value raises, as Optuna does, so that the queue learns it was finished elsewhere."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    storage = retries.RetryingRDBStorage(f"sqlite:///{tmp_path}/s.db")
    study_id = storage.create_new_study([StudyDirection.MAXIMIZE], "s")
    trial_id = storage.create_new_trial(study_id)
    assert storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.5])
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.5])
    storage.engine.dispose()


@pytest.mark.parametrize("code", [1205, 1213, 2003, 2006, 2013])
def test_a_driver_error_is_transient_by_its_mysql_code_alone(code: int) -> None:
    """Lock wait timeout, deadlock, can't connect, gone away, lost: transient whatever the message says."""
    assert retries.is_transient_error(pymysql.err.OperationalError(code, "x"))
    assert not retries.is_transient_error(pymysql.err.OperationalError(code + 100, "x"))
    assert not retries.is_transient_error(pymysql.err.OperationalError("x", code))  # the code comes first


def test_an_open_storage_rides_out_more_failures_than_its_tries(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """A storage that was open (a worker's) keeps trying past its tries while the server restarts; only a first
    connect gives up after them."""
    from optuna.storages import RDBStorage
    from optuna.study import StudyDirection

    storage = retries.RetryingRDBStorage(
        f"sqlite:///{tmp_path}/s.db",
        retry_policy=retries.RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.001, down_wait=5.0),
    )
    storage.create_new_study([StudyDirection.MAXIMIZE], "s")
    real, calls = RDBStorage.get_study_id_from_name, []

    def restarting(self: RDBStorage, name: str) -> int:
        calls.append(1)
        if len(calls) <= 4:  # down for four calls: twice the tries
            raise DROPPED
        return real(self, name)

    monkeypatch.setattr(RDBStorage, "get_study_id_from_name", restarting)
    assert storage.get_study_id_from_name("s") >= 0 and len(calls) == 5
    storage.engine.dispose()


def test_a_retry_policy_cannot_be_changed_once_made() -> None:
    """One policy is shared by every storage a process opens: a change made through one would reach them all."""
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        retries.RetryPolicy().attempts = 1  # type: ignore[misc]
