"""The docs cannot drift: docs/cli.md's option tables are the CLI's, every command block is marked and parses,
the cheap blocks run, and the smoke-fidelity output blocks are what a rerun prints.

The rules and markers are described in scripts/docs.py, which also regenerates what these tests compare
(`make docs`).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer

from ablate.cli import main
from ablate.cli.common import app

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

REPO = Path(__file__).resolve().parents[2]


def _load_docs():
    spec = importlib.util.spec_from_file_location("ablate_docs_script", REPO / "scripts" / "docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


docs = _load_docs()


def test_cli_reference_is_generated_from_the_cli() -> None:
    text = docs.CLI_DOC.read_text()
    assert docs.render_cli(text) == text, "docs/cli.md is stale: run `python scripts/docs.py cli` (make docs)"


def test_an_undocumented_option_or_an_edited_table_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    text = docs.CLI_DOC.read_text()
    edited = text.replace("| `--storage URL` | Optuna storage URL", "| `--storage URL` | Some storage", 1)
    assert edited != text and docs.render_cli(edited) != edited

    info = next(c for c in app.registered_commands if c.name == "studies")

    def studies_cmd(
        storage: Annotated[str | None, typer.Option("--storage")] = None,
        verbose: Annotated[bool, typer.Option(help="A new option nobody documented.")] = False,
    ) -> None:
        """List the studies."""

    monkeypatch.setattr(info, "callback", studies_cmd)
    assert "--verbose" in docs.render_command("studies")
    assert docs.render_cli(text) != text


def undocumented_switches(method_text: str, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if f"`{n}`" not in method_text]


def test_method_md_names_every_switch_of_the_registry() -> None:
    """docs/method.md is where a reader learns which ambiguity of the paper each switch covers: a switch
    added to the registry without a line there fails here."""
    from crossgen.config import REGISTRY

    text = (REPO / "docs" / "method.md").read_text()
    assert not undocumented_switches(text, REGISTRY.names()), "switches docs/method.md never names"
    assert undocumented_switches(text.replace("`reg_covar`", "reg_covar"), REGISTRY.names()) == ["reg_covar"]


def test_every_command_block_is_marked_and_every_ablate_command_parses() -> None:
    found = list(docs.problems(outputs=False))
    assert not found, "\n".join(found)


def test_the_parser_check_refuses_a_renamed_option() -> None:
    assert docs.parse_error(["study", "--case", "all", "--trials", "5"]) is None
    assert "--no-such-option" in docs.parse_error(["study", "--case", "all", "--no-such-option", "1"])
    assert docs.parse_error(["run", "--case", "T2M1_T1M2", "--technique", "cgi", "--transfer", "sideways"])
    assert docs.parse_error(["frobnicate"])


def _blocks(marker: str) -> list:
    return [b for path in docs.doc_files() for b in docs.blocks(path) if b.marker == marker]


def test_smoke_output_blocks_are_what_a_rerun_prints() -> None:
    smoke = [b for b in _blocks("output") if "long-running" not in b.attrs and docs.command_lines(b)]
    assert smoke, "no smoke-fidelity output block left to check"
    for block in smoke:
        fresh = docs.run_output(docs.command_lines(block), smoke=True)
        assert docs.normalised(fresh) == docs.normalised(block.body), (
            f"{block.where}: stale output; run `python scripts/docs.py outputs`"
        )


def test_a_stale_output_block_is_detected() -> None:
    block = next(b for b in _blocks("output") if "long-running" not in b.attrs and docs.command_lines(b))
    stale = [line.replace("val 0.", "val 1.") for line in block.body]
    assert docs.normalised(stale) != docs.normalised(block.body)
    timing_only = [line.replace("(1.", "(9.") for line in block.body]
    assert docs.normalised(timing_only) == docs.normalised(block.body)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_run_blocks_succeed_at_smoke_fidelity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each ``<!-- docs: run -->`` block, command by command, in its own folder and default SQLite storage,
    every preset being ``smoke`` and --trials/--seeds/--workers capped (``docs.CAPS``); ``export`` lines
    (a server's URL) are left out, so the temporary storage stands in for the server."""
    runs = _blocks("run")
    assert runs
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    for n, block in enumerate(runs):
        root = tmp_path / f"block{n}"
        studies = docs.smoke_studies(root / "studies")
        monkeypatch.setenv("ABLATE_STUDIES_DIR", str(studies))
        monkeypatch.setenv("ABLATE_ARTIFACTS_DIR", str(root / "artifacts"))
        monkeypatch.chdir(root)
        for command in docs.command_lines(block):
            if command.startswith("export "):
                continue
            argv = docs.ablate_argv(command)
            assert argv is not None, f"{block.where}: a run block holds only ablate commands, not `{command}`"
            with pytest.raises(SystemExit) as exc:
                main(docs.capped(argv))
            captured = capsys.readouterr()
            assert exc.value.code in (0, None), f"{block.where}: `{command}` failed:\n{captured.err[-2000:]}"


