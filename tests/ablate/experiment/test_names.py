"""Every name a command writes is checked before the storage is touched (ablate/experiment/names.py and
ablate/experiment/designs.py).

A name one backend holds and another refuses must be refused on all of them, SQLite included, in one line with
exit status 2 and the storage unchanged: a command never works on SQLite and fails on PostgreSQL. The limits are
those of the real servers: the tests at the boundary write to PostgreSQL and MariaDB.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import optuna
import pytest

from ablate.errors import AblateError
from ablate.execution.storages import open_storage
from ablate.experiment import names
from ablate.experiment.designs import load_ablation_design, load_table_design

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

PG = os.environ.get("ABLATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MY = os.environ.get("ABLATE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS = os.environ.get("ABLATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SERVERS = {"postgresql": (PG, 5432), "mariadb": (MY, 3306), "redis": (REDIS, 6379)}
STUDY = ["study", "--case", "T1M1_T2M2", "--fidelity", "smoke", "--trials", "1", "--workers", "0"]
ABLATION = ["ablation", "--case", "T1M1_T2M2", "--fidelity", "smoke", "--seeds", "1", "--workers", "0"]


def _names_in(url: str) -> list[str]:
    return optuna.get_all_study_names(open_storage(url, heartbeat_interval=None))


def _one_line_exit_2(result) -> str:  # noqa: ANN001
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert result.code == 2, result
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err
    return lines[0]


@pytest.fixture
def sqlite_with_a_study(env: Path, run_cli) -> tuple[str, Path]:  # noqa: ANN001
    """A SQLite storage that already holds a study: 'unchanged' is then its bytes."""
    url = f"sqlite:///{env}/s.db"
    assert run_cli(*STUDY, "--storage", url, "--study-name", "existing").code == 0
    return url, env / "s.db"


# --------------------------------------------------------------------------------------------- study names
def test_a_study_name_too_long_for_the_servers_is_refused_on_sqlite_too(sqlite_with_a_study, run_cli) -> None:  # noqa: ANN001
    url, db = sqlite_with_a_study
    before = db.read_bytes()
    line = _one_line_exit_2(run_cli(*STUDY, "--storage", url, "--study-name", "x" * 513))
    assert "at most 512 characters" in line and "this one has 513" in line, line
    assert len(line) < 400  # the name is shown cut, not in full
    assert db.read_bytes() == before


def test_a_name_mariadb_would_take_for_an_existing_study_is_refused_on_sqlite_too(
    sqlite_with_a_study,  # noqa: ANN001
    run_cli,  # noqa: ANN001
) -> None:
    url, db = sqlite_with_a_study
    before = db.read_bytes()
    line = _one_line_exit_2(run_cli(*STUDY, "--storage", url, "--study-name", "Existing"))
    assert "differs from the existing study 'existing' only in case" in line, line
    assert db.read_bytes() == before
    assert run_cli(*STUDY, "--storage", url, "--study-name", "existing").code == 0  # the same name resumes


@pytest.mark.server
@pytest.mark.parametrize("server", sorted(SERVERS))
def test_a_study_name_too_long_is_refused_the_same_way_on_every_server(
    server: str,
    env: Path,
    run_cli,
    require_server,  # noqa: ANN001
) -> None:
    url, port = SERVERS[server]
    require_server("127.0.0.1", port)
    tag = uuid.uuid4().hex
    name = f"{tag}-" + "x" * (513 - len(tag) - 1)
    line = _one_line_exit_2(run_cli(*STUDY, "--storage", url, "--study-name", name))
    assert "at most 512 characters" in line and "this one has 513" in line, line
    assert not [n for n in _names_in(url) if tag in n]


@pytest.mark.server
@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_a_study_name_of_exactly_512_characters_is_held_by_the_servers(
    server: str,
    env: Path,
    run_cli,
    require_server,  # noqa: ANN001
) -> None:
    """The limit is the servers' own, not stricter: 512 characters (4-byte ones too) are stored and read back."""
    url, port = SERVERS[server]
    require_server("127.0.0.1", port)
    tag = uuid.uuid4().hex
    name = f"{tag}-" + "😀" * (512 - len(tag) - 1)
    assert len(name) == names.STUDY_NAME_MAX
    try:
        result = run_cli(*STUDY, "--storage", url, "--study-name", name)
        assert result.code == 0, result.err
        assert name in _names_in(url)
    finally:
        storage = open_storage(url, heartbeat_interval=None)
        for n in [n for n in optuna.get_all_study_names(storage) if tag in n]:
            optuna.delete_study(study_name=n, storage=storage)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a\x00b", "control characters (U+0000)"),
        ("two\nlines", "control characters (U+000A)"),
        ("tab\there", "control characters (U+0009)"),
        (" leading", "must not start or end with whitespace"),
        ("trailing ", "must not start or end with whitespace"),
    ],
    ids=["nul", "newline", "tab", "leading-space", "trailing-space"],
)
def test_a_study_name_with_control_characters_or_surrounding_space_is_refused(
    name: str,
    message: str,
    sqlite_with_a_study,
    run_cli,  # noqa: ANN001
) -> None:
    url, db = sqlite_with_a_study
    before = db.read_bytes()
    line = _one_line_exit_2(run_cli(*STUDY, "--storage", url, "--study-name", name))
    assert message in line, line
    assert db.read_bytes() == before


