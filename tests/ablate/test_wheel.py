"""The project as a user gets it from ``pip install``: a wheel, installed into a fresh virtual environment and
run from an unrelated folder, finds its built-in study definitions and never writes next to its own code.

The wheel is built (offline, ``--no-build-isolation``) from a copy of the source tree, because an in-tree build
leaves ``build/`` behind in a checkout others share, and setuptools' ``build/lib`` keeps files from earlier builds.
The fresh environment reuses this interpreter's installed dependencies through a ``.pth`` file written after the
install (so pip sees an empty environment and nothing is downloaded; torch is not copied).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DEFINITIONS = {"fidelity.toml", "space.toml", "ablation.toml", "table1.toml", "table2.toml"}
CASE = "T2M1_T1M2"
STUDY = f"sensitivity-{CASE}-smoke"
# Top-level entries of a checkout that are not source (studies/runs/ is skipped in _ignore).
NOT_SOURCE = {".git", ".venv", "build", "dist", "tests", ".pytest_cache", ".ruff_cache", ".hypothesis"}


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    site: Path

    def ablate(self, *argv: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "ablate"), *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )


def _ignore(folder: str, names: list[str]) -> set[str]:
    here = Path(folder)
    skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    if here == REPO:
        skip |= NOT_SOURCE & set(names)
    if here == REPO / "studies":
        skip |= {"runs"} & set(names)
    return skip


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{argv[:4]} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    shutil.copytree(REPO, src, ignore=_ignore)
    # Output that a checkout may hold; it must stay out of the wheel.
    (src / "studies" / "runs" / "report-x").mkdir(parents=True)
    (src / "studies" / "runs" / "leak.toml").write_text("leak = true\n")
    (src / "studies" / "runs" / "report-x" / "leak.toml").write_text("leak = true\n")
    (src / "studies" / "runs" / "ablate.db").write_bytes(b"")

    dist = root / "dist"
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(src)])
    (wheel,) = dist.glob("ablate-*.whl")

    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([*pip, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)])
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "_ablate_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return Installed(wheel, venv, site)


def _env(root: Path) -> dict[str, str]:
    """No checkout on the path, no overrides, and a user data folder of the test's own."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "OPTUNA_STORAGE"}}
    env = {k: v for k, v in env.items() if not k.startswith("ABLATE_") or k == "ABLATE_DATA_DIR"}
    return {**env, "XDG_DATA_HOME": str(root / "xdg-data"), "COLUMNS": "200"}


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


def test_the_wheel_ships_the_definitions_and_no_run_output(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    shipped = {n.split("/", 1)[1] for n in names if n.startswith("ablate_studies/") and n.endswith(".toml")}
    assert shipped == DEFINITIONS
    assert not [n for n in names if "runs/" in n or n.endswith(".db")]
    assert {n.split("/")[0] for n in names if n.endswith("__init__.py")} == {"ablate", "crossgen", "ablate_studies"}
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "[ablate.methods]\ncgi = ablate.methods.cgi:CGIMethod"
        in zipfile.ZipFile(installed.wheel).read(entry_points).decode()
    )


