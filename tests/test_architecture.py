"""The shape of the code: no import circles in the Python package or in the binding crate.

An import that runs back up (a family importing the registry that imports the family) makes
the load order matter and hides what depends on what; both graphs here include imports made
inside functions, which are edges all the same."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` (a list of nodes, first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v) :] + [v]
            if v not in state and (c := visit(v)):
                return c
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state and (c := visit(u)):
            return c
    return None


def python_imports(pkg: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at any depth of the file)."""
    mods = {}
    # The extension module counts as a module (its stub stands for it).
    for f in [*pkg.rglob("*.py"), *pkg.glob("_core.pyi")]:
        rel = f.relative_to(pkg.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        mods[name] = f
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from personae import x` names a submodule when one exists, else the package.
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                    for a in node.names
                ]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def rust_uses(src: Path) -> dict[str, set[str]]:
    """Crate module -> the crate's modules it names (`use crate::x`, `crate::x::...`)."""
    graph = {}
    for f in src.glob("*.rs"):
        text = f.read_text()
        graph[f.stem] = {m for m in re.findall(r"crate::(\w+)", text) if m != f.stem}
        # `use crate::{a, b::c}` groups.
        for group in re.findall(r"use crate::\{([^}]*)\}", text):
            graph[f.stem] |= {p.split("::")[0].strip() for p in group.split(",") if p.strip()}
    mods = set(graph)
    return {m: {t for t in deps if t in mods} for m, deps in graph.items()}


def test_no_import_circle_in_the_python_package():
    graph = python_imports(ROOT / "python" / "personae")
    assert "personae.models" in graph and "personae.ampcf" in graph["personae"]
    cycle = _cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_module_circle_in_the_binding():
    graph = rust_uses(ROOT / "rust" / "python" / "src")
    assert "models" in graph["families"]
    cycle = _cycle(graph)
    assert cycle is None, "module circle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
