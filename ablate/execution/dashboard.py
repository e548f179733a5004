"""optuna-dashboard on a study storage, and publishing reports into it (study note + artifacts).

Artifacts (report figures) live in a file-system artifact store beside the runs
(``$ABLATE_ARTIFACTS_DIR``, default ``studies/runs/artifacts``); ``ablate dashboard`` serves the same store,
so figures uploaded by ``ablate report`` show up next to the trials.

The note links each figure by the address the dashboard serves its artifact from
(``/artifacts/{study_id}/{artifact_id}``): a file path in a note resolves against the dashboard's own URL,
which answers with the dashboard's HTML, and every figure would be a broken image.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import optuna
import optuna_dashboard
from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta, upload_artifact
from optuna_dashboard.artifact import get_artifact_path

from ablate.execution.storages import open_storage
from ablate.experiment.presets import runs_dir

NoteRenderer = Callable[[Mapping[Path, str]], str]
"""Renders the note given each figure's served address (``{png path: /artifacts/...}``)."""


def artifact_dir() -> Path:
    return Path(os.environ.get("ABLATE_ARTIFACTS_DIR") or runs_dir() / "artifacts")


def artifact_store() -> FileSystemArtifactStore:
    path = artifact_dir()
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def _existing(study: optuna.Study, store: FileSystemArtifactStore) -> dict[tuple[str, bytes], str]:
    """(file name, content) → artifact id of the study's artifacts, so an unchanged figure is not uploaded twice
    (figures are byte-for-byte reproducible, so re-running a report on the same trials uploads nothing)."""
    out = {}
    for meta in get_all_artifact_meta(study):
        try:
            with store.open_reader(meta.artifact_id) as f:
                out[(meta.filename, f.read())] = meta.artifact_id
        except Exception:  # noqa: BLE001 - a missing or unreadable old artifact is simply not reused
            continue
    return out


def publish(study: optuna.Study, note: str | NoteRenderer, figures: list[Path]) -> dict[Path, str]:
    """Upload ``figures`` as study artifacts, then save the note (``note`` called with the figures' served
    addresses when it is a renderer). Returns ``{figure: address}``."""
    store = artifact_store()
    known = _existing(study, store)
    links: dict[Path, str] = {}
    for f in figures:
        f = Path(f)
        if not f.exists():
            continue
        artifact_id = known.get((f.name, f.read_bytes()))
        if artifact_id is None:
            artifact_id = upload_artifact(artifact_store=store, file_path=str(f), study_or_trial=study)
        links[f.resolve()] = get_artifact_path(study, artifact_id)
    optuna_dashboard.save_note(study, note(links) if callable(note) else note)
    return links


def check_port(host: str, port: int) -> None:
    """Refuse a port another server holds in one line, before printing the dashboard's address."""
    import socket

    from ablate.errors import AblateError

    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            message = f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); choose another --port"
            raise AblateError(message) from None


def serve(url: str, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    storage = open_storage(url, heartbeat_interval=None, create=False)
    optuna_dashboard.run_server(storage, host=host, port=port, artifact_store=artifact_store())