def test_every_case_s_name_is_checked_before_the_first_study_is_written(sqlite_with_a_study, run_cli) -> None:  # noqa: ANN001
    """--case all appends each case to --study-name: the first case must not be written when the last fails."""
    url, db = sqlite_with_a_study
    before = db.read_bytes()
    base = "y" * (512 - len("-T1M1_T2M2") + 1)
    for argv in (
        ["ablation", "--case", "all", "--fidelity", "smoke", "--seeds", "1", "--workers", "0"],
        ["study", "--case", "all", "--fidelity", "smoke", "--trials", "1", "--workers", "0"],
    ):
        line = _one_line_exit_2(run_cli(*argv, "--storage", url, "--study-name", base))
        assert "at most 512 characters" in line, line
    assert db.read_bytes() == before


def test_the_confirmation_name_is_checked_before_the_search_runs(sqlite_with_a_study, run_cli) -> None:  # noqa: ANN001
    url, db = sqlite_with_a_study
    before = db.read_bytes()
    name = "z" * 500  # a valid search name; confirm-top3-<name> is 513 characters
    line = _one_line_exit_2(run_cli(*STUDY, "--storage", url, "--study-name", name, "--confirm", "3"))
    assert line.startswith("error: --confirm 'confirm-top3-zzz") and "at most 512" in line, line
    assert db.read_bytes() == before


# --------------------------------------------------------------------------------------------- design files
BAD_DESIGNS = {
    "misspelt-section": ('[ofaat]\nflips = { init = "random" }\n', "unknown key 'ofaat' in the file"),
    "misspelt-key": ('[ofat]\nflip = { init = "random" }\n', "unknown key 'flip' in [ofat]"),
    "misspelt-reference": ('refrence = "full"\n[ofat]\n', "unknown key 'refrence' in the file"),
    "unknown-switch-in-flips": ('[ofat]\nflips = { nosuch = "x" }\n', "'nosuch' is not a switch"),
    "unknown-switch-in-ladders": ("[ofat]\nladders = { nosuch = [1, 2] }\n", "'nosuch' is not a switch"),
    "unknown-value-in-flips": ('[ofat]\nflips = { init = "warm" }\n', "init='warm' is not one of"),
    "ladder-not-a-list": ("[ofat]\nladders = { M = 100 }\n", "[ofat] ladders.M must be a non-empty list"),
    "flips-not-a-table": ('[ofat]\nflips = ["init"]\n', "[ofat] flips must be a table"),
    "empty-reference": ('reference = ""\n[ofat]\n', "reference must be a non-empty string"),
    "baseline-not-a-string": ("baseline = 3\n[ofat]\n", "baseline must be a non-empty string, not 3"),
    "reference-is-baseline": ('reference = "x"\nbaseline = "x"\n[ofat]\n', "duplicate variant labels"),
    "no-ofat-section": ('[factorial]\nfactors = { init = ["cross", "random"] }\n', "needs an [ofat] section"),
}


