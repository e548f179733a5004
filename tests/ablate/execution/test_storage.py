"""Tests of ablate.execution.storages: URL forms, opening every kind of storage, fail-fast and retries.

``TestStorageContract`` is what ablate promises of every backend (SQLite, journal file, Redis journal, PostgreSQL,
MariaDB): each of its tests runs on each backend. The other tests are about one backend or about no backend.

Server tests (``@pytest.mark.server``) need PostgreSQL, MariaDB/MySQL and Redis on 127.0.0.1 (override
with ABLATE_TEST_POSTGRES_URL / ABLATE_TEST_MYSQL_URL / ABLATE_TEST_REDIS_URL).  They skip when the
server is down, but fail under CI=true.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import optuna
import psycopg
import pytest
import sqlalchemy
from ablate_testing.servers import require_server
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

from ablate import record
from ablate.errors import AblateError, StorageError
from ablate.execution import _optuna_compat as compat
from ablate.execution import connections, queue, studies
from ablate.execution import storages as st
from ablate.execution.storages import urls
from ablate.experiment import names
from ablate.experiment.designs import load_ablation_design
from ablate.experiment.presets import default_storage_url, load_fidelity

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

POSTGRES_URL = os.environ.get("ABLATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("ABLATE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("ABLATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

FAST_RETRIES = st.RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)


def _require(url: str) -> None:
    parsed = sqlalchemy.engine.make_url(url)
    default_port = {"postgresql": 5432, "mysql": 3306, "redis": 6379}[parsed.get_backend_name()]
    require_server(parsed.host or "127.0.0.1", parsed.port or default_port)


def _unique(name: str) -> str:
    return f"ablate-test-{name}-{uuid.uuid4().hex[:10]}"


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + "&".join(f"{k}={v}" for k, v in params.items())


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    trial.set_user_attr("note", "ok")
    trial.report(x, step=0)
    return x * x


def _transient_error(message: str = "server closed the connection unexpectedly") -> StorageInternalError:
    """What a dropped connection looks like from RDBStorage: StorageInternalError from OperationalError."""
    error = StorageInternalError("An exception is raised during the commit.")
    error.__cause__ = sqlalchemy.exc.OperationalError("COMMIT", {}, psycopg.OperationalError(message))
    return error


# --------------------------------------------------------------------------------------------------
# Parsing, precedence, masking
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected_url", "kind"),
    [
        ("sqlite:///studies/runs/ablate.db", "sqlite:///studies/runs/ablate.db", "sqlite"),
        ("sqlite:////tmp/abs/ablate.db", "sqlite:////tmp/abs/ablate.db", "sqlite"),
        ("sqlite:///:memory:", "sqlite:///:memory:", "sqlite"),
        ("  sqlite:///x.db  ", "sqlite:///x.db", "sqlite"),
        ("postgresql://u:p@db.example:5432/abl", "postgresql://u:p@db.example:5432/abl", "postgresql"),
        ("postgresql+psycopg://u@h/abl", "postgresql+psycopg://u@h/abl", "postgresql"),
        ("postgres://u@h/abl", "postgresql://u@h/abl", "postgresql"),
        ("mysql://root@127.0.0.1:3306/test", "mysql+pymysql://root@127.0.0.1:3306/test", "mysql"),
        ("mysql+pymysql://root@h/test", "mysql+pymysql://root@h/test", "mysql"),
        ("mariadb://root@h/test", "mysql+pymysql://root@h/test", "mysql"),
        ("studies/runs/x.log", "studies/runs/x.log", "journal-file"),
        ("runs/x.journal", "runs/x.journal", "journal-file"),
        ("./x", "./x", "journal-file"),
        ("/abs/path/x", "/abs/path/x", "journal-file"),
        ("~/x.log", "~/x.log", "journal-file"),
        ("journal:///abs/path.log", "/abs/path.log", "journal-file"),
        ("journal:rel/journal", "journal:rel/journal", "journal-file"),
        ("file:rel/x.log", "rel/x.log", "journal-file"),
        ("file:///abs/x", "/abs/x", "journal-file"),
        ("journal:/abs/x.db", "journal:/abs/x.db", "journal-file"),
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379", "journal-redis"),
        ("redis://:pw@h:6379/2?prefix=abl", "redis://:pw@h:6379/2?prefix=abl", "journal-redis"),
        ("rediss://h/0", "rediss://h/0", "journal-redis"),
    ],
)
def test_parse_accepted_forms(url: str, expected_url: str, kind: str) -> None:
    spec = st.parse_storage(url)
    assert (spec.url, spec.kind) == (expected_url, kind)
    assert st.parse_storage(spec.url) == spec  # the normalised URL reads back the same


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "foo://bar",
        "http://example.com/db",
        "sqlite://",
        "sqlite:///",
        "sqlite://host/x.db",
        "postgresql://h",
        "postgresql://u:p@h:notaport/db",
        "postgresql+asyncpg://u@h/db",
        "postgresql+nosuchdriver://u@h/db",
        "mysql+mysqldb://root@h/test",
        "redis://",
        "redis://h/zero",
        "redis://h/0?password_file=x",
        "studies/runs/x",
        "ablate.db",
        "/abs/ablate.sqlite",
        "journal:",
        "file:",
        "runs/",
    ],
)
def test_parse_rejected_forms(url: str) -> None:
    with pytest.raises(StorageError) as info:
        st.parse_storage(url)
    message = str(info.value)
    assert "\n" not in message
    assert "sqlite:///PATH.db" in message and "redis://" in message  # lists the accepted forms
    assert isinstance(info.value, AblateError)


def test_plain_sqlite_path_gets_a_hint() -> None:
    with pytest.raises(StorageError, match=r"sqlite:///runs/ablate\.db"):
        st.parse_storage("runs/ablate.db")


def test_rejection_masks_the_password() -> None:
    with pytest.raises(StorageError) as info:
        st.parse_storage("foo://user:hunter2@host/db")
    assert "hunter2" not in str(info.value)
    assert "foo://user:***@host/db" in str(info.value)


def test_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    assert st.resolve_url(None) == default_storage_url()
    assert st.parse_storage(None) == st.StorageSpec(default_storage_url(), "sqlite")

    monkeypatch.setenv("OPTUNA_STORAGE", "redis://127.0.0.1:6379/1")
    assert st.resolve_url(None) == "redis://127.0.0.1:6379/1"
    assert st.parse_storage(None).kind == "journal-redis"
    assert st.resolve_url("runs/x.log") == "runs/x.log"  # explicit beats the environment
    with pytest.raises(StorageError):
        st.parse_storage("")  # an explicit empty URL is an error, not "use the default"

    monkeypatch.setenv("OPTUNA_STORAGE", "  ")
    assert st.resolve_url(None) == default_storage_url()


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:s3cret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u:s%40cret@h/db", "postgresql://u:***@h/db"),
        ("mysql+pymysql://root:p@ss:w/rd@h/test", "mysql+pymysql://root:***@h/test"),  # unparseable
        ("redis://:s3cret@h:6379/0?prefix=a", "redis://:***@h:6379/0?prefix=a"),
        (
            "postgresql://u@h/db?password=s3cret&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("studies/runs/x.log", "studies/runs/x.log"),
    ],
)
def test_password_masking(url: str, masked: str) -> None:
    assert st.mask_url(url) == masked
    assert st.StorageSpec(url, "postgresql").masked() == masked


# --------------------------------------------------------------------------------------------------
# The storage contract: what ablate promises of every backend
# --------------------------------------------------------------------------------------------------
#
# As Optuna's own storage tests do (a ``storage`` fixture parametrised over ``STORAGE_MODES``, and one test class
# whose every test takes it), every test of ``TestStorageContract`` runs against each backend ablate supports,
# through ablate's API (``ablate.execution.storages``, ``ablate.execution.queue``, ``ablate.record``,
# ``ablate.execution.studies``, ``ablate.experiment.names``, ``ablate.execution.connections``). A backend-specific
# behaviour (retries, killed connections, URL forms) has its own test elsewhere in this file.

CONTRACT_CASE = "T1M1_T2M2"
SERVER_MODES = ("redis", "postgresql", "mysql")
CONTRACT_KINDS = {  # backend -> what ablate.execution.storages calls it
    "sqlite": "sqlite",
    "journal-file": "journal-file",
    "redis": "journal-redis",
    "postgresql": "postgresql",
    "mysql": "mysql",
}


@dataclass(frozen=True)
class Backend:
    """One storage under the contract: its URL, what ablate calls it, and a tag that makes its study names unique
    (xdist workers and other engineers' runs share the servers)."""

    mode: str
    url: str
    kind: str  # ablate's StorageSpec.kind
    tag: str

    @property
    def rdb(self) -> bool:
        return self.kind in ("sqlite", "postgresql", "mysql")

    @property
    def server(self) -> bool:
        return self.kind in urls.SERVER_KINDS

    @property
    def path(self) -> Path | None:
        return st.parse_storage(self.url).path

    def name(self, what: str) -> str:
        return f"ablate-contract-{self.tag}-{what}"

    def open(self, **kwargs: object) -> BaseStorage:
        """A new handle on the storage (as another worker process would open it): no heartbeats unless asked."""
        kwargs.setdefault("heartbeat_interval", None)
        return st.open_storage(self.url, **kwargs)  # type: ignore[arg-type]

    def create(self, what: str, **kwargs: object) -> optuna.Study:
        return optuna.create_study(storage=self.open(), study_name=self.name(what), direction="maximize", **kwargs)

    def load(self, study: optuna.Study, **kwargs: object) -> optuna.Study:
        """``study`` through a fresh handle: what another worker, or a later report, reads."""
        return optuna.load_study(study_name=study.study_name, storage=self.open(create=False), **kwargs)


def _contract_url(mode: str, tmp_path: Path, tag: str) -> str:
    if mode == "sqlite":
        return f"sqlite:///{tmp_path}/contract/ablate.db"
    if mode == "journal-file":
        return str(tmp_path / "contract" / "ablate.log")
    if mode == "redis":
        _require(REDIS_URL)
        return _with_query(REDIS_URL, prefix=f"ablate-contract-{tag}")  # a log of its own: small to replay
    url = {"postgresql": POSTGRES_URL, "mysql": MYSQL_URL}[mode]
    _require(url)
    return url


def _redis_keys(backend: Backend, *, delete: bool = False) -> list[bytes]:
    """The Redis keys under the backend's prefix (deleted with ``delete``)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"ablate-contract-{backend.tag}:*"))
        if delete and keys:
            client.delete(*keys)
        return keys
    finally:
        client.close()


def _clean_up(backend: Backend) -> None:
    """Delete the test's studies through ablate's storage (wherever it wrote them), then a Redis prefix's keys."""
    if not backend.server:
        return  # tmp_path goes with the test
    storage = backend.open()
    try:
        for name in optuna.get_all_study_names(storage):
            if backend.tag in name:
                optuna.delete_study(study_name=name, storage=storage)
    finally:
        connections.release(storage)
    if backend.kind == "journal-redis":
        _redis_keys(backend, delete=True)


@pytest.fixture(
    params=[pytest.param(mode, marks=pytest.mark.server) if mode in SERVER_MODES else mode for mode in CONTRACT_KINDS]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Every backend in turn (a server that is down skips, and fails under CI=true); its studies are deleted after
    the test, and the connections of every storage the test opened are given back."""
    tag = uuid.uuid4().hex[:12]
    url = _contract_url(request.param, tmp_path, tag)
    backend = Backend(request.param, url, st.parse_storage(url).kind, tag)
    try:
        with connections.released():
            yield backend
    finally:
        _clean_up(backend)


def _design_plan(backend: Backend, name: str, **changes: object) -> studies.DesignPlan:
    values: dict[str, object] = {
        "name": name,
        "storage": backend.url,
        "fidelity": load_fidelity("smoke"),
        "design": load_ablation_design("ofat"),
        "cases": (CONTRACT_CASE,),
        "seeds": 1,
        "heartbeat_interval": None,
    }
    return studies.DesignPlan(**{**values, **changes})  # type: ignore[arg-type]


def _as_json(definition: record.Definition) -> object:
    return json.loads(json.dumps(asdict(definition)))


def _is_closed(dbapi_connection: object) -> bool:
    """Whether a driver connection (psycopg, PyMySQL or sqlite3) is closed."""
    if hasattr(dbapi_connection, "closed"):  # psycopg
        return bool(dbapi_connection.closed)
    if hasattr(dbapi_connection, "open"):  # PyMySQL
        return not dbapi_connection.open
    try:  # sqlite3 has no flag: a closed connection refuses to work
        dbapi_connection.execute("SELECT 1")  # type: ignore[attr-defined]
    except sqlite3.ProgrammingError:
        return True
    return False


@contextlib.contextmanager
def _driver_connections() -> Iterator[list[object]]:
    """Every driver connection a pool opens inside the block (whatever engine it belongs to)."""
    opened: list[object] = []

    def on_connect(dbapi_connection: object, _record: object) -> None:
        opened.append(dbapi_connection)

    sqlalchemy.event.listen(sqlalchemy.pool.Pool, "connect", on_connect)
    try:
        yield opened
    finally:
        sqlalchemy.event.remove(sqlalchemy.pool.Pool, "connect", on_connect)


class TestStorageContract:
    """What ablate promises of every storage: each test runs on SQLite, a journal file, a Redis journal,
    PostgreSQL and MariaDB."""

    def test_the_url_names_its_kind_and_opens_a_storage_of_that_kind(self, backend: Backend) -> None:
        spec = st.parse_storage(backend.url)
        assert st.parse_storage(spec.url) == spec  # the normalised URL reads back the same
        assert spec.kind == CONTRACT_KINDS[backend.mode]
        st.check_reachable(spec)
        if backend.path is not None:
            assert not backend.path.parent.exists()  # the check creates nothing

        storage = backend.open(heartbeat_interval=60)
        # Heartbeats are what fails and re-queues a killed worker's trial by itself (docs/distributed.md, Faults):
        # every RDB storage beats, a journal never does (`ablate recover` repairs it).
        assert isinstance(storage, st.RetryingRDBStorage if backend.rdb else optuna.storages.JournalStorage)
        assert st.is_heartbeat_capable(storage) is backend.rdb
        assert not st.is_heartbeat_capable(backend.open(heartbeat_interval=None))
        study = optuna.create_study(storage=storage, study_name=backend.name("kind"))
        assert st.is_heartbeat_capable(compat.storage_of(study)) is backend.rdb  # also behind Optuna's cache
        if backend.path is not None:
            assert backend.path.is_file()  # a local storage is written where its URL says
        if backend.kind == "journal-redis":
            assert _redis_keys(backend)  # and a Redis journal under the URL's prefix

    def test_a_study_and_its_attributes_read_back_as_written(self, backend: Backend) -> None:
        plan = _design_plan(backend, backend.name("round-trip"))
        study = backend.create("round-trip")
        record.write_definition(study, plan.definition())  # ~8 KB system attribute + its short user attribute
        study_id = compat.storage_of(study).get_study_id_from_name(study.study_name)
        attr = {"text": "λ → 😀", "floats": [0.1, 1e-300, 0.9411764705882353, -0.0], "nested": {"a": [1, None, True]}}
        study.set_user_attr("attr", attr)
        compat.storage_of(study).set_study_system_attr(study_id, "ablate:test", attr)
        record.store_benchmark(study, CONTRACT_CASE, 3, {"val_accuracy": 272 / 289, "test_accuracy": 0.5})
        record.link_confirmation(study, "confirm-a")
        record.link_confirmation(study, "confirm-b")
        record.write_discarded(study, 7, {"trial": 7, "worker": "host:1", "value": 0.25})
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": 0.125, "c": "b"},
                distributions={
                    "x": optuna.distributions.FloatDistribution(0.0, 1.0),
                    "c": optuna.distributions.CategoricalDistribution(["a", "b"]),
                },
                value=0.9411764705882353,
                intermediate_values={0: 0.5, 1: 0.75},
                user_attrs={"note": "ok"},
            )
        )

        again = backend.load(study)
        assert study.study_name in optuna.get_all_study_names(compat.storage_of(again))
        assert again.directions == [StudyDirection.MAXIMIZE]
        assert _as_json(record.read_definition(again)) == _as_json(plan.definition())  # as JSON: tuples are lists
        record.write_definition(again, plan.definition())  # resuming the same experiment is accepted
        assert again.user_attrs["attr"] == attr
        assert again.user_attrs[record.DEFINITION] == plan.definition().summary()
        assert compat.storage_of(again).get_study_system_attrs(study_id)["ablate:test"] == attr
        assert record.cached_benchmark(again, CONTRACT_CASE, 3) == {"val_accuracy": 272 / 289, "test_accuracy": 0.5}
        assert record.confirmations_of(again) == ["confirm-a", "confirm-b"]
        assert record.discarded_results(again) == [{"trial": 7, "worker": "host:1", "value": 0.25}]
        (trial,) = again.trials
        assert (trial.state, trial.value, trial.params) == (
            TrialState.COMPLETE,
            0.9411764705882353,
            {"x": 0.125, "c": "b"},
        )
        assert trial.distributions == study.trials[0].distributions
        assert (trial.intermediate_values, trial.user_attrs) == ({0: 0.5, 1: 0.75}, {"note": "ok"})

    def test_the_queue_hands_out_each_trial_exactly_once_to_two_handles(self, backend: Backend) -> None:
        points = load_ablation_design("ofat").points([CONTRACT_CASE], 1)
        first = backend.create("queue")
        assert queue.enqueue_points(first, points) == len(points)
        second = backend.load(first)  # another worker's handle
        assert queue.enqueue_points(second, points) == 0  # what is queued is not queued again, from either handle

        claimed: list[int | None] = []
        for _ in range(2):  # in turn: each handle sees the other's claims
            claimed += [queue.claim(first), queue.claim(second)]
        barrier = threading.Barrier(2)

        def drain(study: optuna.Study) -> list[int]:
            barrier.wait(timeout=30)
            ids = []
            while (trial_id := queue.claim(study)) is not None:
                ids.append(trial_id)
            return ids

        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # then at once, until both find the queue empty
            for ids in pool.map(drain, (first, second), timeout=120):
                claimed += ids

        trials = {compat.trial_id_of(t): t for t in backend.load(first).trials}
        assert None not in claimed
        assert sorted(claimed) == sorted(trials)  # every trial popped, none twice
        assert {t.state for t in trials.values()} == {TrialState.RUNNING}
        assert sorted(record.read_point(t.user_attrs).key for t in trials.values()) == sorted(p.key for p in points)
        assert queue.claim(first) is None and queue.claim(second) is None
        assert queue.enqueue_points(second, points) == 0  # running points are not queued again either

    def test_two_workers_finish_exactly_the_total(self, backend: Backend) -> None:
        total = 6
        first = backend.create("work", sampler=optuna.samplers.RandomSampler(seed=0))
        assert queue.top_up_tickets(first, total) == total
        second = backend.load(first, sampler=optuna.samplers.RandomSampler(seed=1))
        assert queue.top_up_tickets(second, total) == 0
        ran: list[int] = []

        def objective(trial: optuna.Trial) -> float:
            ran.append(trial.number)
            x = trial.suggest_float("x", 0.0, 1.0)
            if trial.number == 0:
                raise RuntimeError("planted failure")
            return x

        def worker(study: optuna.Study) -> queue.WorkerStats:
            return queue.work(study, objective, replace_failed=True, poll_s=0.05)

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            stats = list(pool.map(worker, (first, second), timeout=120))

        assert sorted(ran) == list(range(total + 1))  # each trial ran once; the failed one's replacement too
        assert sum(s.completed for s in stats) == total and sum(s.replaced for s in stats) == 1
        final = backend.load(first)
        assert queue.counts(final) == {"COMPLETE": total, "FAIL": 1, "PRUNED": 0, "RUNNING": 0, "WAITING": 0}
        (failed,) = final.get_trials(states=(TrialState.FAIL,))
        assert record.read_trial(failed).fail_reason == "RuntimeError: planted failure"
        assert queue.top_up_tickets(final, total) == 0

    def test_a_trial_record_reads_back_as_written(self, backend: Backend) -> None:
        study = backend.create("record")
        point = load_ablation_design("ofat").points([CONTRACT_CASE], 1)[1]
        queue.enqueue_points(study, [point])
        queue.top_up_tickets(study, 2)  # 1 design point + 1 ticket

        trial = optuna.Trial(study, queue.claim(study))  # type: ignore[arg-type]
        assert record.read_point(trial.user_attrs) == point.point()
        run = record.SeedResult(
            0, 272 / 289, 0.5, 1.25, n_val=289, n_test=290, curve={"val": [0.25, 272 / 289], "test": [0.125, 0.5]}
        )
        record.write_run(trial, {"M": 100, "transfer": "mu", "init_log_sigma": -2.3}, run, {"fit": 1.23456789})
        diagnostics = {"mean_log_sigma": {"middle": -4.5}, "fit_ratio": {"middle": {"target": 9, "source": 3}}}
        record.write_diagnostics(trial, diagnostics)
        record.write_generators(trial, {"middle": {"kind": "gmm", "weights": [0.25, 0.75], "converged": False}})
        study.tell(trial, run.val_accuracy)

        ticket = optuna.Trial(study, queue.claim(study))  # type: ignore[arg-type]
        record.write_started(ticket, CONTRACT_CASE, {"M": 7})
        seeds = [
            record.SeedResult(0, 0.875, 0.75, 2.0, 8, 4, {"val_accuracy": 0.625, "test_accuracy": 0.5}),
            record.SeedResult(1, 0.5, 0.25, 3.0, 8, 4, {"val_accuracy": 0.5, "test_accuracy": 0.25}, {"val": [0.5]}),
        ]
        record.write_sampled(ticket, seeds, {"source": 0.5, "target": 1.5}, pruned_after=None)
        study.tell(ticket, 0.6875)

        designed, sampled = (record.read_trial(t) for t in backend.load(study).trials)
        assert (designed.state, designed.value, designed.key) == ("COMPLETE", 272 / 289, point.key)
        assert (designed.case, designed.variant, designed.technique, designed.seed) == (
            CONTRACT_CASE,
            point.variant.label,
            point.variant.technique,
            0,
        )
        assert designed.config == {"M": 100, "transfer": "mu", "init_log_sigma": -2.3}
        assert designed.seeds == (run,)
        assert designed.stages == {"fit": 1.2346}
        assert designed.attrs["diagnostics"] == diagnostics
        assert designed.attrs["generators"]["middle"]["weights"] == [0.25, 0.75]
        assert (sampled.state, sampled.value, sampled.case, sampled.config) == (
            "COMPLETE",
            0.6875,
            CONTRACT_CASE,
            {"M": 7},
        )
        assert sampled.seeds == tuple(seeds)
        assert (sampled.test_accuracy, sampled.attrs["transfer_gain"]) == (0.5, 0.125)

    def test_a_missing_study_is_refused_and_nothing_is_created(self, backend: Backend) -> None:
        if backend.path is not None:  # a local storage that does not exist is not made by a reader
            with pytest.raises(StorageError, match="does not exist"):
                backend.open(create=False)
            assert not backend.path.parent.exists()
        before = optuna.get_all_study_names(backend.open())
        name = backend.name("missing")
        with pytest.raises(KeyError):  # what `ablate report`, `recover`, ... turn into "no study named ..."
            studies.open_study(_design_plan(backend, name), create=False)
        with pytest.raises(AblateError, match=f"--join: no study '{name}' with a queue"):
            studies.prepare(_design_plan(backend, name, join=True, join_wait=0))
        assert optuna.get_all_study_names(backend.open()) == before

    def test_study_names_and_attributes_at_the_limits_every_backend_holds(self, backend: Backend) -> None:
        prefix = backend.name("")
        longest = prefix + "😀" * (names.STUDY_NAME_MAX - len(prefix))  # 4-byte characters: 2,048 bytes in UTF-8
        assert names.check_study_name(longest) == longest and len(longest) == names.STUDY_NAME_MAX
        with pytest.raises(AblateError, match=f"at most {names.STUDY_NAME_MAX} characters"):
            names.check_study_name(longest + "x")
        biggest = "x" * (names.ATTR_VALUE_MAX - 2)  # as JSON, with its quotes
        assert names.attr_bytes(biggest) == names.ATTR_VALUE_MAX

        study = optuna.create_study(storage=backend.open(), study_name=longest)
        study.set_user_attr("biggest", biggest)
        again = optuna.load_study(study_name=longest, storage=backend.open(create=False))
        assert again.study_name == longest
        assert longest in optuna.get_all_study_names(compat.storage_of(again))
        assert again.user_attrs["biggest"] == biggest

    def test_names_one_backend_would_confuse_are_refused_on_every_backend(self, backend: Backend) -> None:
        """MariaDB's utf8mb4_general_ci makes 'Case' and 'case', 'é' and 'e', and any two emoji one study name
        (create_study fails, load_study loads the other study); ablate refuses the second of each pair on every
        backend, before anything is written, and lets distinct names through."""
        storage = backend.open()
        for first, second in (("Case", "case"), ("é", "e"), ("😀", "😁")):
            name = names.check_new_study_name(backend.name(first), optuna.get_all_study_names(storage))
            optuna.create_study(storage=storage, study_name=name).set_user_attr("suffix", first)
            before = optuna.get_all_study_names(storage)
            with pytest.raises(AblateError, match="only in case, accents or emoji"):
                names.check_new_study_name(backend.name(second), before)
            assert names.check_new_study_name(name, before) == name  # the same name resumes
        other = names.check_new_study_name(backend.name("other"), optuna.get_all_study_names(storage))
        optuna.create_study(storage=storage, study_name=other)
        reader = backend.open(create=False)
        for first in ("Case", "é", "😀"):
            assert optuna.load_study(study_name=backend.name(first), storage=reader).user_attrs["suffix"] == first

    def test_released_storages_hold_no_connection(self, backend: Backend) -> None:
        with _driver_connections() as opened:
            with connections.released():  # what every command and studies.execute run in
                study = backend.create("released")
                queue.top_up_tickets(study, 2)
                assert queue.claim(study) is not None
            assert bool(opened) is backend.rdb  # a journal holds no SQL connection: nothing to give back
            assert [c for c in opened if not _is_closed(c)] == []  # every connection given back

            before = len(opened)
            assert queue.counts(study)["WAITING"] == 1  # a released study is not broken: it connects again
            assert len(opened) > before if backend.rdb else opened == []
            connections.release(study)  # and a study gives its connections back on its own (a waiting coordinator)
            assert [c for c in opened if not _is_closed(c)] == []


# --------------------------------------------------------------------------------------------------
# Local storages
# --------------------------------------------------------------------------------------------------


def test_sqlite_creates_parent_dirs_and_keeps_one_idle_connection(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "ablate.db"
    storage = st.open_storage(f"sqlite:///{db}", workers=4)
    assert db.parent.is_dir()
    assert storage.engine.pool.size() == 1  # one idle connection kept: the connection budget (docs/distributed.md)
    assert storage.engine.pool._max_overflow == 4 + 2  # the rest opened on demand, closed when given back
    assert storage.get_heartbeat_stale_trial_callback() is not None
    storage.engine.dispose()


def test_sqlite_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    url = f"sqlite:///{blocker}/sub/x.db"
    with pytest.raises(StorageError) as info:
        st.check_reachable(st.parse_storage(url))
    assert "not a directory" in str(info.value)
    with pytest.raises(StorageError) as info:
        st.open_storage(url)
    assert "\n" not in str(info.value) and "cannot create directory" in str(info.value)


def test_every_form_of_a_journal_file_url_names_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "journals" / "run.log"
    study = optuna.create_study(storage=st.open_storage(str(path)), study_name="j")
    study.optimize(_objective, n_trials=1)
    for url in (str(path), f"journal:{path}", f"file://{path}"):
        reloaded = optuna.load_study(study_name="j", storage=st.open_storage(url, create=False))
        assert [t.state for t in reloaded.trials] == [TrialState.COMPLETE]


def test_open_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        st.open_storage(f"sqlite:///{tmp_path}/x.db", workers=0)
    with pytest.raises(ValueError):
        st.open_storage(f"sqlite:///{tmp_path}/x.db", heartbeat_interval=0)


# --------------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://root:hunter2@127.0.0.1:1/test",
        "mysql://root:hunter2@127.0.0.1:1/test",
        "redis://:hunter2@127.0.0.1:1/0",
    ],
)
def test_unreachable_server_fails_fast(url: str) -> None:
    for attempt in (lambda: st.check_reachable(st.parse_storage(url)), lambda: st.open_storage(url)):
        started = time.monotonic()
        with pytest.raises(StorageError) as info:
            attempt()
        assert time.monotonic() - started < 5.0
        message = str(info.value)
        assert "\n" not in message
        assert "hunter2" not in message and ":***@127.0.0.1:1" in message
        assert "refused" in message.lower()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dashboard_studies(url: str, hide: Path) -> list[str]:
    """Study names served by a real ``optuna-dashboard URL`` process, started as a user would by hand.

    ``hide`` shadows psycopg2, so that the URL must open with the driver ablate installs (psycopg 3)."""
    (hide / "psycopg2").mkdir()
    (hide / "psycopg2" / "__init__.py").write_text("raise ImportError('psycopg2 hidden by the test')\n")
    port = _free_port()
    command = [str(Path(sys.executable).with_name("optuna-dashboard")), url, "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(hide)}
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        try:
            deadline = time.monotonic() + 120  # a wait for start-up, not a timing assertion
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10) as response:
                        return [s["study_name"] for s in json.load(response)["study_summaries"]]
                except OSError:
                    time.sleep(0.5)
            proc.terminate()
            pytest.fail(f"optuna-dashboard did not serve {url}: {proc.communicate(timeout=30)[1][-2000:]}")
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    raise AssertionError("unreachable")


@pytest.mark.server
def test_the_postgresql_url_given_to_ablate_opens_in_plain_optuna_and_the_dashboard(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/test"
    _require(url)
    assert st.parse_storage(url).url == url  # what ablate stores and prints is what the user typed
    storage = st.open_storage(url, heartbeat_interval=None)
    assert storage.engine.dialect.driver == "psycopg"
    name = _unique("plain")
    study = optuna.create_study(study_name=name, storage=storage)
    try:
        study.optimize(_objective, n_trials=2)
        plain = optuna.load_study(study_name=name, storage=url)  # a plain URL string: Optuna's own RDBStorage
        assert [t.state for t in plain.trials] == [TrialState.COMPLETE] * 2
        assert name in _dashboard_studies(url, tmp_path)
    finally:
        optuna.delete_study(study_name=name, storage=storage)
        storage.engine.dispose()


@pytest.mark.server
@pytest.mark.parametrize("base", [POSTGRES_URL, MYSQL_URL])
def test_missing_database(base: str) -> None:
    _require(base)
    url = str(sqlalchemy.engine.make_url(base).set(database="ablate_no_such_db").render_as_string(False))
    with pytest.raises(StorageError, match="ablate_no_such_db") as info:
        st.open_storage(url)
    assert "create the database" in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------------
# Transient failures against a real PostgreSQL
# --------------------------------------------------------------------------------------------------


def _admin_connection() -> psycopg.Connection:
    url = sqlalchemy.engine.make_url(POSTGRES_URL)
    return psycopg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database, autocommit=True
    )


def _terminate(where: str, *params: object) -> int:
    """Terminate the matching backends (waiting up to 5 s for each to exit); how many."""
    with _admin_connection() as connection, connection.cursor() as cursor:
        cursor.execute(
            f"SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND {where}",
            params,
        )
        return sum(1 for (ok,) in cursor.fetchall() if ok)


@pytest.fixture
def pg_study() -> Iterator[tuple[st.RetryingRDBStorage, optuna.Study, str]]:
    _require(POSTGRES_URL)
    app = _unique("app")
    url = _with_query(POSTGRES_URL, application_name=app)  # so that we only kill our own connections
    storage = st.open_storage(url, workers=2, heartbeat_interval=None)  # ask/tell: no heartbeats
    assert isinstance(storage, st.RetryingRDBStorage)
    storage.retry_policy = st.RetryPolicy(attempts=5, base_delay=0.05, max_delay=0.2)
    name = _unique("study")
    study = optuna.create_study(storage=storage, study_name=name)
    yield storage, study, app
    optuna.delete_study(study_name=name, storage=storage)
    storage.engine.dispose()


@pytest.mark.server
def test_postgresql_survives_terminated_connections(pg_study) -> None:
    storage, study, app = pg_study
    study.optimize(_objective, n_trials=1)
    running = study.ask()
    running.suggest_float("x", -1.0, 1.0)

    database = sqlalchemy.engine.make_url(POSTGRES_URL).database
    killed = _terminate("datname = %s AND application_name = %s", database, app)
    assert killed >= 1  # the pooled connections of this storage were really dropped

    study.tell(running, 0.25)
    study.optimize(_objective, n_trials=1)
    trials = storage.get_all_trials(study._study_id)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert trials[1].values == [0.25]


@pytest.mark.server
def test_postgresql_retries_a_connection_killed_mid_operation(pg_study, caplog) -> None:
    storage, study, _ = pg_study
    trial = study.ask()
    trial.suggest_float("x", -1.0, 1.0)
    kills = {"armed": 0, "done": 0}

    def kill_after_pre_ping(dbapi_connection, _record, _proxy) -> None:
        # The checkout event fires after pool_pre_ping, so the pool cannot hide this drop.
        if kills["armed"]:
            kills["armed"] -= 1
            kills["done"] += _terminate("pid = %s", dbapi_connection.info.backend_pid)

    sqlalchemy.event.listen(storage.engine, "checkout", kill_after_pre_ping)
    try:
        with caplog.at_level(logging.WARNING, logger="ablate.execution.storages"):
            kills["armed"] = 1
            assert storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [0.5])
            kills["armed"] = 1
            trials = storage.get_all_trials(study._study_id)
    finally:
        sqlalchemy.event.remove(storage.engine, "checkout", kill_after_pre_ping)
    assert kills["done"] == 2
    assert "transient storage error in set_trial_state_values" in caplog.text
    assert "transient storage error in get_all_trials" in caplog.text
    assert "terminating connection" in caplog.text or "server closed the connection" in caplog.text
    assert [(t.state, t.values) for t in trials] == [(TrialState.COMPLETE, [0.5])]


@pytest.mark.server
@pytest.mark.parametrize("how", ["check_reachable", "open_storage"])
def test_a_connection_killed_while_opening_is_retried_not_refused(how: str, caplog) -> None:
    """A worker that starts while connections are being terminated (the chaos soak's conn_kill, an
    administrator's pg_terminate_backend) must connect again, not exit 2 as if its URL were wrong."""
    _require(POSTGRES_URL)
    app = _unique("opening")
    url = _with_query(POSTGRES_URL, application_name=app)
    kills = {"armed": 1, "done": 0}

    def kill_first_checkout(dbapi_connection, _record, _proxy) -> None:
        info = getattr(dbapi_connection, "info", None)  # psycopg's ConnectionInfo
        if kills["armed"] and info is not None and info.parameter_status("application_name") == app:
            kills["armed"] -= 1
            kills["done"] += _terminate("pid = %s", dbapi_connection.info.backend_pid)

    sqlalchemy.event.listen(sqlalchemy.pool.Pool, "checkout", kill_first_checkout)
    try:
        with caplog.at_level(logging.WARNING, logger="ablate.execution.storages"):
            if how == "check_reachable":
                st.check_reachable(st.parse_storage(url))
            else:
                storage = st.open_storage(url, heartbeat_interval=None)
                storage.engine.dispose()
    finally:
        sqlalchemy.event.remove(sqlalchemy.pool.Pool, "checkout", kill_first_checkout)
    assert kills["done"] == 1
    assert "transient error while connecting" in caplog.text


# --------------------------------------------------------------------------------------------------
# Retry logic, unit level (SQLite; failures injected)
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_storage(tmp_path: Path) -> Iterator[st.RetryingRDBStorage]:
    storage = st.open_storage(f"sqlite:///{tmp_path}/unit.db", heartbeat_interval=None)
    assert isinstance(storage, st.RetryingRDBStorage)
    storage.retry_policy = FAST_RETRIES
    yield storage
    storage.engine.dispose()


def _flaky(monkeypatch: pytest.MonkeyPatch, name: str, *, apply_first: bool, failures: int = 1) -> list:
    """Make RDBStorage.<name> fail transiently ``failures`` times: after applying (the commit
    reached the database but its answer was lost) or before (nothing happened)."""
    real = getattr(RDBStorage, name)
    calls: list = []

    def flaky(self, *args, **kwargs):
        calls.append(args)
        if len(calls) <= failures:
            if apply_first:
                real(self, *args, **kwargs)
            raise _transient_error()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RDBStorage, name, flaky)
    return calls


def _new_trial(storage: st.RetryingRDBStorage, state: TrialState = TrialState.RUNNING) -> int:
    study_id = storage.create_new_study([StudyDirection.MINIMIZE], _unique("unit"))
    template = optuna.trial.create_trial(state=state) if state == TrialState.WAITING else None
    return storage.create_new_trial(study_id, template_trial=template)


def test_finishing_a_trial_whose_commit_was_lost_is_not_applied_twice(sqlite_storage, monkeypatch) -> None:
    trial_id = _new_trial(sqlite_storage)
    calls = _flaky(monkeypatch, "set_trial_state_values", apply_first=True)
    assert sqlite_storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [1.5]) is True
    assert len(calls) == 1  # the read-back saw COMPLETE/[1.5]: no second (failing) update
    trial = sqlite_storage.get_trial(trial_id)
    assert (trial.state, trial.values) == (TrialState.COMPLETE, [1.5])


def test_finishing_a_trial_retries_when_nothing_was_applied(sqlite_storage, monkeypatch) -> None:
    trial_id = _new_trial(sqlite_storage)
    calls = _flaky(monkeypatch, "set_trial_state_values", apply_first=False, failures=2)
    assert sqlite_storage.set_trial_state_values(trial_id, TrialState.FAIL) is True
    assert len(calls) == 3
    assert sqlite_storage.get_trial(trial_id).state == TrialState.FAIL


def test_retry_does_not_hide_a_trial_finished_differently(sqlite_storage, monkeypatch) -> None:
    trial_id = _new_trial(sqlite_storage)
    real = RDBStorage.set_trial_state_values
    calls: list = []

    def reaped_meanwhile(self, tid, state, values=None):
        calls.append(state)
        if len(calls) == 1:
            real(self, tid, TrialState.FAIL)  # e.g. failed by the stale-trial reaper meanwhile
            raise _transient_error()
        return real(self, tid, state, values)

    monkeypatch.setattr(RDBStorage, "set_trial_state_values", reaped_meanwhile)
    with pytest.raises(UpdateFinishedTrialError):
        sqlite_storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [1.0])
    assert len(calls) == 2  # the read-back saw FAIL, so the update was retried and refused