# ---------------------------------------------------------------------------------------------- prose claims
OTHER_TOOLS = {
    "--no-deps": "pip (docs/cli.md: how `data fetch` downloads)",
    "--import-mode": "pytest (docs/testing.md)",
    "--job-name": "SLURM #SBATCH",
    "--array": "SLURM #SBATCH",
    "--cpus-per-task": "SLURM #SBATCH",
    "--time": "SLURM #SBATCH",
    "--artifact-dir": "optuna-dashboard",
    "--my-switch": "docs/architecture.md: the example of adding a switch",
}
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]")
SPAN = re.compile(r"`(ablate [^`]+)`")
DOC_PATH = re.compile(r"(?<![\w/.-])((?:studies|docs)/[\w.+-]+(?:/[\w.+-]+)*)")


def _options(cmd: Any) -> set[str]:
    names = {"-h", "--help"}
    for p in cmd.params:
        names.update(p.opts)
        names.update(p.secondary_opts)
    return names


def _command_options() -> dict[str, set[str]]:
    """Every command's options, each with the root's (``--method`` may come before or after the command)."""
    from ablate.cli import command

    root = _options(command())
    return {path: _options(cmd) | root for path, cmd in docs.command_paths().items()}


def prose_claim_problems(files: dict[str, str]) -> list[str]:
    """Options, commands and paths named in the docs' prose that do not exist: every ``--option`` is an option
    of some ablate command or script (or of a named other tool), every `ablate CMD … --opt` span names an
    option of CMD, and every ``studies/…`` or ``docs/…`` path exists (``studies/runs/…`` is written by runs)."""
    per_command = _command_options()
    every = set().union(*per_command.values())
    scripts = "".join(
        p.read_text() for p in [*(REPO / "scripts").glob("*.py"), *(REPO / "scripts").glob("*.sh"), REPO / "Makefile"]
    )
    found = []
    for name, text in files.items():
        for n, line in enumerate(text.splitlines(), 1):
            for o in OPTION.findall(line):
                if o not in every and o not in OTHER_TOOLS and f'"{o}' not in scripts and f"'{o}" not in scripts:
                    found.append(f"{name}:{n}: no such option {o}")
            for span in SPAN.findall(line):
                words = span.split()[1:]
                if words[:1] == ["--method"]:  # the root option, then the command
                    words = words[2:]
                path = " ".join(words[:2]) if " ".join(words[:2]) in per_command else words[0] if words else ""
                if path not in per_command:
                    found.append(f"{name}:{n}: no such command `{span}`")
                    continue
                for o in OPTION.findall(span):
                    if o not in per_command[path] and o not in OTHER_TOOLS:
                        found.append(f"{name}:{n}: `ablate {path}` has no option {o}")
            for p in DOC_PATH.findall(line):
                p = p.rstrip(".")
                if not p.startswith("studies/runs") and not (REPO / p).exists():
                    found.append(f"{name}:{n}: no such file {p}")
    return found


def _doc_texts() -> dict[str, str]:
    return {str(p.relative_to(REPO)): p.read_text() for p in [REPO / "README.md", *sorted(REPO.glob("docs/*.md"))]}


def test_every_option_command_and_path_the_docs_name_exists() -> None:
    found = prose_claim_problems(_doc_texts())
    assert not found, "\n".join(found)


def test_the_prose_check_catches_a_wrong_option_command_or_path() -> None:
    planted = {
        "a.md": "Run `ablate reproduce table2 --precision bf16`.",  # a switch of `run`, not of `reproduce`
        "b.md": "Use --frobnicate to go faster.",
        "c.md": "See docs/nowhere.md and studies/missing.toml.",
        "d.md": "Run `ablate frobnicate --case all`.",
    }
    found = prose_claim_problems(planted)
    assert any("reproduce` has no option --precision" in f for f in found), found
    assert any("no such option --frobnicate" in f for f in found)
    assert any("docs/nowhere.md" in f for f in found) and any("studies/missing.toml" in f for f in found)
    assert any("no such command" in f for f in found)
