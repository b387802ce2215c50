"""The packages' dependencies point one way (docs/ARCHITECTURE.md, "Layout"):

    supervision <- market <- storage <- actors <- crank_node
                   localnet (beside market: it may use supervision and market)

The test walks every module's imports (ast, nothing imported) and fails on an edge
against that direction, and on an import of another package's private module
(``pkg._x``) instead of what the package offers."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# Each package and the packages it may import.
ALLOWED: dict[str, set[str]] = {
    "supervision": set(),
    "market": {"supervision"},
    "localnet": {"supervision", "market"},
    "storage": {"supervision", "market"},
    "actors": {"supervision", "market", "storage"},
    "crank_node": {"supervision", "market", "storage", "actors", "localnet"},
}


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """Each imported module with its line; ``from m import n`` gives ``m.n`` (which may
    be a module or a name in ``m``: either way its parts tell whether it is private)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                yield f"{node.module}.{alias.name}", node.lineno


def _violations(root: Path = ROOT) -> list[str]:
    found: list[str] = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            where = path.relative_to(root)
            for name, line in _imports(path):
                parts = name.split(".")
                top = parts[0]
                if top not in ALLOWED or top == package:
                    continue
                if top not in allowed:
                    found.append(f"{where}:{line}: {package} imports {top} ({name}: a back edge)")
                elif any(part.startswith("_") and not part.startswith("__") for part in parts[1:]):
                    found.append(f"{where}:{line}: imports the private {name}")
    return found


def test_every_import_follows_the_dependency_direction() -> None:
    """No package imports one it must not, and none reaches into another's private
    modules; the message lists every offending import with its file and line."""
    violations = _violations()
    assert not violations, "\n".join(violations)


def test_a_planted_back_edge_and_a_private_import_are_reported(tmp_path: Path) -> None:
    """The check itself can fail: in a tree where market imports storage and
    crank_node imports a private module of actors, both are reported."""
    for package in ALLOWED:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "market" / "book.py").write_text("from storage import open_engine\n")
    (tmp_path / "crank_node" / "node.py").write_text("import actors._private\n")
    violations = _violations(tmp_path)
    assert any("market/book.py:1: market imports storage (" in v for v in violations), violations
    assert any("crank_node/node.py:1: imports the private actors._private" in v for v in violations)
    assert len(violations) == 2
