"""Bad input, tried on purpose: every malformed option value ends as one line on stderr and exit status 2,
with no traceback and the storage untouched. Also: names and attribute values with quotes, unicode and
SQL metacharacters survive a round trip through the storages verbatim."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ablate.cli import main
from ablate.execution.storages import open_storage

NASTY = ["x'; DROP TABLE trials;--", 'quote"double', "ünïcödé-Δ-学习", "back\\slash", "semi;colon", "percent%_"]

BAD_INTS = st.one_of(
    st.integers(max_value=0), st.text(min_size=1, max_size=8).filter(lambda t: not t.strip().isdigit())
)
BAD_TEXT = st.text(min_size=1, max_size=20).filter(lambda t: t.strip() and not t.startswith("-"))

# option -> (command prefix, strategy of values that must be rejected)
RUN = ["run", "--case", "T1M1_T2M2", "--technique", "cgi", "--fidelity", "smoke"]
STUDY = ["study", "--case", "T1M1_T2M2", "--fidelity", "smoke", "--trials", "2"]
CASES_OK = {"T1M1_T2M2", "T2M1_T1M2", "T1M2_T2M1", "T2M2_T1M1", "all"}
OPTIONS = {
    ("run", "--case"): BAD_TEXT.filter(lambda t: t not in CASES_OK),
    ("run", "--technique"): BAD_TEXT.filter(lambda t: t not in {"none", "feature", "distill", "bnn", "cgi"}),
    ("run", "--fidelity"): BAD_TEXT.filter(lambda t: t not in {"smoke", "quick", "paper"}),
    ("run", "--seed"): st.one_of(st.integers(max_value=-1), st.just("1.5"), st.just("abc")),
    ("run", "--M"): st.one_of(st.integers(max_value=4), st.just("x")),
    ("run", "--K"): BAD_INTS,
    ("run", "--init"): BAD_TEXT.filter(lambda t: t not in {"cross", "random"}),
    ("run", "--generator"): BAD_TEXT.filter(lambda t: t not in {"gmm", "gaussian"}),
    ("run", "--scope"): BAD_TEXT.filter(lambda t: t not in {"separate", "shared"}),
    ("run", "--bootstrap"): BAD_TEXT.filter(lambda t: t not in {"uniform", "bayesian"}),
    ("run", "--transfer"): BAD_TEXT.filter(lambda t: t not in {"mu_sigma", "mu"}),
    ("run", "--covariance-type"): BAD_TEXT.filter(lambda t: t not in {"full", "diag", "tied", "spherical"}),
    ("run", "--prior-sigma"): st.sampled_from(["0", "-1", "nan", "inf", "abc"]),
    ("run", "--temperature"): st.sampled_from(["0", "-2", "nan"]),
    ("run", "--lambda"): st.sampled_from(["-1", "nan", "x"]),
    ("run", "--threads"): BAD_INTS,
    ("run", "--device"): BAD_TEXT.filter(lambda t: t != "cpu"),
    ("study", "--case"): BAD_TEXT.filter(lambda t: t not in CASES_OK),
    ("study", "--trials"): BAD_INTS,
    ("study", "--seeds"): BAD_INTS,
    ("study", "--sampler"): BAD_TEXT.filter(lambda t: t not in {"tpe", "random", "qmc", "grid"}),
    ("study", "--pruner"): BAD_TEXT.filter(lambda t: t not in {"none", "median", "wilcoxon", "hyperband"}),
    ("study", "--workers"): st.one_of(st.integers(max_value=-1), st.just("two")),
    ("study", "--fidelity"): BAD_TEXT.filter(lambda t: t not in {"smoke", "quick", "paper"}),
    ("study", "--storage"): st.sampled_from(
        [
            "foo://x",
            "http://127.0.0.1/x",
            "postgresql://postgres@127.0.0.1:1/test",
            "mysql://root@127.0.0.1:1/test",
            "x.db",
            "",
        ]
    ),
    ("study", "--space"): st.sampled_from(["/nonexistent/space.toml", "studies"]),
    ("study", "--timeout"): st.sampled_from(["0", "-5", "soon"]),
    ("study", "--heartbeat"): BAD_INTS,
}


def _invoke(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0), capsys.readouterr().err


def _names_option(err: str, option: str) -> bool:
    text = err.lower().replace("-", "_")
    return option.lstrip("-").replace("-", "_").lower() in text


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_malformed_option_values_exit_2_one_line(
    data: st.DataObject, capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    command, option = data.draw(st.sampled_from(sorted(OPTIONS)))
    value = str(data.draw(OPTIONS[(command, option)]))
    db = tmp_path_factory.mktemp("db") / "untouched.db"
    base = RUN if command == "run" else [*STUDY, "--storage", f"sqlite:///{db}"]
    argv = [*base, option, value] if option != "--storage" else [*STUDY, option, value]
    code, err = _invoke(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (argv, err)
    assert len(lines) == 1 and lines[0].startswith("error:"), (argv, err)
    assert "Traceback" not in err and "Value error" not in err
    assert _names_option(err, option) or option in ("--storage", "--space"), (argv, err)
    assert not db.exists(), "a rejected command must not create the storage"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([*RUN, "--generator", "foo"], "Invalid value for '--generator': 'foo' is not one of 'gmm', 'gaussian'."),
        ([*STUDY, "--stack", "maybe"], "Invalid value for '--stack': 'maybe' is not one of 'auto', 'on', 'off'."),
    ],
)
def test_a_refused_choice_reads_without_pydantics_prefix(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """typer checks choices with pydantic, whose message for a validator's ValueError starts "Value error, "
    (the Python exception's name, not the user's mistake); the one line the CLI prints leaves it out."""
    code, err = _invoke([*argv, "--storage", f"sqlite:///{tmp_path}/x.db"] if argv[0] == "study" else argv, capsys)
    assert (code, err) == (2, f"error: {expected}\n")


REFUSED = "postgresql://nobody@127.0.0.1:1/x"  # nothing listens on port 1: the connection is refused at once


@pytest.mark.parametrize(
    "argv",
    [
        ["study", "--case", "T2M1_T1M2", "--fidelity", "smoke"],
        ["ablation", "--case", "T2M1_T1M2", "--fidelity", "smoke"],
        ["confirm", "sensitivity-T2M1_T1M2-smoke"],
        ["reproduce", "table1", "--fidelity", "smoke"],
        ["reproduce", "table2", "--fidelity", "smoke", "--out", "rep"],
        ["report", "sensitivity-T2M1_T1M2-smoke"],
        ["report", "sensitivity-T2M1_T1M2-smoke", "--out", "rep"],
        ["seeds", "sensitivity-T2M1_T1M2-smoke"],
        ["dashboard"],
    ],
)
def test_a_refused_storage_leaves_nothing_behind(argv: list[str], env: Path, run_cli) -> None:
    """docs/cli.md: every run command checks before it writes. With a storage that refuses the connection,
    each is one line, exit 2, and the folder it runs in (a project: studies/ exists) stays as it was
    (reproduce made its report folder first)."""
    (env / "studies").mkdir()
    r = run_cli(*argv, "--storage", REFUSED)
    assert r.code == 2 and r.err.startswith("error: cannot open storage") and r.err.count("\n") == 1, r.err
    assert sorted(p.relative_to(env).as_posix() for p in env.rglob("*")) == ["studies"]


def test_rejected_study_leaves_existing_storage_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    code, _ = _invoke([*STUDY, "--storage", url, "--trials", "1", "--sampler", "random"], capsys)
    assert code == 0
    before = (tmp_path / "s.db").read_bytes()
    for bad in (["--trials", "0"], ["--sampler", "nope"], ["--space", str(tmp_path / "missing.toml")]):
        code, err = _invoke([*STUDY, "--storage", url, *bad], capsys)
        assert code == 2 and err.startswith("error:")
    assert (tmp_path / "s.db").read_bytes() == before


def test_malformed_space_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "space.toml"
    for text in (
        "[params.M\ntype=",
        '[params.lr]\ntype = "float"\nlow = 0.1\nhigh = 1.0',
        '[params.M]\ntype = "int"\nlow = 10\nhigh = 1',
        '[params.K]\ntype = "int"\nlow = 1\nhigh = 5\nwhen = { generator = "gmm" }',
    ):
        bad.write_text(text)
        code, err = _invoke([*STUDY, "--storage", f"sqlite:///{tmp_path}/x.db", "--space", str(bad)], capsys)
        assert code == 2 and err.count("\n") == 1 and str(bad) in err, err
    assert not (tmp_path / "x.db").exists()


def _roundtrip(url: str) -> None:
    storage = open_storage(url, heartbeat_interval=None)
    for i, name in enumerate(NASTY):
        study_name = f"{name}-{uuid.uuid4().hex[:6]}"
        study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
        try:
            trial = study.ask()
            trial.set_user_attr("note", name)
            trial.suggest_categorical("choice", [name, "plain"])
            study.tell(trial, float(i))
            study.set_user_attr(name, name)
            again = optuna.load_study(study_name=study_name, storage=open_storage(url, heartbeat_interval=None))
            assert again.study_name == study_name
            assert again.trials[0].user_attrs["note"] == name
            assert again.user_attrs[name] == name
            assert again.trials[0].params["choice"] in (name, "plain")
        finally:
            optuna.delete_study(study_name=study_name, storage=storage)


def test_nasty_names_roundtrip_sqlite(tmp_path: Path) -> None:
    _roundtrip(f"sqlite:///{tmp_path}/nasty.db")


def test_nasty_names_roundtrip_journal(tmp_path: Path) -> None:
    _roundtrip(str(tmp_path / "nasty.log"))


@pytest.mark.server
@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        (os.environ.get("ABLATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"), "127.0.0.1", 5432),
        (os.environ.get("ABLATE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"), "127.0.0.1", 3306),
    ],
    ids=["postgresql", "mariadb"],
)
def test_nasty_names_roundtrip_servers(url: str, host: str, port: int, require_server) -> None:  # noqa: ANN001
    require_server(host, port)
    _roundtrip(url)