def test_run_study_and_report_from_an_unrelated_folder_write_only_to_the_user_data_folder(
    installed: Installed, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _env(tmp_path)
    where = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "import ablate, ablate_studies; print(ablate.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(installed.site), where.stderr  # the wheel, not the checkout
    before = _snapshot(installed.venv)

    r = installed.ablate("run", "--case", CASE, "--technique", "cgi", "--fidelity", "smoke", cwd=elsewhere, env=env)
    assert r.returncode == 0, r.stderr
    assert f"{CASE} cgi seed=0 fidelity=smoke" in r.stdout

    study = ["study", "--case", CASE, "--trials", "2", "--fidelity", "smoke", "--sampler", "random"]
    r = installed.ablate(*study, cwd=elsewhere, env=env)
    assert r.returncode == 0, r.stderr
    r = installed.ablate("report", STUDY, "--format", "md,json", cwd=elsewhere, env=env)
    assert r.returncode == 0, r.stderr

    assert _snapshot(installed.venv) == before  # nothing written inside the installed package
    assert list(elsewhere.iterdir()) == []  # nor in a folder that is not a project
    runs = tmp_path / "xdg-data" / "ablate" / "runs"
    assert (runs / "ablate.db").is_file()
    assert (runs / f"report-{STUDY}" / f"{STUDY}.md").is_file()
    assert (runs / "artifacts").is_dir()  # the dashboard's copy of the report


def test_a_project_folder_overrides_the_definitions_and_holds_its_runs(installed: Installed, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "studies").mkdir(parents=True)
    for name in DEFINITIONS:  # a project's folder replaces the built-in one as a whole
        shutil.copy(REPO / "studies" / name, project / "studies" / name)
    smoke = (REPO / "studies" / "fidelity.toml").read_text()
    (project / "studies" / "fidelity.toml").write_text(smoke.replace("[smoke]", "[mine]"))
    env = _env(tmp_path)

    study = ["study", "--case", CASE, "--trials", "1", "--fidelity", "mine", "--sampler", "random"]
    r = installed.ablate(*study, cwd=project, env=env)  # "mine" exists only in the project's fidelity.toml
    assert r.returncode == 0, r.stderr
    assert (project / "studies" / "runs" / "ablate.db").is_file()
    assert not (tmp_path / "xdg-data").exists()


def test_a_method_from_its_own_wheel_runs_every_command_through_its_entry_point(
    installed: Installed, tmp_path: Path
) -> None:
    """The example method (examples/digits-pipeline) as a user ships theirs: its own wheel, registered through
    the ``ablate.methods`` entry point, found from an unrelated folder by name; every command runs on it."""
    import time

    dist = tmp_path / "dist"
    src = tmp_path / "digits-src"
    shutil.copytree(REPO / "examples" / "digits-pipeline", src, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(src)])
    (wheel,) = dist.glob("ablate_digits-*.whl")
    python = installed.venv / "bin" / "python"
    _run([*pip, "--python", str(python), "install", "-q", "--no-deps", "--no-index", "--force-reinstall", str(wheel)])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _env(tmp_path)
    url = f"sqlite:///{tmp_path / 'digits.db'}"
    d = ["--method", "digits"]
    started = time.perf_counter()

    def ok(*argv: str) -> str:
        r = installed.ablate(*argv, cwd=elsewhere, env=env)
        assert r.returncode == 0, f"{argv}: {r.stderr}"
        return r.stdout

    assert "--C" in ok(*d, "run", "--help") and "clean|noisy" in ok(*d, "study", "--help")
    assert "clean pipeline seed=3 fidelity=smoke" in ok(
        *d, "run", "--case", "clean", "--technique", "pipeline", "--seed", "3", "--pca", "0"
    )
    ok(*d, "study", "--case", "clean", "--trials", "6", "--seeds", "2", "--sampler", "random", "--storage", url)
    ok("ablation", *d, "--case", "clean", "--seeds", "3", "--storage", url)  # --method after the command too
    ok(*d, "confirm", "sensitivity-clean-smoke", "--top", "2", "--seeds", "3", "--storage", url)
    ok(*d, "reproduce", "table", "--seeds", "2", "--storage", url, "--out", str(tmp_path / "table"))
    ok(*d, "seeds", "ablation-ofat-clean-smoke", "--storage", url, "--sims", "200")
    for name in ("sensitivity-clean-smoke", "ablation-ofat-clean-smoke", "confirm-top2-sensitivity-clean-smoke"):
        ok("report", name, "--storage", url, "--format", "md,json", "--out", str(tmp_path / name), "--no-dashboard")
    ablation = (tmp_path / "ablation-ofat-clean-smoke" / "ablation-ofat-clean-smoke.md").read_text()
    assert ablation.startswith("# Ablation of Digits pipeline: clean") and "CGI" not in ablation
    ok("dashboard", "--help")
    seconds = time.perf_counter() - started
    print(f"digits method: run, study, ablation, confirm, reproduce, seeds, 3 reports in {seconds:.0f} s")

    # the method a study was made with is in its provenance, and confirm refuses another method's study
    r = installed.ablate("confirm", "sensitivity-clean-smoke", "--storage", url, cwd=elsewhere, env=env)
    assert r.returncode == 2 and "made by method 'digits'" in r.stderr and r.stderr.count("\n") == 1
    r = installed.ablate("--method", "nope", "studies", "--storage", url, cwd=elsewhere, env=env)
    assert r.returncode == 2 and "not a registered method (registered: cgi, digits" in r.stderr
