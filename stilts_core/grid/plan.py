"""A config read and expanded into the graph of phase runs, and what the grid has produced so far.

One phase-(ii) run feeds all its target runs and its retrieval evaluations; the baseline
(``none``) goes through the same target code from the pretrained model. Identical runs share a
content hash (:func:`stilts_core.runs.execution.run_id`), so they are planned and run once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml
from pydantic import ValidationError

from stilts_core.data.pack import PACK
from stilts_core.grid.config import GridConfig, GridError
from stilts_core.paths import REPO_ROOT
from stilts_core.phases.params import ParameterError, intermediate_label, validate_params
from stilts_core.runs.execution import is_done, is_running, read_compute, run_id, run_path
from stilts_core.runs.results import NO_INTERMEDIATE, collect
from stilts_core.tasks.registry import get_task
from stilts_core.training.progress import last_line


def load_config(path: str | Path) -> GridConfig:
    """Read and validate a grid config, down to every run's parameters (planned once here, so
    a bad hyperparameter is reported with the file before anything runs)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise GridError(f"{path}: cannot read grid config: {error}") from None
    try:
        config = GridConfig(**(raw or {}))
        if "data_root" in config.model_fields_set:  # unset: the bundled fixtures
            config = config.model_copy(update={"data_root": _data_root(path, config.data_root)})
        plan(config)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise GridError(f"{path}: {problems}") from None
    except (ParameterError, GridError) as error:
        raise GridError(f"{path}: {error}") from None
    return config


def _data_root(config_path: Path, root: str) -> str:
    """A relative ``data_root`` read from the config file's folder, as a user expects, and any
    folder inside the repository recorded relative to it (so run ids and records carry no
    machine's folders); ``hub`` and ``pack`` stay as they are."""
    if root in ("hub", PACK):
        return root
    folder = (config_path.parent / root).resolve()
    if not folder.is_dir():
        raise GridError(f"data_root {root!r}: no folder {folder} (a relative data_root is read "
                        f"from the config file's folder, {config_path.parent.resolve()})")
    return folder.relative_to(REPO_ROOT).as_posix() if folder.is_relative_to(REPO_ROOT) \
        else str(folder)


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
    runs: dict[str, PlannedRun] = {}
    settings = [(name, {}) for name in config.intermediate_tasks] + [
        (task, variant.params) for variant in config.variants.values()
        for task in variant.intermediate_tasks]

    def add(phase: str, params: dict, depends_on: list[str]) -> str:
        try:
            planned = PlannedRun(phase, validate_params(phase, params), depends_on)
        except ParameterError as error:
            where = ", ".join(f"{key} {params[key]!r}" for key in ("model", "task", "seed")
                              if key in params)
            raise GridError(f"{where}: {error} (set it in hyperparameters, "
                            "hyperparameters_per_task, retrieval or alignment)") from None
        runs.setdefault(planned.run_id, planned)
        return planned.run_id

    def languages(task: str) -> dict:
        """The languages scored and, where the grid caps it, the examples per language."""
        chosen = {"languages": config.languages[task]} if task in config.languages else {}
        if task in config.max_eval_examples:
            chosen["max_eval_examples"] = config.max_eval_examples[task]
        return chosen

    def evaluate_encoder(common: dict, encoder_run: str, seed: int | None) -> None:
        """The retrieval and alignment runs of one encoder (``''``: the base encoder). The
        encoder protocol needs no seed of its own; the dual encoder trains with ``seed``."""
        depends = [encoder_run] if encoder_run else []
        for task in config.retrieval_tasks:
            params = {**common, **config.retrieval_settings(task), **languages(task),
                      "task": task, "encoder_run": encoder_run}
            for protocol in config.retrieval_protocols:
                if protocol not in get_task(task).declared_format.protocols:
                    continue
                if protocol == "encoder":
                    add("retrieval", {**params, "protocol": protocol}, depends)
                elif seed is not None:
                    add("retrieval", {**params, "protocol": protocol, "seed": seed}, depends)
        for task in config.alignment_tasks:
            add("alignment", {**common, **config.alignment, **languages(task), "task": task,
                              "encoder_run": encoder_run}, depends)

    compute = {"threads": config.threads} if config.threads else {}
    for model in config.models:
        common = {"model": model, "data_root": config.data_root, "smoke": config.smoke,
                  **compute}
        evaluate_encoder(common, "", None)
        for seed in config.seeds:
            for intermediate, variant in settings:
                upstream = ""
                if intermediate != NO_INTERMEDIATE:
                    upstream = add("intermediate", {**_training(config, common, intermediate), **variant,
                                                    "seed": seed}, [])
                evaluate_encoder(common, upstream, seed)
                for task in config.target_tasks:
                    target = add("target", {**_training(config, common, task), "seed": seed,
                                            "intermediate_run": upstream},
                                 [upstream] if upstream else [])
                    add("zero_shot_eval", {"data_root": config.data_root, "smoke": config.smoke,
                                           **compute, **languages(task), "target_run": target},
                        [target])
                    after = config.alignment_after_target
                    if after and task in after.tasks:
                        for aligned in config.alignment_tasks:
                            chosen = languages(aligned)
                            if after.languages:
                                chosen["languages"] = after.languages
                            add("alignment", {**common, **config.alignment, **chosen,
                                              "task": aligned, "target_run": target}, [target])
    return list(runs.values())


