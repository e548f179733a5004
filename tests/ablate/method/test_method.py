"""The method API: one contract run over every method (scikit-learn's check_estimator model), discovery by entry
point and by module:attribute, the switch vocabulary, and the layering rule that only the CGI adapter imports
crossgen."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from ablate.errors import AblateError
from ablate.method import Method, Request, Switches, check_method, load_method, switch, switches_of
from ablate.methods.cgi import CGIMethod

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "digits-pipeline"


@pytest.fixture(scope="module")
def digits() -> Method:
    sys.path.insert(0, str(EXAMPLE))  # the example's source folder, as a user's checkout of their method
    try:
        from ablate_digits import DigitsPipeline
    finally:
        sys.path.remove(str(EXAMPLE))
    return DigitsPipeline()


@pytest.mark.slow
@pytest.mark.parametrize("which", ["cgi", "digits"])
def test_every_method_keeps_the_contract(which: str, digits: Method) -> None:
    check_method(CGIMethod() if which == "cgi" else digits)


def test_the_contract_catches_a_method_whose_numbers_are_not_fractions(digits: Method) -> None:
    class Rounded(type(digits)):  # type: ignore[misc]
        def run_one(self, request, *, log=print):
            out = super().run_one(request, log=log)
            from dataclasses import replace

            return replace(out, val_accuracy=round(out.val_accuracy, 2))

    with pytest.raises(AssertionError, match="is not k/"):
        check_method(Rounded())


def test_the_contract_catches_a_run_that_is_not_reproducible(digits: Method) -> None:
    from dataclasses import replace

    class Drifting(type(digits)):  # type: ignore[misc]
        calls = 0

        def run_one(self, request: Request, *, log=print):
            Drifting.calls += 1  # from the third run on, the split drifts: a rerun no longer matches
            return super().run_one(replace(request, seed=request.seed + (Drifting.calls > 2)), log=log)

    with pytest.raises(AssertionError, match="different numbers|seed"):
        check_method(Drifting())


def test_cgi_is_found_through_its_entry_point_and_a_method_through_module_attribute(digits: Method) -> None:
    assert isinstance(load_method("cgi"), CGIMethod) and isinstance(load_method(None), CGIMethod)
    assert isinstance(load_method("ablate.methods.cgi:CGIMethod"), CGIMethod)
    with pytest.raises(AblateError, match="not a registered method"):
        load_method("nope")
    with pytest.raises(AblateError, match="cannot import"):
        load_method("no_such_module:X")
    with pytest.raises(AblateError, match="is not an ablate.method.Method"):
        load_method("ablate.errors:one_line")


def test_a_method_declares_switches_with_the_same_vocabulary_as_cgi() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Mine:
        depth: int = switch(3, "Depth.", low=1, high=8)
        kind: str = switch("a", "Kind.", choices=("a", "b"))

    switches = Switches(switches_of(Mine))
    assert switches.names() == ("depth", "kind") and switches.get("depth").describe() == "integer >= 1 and <= 8"
    assert switches.complete({"kind": "b"}) == {"depth": 3, "kind": "b"}
    with pytest.raises(AblateError, match="depth=9 must be an integer >= 1 and <= 8"):
        switches.complete({"depth": 9})
    with pytest.raises(AblateError, match="'width' is not a switch"):
        switches.complete({"width": 1})


def test_cgi_switches_read_through_the_api_check_as_crossgen_checks_them() -> None:
    """Two implementations of one declaration (crossgen validates standalone): they must agree on every switch."""
    from crossgen.config import REGISTRY

    api = CGIMethod().switches()
    for s in REGISTRY.switches:
        mine = api.get(s.name)
        assert (mine.flag, mine.describe()) == (s.flag, s.describe())
        for value in (*s.choices, s.default, -1, 0, 0.5, 3, 10**6, "all", "none", None, True, float("nan")):
            try:
                s.check(value)
                crossgen_ok = True
            except ValueError:
                crossgen_ok = False
            try:
                mine.check(value)
                api_ok = True
            except AblateError:
                api_ok = False
            assert api_ok == crossgen_ok, (s.name, value)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):  # lazy imports inside functions included
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_module_outside_the_cgi_adapter_imports_crossgen() -> None:
    adapter = REPO / "ablate" / "methods" / "cgi"
    offenders = [
        str(p.relative_to(REPO))
        for p in sorted((REPO / "ablate").rglob("*.py"))
        if not p.is_relative_to(adapter) and any(m.split(".")[0] == "crossgen" for m in _imports(p))
    ]
    assert offenders == []
    assert any(m.startswith("crossgen") for p in adapter.rglob("*.py") for m in _imports(p))  # the scan sees them
