"""``ablate run``: one run of the method (CGI replaces it with its own, see ablate.methods.cgi.commands)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ablate.cli.common import (
    CASE_METAVAR,
    DEFAULT_PRESET,
    FIDELITY_METAVAR,
    TECHNIQUE_METAVAR,
    DeviceOpt,
    current_method,
    err,
    out,
)


# ---------------------------------------------------------------------------------------------- run
def run_cmd(
    case: Annotated[str, typer.Option(metavar=CASE_METAVAR, help="Case.")],
    technique: Annotated[str, typer.Option("--technique", metavar=TECHNIQUE_METAVAR, help="Variant to run.")],
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    fidelity: Annotated[str, typer.Option(metavar=FIDELITY_METAVAR, help="Preset in fidelity.toml.")] = DEFAULT_PRESET,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    device: DeviceOpt = "cpu",
    *,
    switches: dict[str, Any],
) -> None:
    """Run one variant of the method on one case with one seed and print its metrics.

    Every switch the method declares is an option below the fixed ones.
    """
    from dataclasses import asdict

    from ablate.app import plan_run

    method = current_method()
    request = plan_run(
        method, case=case, technique=technique, seed=seed, fidelity=fidelity, switches=switches, device=device
    )
    (result,) = method.run([request], log=err.print)
    if isinstance(result, Exception):
        raise result
    if as_json:
        print(json.dumps({"case": case, "technique": technique, **asdict(result)}, default=str))
        return
    out.print(
        f"[bold]{case}[/] {technique} seed={seed} fidelity={fidelity}: "
        f"val {result.val_accuracy:.4f}  test {result.test_accuracy:.4f}  ({result.seconds:.1f} s)"
    )
