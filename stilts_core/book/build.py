"""Build the Jupyter Book from result sets: run the grids a book configuration names (or take
tables collected elsewhere), execute the chapter notebooks with papermill, then build the HTML
with warnings as errors (offline, Jupyter Book 1.x).

Chapters that show results are executed once per result set, each page under its set's badge,
below a generated chapter page that lists the sets; the statistics chapters analyse each set whose
class is a finding, one model at a time, and a labelled simulation only where there is none.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from stilts_core.analysis.result_sets import (
    DEFAULT_BOOK_CONFIG,
    AnalysisSettings,
    BookConfig,
    Outcome,
    ResultSet,
    SimulationSpec,
    display_path,
    load_book_config,
    read_result_set,
    task_groups_of,
)
from stilts_core.book import answer
from stilts_core.book.badges import badge_label
from stilts_core.grid.config import FULL_SCALE_CONFIG
from stilts_core.grid.executors import cpu_share_environment, run_local
from stilts_core.grid.plan import collect_grid, load_config
from stilts_core.paths import REPO_ROOT, book_dir, notebooks_dir, results_dir
from stilts_core.provenance import get_class
from stilts_core.runs.execution import execute_notebook
from stilts_core.runs.processes import held_signals
from stilts_core.runs.results import read_results

logger = logging.getLogger(__name__)

GENERATED = "generated"


@dataclass(frozen=True)
class Build:
    """What one build shows: its result sets, the plan and the grid configs it tabulates."""

    config: BookConfig
    sets: tuple[ResultSet, ...]
    grids: tuple[str, ...]
    simulation: ResultSet | None = None

    def analysed(self) -> list[ResultSet]:
        """The sets the statistics chapters analyse: each finding, else the simulation."""
        found = [s for s in self.sets if s.analysed]
        return found or ([self.simulation] if self.simulation else [])

    def analyses(self) -> list[tuple[ResultSet, str | None, Outcome]]:
        """One analysis per analysed set, model and outcome of the plan that the set has gains
        for; a simulation is analysed for the pre-registered outcome only."""
        outcomes = self.config.plan.outcomes
        chosen = outcomes if any(s.analysed for s in self.sets) else outcomes[:1]
        return [(part, model, outcome) for result_set in self.analysed()
                for part, model in _by_model(result_set)
                for outcome in chosen if outcome.covers(part.task_groups)]


@dataclass(frozen=True)
class Chapter:
    """A chapter notebook: executed ``once``, once per result set (``per_set``), or once per
    analysed set, model and outcome (``per_analysis``); ``parameters(build, set, outcome)``
    gives its papermill parameters."""

    notebook: str
    page: str
    scope: str
    title: str
    parameters: Callable
    records: bool = False  # the page leaves a record for the question page's answer


def _plan(build: Build, result_set: ResultSet, outcome: Outcome, names: tuple[str, ...]) -> dict:
    values = build.config.plan.with_settings(result_set.analysis, outcome)
    return {name: values[name] for name in names}


_MIXED_EFFECTS = ("index", "compare", "formula", "bootstrap_reps", "case_bootstrap_reps",
                  "task_groups", "outcome")
_POWER = ("index", "formula", "power_slopes", "power_reps", "power_test", "task_groups", "outcome")


CHAPTERS = (
    Chapter("00_tasks_languages.ipynb", "tasks_languages", "once", "", lambda b, s, o: {}),
    Chapter("00_morphology.ipynb", "morphology", "once", "", lambda b, s, o: {}),
    Chapter("00_setup.ipynb", "setup", "once", "", lambda b, s, o: {"configs": list(b.grids)}),
    Chapter("05_results.ipynb", "results", "per_set", "Results: zero-shot transfer and retrieval",
            lambda b, s, o: {"results_path": s.as_parameter()["path"],
                          "simulation_path": b.simulation.as_parameter()["path"]
                          if b.simulation else ""}),
    Chapter("06_mixed_effects.ipynb", "mixed_effects", "per_analysis", "Morphology and gains",
            lambda b, s, o: {"results_path": s.as_parameter()["path"],
                             **_plan(b, s, o, _MIXED_EFFECTS),
                             "planned_bootstrap_reps": b.config.plan.bootstrap_reps,
                             "planned_case_bootstrap_reps": b.config.plan.case_bootstrap_reps},
            records=True),
    Chapter("07_power.ipynb", "power", "per_analysis", "Power and sensitivity",
            lambda b, s, o: {"results_path": s.as_parameter()["path"],
                             **_plan(b, s, o, _POWER),
                             "planned_power_reps": b.config.plan.power_reps},
            records=True),
    Chapter("08_claims.ipynb", "claims", "once", "",
            lambda b, s, o: {"results_paths": [x.as_parameter()["path"] for x in b.sets]}),
    Chapter("09_published.ipynb", "published", "once", "", lambda b, s, o: {}),
    Chapter("10_reproduce.ipynb", "reproduce", "once", "", lambda b, s, o: {"configs": list(b.grids)}),
)


class BookError(RuntimeError):
    """The book could not be built; the message says which step and where its log is."""


def simulation_set(spec: SimulationSpec) -> ResultSet:
    """The simulated result set the statistics chapters analyse when no set is a finding: the
    power analysis's generating model over the real languages and their real indices, written
    to the results folder with its truth beside it and labelled as a simulation."""
    from stilts_core.analysis.morphology import read_indices, wide_view
    from stilts_core.book.simulation import BOOK_SIMULATION, write_simulation
    from stilts_core.tasks.languages import read_languages_table

    path = results_dir() / "simulation.parquet"
    logger.info(f"[stilts] no result set is a finding: the statistics chapters analyse a simulated "
        f"result set ({path})")
    write_simulation(path, read_languages_table(), wide_view(read_indices()), **BOOK_SIMULATION)
    return read_result_set(path, name="simulation", description=spec.description,
                           analysis=spec.analysis)


def _page_name(chapter: Chapter, result_set: ResultSet, model: str | None = None,
               outcome: Outcome | None = None) -> str:
    parts = [chapter.page, result_set.name, *([_slug(model)] if model else []),
             *([outcome.name] if outcome else [])]
    return "-".join(parts)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text.lower())


def _by_model(result_set: ResultSet) -> list[tuple[ResultSet, str | None]]:
    """One analysis per model: a set of several models is split into one table per model
    (written beside the book's pages), since the statistics never pool models."""
    if len(result_set.models) <= 1:
        return [(result_set, None)]
    table = read_results(result_set.path)
    parts = []
    for model in result_set.models:
        path = book_dir() / GENERATED / "tables" / f"{result_set.name}-{_slug(model)}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table[table["model"] == model].to_parquet(path, index=False)
        parts.append((ResultSet(name=result_set.name, path=path, provenance=result_set.provenance,
                                description=f"{result_set.description}; model {model}",
                                models=(model,), analysis=result_set.analysis,
                                task_groups=task_groups_of(table[table["model"] == model])),
                      model))
    return parts


def _badge(result_set: ResultSet) -> str:
    colour = get_class(result_set.provenance).colour
    return (f'<span style="border-left:6px solid {colour};padding:0.1em 0.5em;background:#f6f8fa">'
            f"{badge_label(result_set.provenance)}</span>")


def _chapter_page(chapter: Chapter, entries: list[tuple[ResultSet, str, Outcome | None]],
                  build: Build) -> str:
    """The chapter's own page: which result sets it shows, each with its badge and page."""
    lines = [f"# {chapter.title}", "",
             "This chapter shows each result set of this build on its own page, under the badge "
             "of its kind of evidence; numbers from different sets are never pooled.", ""]
    if chapter.scope == "per_analysis" and build.simulation:
        lines += ["No result set of this build is a finding (a full-scale or reduced-scale real "
                  "run), so this chapter analyses a **simulated** result set with a stated truth. "
                  "**It is a simulation, not a finding.**", ""]
    for result_set, page, outcome in entries:
        kind = get_class(result_set.provenance)
        which = f" **{outcome.name}** gains ({html.escape(outcome.description)}) of" if outcome else ""
        lines.append(f"- {_badge(result_set)} {{doc}}`{page}`:{which} "
                     f"{html.escape(result_set.description)} "
                     f"(`{result_set.as_parameter()['path']}`; {kind.definition}).")
    return "\n".join(lines) + "\n"


def _retitle(notebook: Path, title: str) -> None:
    """Name the set in the page's title (its first heading), so the contents tell pages apart."""
    document = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in document["cells"]:
        if cell["cell_type"] == "markdown" and "".join(cell["source"]).startswith("# "):
            first, *rest = "".join(cell["source"]).split("\n", 1)
            cell["source"] = "\n".join([f"{first} — {title}", *rest])
            break
    notebook.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def execute_chapters(build: Build, workers: int | None = None) -> list[Path]:
    """Execute every page, ``workers`` kernels at a time (default: two, or one on one core):
    the pages are independent, and most of a statistics page is single-threaded refitting."""
    import papermill

    folder = book_dir() / GENERATED
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("*-*.ipynb"), *folder.glob("*.md"),  # pages of earlier builds
                  *(folder / answer.RECORDS).glob("*.json")]:
        stale.unlink()

    def execute(chapter: Chapter, page: str, result_set: ResultSet | None,
                outcome: Outcome | None) -> Path:
        output = folder / f"{page}.ipynb"
        logger.info(f"[stilts] executing {chapter.notebook} -> {output.relative_to(REPO_ROOT)}")
        try:
            record = ({"record_path": str(folder / answer.RECORDS / f"{page}.json")}
                      if chapter.records else {})
            execute_notebook(notebooks_dir() / chapter.notebook, output,
                             {**chapter.parameters(build, result_set, outcome), **record})
        except papermill.PapermillExecutionError as error:
            raise BookError(f"{chapter.notebook} failed: {error.ename}: {error.evalue}; "
                            f"see {output}") from None
        if result_set is not None:
            _retitle(output, result_set.title + (f", {outcome.name} gains" if outcome else ""))
        return output

    pages = []  # (chapter, page, result set, outcome), in the book's order
    for chapter in CHAPTERS:
        if chapter.scope == "once":
            pages.append((chapter, chapter.page, None, None))
            continue
        targets = ([(s, None, None) for s in build.sets] if chapter.scope == "per_set"
                   else build.analyses())
        pages += [(chapter, _page_name(chapter, result_set, model, outcome), result_set, outcome)
                  for result_set, model, outcome in targets]
    workers = workers or min(2, os.cpu_count() or 1)
    with kernels_share_the_cores(workers), ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(execute, *page) for page in pages]
        try:
            written = [future.result() for future in futures]  # the first failure, in book order
        except BaseException:
            for future in futures:
                future.cancel()  # pages not started yet
            raise
    for chapter in CHAPTERS:
        if chapter.scope != "once":
            entries = [(result_set, page, outcome) for c, page, result_set, outcome in pages
                       if c is chapter]
            chapter_page = folder / f"{chapter.page}.md"
            chapter_page.write_text(_chapter_page(chapter, entries, build), encoding="utf-8")
            written.append(chapter_page)
    written.append(answer.write_answer(folder, [(chapter.page, page, result_set, outcome)
                                                for chapter, page, result_set, outcome in pages]))
    return written