def test_claim_with_lost_commit_is_not_reported_as_ours(sqlite_storage, monkeypatch, caplog) -> None:
    trial_id = _new_trial(sqlite_storage, TrialState.WAITING)
    calls = _flaky(monkeypatch, "set_trial_state_values", apply_first=True)
    with caplog.at_level(logging.WARNING, logger="ablate.execution.storages"):
        assert sqlite_storage.set_trial_state_values(trial_id, TrialState.RUNNING) is False
    assert len(calls) == 1
    assert "may have claimed it" in caplog.text


def test_claim_retries_when_nothing_was_applied(sqlite_storage, monkeypatch) -> None:
    trial_id = _new_trial(sqlite_storage, TrialState.WAITING)
    calls = _flaky(monkeypatch, "set_trial_state_values", apply_first=False)
    assert sqlite_storage.set_trial_state_values(trial_id, TrialState.RUNNING) is True
    assert len(calls) == 2
    assert sqlite_storage.get_trial(trial_id).state == TrialState.RUNNING


@pytest.mark.parametrize("via", ["storage", "study"])
def test_a_trial_whose_creation_committed_is_not_created_again(sqlite_storage, monkeypatch, via: str) -> None:
    """create_new_trial commits, then its answer is lost (a transient error): a retry would add a second trial
    that nothing can detect, so the error reaches the caller and the study holds exactly one trial.

    The fault is injected around RDBStorage's real ``_create_new_trial`` (behind both ``create_new_trial`` and
    ``Study.ask`` through Optuna's cache), after its commit: Optuna's own retry loop inside it is not the
    subject here."""
    name = _unique("create")
    study_id = sqlite_storage.create_new_study([StudyDirection.MINIMIZE], name)
    calls = _flaky(monkeypatch, "_create_new_trial", apply_first=True)
    with pytest.raises(StorageInternalError):
        if via == "storage":
            sqlite_storage.create_new_trial(study_id)
        else:
            optuna.load_study(study_name=name, storage=sqlite_storage).ask()
    assert len(calls) == 1
    assert len(RDBStorage.get_all_trials(sqlite_storage, study_id)) == 1


