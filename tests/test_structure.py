"""The package's shape: the packages import each other only along the flow the README's "How
the pieces fit" describes and no import cycle hides anywhere (import-linter's contracts in
pyproject.toml, run by ``lint-imports``), every module imports on its own, no module or test
reaches for another module's private names, and git sees every new source file."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stilts_core"


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _path_of(module: str) -> Path:
    base = PACKAGE.parent.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def lint_imports(root: Path, config: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` (import-linter) on the contracts of ``config``, packages under ``root``."""
    command = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(command), "--config", str(config), "--no-cache"], cwd=root,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root)})


def test_the_import_contracts_hold():
    """The rooms import each other only along the flow of README "How the pieces fit", and no
    import cycle joins the modules or subpackages of any package (function-local imports
    included: grimp reads them too). The contracts are in pyproject.toml."""
    checked = lint_imports(PACKAGE.parent, PACKAGE.parent / "pyproject.toml")
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert "2 kept, 0 broken" in checked.stdout


def test_every_room_is_in_the_flow_contract():
    contracts = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"][
        "importlinter"]["contracts"]
    (flow,) = [contract for contract in contracts if contract["type"] == "layers"]
    rooms = {path.stem for path in PACKAGE.iterdir()
             if path.name != "__init__.py" and (path.suffix == ".py" or path.is_dir())
             and path.name != "__pycache__"}
    assert {layer.removeprefix("stilts_core.") for layer in flow["layers"]} == rooms, \
        "a new room belongs in the flow contract (pyproject.toml) and in the README's layout"


BROKEN_CONTRACTS = """
[importlinter]
root_package = probe

[importlinter:contract:flow]
name = flow
type = layers
layers =
    probe.high
    probe.low

[importlinter:contract:acyclic]
name = acyclic
type = acyclic_siblings
ancestors = probe
"""


def test_a_broken_contract_fails_the_check(tmp_path):
    """A lower room that imports a higher one (inside a function), and two modules that import
    each other, each break their contract."""
    package = tmp_path / "probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "high.py").write_text("from probe import low\n")
    (package / "low.py").write_text("def f():\n    from probe import high\n")
    (tmp_path / "contracts.ini").write_text(BROKEN_CONTRACTS)
    checked = lint_imports(tmp_path, tmp_path / "contracts.ini")
    assert checked.returncode != 0
    assert "flow BROKEN" in checked.stdout and "acyclic BROKEN" in checked.stdout


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(source: str, known: set[str], own: str = "") -> list[str]:
    """Private names of package modules other than ``own`` that ``source`` takes: imported
    (``from stilts_core.x import _name``) or reached through a module it imported
    (``import stilts_core.x as x`` or ``from stilts_core import x``, then ``x._name``)."""
    tree = ast.parse(source)
    aliases, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({alias.asname or alias.name: alias.name for alias in node.names
                            if alias.name in known and alias.name != own})
        elif isinstance(node, ast.ImportFrom) and node.module in known and node.module != own:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in known:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                elif _private(alias.name):
                    found.append(f"{node.module}.{alias.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and _private(node.attr)):
            found.append(f"{aliases[node.value.id]}.{node.attr}")
    return sorted(set(found))


def test_the_private_name_check_sees_imports_and_attributes():
    known = {"stilts_core.analysis.statistics", "stilts_core.analysis"}
    source = ("from stilts_core.analysis import statistics as st\n"
              "from stilts_core.analysis.statistics import _fit, wilson\n"
              "st._in_chunks(); st.wilson()\n")
    assert private_uses(source, known) == ["stilts_core.analysis.statistics._fit",
                                           "stilts_core.analysis.statistics._in_chunks"]


def test_no_module_or_test_reaches_for_another_modules_private_names():
    known = set(module_names())
    private = {module: private_uses(_path_of(module).read_text(encoding="utf-8"), known, module)
               for module in sorted(known)}
    tests = Path(__file__).parent
    private |= {path.name: private_uses(path.read_text(encoding="utf-8"), known)
                for path in sorted(tests.rglob("*.py"))}
    assert {name: uses for name, uses in private.items() if uses} == {}


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


def test_no_tracked_folder_hides_new_files_and_every_package_folder_is_a_package():
    """A new file in any folder that holds tracked files is seen by git: an unanchored pattern
    in ``.gitignore`` (``runs/`` instead of ``/runs/``) would silently keep a new module of
    ``stilts_core/runs/`` out of every commit. And every folder of the package is a package."""
    root = PACKAGE.parent
    listed = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    folders = sorted({str(Path(name).parent) for name in listed.stdout.splitlines()})
    probes = "\n".join(str(Path(folder) / "new_module.py") for folder in folders) + "\n"
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "--stdin", "-v"], cwd=root,
                             input=probes, capture_output=True, text=True)
    assert ignored.returncode == 1, f"git ignores new files in tracked folders:\n{ignored.stdout}"
    folders_without_init = [str(folder.relative_to(root)) for folder in PACKAGE.rglob("*")
                            if folder.is_dir() and folder.name != "__pycache__"
                            and not (folder / "__init__.py").is_file()]
    assert not folders_without_init
