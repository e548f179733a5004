"""Which study definitions a command reads and where its runs go: the lookup order of ``ablate.experiment.presets``.

Order for definitions: ``$ABLATE_STUDIES_DIR``, else ``./studies`` holding ``fidelity.toml``, else the built-in
ones (package ``ablate_studies``). Order for runs: ``$ABLATE_STUDIES_DIR/runs``, else ``./studies/runs`` when the
current folder has ``studies/``, else ``runs/`` in the user data folder; never next to the code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.cli import main
from ablate.errors import AblateError
from ablate.execution.storages import resolve_url
from ablate.experiment import presets
from ablate.method import load_method

REPO = Path(__file__).resolve().parents[3]
DEFINITIONS = ("fidelity.toml", "space.toml", "ablation.toml", "table1.toml", "table2.toml")
CUSTOM_FIDELITY = """
[tiny]   # a project's own preset, unknown to the built-in file
data = "digits"
width = 8
epochs = 1
source_epochs = 1
batch_size = 32
lr = 0.01
bnn_lr = 0.01
eval_samples = 2
"""


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An unrelated current folder with no ``studies/``, no env overrides and a private user data folder."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("ABLATE_STUDIES_DIR", raising=False)
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    return work


def _project(folder: Path) -> Path:
    studies = folder / "studies"
    studies.mkdir()
    (studies / "fidelity.toml").write_text(CUSTOM_FIDELITY)
    return studies


def test_without_a_project_the_builtin_definitions_are_read_and_runs_go_to_the_user_data_folder(
    elsewhere: Path, tmp_path: Path
) -> None:
    assert presets.project_studies_dir() is None
    builtin = load_method().definitions()
    for name in DEFINITIONS:
        path = presets.definition_path(name)
        assert path == builtin / name
        assert presets.read_toml(path) == presets.read_toml(REPO / "studies" / name)
    assert set(presets.fidelities()) >= {"smoke", "quick", "paper"}

    runs = tmp_path / "xdg-data" / "ablate" / "runs"
    assert presets.runs_dir() == runs
    assert presets.default_storage_url() == f"sqlite:///{runs / 'ablate.db'}"
    assert resolve_url(None) == f"sqlite:///{runs / 'ablate.db'}"
    assert not (elsewhere / "studies").exists()  # asking for the folders creates nothing


def test_a_project_studies_folder_overrides_the_builtin_definitions_and_holds_the_runs(elsewhere: Path) -> None:
    studies = _project(elsewhere)
    assert presets.studies_dir() == studies
    assert presets.definition_path("fidelity.toml") == studies / "fidelity.toml"
    assert list(presets.fidelities()) == ["tiny"]
    assert presets.runs_dir() == studies / "runs"
    assert presets.default_storage_url() == f"sqlite:///{studies / 'runs' / 'ablate.db'}"


def test_a_studies_folder_without_fidelity_toml_keeps_the_builtin_definitions_but_still_holds_the_runs(
    elsewhere: Path,
) -> None:
    (elsewhere / "studies" / "runs").mkdir(parents=True)
    assert presets.project_studies_dir() is None
    assert "smoke" in presets.fidelities()
    assert presets.runs_dir() == elsewhere / "studies" / "runs"


def test_the_environment_variable_beats_the_current_folder_for_definitions_and_runs(
    elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(elsewhere)  # a project in the current folder, which the variable must win over
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    (chosen / "fidelity.toml").write_text(CUSTOM_FIDELITY.replace("[tiny]", "[chosen]"))
    monkeypatch.setenv("ABLATE_STUDIES_DIR", str(chosen))
    assert presets.studies_dir() == chosen
    assert list(presets.fidelities()) == ["chosen"]
    assert presets.runs_dir() == chosen / "runs"

    monkeypatch.setenv("ABLATE_STUDIES_DIR", "  ")  # blank means unset
    assert list(presets.fidelities()) == ["tiny"]
    assert presets.runs_dir() == elsewhere / "studies" / "runs"


def test_a_relative_environment_variable_is_made_absolute(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_STUDIES_DIR", "defs")
    assert presets.studies_dir() == elsewhere / "defs"
    assert presets.default_storage_url() == f"sqlite:///{elsewhere / 'defs' / 'runs' / 'ablate.db'}"


def test_an_environment_folder_without_the_file_is_one_error_naming_it(
    elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ABLATE_STUDIES_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit) as exc:
        main(["run", "--case", "T1M1_T2M2", "--technique", "cgi", "--fidelity", "smoke"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.count("\n") == 1
    assert f"{tmp_path / 'nowhere' / 'fidelity.toml'}: no such file" in err


def test_read_toml_accepts_strings_paths_and_package_resources(elsewhere: Path) -> None:
    (elsewhere / "a.toml").write_text("x = 1\n")
    assert presets.read_toml("a.toml") == {"x": 1}
    assert presets.read_toml(elsewhere / "a.toml") == {"x": 1}
    assert "smoke" in presets.read_toml(load_method().definitions() / "fidelity.toml")
    (elsewhere / "bad.toml").write_text("x = = 1\n")
    with pytest.raises(AblateError, match=r"bad.toml: malformed TOML"):
        presets.read_toml("bad.toml")


def test_a_missing_definitions_package_is_one_error_line_not_a_traceback(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ablate.methods.cgi.method as cgi_method

    monkeypatch.setattr(cgi_method, "DEFINITIONS_PACKAGE", "ablate_studies_not_installed")
    with pytest.raises(SystemExit) as exc:
        main(["run", "--case", "T1M1_T2M2", "--technique", "cgi", "--fidelity", "smoke"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.count("\n") == 1
    assert "lacks CGI's study definitions" in err and "ABLATE_STUDIES_DIR" in err
