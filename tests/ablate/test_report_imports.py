"""The layering holds: no import cycle inside ablate/ (lazy imports in functions count too), the report
modules never import their own package, and crossgen never imports ablate or Optuna."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules(folder: Path, name: str) -> dict[str, Path]:
    out = {}
    for path in sorted(folder.rglob("*.py")):
        parts = [name, *path.relative_to(folder).with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every absolute import anywhere in the file; ``from a import b`` yields ``a`` and ``a.b``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_in_ablate() -> None:
    mods = _modules(ROOT / "ablate", "ablate")
    assert "ablate.report.render" in mods and "ablate.cli" in mods
    graph = {m: {n for n in _imports(p) if n in mods and n != m} for m, p in mods.items()}
    assert _cycles(graph) == []


def test_report_modules_import_siblings_never_the_package() -> None:
    mods = _modules(ROOT / "ablate" / "report", "ablate.report")
    offenders = {m for m, p in mods.items() if m != "ablate.report" and "ablate.report" in _imports(p)}
    assert offenders == set(), "import the sibling module (ablate.report.x), not the package"


def test_crossgen_never_imports_ablate_or_optuna() -> None:
    mods = _modules(ROOT / "cgi" / "crossgen", "crossgen")
    assert "crossgen.io" in mods
    bad = {
        m: sorted(n for n in _imports(p) if n.split(".")[0] in ("ablate", "optuna"))
        for m, p in mods.items()
        if any(n.split(".")[0] in ("ablate", "optuna") for n in _imports(p))
    }
    assert bad == {}
