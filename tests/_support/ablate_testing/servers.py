"""Test support importable from any test module (``pythonpath = ["tests/_support"]`` in pyproject.toml).

``require_server`` skips a server-backed test when nothing listens on the server's port, but fails it under
``CI=true`` (CI must provide PostgreSQL, MariaDB and Redis).
"""

from __future__ import annotations

import os
import socket

import pytest


def require_server(host: str, port: int) -> None:
    """Skip the test when nothing listens on host:port, but fail it under CI=true."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as exc:
        message = f"no server at {host}:{port} ({exc})"
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(f"{message}; CI=true requires the test services")
        pytest.skip(message)