@pytest.mark.parametrize("case", sorted(BAD_DESIGNS))
def test_a_design_file_naming_what_does_not_exist_is_refused_before_any_study(
    case: str,
    sqlite_with_a_study,
    run_cli,  # noqa: ANN001
) -> None:
    url, db = sqlite_with_a_study
    text, message = BAD_DESIGNS[case]
    design = db.parent / "bad.toml"
    design.write_text(text)
    before = db.read_bytes()
    line = _one_line_exit_2(run_cli(*ABLATION, "--storage", url, "--design-file", design))
    assert message in line and str(design) in line, line
    assert db.read_bytes() == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[factorial]\nfactors = { init = [] }\n", "[factorial] factors.init must be a non-empty list"),
        ('[factorial]\nfactors = { init = "cross" }\n', "[factorial] factors.init must be a non-empty list"),
        ('[factorial]\nfactor = { init = ["cross"] }\n', "unknown key 'factor' in [factorial]"),
        ("[factorial]\nfactors = { nosuch = [1, 2] }\n", "'nosuch' is not a switch"),
    ],
)
def test_bad_factorial_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "f.toml").write_text(text)
    with pytest.raises(AblateError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_ablation_design("factorial", tmp_path / "f.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'baseline = "a"\n[[variants]]\nlabel = "a"\ntechnique = "cgi"\n[[variants]]\ntechnique = "bnn"\n',
            "entry 2: label",
        ),
        (
            'baseline = "a"\n[[variants]]\nlabel = "a"\ntechnique = "cgi"\n'
            '[[variants]]\nlabel = "a"\ntechnique = "bnn"\n',
            "duplicate variant labels in the table design",
        ),
        (
            'baseline = "a"\n[[variants]]\nlabel = "a"\ntechnique = "cgi"\nswitchs = { M = 5 }\n',
            "unknown key 'switchs'",
        ),
        ('baseline = "a"\nreference = "b"\n[[variants]]\nlabel = "a"\ntechnique = "cgi"\n', "unknown key 'reference'"),
    ],
    ids=["missing-label", "duplicate-label", "misspelt-switches", "unknown-reference"],
)
def test_bad_table_entries_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "t.toml").write_text(text)
    with pytest.raises(AblateError, match=message):
        load_table_design("t", tmp_path / "t.toml")


def test_a_design_too_large_for_a_mariadb_text_column_is_refused_on_sqlite(sqlite_with_a_study, run_cli) -> None:  # noqa: ANN001
    url, db = sqlite_with_a_study
    design = db.parent / "huge.toml"
    ms = ", ".join(str(m) for m in range(20, 90))
    design.write_text(
        f"[factorial]\nfactors = {{ M = [{ms}], K = [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] }}\n"
    )
    before = db.read_bytes()
    line = _one_line_exit_2(run_cli(*ABLATION, "--design", "factorial", "--storage", url, "--design-file", design))
    assert "bytes as stored" in line and "MariaDB and MySQL store at most 65,535" in line, line
    assert db.read_bytes() == before


@pytest.mark.server
def test_mariadb_holds_an_attribute_of_exactly_the_limit_and_not_one_byte_more(require_server) -> None:  # noqa: ANN001
    """The 65,535 bytes of names.ATTR_VALUE_MAX are MariaDB's own: measured against the real server."""
    require_server("127.0.0.1", 3306)
    storage = open_storage(MY, heartbeat_interval=None)
    study = optuna.create_study(study_name=f"attr-{uuid.uuid4().hex}", storage=storage)
    try:
        value = "v" * (names.ATTR_VALUE_MAX - 2)  # json.dumps adds the two quotes
        assert names.attr_bytes(value) == names.ATTR_VALUE_MAX
        study.set_user_attr("at", value)
        with pytest.raises(optuna.exceptions.StorageInternalError):
            study.set_user_attr("over", value + "v")
    finally:
        optuna.delete_study(study_name=study.study_name, storage=storage)