@contextlib.contextmanager
def kernels_share_the_cores(kernels: int):
    """Kernels started inside take their share of the cores, as grid workers do
    (:func:`~stilts_core.grid.executors.cpu_share_environment`), so that pages executed side by side do
    not each spin one BLAS thread per core (see ``statistics.parallel``); a setting of
    the user's is kept, and the environment is restored afterwards."""
    added = cpu_share_environment(kernels)
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def build_html() -> Path:
    """``jupyter-book build`` with warnings as errors into a folder of its own, moved into
    place (``book/_build/html``) only once it succeeded: a failed or interrupted build leaves
    the last book whole rather than a mix of old and new pages. Returns the HTML folder."""
    target, scratch = book_dir() / "_build" / "html", book_dir() / "_build" / "next"
    shutil.rmtree(scratch, ignore_errors=True)  # what an interrupted build left
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(book_dir()),
               "--path-output", str(scratch), "--warningiserror", "--keep-going", "--quiet"]
    logger.info(f"[stilts] {' '.join(command)}")
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if finished.returncode != 0:
        raise BookError(f"jupyter-book build failed:\n{finished.stdout[-4000:]}\n"
                        f"{finished.stderr[-4000:]}")
    old = target.with_name("old")
    shutil.rmtree(old, ignore_errors=True)
    with held_signals():  # an interrupt between the renames would leave no book
        if target.exists():
            target.rename(old)
        (scratch / "_build" / "html").rename(target)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(scratch)
    return target


