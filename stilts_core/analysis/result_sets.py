"""The book's inputs: result sets (each a collected table of one provenance class) and the
pre-registered analysis plan, declared in a book configuration (``configs/book.yaml``).

A result set is either made here (a ``grid`` that ``stilts book`` runs and collects) or a table
collected elsewhere (a ``path``: a cluster's ``stilts collect`` output, or a committed real set).
Every chapter shows each set apart under its own badge; the statistics chapters analyse each set
whose class is a finding, one model at a time, and a simulation only where no such set exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stilts_core.analysis.statistics import task_group
from stilts_core.paths import REPO_ROOT, configs_dir
from stilts_core.provenance import FULL_SCALE, REDUCED_SCALE, get_class
from stilts_core.runs.results import ResultsError, read_results
from stilts_core.tasks.benchmarks import get_benchmark

DEFAULT_BOOK_CONFIG = configs_dir() / "book.yaml"
# Classes whose sets the statistics chapters analyse: real models on real data.
ANALYSED_CLASSES = (FULL_SCALE, REDUCED_SCALE)


class ResultSetError(ValueError):
    """A book configuration or a result set is unusable; the message names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnalysisSettings(_Strict):
    """Numbers of the statistics chapters that a build may set smaller than the plan's (a smoke
    build's); every page states the numbers it used beside the plan's."""

    bootstrap_reps: int | None = Field(None, ge=0)
    case_bootstrap_reps: int | None = Field(None, ge=0)
    power_reps: int | None = Field(None, ge=1)


class Outcome(_Strict):
    """Which gains one analysis fits: those of some XTREME-R task groups (all by default),
    with the plan's formula unless the outcome needs its own (one task group has no group
    slopes to estimate)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str
    task_groups: list[str] | None = Field(None, min_length=1)
    formula: str | None = None

    def covers(self, groups: set[str]) -> bool:
        """Whether a set with gains in ``groups`` has any gain this outcome fits."""
        return self.task_groups is None or bool(groups & set(self.task_groups))


EVERY_GAIN = Outcome(name="all", description="every paired gain")


class AnalysisPlan(_Strict):
    """The pre-registered analysis (``book/question.md`` states these numbers; a test checks).
    Its first outcome is the pre-registered one; the others are fitted beside it."""

    index: str
    compare: list[str] = Field(min_length=1)
    formula: str
    alpha: float = Field(gt=0, lt=1)
    bootstrap_reps: int = Field(ge=1)
    # the language case bootstrap, a declared robustness check beside the parametric one
    case_bootstrap_reps: int = Field(ge=1)
    power_slopes: list[float] = Field(min_length=1)
    power_reps: int = Field(ge=1)
    power_test: str = Field(pattern="^(lrt|wald)$")
    outcomes: list[Outcome] = Field(default_factory=lambda: [EVERY_GAIN], min_length=1)

    @model_validator(mode="after")
    def _known_groups(self) -> AnalysisPlan:
        groups = set(get_benchmark("xtreme-r").groups)
        for outcome in self.outcomes:
            unknown = sorted(set(outcome.task_groups or ()) - groups)
            if unknown:
                raise ValueError(f"outcome {outcome.name!r}: unknown task groups {unknown}; "
                                 f"XTREME-R's are {sorted(groups)}")
        names = [outcome.name for outcome in self.outcomes]
        if len(set(names)) != len(names):
            raise ValueError(f"outcome names repeat: {names}")
        return self

    def with_settings(self, settings: AnalysisSettings, outcome: Outcome | None = None) -> dict:
        """The notebook parameters of the statistics chapters under ``settings`` for one
        outcome (default: the pre-registered one)."""
        outcome = outcome or self.outcomes[0]
        values = self.model_dump(exclude={"outcomes"})
        values.update({k: v for k, v in settings.model_dump().items() if v is not None})
        values.update(formula=outcome.formula or self.formula,
                      task_groups=list(outcome.task_groups or []),
                      outcome=f"{outcome.name}: {outcome.description}")
        return values


class ResultSetSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str
    grid: str | None = Field(None, description="a grid config that stilts book runs and collects")
    path: str | None = Field(None, description="a collected table (parquet), repository-relative")
    analysis: AnalysisSettings = AnalysisSettings()

    @model_validator(mode="after")
    def _one_source(self) -> ResultSetSpec:
        if (self.grid is None) == (self.path is None):
            raise ValueError(f"result set {self.name!r}: give either grid (run here) or path "
                             "(a collected table), not both or neither")
        return self


NO_OVERRIDES = AnalysisSettings()


class SimulationSpec(_Strict):
    description: str
    analysis: AnalysisSettings = AnalysisSettings()


class BookConfig(_Strict):
    name: str
    description: str
    plan: AnalysisPlan
    simulation: SimulationSpec
    result_sets: list[ResultSetSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> BookConfig:
        names = [spec.name for spec in self.result_sets]
        if len(set(names)) != len(names):
            raise ValueError(f"result set names repeat: {names}")
        return self


def load_book_config(path: Path = DEFAULT_BOOK_CONFIG) -> BookConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultSetError(f"{path}: no such book configuration; the default is "
                             f"{DEFAULT_BOOK_CONFIG.relative_to(REPO_ROOT)}") from None
    try:
        return BookConfig(**(raw or {}))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'top level'}: {e['msg']}"
                             for e in error.errors())
        raise ResultSetError(f"{path}: {problems}") from None
    except TypeError as error:
        raise ResultSetError(f"{path}: expected a mapping at the top level ({error})") from None


@dataclass(frozen=True)
class ResultSet:
    """A collected table of one provenance class, with where it came from."""

    name: str
    path: Path
    provenance: str
    description: str
    models: tuple[str, ...]
    analysis: AnalysisSettings = AnalysisSettings()
    grid: Path | None = None
    task_groups: frozenset[str] = frozenset()

    @property
    def analysed(self) -> bool:
        return self.provenance in ANALYSED_CLASSES

    @property
    def title(self) -> str:
        kind = get_class(self.provenance).badge.lower()
        return self.name if self.name == kind else f"{self.name} ({kind})"

    def as_parameter(self) -> dict:
        """What a chapter notebook receives (papermill parameters are plain values)."""
        return {"name": self.name, "path": display_path(self.path), "provenance": self.provenance,
                "description": self.description, "title": self.title}


def read_result_set(path: Path, name: str | None = None, description: str = "",
                    analysis: AnalysisSettings = NO_OVERRIDES,
                    grid: Path | None = None) -> ResultSet:
    """A result set from a collected table: it must hold rows of exactly one provenance class,
    which it takes as its own."""
    path = Path(path)
    try:
        table = read_results(path)
    except ResultsError as error:
        raise ResultSetError(str(error)) from None
    classes = sorted(set(table["provenance"]))
    if len(classes) > 1:
        counts = table["provenance"].value_counts().to_dict()
        raise ResultSetError(f"{path}: a result set holds one provenance class, this table mixes "
                             f"{counts}; split it by the provenance column into one table per class")
    provenance = classes[0]
    get_class(provenance)
    stem = re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-") or "results"
    return ResultSet(name=name or stem, path=path, provenance=provenance,
                     description=description or f"results collected in {path.name}",
                     models=tuple(sorted(set(table["model"]))), analysis=analysis, grid=grid,
                     task_groups=task_groups_of(table))


def task_groups_of(table: pd.DataFrame) -> frozenset[str]:
    """The XTREME-R task groups of a results table's target tasks."""
    return frozenset(task_group(task) for task in set(table["target_task"]))


def display_path(path: Path) -> str:
    """Repository-relative where possible: the published page should not show a home folder."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)
