"""Provenance: recorded once when a study is created, shown by every report, differences warned about."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import subprocess
from pathlib import Path

import optuna
import pytest
import torch

from ablate import record
from ablate.execution import provenance
from ablate.methods.cgi import CGIMethod
from ablate.methods.cgi.method import data_checksum
from ablate.report.provenance import provenance_section, report_provenance

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
ROOT = Path(__file__).resolve().parents[3]
CASE = "T1M1_T2M2"


def test_collect_records_versions_commit_machine_and_the_data_checksum() -> None:
    prov = provenance.collect(fidelity={"name": "smoke", "data": "digits"}, method=CGIMethod(), device="cpu", threads=3)
    assert prov["versions"]["optuna"] == importlib.metadata.version("optuna")
    assert prov["versions"]["pyro-ppl"] == importlib.metadata.version("pyro-ppl")
    assert set(prov["versions"]) == {"python", "torch", "pyro-ppl", "optuna", "scikit-learn", "numpy"}
    data = Path(prov["data"]["path"])
    assert prov["data"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert prov["torch_threads"] == 3 and prov["device"] == "cpu" and prov["cpu"]
    assert prov["cpu_kernels"] == torch.backends.cpu.get_cpu_capability()
    if (ROOT / ".git").exists():
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        assert prov["git_commit"] == head


def test_mnist_checksum_names_the_pinned_source_checksum(tmp_path: Path) -> None:
    (tmp_path / "mnist.npz").write_bytes(b"not really mnist")
    data = data_checksum("mnist", str(tmp_path))
    assert data["sha256"] == hashlib.sha256(b"not really mnist").hexdigest()
    assert len(data["verified_source_sha256"]) == 64


def test_differences_ignore_the_command_and_name_what_differs() -> None:
    a = provenance.collect(fidelity={"name": "smoke", "data": "digits"}, method=CGIMethod())
    b = json.loads(json.dumps(a)) | {"argv": "something else", "command": "ablate other"}
    assert provenance.differences([("a", a), ("b", b)]) == []
    b["versions"] = {**a["versions"], "torch": "0.0.fake"}
    notes = provenance.differences([("a", a), ("b", b)])
    assert len(notes) == 1 and "versions.torch" in notes[0] and "0.0.fake" in notes[0]
    c = json.loads(json.dumps(a)) | {"cpu_kernels": "NO_AVX"}  # the same model name, other kernels (a VM's flags)
    assert "cpu_kernels" in provenance.differences([("a", a), ("c", c)])[0]
    assert "no provenance recorded for: c" in provenance.differences([("a", a), ("c", None)])[0]


def test_a_real_study_records_it_and_its_report_shows_it(env: Path, run_cli) -> None:
    url = f"sqlite:///{env}/p.db"
    argv = ["study", "--case", CASE, "--fidelity", "smoke", "--sampler", "random", "--trials", "2"]
    r = run_cli(*argv, "--storage", url)
    assert r.code == 0, r.err
    name = f"sensitivity-{CASE}-smoke"
    study = optuna.load_study(study_name=name, storage=url)
    prov = record.provenance_of(record.read_definition(study))
    assert prov["command"].startswith(f"ablate study --case {CASE} --trials 2")
    assert prov["fidelity"] == "smoke" and prov["data"]["source"] == "digits"
    r = run_cli(*argv, "--trials", "3", "--storage", url)  # resuming keeps the provenance of the creation
    assert r.code == 0, r.err
    study = optuna.load_study(study_name=name, storage=url)
    assert record.provenance_of(record.read_definition(study)) == prov

    r = run_cli("report", name, "--storage", url, "--out", env / "rep", "--format", "md,json", "--no-dashboard")
    assert r.code == 0, r.err
    doc = json.loads((env / "rep" / f"{name}.json").read_text())
    assert doc["metadata"]["provenance"][name]["git_commit"] == prov["git_commit"]
    section = next(s for s in doc["sections"] if s["title"] == "Provenance")
    assert section["warnings"] == []
    assert "ablate study --case" in (env / "rep" / f"{name}.md").read_text()


def test_a_report_over_studies_with_differing_provenance_warns(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "confirm_helpers", Path(__file__).parents[1] / "experiment" / "test_confirm.py"
    )
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)  # the planted search of the confirm tests, not duplicated here
    planted_search, run_confirmation = helpers.planted_search, helpers.run_confirmation
    url = f"sqlite:///{tmp_path}/c.db"
    other = provenance.collect(fidelity={"name": "smoke", "data": "digits"}, method=CGIMethod())
    other["versions"] = {**other["versions"], "numpy": "0.0.fake"}
    source = planted_search(url, provenance=other)
    study = run_confirmation(url, source, top=2, seeds=2)
    section = provenance_section(report_provenance(study))
    assert [t.title for t in section.tables] == [f"Provenance of {study.study_name}", "Provenance of search"]
    assert any("versions.numpy" in w for w in section.warnings)