def _training(config: GridConfig, common: dict, task: str) -> dict:
    """A training phase's parameters: the grid's hyperparameters, then the task's own."""
    return {**common, **config.hyperparameters, **config.hyperparameters_per_task.get(task, {}),
            "task": task}


def submission_runs(config: GridConfig, intermediate: str, seed: int,
                    protocol: str = "encoder", model: str | None = None) -> list[str]:
    """The zero-shot evaluation and retrieval runs of one model of the grid, the one trained
    with ``intermediate`` (``none``: direct fine-tuning and the base encoder) and ``seed``:
    what one leaderboard submission contains. Ranking tasks (Mewsli-X, LAReQA) come from the
    runs of ``protocol``; the other retrieval tasks only have the encoder protocol. ``model``
    may be left out when the grid has one."""
    if model is None:
        if len(config.models) > 1:
            raise GridError(f"grid {config.name} has several models ({', '.join(config.models)});"
                            " choose one")
        model = config.models[0]
    planned = {run.run_id: run for run in plan(config)}

    def trained_by(upstream: str) -> tuple[str, int | None]:
        if not upstream:
            return NO_INTERMEDIATE, None
        return intermediate_label(planned[upstream].params), planned[upstream].params["seed"]

    chosen = []
    for run in planned.values():
        if run.phase == "zero_shot_eval":
            target = planned[run.params["target_run"]].params
            if (trained_by(target["intermediate_run"])[0] == intermediate
                    and target["seed"] == seed and target["model"] == model):
                chosen.append(run.run_id)
        elif run.phase == "retrieval" and run.params["model"] == model:
            params = run.params
            scored_by = get_task(params["task"]).declared_format.protocols
            wanted = protocol if protocol in scored_by else "encoder"
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
    """done, running (a process holds its lock now), partial (started, not finished) or to do."""
    path = run_path(run.run_id)
    if is_done(path):
        return "done"
    if is_running(path):
        return "running"
    return "partial" if path.is_dir() else "to do"


def status_table(config: GridConfig, runs: list[PlannedRun] | None = None) -> pd.DataFrame:
    """One row per planned run: its status and, for a run started and not done (running or
    partial), the last line of its progress log and that line's age in seconds."""
    rows = []
    for run in plan(config) if runs is None else runs:
        state = status(run)
        last = last_line(run_path(run.run_id)) if state in ("running", "partial") else None
        rows.append({"run_id": run.run_id, "phase": run.phase, "status": state,
                     "progress": last[0] if last else "",
                     "progress_age_s": last[1] if last else float("nan")})
    return pd.DataFrame(rows)


