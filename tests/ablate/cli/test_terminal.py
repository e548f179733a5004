"""What a person reads on a terminal and in a pipe or a log: help at 80 columns, tables never cut in a pipe,
progress lines in a log, and every run command ending with what to do next.

Commands are called in-process (``ablate.cli.main``); pytest's captured stdout and stderr are not terminals,
exactly like ``ablate … | cat`` or a batch scheduler's log file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ablate.cli import command
from ablate.experiment import presets

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


def _commands() -> dict[str, Any]:
    root = command()
    out: dict[str, Any] = {"": root}
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        out[name] = cmd
        for sub, subcmd in getattr(cmd, "commands", {}).items():
            out[f"{name} {sub}"] = subcmd
    return out


def _names(cmd: Any) -> list[str]:
    return [o for p in cmd.params if p.param_type_name == "option" for o in (*p.opts, *p.secondary_opts)]


@pytest.mark.parametrize("path", sorted(_commands()))
def test_help_fits_80_columns_and_names_every_option_whole(path: str, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    r = run_cli(*path.split(), "-h")
    assert r.code == 0, r.err
    too_long = [line for line in r.out.splitlines() if len(line) > 80]
    assert not too_long, f"`ablate {path} -h` lines over 80 columns: {too_long}"
    assert "…" not in r.out, f"`ablate {path} -h` cuts something"
    for name in _names(_commands()[path]):
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", r.out), f"`ablate {path} -h` never shows {name}"


def test_help_lists_choices_not_types(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    run = run_cli("run", "--help").out
    assert "--case <T1M1_T2M2|T2M1_T1M2|T1M2_T2M1|T2M2_T1M1>" in run
    assert "--technique <none|feature|distill|bnn|cgi>" in run
    assert "--fidelity <" + "|".join(presets.fidelities()) + ">" in " ".join(run.split())
    assert "<bool>" not in run and "<str>" not in run.split("--data-dir")[0]
    study = run_cli("study", "-h").out
    assert "--sampler <tpe|random|qmc|grid>" in study and "--pruner <none|median|wilcoxon|hyperband>" in study


def test_version(run_cli) -> None:
    from importlib.metadata import version

    r = run_cli("--version")
    assert r.code == 0 and r.out.strip() == f"ablate {version('ablate')}"


def test_tables_in_a_pipe_are_never_cut(env: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ablate studies | cat`: the study name a user copies is whole, whatever the terminal's width."""
    monkeypatch.delenv("COLUMNS")
    name = "a-study-name-long-enough-that-an-80-column-table-would-have-to-cut-it-" + "x" * 40
    url = f"sqlite:///{env / 'p.db'}"
    args = ("study", "--case", "T2M1_T1M2", "--trials", 2, "--fidelity", "smoke", "--workers", 0)
    r = run_cli(*args, "--study-name", name, "--storage", url)
    assert r.code == 0, r.err
    r = run_cli("studies", "--storage", url)
    assert r.code == 0, r.err
    assert name in r.out and "…" not in r.out