def _grid_set(grid_path: Path, spec_name: str, description: str, analysis: AnalysisSettings) -> ResultSet:
    config = load_config(grid_path)
    # two workers with one core each: most of a smoke run is single-threaded start-up, and the
    # smoke grid took 3.8 min this way against 6 min in one process on two cores
    report = run_local(config, workers=min(2, os.cpu_count() or 1))
    if not report.ok:
        raise BookError(f"grid {config.name} did not finish:\n{report.summary()}")
    path = results_dir() / f"{config.name}.parquet"
    table = collect_grid(config, path)
    logger.info(f"[stilts] collected {len(table)} result rows into {path}")
    return read_result_set(path, name=spec_name, description=description, analysis=analysis,
                           grid=Path(grid_path))


def plan_build(book_config: Path = DEFAULT_BOOK_CONFIG, grid: Path | None = None,
               results: list[Path] | None = None) -> Build:
    """The result sets of a build. ``results``: exactly these collected tables, no grid is run;
    otherwise the book configuration's sets, its grids run here (``grid`` replaces them)."""
    config = load_book_config(book_config)
    sets, grids = [], []
    if results:
        sets = [read_result_set(Path(path)) for path in results]
    else:
        for spec in config.result_sets:
            if spec.grid is not None:
                grid_path = Path(grid) if grid else REPO_ROOT / spec.grid
                sets.append(_grid_set(grid_path, spec.name if not grid else load_config(grid_path).name,
                                      spec.description, spec.analysis))
                grids.append(display_path(grid_path))
            else:
                sets.append(read_result_set(REPO_ROOT / spec.path, name=spec.name,
                                            description=spec.description, analysis=spec.analysis))
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise BookError(f"two result sets have the same name ({names}); rename a file")
    simulation = None
    if not any(s.analysed for s in sets):
        simulation = simulation_set(config.simulation)
    grids = list(dict.fromkeys([*grids, display_path(FULL_SCALE_CONFIG)]))
    return Build(config=config, sets=tuple(sets), grids=tuple(grids), simulation=simulation)


def build(book_config: Path = DEFAULT_BOOK_CONFIG, grid: Path | None = None,
          results: list[Path] | None = None, html: bool = True) -> Path:
    plan = plan_build(book_config, grid, results)
    logger.info("[stilts] result sets: "
                + "; ".join(f"{s.name} ({s.provenance}, {s.path})" for s in plan.sets))
    execute_chapters(plan)
    if not html:
        return book_dir() / GENERATED
    output = build_html()
    logger.info(f"[stilts] book built: {output / 'index.html'}")
    return output
