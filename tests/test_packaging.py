"""The set-up files agree with each other; notebooks are stored clean; the CLI explains itself."""

import json
import re
import tomllib

import pytest
import yaml

from stilts_core.cli import build_parser, main, parse_value
from stilts_core.paths import REPO_ROOT


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_direct_dependencies_as_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    conda = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    listed = sorted(r for r in pip_section if not r.startswith("-e"))
    assert listed == sorted(project["dependencies"])
    assert "torch==2.13.0" in project["dependencies"]


def test_constraints_pin_every_direct_dependency():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pinned = {_name(line) for line in (REPO_ROOT / "requirements/constraints.txt").read_text()
              .splitlines() if "==" in line}
    missing = {_name(r) for r in project["dependencies"]} - pinned
    assert not missing


def test_ci_starts_slurm_then_runs_the_readme_test_command_and_nothing_else():
    commands = [line for line in (REPO_ROOT / ".ci/run").read_text().splitlines()
                if line.strip() and not line.startswith("#")
                and not line.startswith(("set ", "cd "))]
    assert commands[-1] == "make test"
    assert [c.split()[:2] for c in commands[:-1]] == [["bash", ".ci/slurm-localhost"]]
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make test" in readme and "make book" in readme


@pytest.mark.parametrize("notebook", sorted((REPO_ROOT / "notebooks").glob("*.ipynb")),
                         ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs_and_with_one_parameters_cell(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1


def test_cli_help_explains_every_subcommand(capsys):
    parser = build_parser()
    for command in ("run", "grid", "collect", "book", "fixtures"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        assert "usage: stilts" in capsys.readouterr().out


def test_cli_reports_bad_parameters_without_a_traceback(capsys):
    assert main(["run", "intermediate", "-p", "seed", "one"]) == 2
    assert "stilts: error: phase 'intermediate': seed" in capsys.readouterr().err


def test_parameter_values_are_typed_like_papermill():
    assert parse_value("3") == 3
    assert parse_value("1e-5") == 1e-5
    assert parse_value("mnli") == "mnli"
    assert parse_value("[de, fr]") == ["de", "fr"]
    assert parse_value("true") is True
    assert parse_value("") == ""
    assert parse_value("mean") == "mean"


def test_code_passes_ruff():
    import subprocess
    import sys
    from pathlib import Path

    ruff = Path(sys.executable).with_name("ruff")
    finished = subprocess.run([str(ruff), "check", "."], cwd=REPO_ROOT, capture_output=True,
                              text=True)
    assert finished.returncode == 0, finished.stdout[-3000:]


def test_no_source_folder_is_ignored_by_git():
    """A new module in any package (or tests/, benchmarks/) is committed, not silently left out
    by an ignore pattern meant for an output folder such as the top-level ``runs/``."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    folders = sorted({path.parent for path in (REPO_ROOT / "stilts_core").rglob("*.py")}
                     | {REPO_ROOT / "tests", REPO_ROOT / "benchmarks"})
    probes = [str((folder / "new_module.py").relative_to(REPO_ROOT)) for folder in folders]
    ignored = subprocess.run(["git", "check-ignore", *probes], cwd=REPO_ROOT,
                             capture_output=True, text=True).stdout.split()
    assert ignored == []
    assert all((folder / "__init__.py").is_file() for folder in folders
               if folder.is_relative_to(REPO_ROOT / "stilts_core"))
