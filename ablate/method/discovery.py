"""Finding a method by name: the ``ablate.methods`` entry-point group, or ``module:attribute``.

Entry points are how pytest finds its plugins: a package declares ``[project.entry-points."ablate.methods"]
mine = "my_pkg.method:MyMethod"`` and, once installed, ``ablate --method mine ...`` finds it from any folder.
CGI registers itself the same way from ablate's own pyproject. ``--method my_pkg.method:MyMethod`` names one
that is importable but not registered (a notebook, a script's folder).
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points
from typing import Any

from ablate.errors import AblateError
from ablate.method.api import Method

GROUP = "ablate.methods"
DEFAULT = "cgi"
ENV = "ABLATE_METHOD"


def available() -> dict[str, str]:
    """Registered methods: entry-point name to its ``module:attribute``."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def _instance(obj: Any, where: str) -> Method:
    """A Method subclass (instantiated with no arguments) or an instance."""
    if isinstance(obj, type) and issubclass(obj, Method):
        obj = obj()
    if not isinstance(obj, Method):
        raise AblateError(f"method {where} is not an ablate.method.Method (it is {type(obj).__name__})")
    return obj


def _import(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AblateError(f"method {spec!r}: write module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AblateError(f"method {spec!r}: cannot import {module_name} ({exc})") from None
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AblateError(f"method {spec!r}: {module_name} has no attribute {attribute}") from None
    return obj


def load_method(spec: str | None = None) -> Method:
    """The method named by ``spec`` (an entry-point name or ``module:attribute``), else ``$ABLATE_METHOD``, else
    CGI. Every failure is one line naming what was asked for and what is registered."""
    spec = (spec or os.environ.get(ENV, "") or DEFAULT).strip()
    if ":" in spec:
        return _instance(_import(spec), repr(spec))
    registered = available()
    if spec not in registered:
        known = ", ".join(sorted(registered)) or "none"
        raise AblateError(f"--method {spec!r} is not a registered method (registered: {known}; or module:attribute)")
    return _instance(_import(registered[spec]), repr(spec))
