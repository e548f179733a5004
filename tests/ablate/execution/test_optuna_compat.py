"""Tests of ablate.execution._optuna_compat: the one module that may use private Optuna names, and what it relies on.

The helper tests pin the Optuna internals against the installed Optuna on a real SQLite storage: when an
upgrade renames or changes one of them, these fail first.
"""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ablate.execution import _optuna_compat as compat
from ablate.execution.storages import open_storage

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning"),  # ask() on a heartbeat storage
]

ABLATE = Path(compat.__file__).parents[1]  # the whole ablate package
PRIVATE_USES = re.compile(
    r"\boptuna(?:\.\w+)*\._(?!_)\w+"  # a private Optuna module: optuna.storages._heartbeat, optuna.study._frozen
    r"|\._(?:storage|trial_id|study_id|backend)\b"  # private attributes of Study / FrozenTrial / _CachedStorage
    r"|_pop_waiting_trial_id"
)


def _private_uses(root: Path) -> list[str]:
    hits = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "_optuna_compat.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if PRIVATE_USES.search(line):
                hits.append(f"{path.relative_to(root.parent)}:{number}: {line.strip()}")
    return hits


def test_no_module_but_the_compat_module_uses_private_optuna_names() -> None:
    assert _private_uses(ABLATE) == []


@pytest.mark.parametrize(
    "line",
    [
        "from optuna.storages._heartbeat import BaseHeartbeat",
        "x = optuna.study._frozen.FrozenStudy",
        "study._storage.get_trial(t._trial_id)",
        "study._pop_waiting_trial_id()",
        "getattr(storage, '_backend', storage)._backend",
    ],
)
def test_the_scan_finds_each_kind_of_private_use(tmp_path: Path, line: str) -> None:
    package = tmp_path / "ablate"
    package.mkdir()
    (package / "_optuna_compat.py").write_text(line + "\n")  # allowed there
    (package / "module.py").write_text(f"import optuna\n{line}\n")
    assert _private_uses(package) == [f"ablate/module.py:2: {line}"]


@pytest.fixture
def storage(tmp_path: Path) -> optuna.storages.BaseStorage:
    return open_storage(f"sqlite:///{tmp_path}/compat.db", heartbeat_interval=7)


def test_storage_and_trial_ids(storage: optuna.storages.BaseStorage) -> None:
    study = optuna.create_study(storage=storage, study_name="c")
    trial = study.ask()
    study.tell(trial, 1.0)
    assert compat.storage_of(study).get_trial(compat.trial_id_of(trial)).number == trial.number
    frozen = study.trials[0]
    assert compat.trial_id_of(frozen) == compat.trial_id_of(trial)


def test_pop_waiting_trial_id_claims_each_queued_trial_once(storage: optuna.storages.BaseStorage) -> None:
    study = optuna.create_study(storage=storage, study_name="q")
    study.enqueue_trial({}, user_attrs={"i": 0})
    study.enqueue_trial({}, user_attrs={"i": 1})
    first, second = compat.pop_waiting_trial_id(study), compat.pop_waiting_trial_id(study)
    assert compat.pop_waiting_trial_id(study) is None
    claimed = [compat.storage_of(study).get_trial(i) for i in (first, second)]
    assert [(t.state, t.user_attrs["i"]) for t in claimed] == [(TrialState.RUNNING, 0), (TrialState.RUNNING, 1)]


def test_heartbeats_and_grace_period(tmp_path: Path, storage: optuna.storages.BaseStorage) -> None:
    study = optuna.create_study(storage=storage, study_name="h")
    cached = compat.storage_of(study)  # Optuna's caching wrapper over the RDB storage
    assert compat.heartbeat_enabled(cached)
    assert compat.grace_period_of(cached) == 14.0  # Optuna's default: twice the interval
    trial_id = compat.trial_id_of(study.ask())
    with compat.heartbeat_thread(trial_id, cached):
        pass  # the thread records one beat as it starts
    with storage.engine.connect() as connection:
        beats = connection.exec_driver_sql("SELECT COUNT(*) FROM trial_heartbeats WHERE trial_id = ?", (trial_id,))
        assert beats.scalar_one() == 1

    explicit = open_storage(f"sqlite:///{tmp_path}/grace.db", heartbeat_interval=7, grace_period=30)
    assert compat.grace_period_of(explicit) == 30.0
    silent = open_storage(f"sqlite:///{tmp_path}/none.db", heartbeat_interval=None)
    assert not compat.heartbeat_enabled(silent)


def test_operation_names_for_log_messages() -> None:
    assert compat.operation_name("_get_trials") == "get_all_trials"
    assert compat.operation_name("_set_trial_param") == "set_trial_param"
    assert compat.operation_name("get_trial") == "get_trial"