def test_every_retried_method_is_an_rdb_storage_method() -> None:
    from ablate.execution import _optuna_compat as compat

    for name in (*compat.RDB_READS, *compat.RDB_IDEMPOTENT_WRITES):
        assert getattr(st.RetryingRDBStorage, name) is not getattr(RDBStorage, name), name
    for name in compat.RDB_NOT_RETRIABLE:
        assert getattr(st.RetryingRDBStorage, name) is getattr(RDBStorage, name), name


def test_reads_and_idempotent_writes_are_retried(sqlite_storage, monkeypatch) -> None:
    trial_id = _new_trial(sqlite_storage)
    attr_calls = _flaky(monkeypatch, "set_trial_user_attr", apply_first=True)
    sqlite_storage.set_trial_user_attr(trial_id, "k", [1, 2])
    read_calls = _flaky(monkeypatch, "get_trial", apply_first=False, failures=2)
    assert sqlite_storage.get_trial(trial_id).user_attrs == {"k": [1, 2]}
    assert (len(attr_calls), len(read_calls)) == (2, 3)


def test_retries_give_up_after_the_policy(sqlite_storage, monkeypatch) -> None:
    trial_id = _new_trial(sqlite_storage)
    calls = _flaky(monkeypatch, "get_trial", apply_first=False, failures=99)
    with pytest.raises(StorageInternalError):
        sqlite_storage.get_trial(trial_id)
    assert len(calls) == FAST_RETRIES.attempts