def plan_table(config: GridConfig, throughput: str | Path | None = None,
               runs: list[PlannedRun] | None = None) -> pd.DataFrame:
    """One row per planned run: its id (phase, task and content hash), what it trains or scores,
    its upstream runs, its status, the resources it asks for and, once done, what it cost.
    ``runs`` is ``plan(config)`` where the caller already has it.

    With ``throughput`` (a file of ``benchmarks/train_throughput.py``), training runs also get
    ``projected_gpu_hours`` on the device measured there, or in ``projection`` the reason they
    cannot be projected (a data set size that is not declared, nothing measured that matches);
    ``attrs["throughput_environment"]`` is where that file was measured.
    """
    from stilts_core.grid.throughput import NotProjected, projected_hours, read_results

    environment, measurements = read_results(throughput) if throughput else (None, None)
    rows = []
    for run in plan(config) if runs is None else runs:
        params, resources = run.params, config.resources_for(run.phase)
        upstream = params.get("intermediate_run") or params.get("encoder_run") or \
            params.get("target_run", "")
        record = read_compute(run_path(run.run_id)) or {}
        seconds = record.get("seconds", 0.0)
        rows.append({
            "run_id": run.run_id, "phase": run.phase, "task": params.get("task", ""),
            "model": params.get("model", ""), "seed": _seed(run),
            "upstream": upstream, "status": status(run), "gpus": resources.gpus,
            "time_limit_h": resources.time_min / 60,
            "requested_gpu_hours": resources.gpus * resources.time_min / 60,
            "wall_hours": seconds / 3600,
            "gpu_hours": record.get("gpu_seconds", seconds * record.get("gpus", 0)) / 3600,
            "device": record.get("device", ""),
        })
        if measurements is not None:
            try:
                rows[-1].update(projected_gpu_hours=projected_hours(run.phase, params,
                                                                    measurements),
                                projection="")
            except NotProjected as reason:
                rows[-1].update(projected_gpu_hours=float("nan"), projection=str(reason))
    table = pd.DataFrame(rows).astype({"seed": "Int64"})
    if environment is not None:
        table.attrs["throughput_environment"] = environment
    return table


def _seed(run: PlannedRun) -> int | None:
    """The seed a run trains with (retrieval with the encoder as it is trains nothing)."""
    trains = run.phase in ("intermediate", "target") or run.params.get("protocol") == "dual_encoder"
    return run.params["seed"] if trains else None


def collect_grid(config: GridConfig, output: Path, partial: bool = False,
                 force: bool = False) -> pd.DataFrame:
    """Merge the results of the grid's finished runs. Refuses while any run is unfinished,
    unless ``partial`` (then only finished runs are merged, and the others are listed), and
    refuses to overwrite a table collected from another config unless ``force``."""
    paths = [run_path(r.run_id) for r in plan(config)]
    finished = [path for path in paths if is_done(path)]
    unfinished = sorted({path.name for path in paths} - {path.name for path in finished})
    if unfinished and not partial:
        raise GridError(f"grid {config.name}: {len(unfinished)} unfinished run(s) "
                        f"({', '.join(unfinished[:5])}{' ...' if len(unfinished) > 5 else ''}); "
                        "run the grid first, or collect the finished ones with --partial")
    return collect(finished, output, origin=config_origin(config), force=force)


def config_origin(config: GridConfig) -> dict:
    """What a collected table records of its config: the grid's name and a hash of everything
    the config says (so a cut-down copy that kept the name is told apart)."""
    text = config.model_dump_json()
    return {"grid": config.name, "config_sha256": hashlib.sha256(text.encode()).hexdigest()}


def phase_summary(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`plan_table` per phase and in all: runs, done and partial (running included),
    GPU-hours asked for, and the measured cost of the finished runs (wall hours, GPU-hours and
    devices, from each run's ``compute.json``); with a projection, the projected GPU-hours and
    how many runs they cover."""
    projection = {}
    if "projected_gpu_hours" in table:
        projection = {"projected_gpu_hours": ("projected_gpu_hours", "sum"),
                      "projected_runs": ("projected_gpu_hours", "count")}
    summary = table.groupby("phase", sort=False).agg(
        runs=("status", "size"), done=("status", lambda s: int((s == "done").sum())),
        partial=("status", lambda s: int(s.isin(["partial", "running"]).sum())),
        requested_gpu_hours=("requested_gpu_hours", "sum"),
        measured=("device", lambda d: int((d != "").sum())), wall_hours=("wall_hours", "sum"),
        gpu_hours=("gpu_hours", "sum"), **projection,
        devices=("device", lambda d: ", ".join(sorted(set(d) - {""}))))
    totals = summary.drop(columns="devices").sum()
    summary.loc["all"] = [*totals, ", ".join(sorted(set(table["device"]) - {""}))]
    return summary.round({"requested_gpu_hours": 1, "wall_hours": 3, "gpu_hours": 3,
                          "projected_gpu_hours": 2})


def compute_table(config: GridConfig) -> pd.DataFrame:
    """The grid's runs per phase with their status and cost (see :func:`phase_summary`)."""
    return phase_summary(plan_table(config))
