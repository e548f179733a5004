"""The application API (ablate.app): what a command does, callable without the CLI, every check before a write."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from ablate import app
from ablate.errors import AblateError
from ablate.execution.storages import open_storage
from ablate.method import load_method


def _names(url: str) -> list[str]:
    return optuna.get_all_study_names(open_storage(url, heartbeat_interval=None, create=False))


def test_a_search_plans_every_case_with_the_execution_settings_it_was_given(tmp_path: Path) -> None:
    method, url = load_method(), f"sqlite:///{tmp_path / 'a.db'}"
    execution = app.Execution(workers=0, threads=2, heartbeat_interval=7, grace_period=30, timeout=5.0)
    searches = app.plan_searches(
        method, case="all", trials=4, seeds=2, fidelity="smoke", pruner="none", storage=url, execution=execution
    )
    assert [p.case for p in searches.plans] == list(method.cases)
    assert len({p.name for p in searches.plans}) == len(method.cases)
    for plan in searches.plans:
        assert (plan.workers, plan.threads, plan.heartbeat_interval, plan.grace_period, plan.timeout) == (
            0,
            2,
            7,
            30,
            5.0,
        )
        assert (plan.trials, plan.seeds, plan.pruner_name, plan.storage) == (4, 2, "none", url)


def test_an_ablation_plan_runs_without_a_timeout_and_a_table_plan_covers_every_case(tmp_path: Path) -> None:
    method, url = load_method(), f"sqlite:///{tmp_path / 'a.db'}"
    execution = app.Execution(workers=0, timeout=5.0, stack="off")
    (plan,) = app.plan_ablations(method, case="T2M1_T1M2", seeds=2, fidelity="smoke", storage=url, execution=execution)
    assert plan.timeout is None and plan.stack == "off" and plan.cases == ("T2M1_T1M2",)
    table, folder = app.plan_table(
        method, table=method.tables[0], seeds=1, fidelity="smoke", storage=url, out_dir=tmp_path / "t"
    )
    assert table.cases == tuple(method.cases) and folder.is_dir()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, url: app.plan_searches(m, case="T9", trials=2, seeds=1, fidelity="smoke", storage=url), "--case"),
        (
            lambda m, url: app.plan_ablations(
                m, case="all", seeds=2, fidelity="smoke", storage=url, study_name="x" * 600
            ),
            "study name",
        ),
        (lambda m, url: app.plan_table(m, table="table9", seeds=1, fidelity="smoke", storage=url), "table 'table9'"),
        (lambda m, url: app.plan_confirmations(m, studies=["nope"], top=2, seeds=2, storage=url), "no study named"),
        (lambda m, url: app.plan_confirmations(m, top=2, seeds=2, storage=url), "name one or more sensitivity"),
        (
            lambda m, url: app.plan_searches(
                m, case="all", trials=2, seeds=1, fidelity="smoke", storage=url, execution=app.Execution(device="tpu")
            ),
            "--device 'tpu'",
        ),
    ],
)
def test_a_refusal_is_one_error_and_the_storage_is_as_it_was(tmp_path: Path, call, message: str) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'a.db'}"
    optuna.create_study(study_name="kept", storage=url)
    with pytest.raises(AblateError, match=message):
        call(load_method(), url)
    assert _names(url) == ["kept"]


def test_the_python_example_of_docs_methods_runs_as_written(tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    import re

    text = (Path(__file__).parents[2] / "docs" / "methods.md").read_text()
    (block,) = [
        b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "ablate.app" in b or "from ablate import app" in b
    ]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/methods.md", "exec"), {})  # noqa: S102 - the docs' own example, run as a user would
    name, complete, _, total = capsys.readouterr().out.split()
    assert name.startswith("ablation-") and complete == total and int(total) > 0
    assert _names(f"sqlite:///{tmp_path / 'ablate.db'}") == [name]
