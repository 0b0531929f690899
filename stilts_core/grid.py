"""Experiment grids: a YAML config expanded into the graph of phase runs, run in order.

One phase-(ii) run feeds all its target runs and its retrieval evaluation; the baseline
(``none``) goes through the same target code from the pretrained model. Identical runs share a
content hash (:func:`stilts_core.runs.run_id`), so they are planned and run once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .phases import validate_params
from .results import NO_INTERMEDIATE, collect
from .retrieval import get_preset
from .runs import execute_phase, is_done, read_compute, run_id, run_path
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
    retrieval: dict = Field(default_factory=dict, description="retrieval settings of every "
                            "task; 'preset' names one of stilts_core.retrieval.PRESETS")
    retrieval_per_task: dict[str, dict] = Field(default_factory=dict)
    retrieval_protocols: list[str] = Field(default_factory=lambda: ["encoder"], min_length=1)
    alignment_tasks: list[str] = Field(default_factory=list)
    alignment: dict = Field(default_factory=dict)

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
        return names

    @field_validator("alignment_tasks")
    @classmethod
    def _alignment(cls, names: list[str]) -> list[str]:
        for name in names:
            if _role(name) != "retrieval" or get_task(name).format != "bitext_retrieval":
                raise ValueError(f"{name!r} has no parallel sentences; alignment needs a bitext "
                                 f"retrieval task such as tatoeba")
        return names

    @field_validator("retrieval_protocols")
    @classmethod
    def _protocols(cls, names: list[str]) -> list[str]:
        unknown = sorted(set(names) - {"encoder", "dual_encoder"})
        if unknown:
            raise ValueError(f"unknown protocol(s) {unknown}; use encoder and/or dual_encoder")
        return names

    @field_validator("retrieval")
    @classmethod
    def _preset(cls, settings: dict) -> dict:
        if "preset" in settings:
            try:
                get_preset(settings["preset"])
            except KeyError as error:
                raise ValueError(error.args[0]) from None
        return settings

    def retrieval_settings(self, task: str) -> dict:
        """The retrieval phase's settings for ``task``: a preset's, then the explicit common
        settings, then the task's own (each overriding the one before)."""
        common = dict(self.retrieval)
        preset = common.pop("preset", None)
        base = get_preset(preset).settings.model_dump(exclude={"max_length"}) if preset else {}
        return {**base, **common, **self.retrieval_per_task.get(task, {})}


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

    def evaluate_encoder(encoder_run: str, seed: int | None) -> None:
        """The retrieval and alignment runs of one encoder (``''``: the base encoder). The
        encoder protocol needs no seed of its own; the dual encoder trains with ``seed``."""
        depends = [encoder_run] if encoder_run else []
        for task in config.retrieval_tasks:
            settings = {**common, **config.retrieval_settings(task), "task": task,
                        "encoder_run": encoder_run}
            for protocol in config.retrieval_protocols:
                if protocol == "dual_encoder" and get_task(task).format != "ranking":
                    continue
                if protocol == "encoder":
                    add("retrieval", {**settings, "protocol": protocol}, depends)
                elif seed is not None:
                    add("retrieval", {**settings, "protocol": protocol, "seed": seed}, depends)
        for task in config.alignment_tasks:
            add("alignment", {**common, **config.alignment, "task": task,
                              "encoder_run": encoder_run}, depends)

    evaluate_encoder("", None)
    for seed in config.seeds:
        for intermediate in config.intermediate_tasks:
            upstream = ""
            if intermediate != NO_INTERMEDIATE:
                upstream = add("intermediate", {**train, "task": intermediate, "seed": seed}, [])
            evaluate_encoder(upstream, seed)
            for task in config.target_tasks:
                target = add("target", {**train, "task": task, "seed": seed,
                                        "intermediate_run": upstream},
                             [upstream] if upstream else [])
                add("zero_shot_eval", {"data_root": config.data_root, "smoke": config.smoke,
                                       "target_run": target}, [target])
    return list(runs.values())


def submission_runs(config: GridConfig, intermediate: str, seed: int,
                    protocol: str = "encoder") -> list[str]:
    """The zero-shot evaluation and retrieval runs of one model of the grid, the one trained
    with ``intermediate`` (``none``: direct fine-tuning and the base encoder) and ``seed``:
    what one leaderboard submission contains. Ranking tasks (Mewsli-X, LAReQA) come from the
    runs of ``protocol``; the other retrieval tasks only have the encoder protocol."""
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
            params = run.params
            wanted = protocol if get_task(params["task"]).format == "ranking" else "encoder"
            if params["protocol"] != wanted:
                continue
            task, encoder_seed = trained_by(params["encoder_run"])
            if params["protocol"] == "dual_encoder":
                encoder_seed = params["seed"]
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


def compute_table(config: GridConfig) -> pd.DataFrame:
    """The grid's planned runs per phase with their status and measured cost: wall hours,
    GPU-hours and the devices, from each finished run's ``compute.json``."""
    rows = []
    for run in plan(config):
        record = read_compute(run_path(run.run_id)) or {}
        seconds = record.get("seconds")
        rows.append({"phase": run.phase, "status": status(run),
                     "measured": seconds is not None,
                     "wall_hours": seconds / 3600 if seconds is not None else 0.0,
                     "gpu_hours": seconds * record.get("gpus", 0) / 3600 if seconds else 0.0,
                     "device": record.get("device", "")})
    frame = pd.DataFrame(rows)
    summary = frame.groupby("phase", sort=False).agg(
        runs=("status", "size"), done=("status", lambda s: int((s == "done").sum())),
        measured=("measured", "sum"), wall_hours=("wall_hours", "sum"),
        gpu_hours=("gpu_hours", "sum"),
        devices=("device", lambda d: ", ".join(sorted(set(d) - {""}))))
    summary.loc["all"] = [summary["runs"].sum(), summary["done"].sum(), summary["measured"].sum(),
                          summary["wall_hours"].sum(), summary["gpu_hours"].sum(),
                          ", ".join(sorted(set(frame["device"]) - {""}))]
    return summary.round({"wall_hours": 3, "gpu_hours": 3})
