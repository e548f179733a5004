"""optuna-dashboard on a study storage, and publishing reports into it (study note + artifacts).

Artifacts (report figures) live in a file-system artifact store beside the runs
(``$ABLATE_ARTIFACTS_DIR``, default ``studies/runs/artifacts``); ``ablate dashboard`` serves the same store,
so figures uploaded by ``ablate report`` show up next to the trials.
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import optuna_dashboard
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from ablate.presets import runs_dir
from ablate.storage import open_storage


def artifact_dir() -> Path:
    return Path(os.environ.get("ABLATE_ARTIFACTS_DIR") or runs_dir() / "artifacts")


def artifact_store() -> FileSystemArtifactStore:
    path = artifact_dir()
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def publish(study: optuna.Study, markdown: str, figures: list[Path]) -> list[str]:
    """Save ``markdown`` as the study's dashboard note and upload ``figures`` as study artifacts."""
    optuna_dashboard.save_note(study, markdown)
    store = artifact_store()
    return [upload_artifact(artifact_store=store, file_path=str(f), study_or_trial=study) for f in figures]


def serve(url: str, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    storage = open_storage(url, heartbeat_interval=None, create=False)
    optuna_dashboard.run_server(storage, host=host, port=port, artifact_store=artifact_store())