def test_non_transient_errors_are_not_retried(sqlite_storage, monkeypatch) -> None:
    trial_id = _new_trial(sqlite_storage)
    sqlite_storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [1.0])
    calls = _flaky(monkeypatch, "set_trial_user_attr", apply_first=False, failures=0)
    with pytest.raises(UpdateFinishedTrialError):
        sqlite_storage.set_trial_user_attr(trial_id, "late", 1)
    assert len(calls) == 1


def test_heartbeat_survives_a_database_outage(sqlite_storage, monkeypatch, caplog) -> None:
    trial_id = _new_trial(sqlite_storage)
    calls = _flaky(monkeypatch, "record_heartbeat", apply_first=False, failures=99)
    with caplog.at_level(logging.ERROR, logger="ablate.execution.storages"):
        sqlite_storage.record_heartbeat(trial_id)  # logs instead of killing the heartbeat thread
    assert len(calls) == FAST_RETRIES.attempts
    assert "could not record the heartbeat" in caplog.text


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_transient_error(), True),
        (_transient_error("terminating connection due to administrator command"), True),
        (sqlalchemy.exc.OperationalError("SELECT", {}, Exception((1213, "Deadlock found"))), True),
        (sqlalchemy.exc.OperationalError("SELECT", {}, Exception("database is locked")), True),
        (sqlalchemy.exc.DisconnectionError("gone"), True),
        (sqlalchemy.exc.OperationalError("SELECT", {}, Exception("no such table: trials")), False),
        (sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key")), False),
        (UpdateFinishedTrialError("finished"), False),
        (KeyError("no trial"), False),
        (ValueError("server closed the connection"), False),  # not a storage-layer error
    ],
)
def test_transient_error_classification(error: BaseException, transient: bool) -> None:
    assert st.is_transient_error(error) is transient


def test_mysql_error_codes_are_transient() -> None:
    import pymysql

    for code in (1205, 1213, 2006, 2013):
        orig = pymysql.err.OperationalError(code, "boom")
        wrapped = StorageInternalError("commit failed")
        wrapped.__cause__ = sqlalchemy.exc.OperationalError("COMMIT", {}, orig)
        assert st.is_transient_error(wrapped)
    assert not st.is_transient_error(
        sqlalchemy.exc.ProgrammingError("SELECT", {}, pymysql.err.ProgrammingError(1146, "no table"))
    )


def test_require_server_skips_normally_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_server("127.0.0.1", 1)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        require_server("127.0.0.1", 1)
