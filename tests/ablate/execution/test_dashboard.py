"""The report reaches optuna-dashboard: the study note and the figure artifacts are readable back through
optuna-dashboard's own WSGI app (the way its Python tests talk to it), not just present in the storage."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
from optuna_dashboard import wsgi

from ablate.cli import main
from ablate.execution.storages import open_storage


def _get(app, path: str) -> tuple[str, bytes]:  # noqa: ANN001
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update({"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO(b"")})
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    return status[0], body


def test_report_note_and_figures_are_served_by_optuna_dashboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ABLATE_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    url = f"sqlite:///{tmp_path}/dash.db"
    for argv in (
        ["ablation", "--case", "T1M1_T2M2", "--seeds", "2", "--fidelity", "smoke", "--storage", url],
        ["report", "ablation-ofat-T1M1_T2M2-smoke", "--storage", url, "--out", str(tmp_path / "rep")],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0, capsys.readouterr().err

    storage = open_storage(url, heartbeat_interval=None)
    study = optuna.load_study(study_name="ablation-ofat-T1M1_T2M2-smoke", storage=storage)
    from ablate.execution.dashboard import artifact_store

    app = wsgi(storage, artifact_store=artifact_store())
    status, body = _get(app, f"/api/studies/{study._study_id}")
    assert status.startswith("200"), status
    detail = json.loads(body)
    note = detail["note"]["body"]
    markdown = (tmp_path / "rep" / "ablation-ofat-T1M1_T2M2-smoke.md").read_text()
    assert note.strip() and "init=random" in note and "Methods" in note
    assert note.splitlines()[0] in markdown  # the same report, not a placeholder
    artifacts = detail["artifacts"]
    assert artifacts, "figures were not uploaded as study artifacts"
    assert all(a["filename"].endswith(".png") for a in artifacts)
    # the artifact itself is served back byte for byte
    first = artifacts[0]
    status, data = _get(app, f"/artifacts/{study._study_id}/{first['artifact_id']}")
    assert status.startswith("200"), status
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    originals = {p.read_bytes() for p in (tmp_path / "rep" / "figures").glob("*.png")}
    assert data in originals
    # the note links every figure by the address the dashboard serves it from (a file path would resolve
    # against the dashboard's URL and come back as its HTML: a broken image), and each one is a PNG
    links = re.findall(r"!\[[^\]]*\]\(<?([^)>]+)>?\)", note)
    assert len(links) == len(list((tmp_path / "rep" / "figures").glob("*.png"))) > 0
    assert all(link.startswith(f"/artifacts/{study._study_id}/") for link in links), links
    for link in links:
        status, data = _get(app, link)
        assert status.startswith("200") and data[:8] == b"\x89PNG\r\n\x1a\n", link
    assert len(artifacts) == len(links)
    # reporting again uploads nothing new (figures are reproducible) and names the metric
    with pytest.raises(SystemExit):
        main(["report", "ablation-ofat-T1M1_T2M2-smoke", "--storage", url, "--out", str(tmp_path / "rep")])
    status, body = _get(app, f"/api/studies/{study._study_id}")
    assert len(json.loads(body)["artifacts"]) == len(artifacts)
    assert study.metric_names == ["val_accuracy"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
