"""Shared fixtures; importable helpers live in ``tests/_support``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from servers import require_server as _require_server


@pytest.fixture
def require_server() -> Callable[[str, int], None]:
    """The check as a callable: ``require_server("127.0.0.1", 5432)`` skips (or fails under CI) when down."""
    return _require_server
