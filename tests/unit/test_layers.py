"""The layering rule of docs/architecture.md: a package imports only packages of lower layers.

spec and plan import no stage; no stage imports `pipeline` or `cli`; siblings of one layer
(terraform, state, preflight) never import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "cloudcast"

#: lower number = lower layer; a package imports only packages of a lower number
LAYERS: dict[str, int] = {
    "errors": 0, "__init__": 0,
    "events": 1, "resources": 1, "sinks": 1,
    "spec": 2,
    "plan": 3,
    "providers": 4,
    "terraform": 5, "state": 5, "preflight": 5,
    "inventory": 6,
    "ssh": 7,
    "bootstrap": 8, "lab": 8,
    "routes": 9,
    "verify": 10,
    "pipeline": 11, "graph": 11,
    "cli": 12, "__main__": 12,
}


def _imports(path: Path) -> set[str]:
    """The cloudcast packages `path` imports (at any depth: lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "cloudcast":
                found.add(parts[1] if len(parts) > 1 else "__init__")
    return found


def _package(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0]


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_package_has_a_layer() -> None:
    assert {_package(p) for p in SOURCES} <= set(LAYERS), {_package(p) for p in SOURCES} - set(LAYERS)


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(PACKAGE)) for p in SOURCES])
def test_imports_point_down(path: Path) -> None:
    own = _package(path)
    wrong = sorted(
        dep
        for dep in _imports(path) - {own}
        if LAYERS[dep] >= LAYERS[own] and not (own == "__main__" and dep == "cli")
    )
    assert not wrong, f"{path.relative_to(PACKAGE)} ({own}, layer {LAYERS[own]}) imports {wrong}"
