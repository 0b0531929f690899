"""The package's shape: every module imports on its own, the modules import each other without
a cycle (function-local imports included, since those are how cycles hide), no module reaches
for another module's private names, and the packages import each other only along the flow the
README's "How the pieces fit" describes."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "stilts_core"

# The package's rooms in the order data flows through them (README, "How the pieces fit"): a
# room may import only rooms before it.
FLOW = ("paths", "provenance", "tasks", "data", "models", "evaluation", "training", "runs",
        "phases", "grid", "analysis", "book", "cli")


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _path_of(module: str) -> Path:
    base = PACKAGE.parent.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imports_of(module: str, known: set[str], source: str | None = None,
               is_package: bool = False) -> list[tuple[str, list[str]]]:
    """``(imported module, names taken from it)`` for every import of a package module
    anywhere in ``module`` (its file, or ``source``), relative ones resolved."""
    if source is None:
        path = _path_of(module)
        source, is_package = path.read_text(encoding="utf-8"), path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name in known]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target not in known:
                continue
            names = [alias.name for alias in node.names]
            submodules = [f"{target}.{name}" for name in names if f"{target}.{name}" in known]
            found += [(name, []) for name in submodules]
            found.append((target, [n for n in names if f"{target}.{n}" not in known]))
    return found


def import_graph() -> dict[str, set[str]]:
    known = set(module_names())
    graph = {}
    for module in known:
        graph[module] = {target for target, _ in imports_of(module, known)
                         if target != module and not module.startswith(target + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules():
    assert cycles(import_graph()) == []


def room_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph seen from the top-level modules and packages (``stilts_core.<room>``)."""
    def room(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else None

    rooms: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if room(module):
            rooms.setdefault(room(module), set()).update(
                room(t) for t in targets if room(t) and room(t) != room(module))
    return rooms


def flow_violations(rooms: dict[str, set[str]], flow: tuple[str, ...]) -> list[tuple[str, str]]:
    return sorted((room, target) for room, targets in rooms.items() for target in targets
                  if flow.index(target) >= flow.index(room))


def test_the_flow_check_finds_an_import_against_the_flow():
    graph = {"p.a": {"p.b.x"}, "p.b.x": {"p.b.y"}, "p.b.y": {"p.c"}, "p.c": {"p.a"}}
    assert room_graph(graph) == {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    assert flow_violations(room_graph(graph), ("c", "b", "a")) == [("c", "a")]


def test_packages_import_each_other_only_along_the_flow():
    rooms = room_graph(import_graph())
    assert set(rooms) == set(FLOW), "a new room belongs in FLOW and in the README's layout"
    assert flow_violations(rooms, FLOW) == []


def test_no_module_imports_another_modules_private_names():
    known = set(module_names())
    private = [(module, target, name) for module in sorted(known)
               for target, names in imports_of(module, known) for name in names
               if name.startswith("_") and not name.startswith("__")]
    assert private == []


# Loaded once before the children fork, so that each child pays only for the package's own
# modules. This hides no order dependency inside the package: every child starts with no
# stilts_core module loaded, and a third-party module in sys.modules binds no name in a
# module that did not import it.
THIRD_PARTY = ("numpy", "pandas", "scipy.stats", "pydantic", "yaml", "datasets", "torch",
               "transformers", "transformers.trainer", "submitit")

IMPORT_EACH_ALONE = """
import importlib, json, multiprocessing, sys, traceback
for name in {third_party!r}:
    importlib.import_module(name)
assert not any(name.startswith("stilts_core") for name in sys.modules)

def import_alone(module):
    try:
        importlib.import_module(module)
        return module, ""
    except BaseException:
        return module, traceback.format_exc().strip().splitlines()[-1]

if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(2, maxtasksperchild=1) as pool:
        print(json.dumps(dict(pool.map(import_alone, {modules!r}, chunksize=1))))
"""


def test_every_module_imports_alone_in_a_fresh_interpreter():
    """An import order that only works because another module was imported first is a hidden
    dependency; each module is imported by itself, in a child process of its own."""
    script = IMPORT_EACH_ALONE.format(third_party=THIRD_PARTY, modules=module_names())
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              cwd=PACKAGE.parent, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    errors = json.loads(finished.stdout.strip().splitlines()[-1])
    assert set(errors) == set(module_names())
    assert {module: error for module, error in errors.items() if error} == {}


def test_the_graph_sees_function_local_and_relative_imports():
    known = {"pkg", "pkg.a", "pkg.sub", "pkg.sub.b", "pkg.sub.c"}
    source = ("from . import c\n"
              "def f():\n"
              "    from ..a import _hidden, shown\n"
              "    import pkg.a\n")
    assert sorted(imports_of("pkg.sub.b", known, source)) == sorted([
        ("pkg.sub.c", []), ("pkg.sub", []), ("pkg.a", ["_hidden", "shown"]), ("pkg.a", [])])
