"""The package's import arrows point one way: the engine never reaches the SDK, the type engine, the task
runtime or the datasets, and no two packages import each other (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parent.parent / "src" / "ferry"


def imports_by_package() -> dict[str, set[str]]:
    """ferry.X (a package or top-level module) -> the other ferry.Y it imports anywhere, TYPE_CHECKING included."""
    edges: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        owner = ".".join(parts[:2]) if len(parts) > 1 else parts[0]
        owner = owner.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("ferry."):
                    target = ".".join(name.split(".")[:2])
                    if target != owner:
                        edges.setdefault(owner, set()).add(target)
    return edges


def test_the_engine_imports_only_executors_storage_and_core() -> None:
    engine = imports_by_package()["ferry.engine"]
    assert not engine & {"ferry.sdk", "ferry.types", "ferry.runtime", "ferry.datasets", "ferry.client", "ferry.cli"}


def test_no_two_packages_import_each_other() -> None:
    edges = imports_by_package()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            here = todo.pop()
            for nxt in edges.get(here, ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    circles = sorted({tuple(sorted((a, b))) for a, targets in edges.items() for b in targets if reaches(b, a)})
    assert circles == []