def test_progress_is_logged_as_lines_in_a_log(env: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLATE_PROGRESS_SECONDS", "0")
    url = f"sqlite:///{env / 'l.db'}"
    r = run_cli("study", "--case", "T2M1_T1M2", "--trials", 3, "--fidelity", "smoke", "--storage", url)
    assert r.code == 0, r.err
    for n in (1, 2, 3):
        assert re.search(rf"sensitivity-T2M1_T1M2-smoke: {n}/3 trials finished \(best 0\.\d{{4}}", r.err), r.err
    assert "\x1b[" not in r.err and "━" not in r.err


def _tail(out: str, url: str, artifacts: Path) -> list[str]:
    lines = out.strip().splitlines()
    assert lines[-1] == (
        f"dashboard: ablate dashboard --storage {url}  (or: optuna-dashboard {url} --artifact-dir {artifacts})"
    ), lines[-3:]
    return lines


def test_a_search_names_its_best_and_every_step_says_what_is_next(env: Path, run_cli) -> None:
    """study → report (the best configuration and `ablate confirm` in md, html, json, tex) → confirm, each
    ending with where its results are and the next commands; confirm's winner's curse has the report's sign."""
    import json

    url, study = f"sqlite:///{env / 'n.db'}", "sensitivity-T2M1_T1M2-smoke"
    r = run_cli("study", "--case", "T2M1_T1M2", "--trials", 4, "--seeds", 2, "--fidelity", "smoke", "--storage", url)
    assert r.code == 0, r.err
    lines = _tail(r.out, url, env / "artifacts")
    assert f"stored: {url} (study {study})" in lines
    assert f"next: ablate confirm {study} --storage {url}" in lines
    assert f"report: ablate report {study} --storage {url}" in lines

    r = run_cli("report", study, "--storage", url, "--out", env / "rep")
    assert r.code == 0, r.err
    meta = json.loads((env / "rep" / f"{study}.json").read_text())["metadata"]
    best = meta["best"]
    assert best["val_accuracy"] == max(t["value"] for t in _complete(url, study))
    line = f"Best: trial {best['trial']}, {best['configuration']} (changes from the default CGI)"
    for ext in ("md", "html", "tex"):
        text = (env / "rep" / f"{study}.{ext}").read_text().replace("\\_", "_")
        assert line in text and f"{best['val_accuracy']:.4f}" in text, ext
        assert f"ablate confirm {study} --top 3 --seeds 8" in text, ext
        assert "Next: `ablate ablation" not in text and "Next: <code>ablate ablation" not in text

    r = run_cli("confirm", study, "--top", 1, "--seeds", 2, "--storage", url)
    assert r.code == 0, r.err
    lines = _tail(r.out, url, env / "artifacts")
    assert f"report: ablate report confirm-top1-{study} --storage {url}" in lines
    row = re.search(r"→ \d+\.\d\d \(([+-]\d+\.\d\d) pp\)", r.out)
    mean = re.search(r"mean winner's curse ([+-]\d+\.\d\d) pp \(search − confirmed", r.out)
    assert row and mean and row.group(1) == mean.group(1), r.out


def _complete(url: str, name: str) -> list[dict[str, Any]]:
    import optuna

    study = optuna.load_study(study_name=name, storage=url)
    return [{"value": t.value} for t in study.trials if t.state.name == "COMPLETE"]


@pytest.mark.parametrize(
    "argv, name",
    [
        (["ablation", "--case", "T2M1_T1M2", "--seeds", 2], "ablation-ofat-T2M1_T1M2-smoke"),
        (["reproduce", "table1", "--seeds", 2], "table1-smoke"),
    ],
)
def test_design_commands_end_with_what_is_next(env: Path, run_cli, argv: list[Any], name: str) -> None:
    url = f"sqlite:///{env / 'd.db'}"
    r = run_cli(*argv, "--fidelity", "smoke", "--storage", url)
    assert r.code == 0, r.err
    lines = _tail(r.out, url, env / "artifacts")
    assert f"stored: {url} (study {name})" in lines
    assert f"report: ablate report {name} --storage {url}" in lines
    if argv[0] == "reproduce":
        assert any(line.startswith("written: ") and "table1-smoke/table1.md" in line for line in lines)


def test_report_writes_the_study_and_its_confirmation_reports_where_ablate_report_would(
    env: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``study --confirm K --report`` (what ``make main`` runs) leaves the same two report folders that
    ``ablate report`` writes by default, so no caller spells a study name; a folder that cannot be one is
    refused before the study is created."""
    import shutil

    import optuna

    shutil.copytree(Path(__file__).resolve().parents[3] / "studies", env / "studies", ignore=lambda d, f: ["runs"])
    monkeypatch.setenv("ABLATE_STUDIES_DIR", str(env / "studies"))  # a project of one's own: RUNS is its runs/
    url, study = f"sqlite:///{env / 'r.db'}", "sensitivity-T2M1_T1M2-smoke"
    argv = ["study", "--case", "T2M1_T1M2", "--trials", 2, "--fidelity", "smoke", "--sampler", "random"]
    runs = env / "studies" / "runs"
    runs.mkdir(parents=True)
    (runs / f"report-{study}").write_text("a file where the report folder would go")
    r = run_cli(*argv, "--confirm", 1, "--confirm-seeds", 2, "--report", "--storage", url)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and f"report-{study}" in r.err, r.err
    assert optuna.get_all_study_names(url) == []  # refused before anything was written
    (runs / f"report-{study}").unlink()
    r = run_cli(*argv, "--confirm", 1, "--confirm-seeds", 2, "--report", "--storage", url)
    assert r.code == 0, r.err
    for name in (study, f"confirm-top1-{study}"):
        assert (runs / f"report-{name}" / f"{name}.md").is_file(), name
    written = next(line for line in _tail(r.out, url, env / "artifacts") if line.startswith("written: "))
    assert written == f"written: {runs / f'report-{study}'}/, {runs / f'report-confirm-top1-{study}'}/"
