"""A switch is one declaration: a throwaway switch added to a copy of the registry shows up everywhere.

The registry copy subclasses CGIConfig with one extra field. Nothing else is edited, yet the switch is an
``ablate run`` option (validated by typer), a search-space parameter, a design flip, a record column and a
report row label. With the project's registry the same space and design are refused, which shows the
derivation is real and not a permissive parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import typer
from typer.testing import CliRunner

from ablate import record
from ablate.analysis import tidy
from ablate.cli.options import with_switch_options
from ablate.errors import AblateError
from ablate.execution.studies import DesignPlan, execute
from ablate.experiment.designs import load_ablation_design
from ablate.experiment.presets import load_fidelity
from ablate.experiment.space import load_space
from ablate.methods.cgi import CGIMethod
from ablate.methods.cgi.commands import run_cmd
from ablate.report import write_study_report
from crossgen.config import REGISTRY, BNNConfig, CGIConfig, DistillConfig, RegimeConfig, Registry, switch


@dataclass(frozen=True)
class CGIWithThrowaway(CGIConfig):
    throwaway: int = switch(3, "A throwaway switch for the registry test.", low=0, high=9)


COPY = Registry((("cgi", CGIWithThrowaway), ("bnn", BNNConfig), ("distill", DistillConfig), ("regime", RegimeConfig)))
WITH, WITHOUT = CGIMethod(COPY), CGIMethod(REGISTRY)


def test_registry_copy_has_the_new_switch_and_the_original_does_not() -> None:
    assert "throwaway" in COPY.names() and "throwaway" not in REGISTRY.names()
    assert COPY.get("throwaway").describe() == "integer >= 0 and <= 9"
    assert COPY.configs({"throwaway": 5})["cgi"].throwaway == 5


def test_new_switch_is_an_ablate_run_option_with_its_range() -> None:
    app = typer.Typer()
    app.command("run")(with_switch_options(run_cmd, WITH.switches()))
    app.command("noop")(lambda: None)  # two commands: typer keeps "run" as a subcommand
    runner = CliRunner()
    help_text = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    assert "--throwaway" in help_text and "A throwaway switch" in help_text
    bad = runner.invoke(app, ["run", "--case", "T2M1_T1M2", "--technique", "cgi", "--throwaway", "12"])
    assert bad.exit_code == 2 and "--throwaway" in bad.output


def test_new_switch_in_a_space_and_a_design(tmp_path: Path) -> None:
    space = tmp_path / "space.toml"
    space.write_text('[params.throwaway]\ntype = "int"\nlow = 0\nhigh = 4\n')
    assert [p.name for p in load_space(space, WITH).params] == ["throwaway"]
    with pytest.raises(AblateError, match="not a switch"):
        load_space(space, WITHOUT)
    space.write_text('[params.throwaway]\ntype = "int"\nlow = 0\nhigh = 40\n')  # outside the declared range
    with pytest.raises(AblateError, match="throwaway=40"):
        load_space(space, WITH)

    design = tmp_path / "design.toml"
    design.write_text("[ofat]\nflips = { throwaway = 1 }\n")
    labels = [v.label for v in load_ablation_design("ofat", design, WITH).variants]
    assert labels == ["full", "throwaway=1", "no transfer"]
    with pytest.raises(AblateError, match="throwaway"):
        load_ablation_design("ofat", design, WITHOUT)


@pytest.mark.slow
def test_new_switch_reaches_the_record_and_the_report(tmp_path: Path) -> None:
    design = tmp_path / "design.toml"
    design.write_text("[ofat]\nflips = { throwaway = 1 }\n")
    plan = DesignPlan(
        name="throwaway",
        storage=f"sqlite:///{tmp_path / 'r.db'}",
        fidelity=load_fidelity("smoke", method=WITH),
        design=load_ablation_design("ofat", design, WITH),
        cases=("T2M1_T1M2",),
        seeds=2,
        heartbeat_interval=None,
        method=WITH,
        curves=False,
    )
    outcome = execute(plan, log=lambda *a: None)
    assert outcome.counts["COMPLETE"] == 6
    study = optuna.load_study(study_name="throwaway", storage=plan.storage)
    declared = {s["name"]: s for s in record.read_definition(study).switches}
    assert declared["throwaway"]["flag"] == "--throwaway"
    frame = tidy.design_frame(study)
    assert set(frame.loc[frame["variant"] == "throwaway=1", "throwaway"]) == {1}
    assert set(frame.loc[frame["variant"] == "full", "throwaway"]) == {3}
    report = write_study_report(study, tmp_path / "report", formats=("md",), publish=False)
    text = next(p for p in report.paths if p.suffix == ".md").read_text()
    assert "throwaway=1" in text
