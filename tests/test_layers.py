"""The package's layers, held against its imports: no arrow runs back up, and no cycle.

Each module of `gates/` belongs to one layer (README.md, "Layout"); it may import its own layer
and the layers before it, never a later one, whether at the top of the file or inside a
function. A module missing from LAYERS fails too, so a new module is placed on purpose.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "gates"

LAYERS: list[tuple[str, list[str]]] = [
    ("secrets", ["gates.secret_file"]),
    ("pixels", ["gates.images"]),
    (
        "bus contract",
        [
            "gates.bus.errors",
            "gates.bus.ids",
            "gates.bus.policy",
            "gates.bus.contract",
            "gates.bus.rows",
            "gates.bus.tensors",
            "gates.bus.json_limits",
            "gates.bus.codec",
            "gates.bus.quota",
        ],
    ),
    (
        "bus backends",
        ["gates.bus.local", "gates.bus.local.*", "gates.bus.memory", "gates.bus.object", "gates.bus.object.*"],
    ),
    ("opening a bus", ["gates.bus.location", "gates.bus"]),
    ("a dataset folder", ["gates.dataset", "gates.dataset.*"]),
    ("a gate run", ["gates.gate", "gates.gate.*"]),
    ("http", ["gates.http", "gates.http.*"]),
    ("comfyui", ["gates.comfy", "gates.comfy.*"]),
    ("entry points", ["gates.api", "gates.cli", "gates", "gates.__main__"]),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> int:
    for index, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, p) for p in patterns):
            return index
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py: place it on purpose")


def _imports(path: Path) -> set[str]:
    """Every gates module `path` imports, top-level or inside a function."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "gates"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "gates":
                continue
            for alias in node.names:  # `from . import codec` names a module; else the package
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(candidate) else base)
    return found


def _is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_has_a_layer_and_imports_none_above_it() -> None:
    upward = [
        f"{module} ({LAYERS[_layer(module)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
        for module, targets in sorted(_graph().items())
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_no_import_cycle_between_modules() -> None:
    graph = {m: {t for t in targets if t != m and not m.startswith(t + ".")} for m, targets in _graph().items()}
    # a package's __init__ re-exporting its children is not a cycle with them
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_the_rule_sees_an_upward_import() -> None:
    """The check itself: a bus module importing the gate layer would be reported."""
    assert _layer("gates.gate.run") > _layer("gates.bus.codec")
    assert "gates.bus" in _imports(PACKAGE / "gate" / "run.py")
