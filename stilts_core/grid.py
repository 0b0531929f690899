"""Experiment grids: a YAML config expanded into the graph of phase runs, run in order.

One phase-(ii) run feeds all its target runs and its retrieval evaluation; the baseline
(``none``) goes through the same target code from the pretrained model. Identical runs share a
content hash (:func:`stilts_core.runs.run_id`), so they are planned and run once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .phases import validate_params
from .results import NO_INTERMEDIATE, collect
from .runs import execute_phase, is_done, run_id, run_path
from .tasks import TASKS, get_task, intermediate_choices


class GridError(ValueError):
    """The grid config is invalid; the message names the file, the field and the fix."""


class GridConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    model: str
    data_root: str = "data/fixtures"
    smoke: bool = False
    seeds: list[int] = Field(min_length=1)
    intermediate_tasks: list[str] = Field(min_length=1)
    target_tasks: list[str] = Field(default_factory=list)
    retrieval_tasks: list[str] = Field(default_factory=list)
    hyperparameters: dict = Field(default_factory=dict)
    retrieval: dict = Field(default_factory=dict)

    @field_validator("intermediate_tasks")
    @classmethod
    def _intermediate(cls, names: list[str]) -> list[str]:
        for name in names:
            if name != NO_INTERMEDIATE and name not in intermediate_choices():
                raise ValueError(f"{name!r} is not an intermediate task or mixture (or 'none'); "
                                 f"choose from {', '.join(intermediate_choices())}")
        return names

    @field_validator("target_tasks")
    @classmethod
    def _targets(cls, names: list[str]) -> list[str]:
        for name in names:
            if _role(name) != "target":
                raise ValueError(f"{name!r} is not a target task")
        return names

    @field_validator("retrieval_tasks")
    @classmethod
    def _retrieval(cls, names: list[str]) -> list[str]:
        for name in names:
            if _role(name) != "retrieval":
                raise ValueError(f"{name!r} is not a retrieval task")
            if get_task(name).format != "bitext_retrieval":
                raise ValueError(f"the retrieval phase runs bitext retrieval (tatoeba); {name!r} "
                                 f"is {get_task(name).format}: score its predictions with "
                                 f"`stilts score`")
        return names


def _role(name: str) -> str:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; registered: {', '.join(sorted(TASKS))}")
    return get_task(name).role


def load_config(path: str | Path) -> GridConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise GridError(f"{path}: cannot read grid config: {error}") from None
    try:
        return GridConfig(**(raw or {}))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise GridError(f"{path}: {problems}") from None


@dataclass
class PlannedRun:
    phase: str
    params: dict
    depends_on: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return run_id(self.phase, self.params)


def plan(config: GridConfig) -> list[PlannedRun]:
    """Phase runs in dependency order, deduplicated by run id."""
    common = {"model": config.model, "data_root": config.data_root, "smoke": config.smoke}
    train = {**common, **config.hyperparameters}
    runs: dict[str, PlannedRun] = {}

    def add(phase: str, params: dict, depends_on: list[str]) -> str:
        planned = PlannedRun(phase, validate_params(phase, params), depends_on)
        runs.setdefault(planned.run_id, planned)
        return planned.run_id

    retrieval_common = {**common, **config.retrieval}
    for task in config.retrieval_tasks:
        add("retrieval", {**retrieval_common, "task": task}, [])
    for seed in config.seeds:
        for intermediate in config.intermediate_tasks:
            upstream = ""
            if intermediate != NO_INTERMEDIATE:
                upstream = add("intermediate", {**train, "task": intermediate, "seed": seed}, [])
                for task in config.retrieval_tasks:
                    add("retrieval", {**retrieval_common, "task": task, "encoder_run": upstream},
                        [upstream])
            for task in config.target_tasks:
                target = add("target", {**train, "task": task, "seed": seed,
                                        "intermediate_run": upstream},
                             [upstream] if upstream else [])
                add("zero_shot_eval", {"data_root": config.data_root, "smoke": config.smoke,
                                       "target_run": target}, [target])
    return list(runs.values())


def submission_runs(config: GridConfig, intermediate: str, seed: int) -> list[str]:
    """The zero-shot evaluation and retrieval runs of one model of the grid, the one trained
    with ``intermediate`` (``none``: direct fine-tuning and the base encoder) and ``seed``:
    what one leaderboard submission contains."""
    planned = {run.run_id: run for run in plan(config)}

    def trained_by(upstream: str) -> tuple[str, int | None]:
        if not upstream:
            return NO_INTERMEDIATE, None
        return planned[upstream].params["task"], planned[upstream].params["seed"]

    chosen = []
    for run in planned.values():
        if run.phase == "zero_shot_eval":
            target = planned[run.params["target_run"]].params
            if (trained_by(target["intermediate_run"])[0] == intermediate
                    and target["seed"] == seed):
                chosen.append(run.run_id)
        elif run.phase == "retrieval":
            task, encoder_seed = trained_by(run.params["encoder_run"])
            if task == intermediate and encoder_seed in (seed, None):
                chosen.append(run.run_id)
    if not chosen:
        raise GridError(f"grid {config.name}: no evaluation runs for intermediate task "
                        f"{intermediate!r} and seed {seed}; intermediate tasks "
                        f"{config.intermediate_tasks}, seeds {config.seeds}")
    return chosen


def status(run: PlannedRun) -> str:
    path = run_path(run.run_id)
    if is_done(path):
        return "done"
    return "partial" if path.is_dir() else "to do"


def run_local(config: GridConfig, log=print) -> list[Path]:
    """Run every planned phase in order in this process's machine; done runs are reused."""
    planned = plan(config)
    paths = []
    for index, run in enumerate(planned, start=1):
        log(f"[stilts] grid {config.name}: run {index}/{len(planned)} ({run.phase})")
        paths.append(execute_phase(run.phase, run.params, log=log))
    return paths


def collect_grid(config: GridConfig, output: Path):
    """Merge the results of the grid's finished runs; refuses if any run is unfinished."""
    planned = plan(config)
    unfinished = [r.run_id for r in planned if status(r) != "done"]
    if unfinished:
        raise GridError(f"grid {config.name}: unfinished runs {unfinished}; run the grid first")
    return collect([run_path(r.run_id) for r in planned], output)
