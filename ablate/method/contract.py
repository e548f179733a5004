"""The contract every method keeps, checked the way scikit-learn's ``check_estimator`` checks an estimator.

:func:`check_method` is run over CGI and the example method by the test suite, and a method's author runs it
over theirs (docs/methods.md). It raises :class:`AssertionError` naming the first broken promise.
"""

from __future__ import annotations

import tomllib
from typing import Any

from ablate.method.api import Method, Outcome, Request


def _check_declarations(method: Method) -> None:
    assert method.name and method.name.isidentifier(), f"name {method.name!r} must be an identifier"
    assert method.cases, "a method declares at least one case"
    assert method.variants, "a method declares at least one variant"
    assert method.reference in method.variants, f"reference {method.reference!r} is not a variant"
    assert method.baseline in method.variants, f"baseline {method.baseline!r} is not a variant"
    switches = method.switches()
    for s in switches:
        s.check(s.default)  # every default is itself allowed
    assert method.resolve(method.reference, {}) == method.resolve(method.reference, switches.defaults()), (
        "resolving the defaults must not depend on whether they were given"
    )


def _check_outcome(result: Any, request: Request) -> Outcome:
    assert not isinstance(result, Exception), f"{request.variant} failed: {result!r}"
    assert isinstance(result, Outcome), f"run() returned {type(result).__name__}, not an Outcome"
    assert result.seed == request.seed, "an outcome carries its request's seed"
    for split, n in (("val", result.n_val), ("test", result.n_test)):
        acc = getattr(result, f"{split}_accuracy")
        assert isinstance(n, int) and n > 0, f"n_{split} must be the positive example count"
        assert 0.0 <= acc <= 1.0, f"{split}_accuracy {acc} is not a fraction"
        assert abs(acc * n - round(acc * n)) < 1e-3, f"{split}_accuracy {acc} is not k/{n}: the exact tests need it"
    return result


def check_method(method: Method, preset: str | None = None, *, case: str | None = None, seed: int = 0) -> None:
    """Check ``method``'s declarations, definitions and runs.

    Parameters
    ----------
    method
        The method instance.
    preset
        The fidelity preset to run at (default: the first in its ``fidelity.toml``, the smallest by convention).
    case, seed
        Where to run (default: its first case, seed 0).

    The runs: the reference and the baseline, each twice (the same request must give the same numbers: studies
    resume and confirm on that), and the pair in one ``run`` call (what stacking receives). The space and design
    files are checked by the commands that read them (one line, exit 2), against the same switches.
    """
    _check_declarations(method)
    with (method.definitions() / "fidelity.toml").open("rb") as fh:
        tables = tomllib.load(fh)
    assert tables, "fidelity.toml declares at least one preset"
    found = {name: method.preset(name, values) for name, values in tables.items()}
    chosen = found[preset] if preset else next(iter(found.values()))
    case = case or method.cases[0]
    requests = [
        Request(case, variant, seed, method.switches().complete(chosen.switches), chosen)
        for variant in (method.reference, method.baseline)
    ]
    once = [_check_outcome(r, q) for r, q in zip(method.run(requests, log=lambda *a: None), requests, strict=True)]
    for request, first in zip(requests, once, strict=True):
        (again,) = method.run([request], log=lambda *a: None)
        again = _check_outcome(again, request)
        assert (again.val_accuracy, again.test_accuracy) == (first.val_accuracy, first.test_accuracy), (
            f"{request.variant}: the same request gave different numbers"
        )
