"""Build the Jupyter Book: run the grid, collect its results, execute the analysis notebooks
with papermill, then build the HTML with warnings as errors (offline, Jupyter Book 1.x)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .claims import FULL_SCALE_CONFIG
from .grid import collect_grid, load_config, run_local
from .paths import REPO_ROOT, book_dir, notebooks_dir, results_dir
from .runs import execute_notebook

# Notebooks executed into the book, in chapter order: source notebook -> (page under
# book/generated/, its parameters from the build's paths). "results" is the collected results
# table; "analysis" is what the statistics chapters analyse (the results, or a simulation when
# they contain no full-scale run); "simulation" is that simulation, or "" with a full-scale run.
BOOK_NOTEBOOKS = {
    "00_tasks_languages.ipynb": ("tasks_languages.ipynb", lambda paths: {}),
    "00_morphology.ipynb": ("morphology.ipynb", lambda paths: {}),
    "00_setup.ipynb": ("setup.ipynb", lambda paths: {"configs": paths["configs"]}),
    "05_results.ipynb": ("results.ipynb", lambda paths: {"results_path": paths["results"],
                                                         "simulation_path": paths["simulation"]}),
    "06_mixed_effects.ipynb": ("mixed_effects.ipynb",
                               lambda paths: {"results_path": paths["analysis"]}),
    "07_power.ipynb": ("power.ipynb", lambda paths: {"results_path": paths["analysis"]}),
    "08_claims.ipynb": ("claims.ipynb", lambda paths: {"results_path": paths["results"]}),
    "09_published.ipynb": ("published.ipynb", lambda paths: {}),
    "10_reproduce.ipynb": ("reproduce.ipynb", lambda paths: {"configs": paths["configs"]}),
}


class BookError(RuntimeError):
    """The book could not be built; the message says which step and where its log is."""


def analysis_results(results_path: Path, log=print) -> Path:
    """What the mixed-effects chapter analyses: the collected results when they contain a
    full-scale run; otherwise (a smoke run has a handful of languages) a simulated result set
    from the power analysis's generating model, written beside them and labelled as such."""
    import pandas as pd

    from .languages import read_languages_table
    from .morphology import read_indices, wide_view
    from .statistics import BOOK_SIMULATION, write_simulation

    if "full-scale run" in set(pd.read_parquet(results_path)["provenance"]):
        return results_path
    path = results_path.with_name("simulation.parquet")
    log(f"[stilts] no full-scale run in {results_path.name}: the statistics chapter analyses a "
        f"simulated result set ({path.name})")
    write_simulation(path, read_languages_table(), wide_view(read_indices()), **BOOK_SIMULATION)
    return path


def execute_analysis_notebooks(results_path: Path, config_path: Path = FULL_SCALE_CONFIG,
                               log=print) -> list[Path]:
    import papermill

    analysis = _display_path(analysis_results(results_path, log))
    results = _display_path(results_path)
    configs = list(dict.fromkeys([_display_path(config_path), _display_path(FULL_SCALE_CONFIG)]))
    paths = {"results": results, "analysis": analysis,
             "simulation": "" if analysis == results else analysis, "configs": configs}
    written = []
    for source, (page, parameters) in BOOK_NOTEBOOKS.items():
        output = book_dir() / "generated" / page
        output.parent.mkdir(parents=True, exist_ok=True)
        log(f"[stilts] executing {source} -> {output.relative_to(REPO_ROOT)}")
        try:
            execute_notebook(notebooks_dir() / source, output, parameters(paths))
        except papermill.PapermillExecutionError as error:
            raise BookError(f"{source} failed: {error.ename}: {error.evalue}; see {output}") from None
        written.append(output)
    return written


def _display_path(path: Path) -> str:
    """Repository-relative where possible: the published page should not show a home folder."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def build_html(log=print) -> Path:
    """``jupyter-book build`` with warnings as errors; returns the HTML folder."""
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(book_dir()),
               "--warningiserror", "--keep-going", "--quiet"]
    log(f"[stilts] {' '.join(command)}")
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if finished.returncode != 0:
        raise BookError(f"jupyter-book build failed:\n{finished.stdout[-4000:]}\n"
                        f"{finished.stderr[-4000:]}")
    return book_dir() / "_build" / "html"


def build(config_path: Path, html: bool = True, log=print) -> Path:
    config = load_config(config_path)
    report = run_local(config, log=log)
    if not report.ok:
        raise BookError(f"grid {config.name} did not finish:\n{report.summary()}")
    results_path = results_dir() / f"{config.name}.parquet"
    table = collect_grid(config, results_path)
    log(f"[stilts] collected {len(table)} result rows into {results_path}")
    execute_analysis_notebooks(results_path, Path(config_path), log=log)
    if not html:
        return results_path
    output = build_html(log=log)
    log(f"[stilts] book built: {output / 'index.html'}")
    return output
