"""The package's layout: every module imports, packages import each other without a cycle, and
no module reaches into another package's private modules (re-exports in ``__init__`` are the door).

Read from the source with ``ast``, so lazy imports inside functions and ``TYPE_CHECKING`` imports
count too: a cycle held together by a late import is still a cycle.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tuner"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
PACKAGES = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}


def _package_of(module: str) -> str:
    """The package a module belongs to (a package is its own)."""
    return module if module in PACKAGES else module.rpartition(".")[0]


def _node(module: str) -> str:
    """The graph's node for a module: its subpackage, or itself when it sits at the top (``tuner.trial``)."""
    package = _package_of(module)
    return module if package == "tuner" else package


def _imports(module: str) -> Iterator[tuple[int, str]]:
    """``(line, imported module or name)`` for every tuner import in ``module``, lazy ones included."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    package = _package_of(module)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "tuner":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package up
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *([base] if base else [])])
            if base.split(".")[0] != "tuner":
                continue
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _resolve(target: str) -> str:
    """The module behind ``pkg.mod.Name``: the longest prefix that is a module."""
    while target not in MODULES:
        target = target.rpartition(".")[0]
    return target


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        if module == "tuner":  # the facade re-exports the public names; nothing imports it back
            continue
        source = _node(module)
        for _, target in _imports(module):
            resolved = _resolve(target)
            if resolved == "tuner":
                continue
            node = _node(resolved)
            if node != source:
                graph.setdefault(source, set()).add(node)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _private(target: str) -> str | None:
    """The package whose private part ``target`` names (``tuner.results._store.STUDY`` ->
    ``tuner.results``), or ``None`` when it names only public modules and names."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return _package_of(_resolve(".".join(parts[:i]))) if i else None
    return None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.endswith("__main__")))  # that one runs
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)


def test_packages_import_each_other_without_a_cycle() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles between packages: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_module_imports_another_packages_private_parts() -> None:
    offenders = []
    for module, path in MODULES.items():
        for line, target in _imports(module):
            owner = _private(target)
            inside = module == owner or module.startswith(f"{owner}.")
            if owner is not None and not inside:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {target}")
    assert not offenders, "private imports across packages (re-export in __init__):\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    ("graph", "cycles"),
    [
        ({"a": {"b"}, "b": {"c"}}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_cycles_are_found(graph: dict[str, set[str]], cycles: list[list[str]]) -> None:
    assert _cycles(graph) == cycles


@pytest.mark.parametrize(
    ("target", "owner"),
    [
        ("tuner.results._store.STUDY", "tuner.results"),
        ("tuner.backends.ray._last_words", "tuner.backends.ray"),
        ("tuner.results.load_best", None),
        ("tuner._api.confirm", "tuner"),
    ],
)
def test_private_parts_are_told_by_their_package(target: str, owner: str | None) -> None:
    assert _private(target) == owner
