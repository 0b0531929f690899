"""Experiment grids: a YAML config expanded into the graph of phase runs, and the executors that
run it (in this process's machine with N workers, or on Slurm through submitit).

One phase-(ii) run feeds all its target runs and its retrieval evaluations; the baseline
(``none``) goes through the same target code from the pretrained model. Identical runs share a
content hash (:func:`stilts_core.runs.execution.run_id`), so they are planned and run once. Every executor
only ever calls :func:`stilts_core.runs.execution.execute_phase`, whose lock and done marker make any
number of workers, reruns and crashes safe: a rerun skips done runs and resumes partial ones.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import pandas as pd
import submitit
import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from stilts_core.evaluation.retrieval import get_preset
from stilts_core.paths import atomic_write_text, configs_dir, runs_dir
from stilts_core.phases.params import (
    WEIGHTS_READ_DOWNSTREAM,
    ParameterError,
    intermediate_label,
    validate_params,
)
from stilts_core.runs.execution import (
    PHASES,
    RunBusy,
    RunError,
    execute_phase,
    is_done,
    is_running,
    prune_weights,
    read_compute,
    run_id,
    run_path,
)
from stilts_core.runs.results import NO_INTERMEDIATE, collect
from stilts_core.tasks.registry import TASKS, get_task, intermediate_choices

# The grid of the full X-STILTs study (Phang et al.'s recipe on XTREME-R), whose plan the book
# and the claims check show.
FULL_SCALE_CONFIG = configs_dir() / "xstilts.yaml"


class GridError(ValueError):
    """The grid config is invalid; the message names the file, the field and the fix."""


class Resources(BaseModel):
    """What one run of a phase asks the scheduler for. Not part of a run's identity: the
    effective batch size is fixed by the hyperparameters whatever the number of GPUs."""

    model_config = ConfigDict(extra="forbid")

    gpus: int = Field(1, ge=0, description="GPUs on one node; more than one trains with torchrun")
    cpus: int = Field(8, ge=1)
    mem_gb: float = Field(64, gt=0)
    time_min: int = Field(12 * 60, ge=1, description="wall-clock limit in minutes")


# XLM-R Large on one 80 GB GPU; the time limits leave room for the largest task of each phase.
DEFAULT_RESOURCES = {
    "intermediate": Resources(time_min=24 * 60),
    "target": Resources(time_min=12 * 60),
    "zero_shot_eval": Resources(mem_gb=32, time_min=4 * 60),
    "retrieval": Resources(time_min=8 * 60),
    "alignment": Resources(mem_gb=32, time_min=2 * 60),
}


class SlurmSettings(BaseModel):
    """Cluster-specific submission settings (``sbatch`` options)."""

    model_config = ConfigDict(extra="forbid")

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: list[str] = Field(default_factory=list,
                             description="shell lines run in each job first (module load ...)")
    additional_parameters: dict[str, str | int] = Field(
        default_factory=dict, description="further sbatch options, e.g. {exclude: node12}")


class Variant(BaseModel):
    """Phang et al.'s variants of phase (ii): extra intermediate-phase parameters for some
    intermediate tasks (``mlm_languages``: continued multilingual MLM; ``train_languages``:
    machine-translated training data). Their results carry their own label (``mnli+mlm``)."""

    model_config = ConfigDict(extra="forbid")

    intermediate_tasks: list[str] = Field(min_length=1)
    params: dict = Field(min_length=1)


class GridConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    models: list[str] = Field(min_length=1)
    data_root: str = "data/fixtures"
    smoke: bool = False
    seeds: list[StrictInt] = Field(min_length=1)
    intermediate_tasks: list[str] = Field(min_length=1)
    variants: dict[str, Variant] = Field(default_factory=dict)
    target_tasks: list[str] = Field(default_factory=list)
    retrieval_tasks: list[str] = Field(default_factory=list)
    languages: dict[str, list[str]] = Field(
        default_factory=dict, description="per task, the languages to score; default: the task's")
    max_eval_examples: dict[str, int] = Field(
        default_factory=dict, description="per target, retrieval or alignment task, the examples "
                                          "scored per language (a fixed-seed sample); default: all")
    hyperparameters: dict = Field(default_factory=dict)
    hyperparameters_per_task: dict[str, dict] = Field(default_factory=dict)
    retrieval: dict = Field(default_factory=dict, description="retrieval settings of every "
                            "task; 'preset' names one of stilts_core.evaluation.retrieval.PRESETS")
    retrieval_per_task: dict[str, dict] = Field(default_factory=dict)
    retrieval_protocols: list[str] = Field(default_factory=lambda: ["encoder"], min_length=1)
    alignment_tasks: list[str] = Field(default_factory=list)
    alignment: dict = Field(default_factory=dict)
    resources: dict[str, Resources] = Field(default_factory=dict)
    keep_weights: Literal["all", "downstream"] = Field(
        "all", description="downstream: once a run is done in a local grid run, delete the weight "
                           "folders that no later phase reads "
                           "(stilts_core.phases.params.WEIGHTS_READ_DOWNSTREAM)")
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds {seeds} repeat a seed; list each once")
        return seeds

    @field_validator("intermediate_tasks")
    @classmethod
    def _intermediate(cls, names: list[str]) -> list[str]:
        for name in names:
            _check_intermediate(name, allow_none=True)
        return names

    @field_validator("variants")
    @classmethod
    def _variants(cls, variants: dict[str, Variant]) -> dict[str, Variant]:
        for name, variant in variants.items():
            for task in variant.intermediate_tasks:
                _check_intermediate(task, allow_none=False)
                if intermediate_label({"task": task, **variant.params}) == task:
                    raise ValueError(
                        f"variant {name!r}: params {variant.params} change neither mlm_languages "
                        "nor train_languages, so its runs would pool with plain training; set "
                        "one of them")
        return variants

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

    @field_validator("languages")
    @classmethod
    def _languages(cls, chosen: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, languages in chosen.items():
            _role(name)
            known = get_task(name).evaluation_languages
            unknown = [language for language in languages if language not in known]
            if unknown or not languages:
                raise ValueError(f"{name}: {unknown or 'an empty list'} is not a subset of the "
                                 f"task's languages ({', '.join(known)})")
        return chosen

    @field_validator("max_eval_examples")
    @classmethod
    def _eval_caps(cls, chosen: dict[str, int]) -> dict[str, int]:
        for name, cap in chosen.items():
            if _role(name) not in ("target", "retrieval"):
                raise ValueError(f"max_eval_examples: {name!r} is not scored per language (not a "
                                 f"target or retrieval task)")
            if cap < 1:
                raise ValueError(f"max_eval_examples: {name}: {cap} is not a positive count")
        return chosen

    @field_validator("hyperparameters_per_task")
    @classmethod
    def _per_task(cls, chosen: dict[str, dict]) -> dict[str, dict]:
        for name in chosen:
            if name not in intermediate_choices() and _role(name) != "target":
                raise ValueError(f"{name!r} is not trained (not an intermediate or target task)")
        return chosen

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

    @field_validator("resources", mode="before")
    @classmethod
    def _resource_phases(cls, chosen) -> dict:
        """A phase's settings override its defaults one by one (``{gpus: 2}`` keeps the
        phase's time limit)."""
        if not isinstance(chosen, dict) or not all(isinstance(v, dict) for v in chosen.values()):
            raise ValueError("give per phase a mapping of gpus, cpus, mem_gb and time_min")
        unknown = sorted(set(chosen) - set(PHASES))
        if unknown:
            raise ValueError(f"unknown phase(s) {unknown}; phases: {', '.join(PHASES)}")
        return {phase: {**DEFAULT_RESOURCES[phase].model_dump(), **values}
                for phase, values in chosen.items()}

    def retrieval_settings(self, task: str) -> dict:
        """The retrieval phase's settings for ``task``: a preset's, then the explicit common
        settings, then the task's own (each overriding the one before)."""
        common = dict(self.retrieval)
        preset = common.pop("preset", None)
        base = get_preset(preset).settings.model_dump() if preset else {}
        return {**base, **common, **self.retrieval_per_task.get(task, {})}

    def resources_for(self, phase: str) -> Resources:
        return self.resources.get(phase, DEFAULT_RESOURCES[phase])


def _role(name: str) -> str:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; registered: {', '.join(sorted(TASKS))}")
    return get_task(name).role


def _check_intermediate(name: str, allow_none: bool) -> None:
    if name == NO_INTERMEDIATE and allow_none:
        return
    if name not in intermediate_choices():
        also = " (or 'none')" if allow_none else ""
        raise ValueError(f"{name!r} is not an intermediate task or mixture{also}; choose from "
                         f"{', '.join(intermediate_choices())}")


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
        plan(config)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise GridError(f"{path}: {problems}") from None
    except (ParameterError, GridError) as error:
        raise GridError(f"{path}: {error}") from None
    return config


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
                if protocol == "dual_encoder" and get_task(task).format != "ranking":
                    continue
                if protocol == "encoder":
                    add("retrieval", {**params, "protocol": protocol}, depends)
                elif seed is not None:
                    add("retrieval", {**params, "protocol": protocol, "seed": seed}, depends)
        for task in config.alignment_tasks:
            add("alignment", {**common, **config.alignment, **languages(task), "task": task,
                              "encoder_run": encoder_run}, depends)

    for model in config.models:
        common = {"model": model, "data_root": config.data_root, "smoke": config.smoke}
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
                                           **languages(task), "target_run": target}, [target])
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
    """done, running (a process holds its lock now), partial (started, not finished) or to do."""
    path = run_path(run.run_id)
    if is_done(path):
        return "done"
    if is_running(path):
        return "running"
    return "partial" if path.is_dir() else "to do"


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


@dataclass
class GridReport:
    """What one execution of a grid did; ``failed`` maps run ids to their error (which names
    the executed notebook and the failing cell), ``blocked`` to the failed run upstream."""

    executed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    submitted: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)

    def merge(self, other: GridReport) -> GridReport:
        failed = {**self.failed, **other.failed}
        executed = self.executed + other.executed
        return GridReport(executed, [r for r in self.reused + other.reused if r not in executed],
                          {**self.submitted, **other.submitted},
                          {r: e for r, e in failed.items() if r not in executed},
                          {r: e for r, e in {**self.blocked, **other.blocked}.items()
                           if r not in executed and r not in failed})

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked

    def summary(self) -> str:
        lines = [f"{len(self.executed)} executed, {len(self.reused)} already done, "
                 f"{len(self.submitted)} submitted, {len(self.failed)} failed, "
                 f"{len(self.blocked)} not run because a run they need failed"]
        lines += [f"FAILED {run}: {error}" for run, error in self.failed.items()]
        lines += [f"NOT RUN {run}: needs {upstream}" for run, upstream in self.blocked.items()]
        return "\n".join(lines)


def run_local(config: GridConfig, workers: int = 1, log=print,
              poll_seconds: float = 2.0) -> GridReport:
    """Run the grid on this machine with ``workers`` processes (1: in this process).

    Each worker takes any run whose upstream runs are done and that no one else holds, so
    workers started separately on the same grid (here, or on several machines sharing the runs
    folder) split it without running anything twice. Each worker gets its share of the visible
    GPUs or, without GPUs, of the CPU cores (so that their thread pools do not oversubscribe).
    """
    if workers < 1:
        raise GridError(f"workers must be at least 1, not {workers}")
    if workers == 1:
        return work_on(config, log=log, poll_seconds=poll_seconds)
    report = GridReport()
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(work_on, config, f"worker {index + 1}", environment, print,
                               poll_seconds)
                   for index, environment in enumerate(_worker_environments(workers))]
        for future in futures:
            report = report.merge(future.result())
    return report


def work_on(config: GridConfig, name: str = "", environment: dict | None = None, log=print,
            poll_seconds: float = 2.0) -> GridReport:
    """One worker: run every run it can take until none is left to do, waiting while the runs
    it needs are held by other workers; a failed run is not retried in the same call, and the
    runs downstream of it are reported as blocked. ``environment`` is set for its kernels."""
    os.environ.update(environment or {})
    prefix = f"[{name}] " if name else ""
    planned = plan(config)
    report, settled = GridReport(), set()
    while len(settled) < len(planned):
        progressed = False
        for index, run in enumerate(planned, start=1):
            identifier = run.run_id
            if identifier in settled:
                continue
            if is_done(run_path(identifier)):
                report.reused.append(identifier)
                settled.add(identifier)
                continue
            failed_upstream = next((d for d in run.depends_on
                                    if d in report.failed or d in report.blocked), None)
            if failed_upstream:
                report.blocked[identifier] = failed_upstream
                settled.add(identifier)
                continue
            if not all(is_done(run_path(d)) for d in run.depends_on) or \
                    is_running(run_path(identifier)):
                continue  # not ready yet, or another worker has it
            log(f"{prefix}[stilts] grid {config.name}: run {index}/{len(planned)} ({run.phase})")
            try:
                execute_phase(run.phase, run.params, log=lambda m: log(prefix + m), wait=False)
            except RunBusy:
                continue
            except RunError as error:
                report.failed[identifier] = str(error)
                log(f"{prefix}[stilts] {identifier}: FAILED: {error}")
            else:
                report.executed.append(identifier)
                if config.keep_weights == "downstream":
                    freed = prune_weights(run_path(identifier),
                                          WEIGHTS_READ_DOWNSTREAM[run.phase])
                    if freed:
                        log(f"{prefix}[stilts] {identifier}: deleted {freed / 1e9:.1f} GB of "
                            "weights no later phase reads (keep_weights: downstream)")
            settled.add(identifier)
            progressed = True
        if not progressed and len(settled) < len(planned):
            time.sleep(poll_seconds)  # what is left is held by other workers or waits on it
    return report


def cpu_share_environment(processes: int) -> dict:
    """The environment that gives each of ``processes`` processes sharing this machine its share
    of the CPU cores: ``OMP_NUM_THREADS``, which torch, OpenBLAS and MKL all read; nothing when
    the caller set it."""
    if "OMP_NUM_THREADS" in os.environ:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // processes))}


def _worker_environments(workers: int) -> list[dict]:
    """Per worker: its share of the visible GPUs (``CUDA_VISIBLE_DEVICES``) or, without enough
    GPUs, of the CPU cores (:func:`cpu_share_environment`)."""
    import torch

    count = torch.cuda.device_count()
    if count >= workers:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(count)]
        share = count // workers
        return [{"CUDA_VISIBLE_DEVICES": ",".join(ids[i * share:(i + 1) * share])}
                for i in range(workers)]
    return [cpu_share_environment(workers)] * workers


class PhaseJob(submitit.helpers.Checkpointable):
    """One phase run as a Slurm job. On a time-out or pre-emption submitit requeues it, and the
    run resumes from its latest checkpoint."""

    def __init__(self, phase: str, params: dict, runs: str):
        self.phase, self.params, self.runs = phase, params, runs

    def __call__(self) -> str:
        os.environ["STILTS_RUNS_DIR"] = self.runs
        return str(execute_phase(self.phase, self.params))


def run_slurm(config: GridConfig, log=print, wait: bool = False,
              folder: Path | None = None) -> GridReport:
    """Submit every run that is not done as one Slurm job (through submitit), each depending on
    the jobs of its upstream runs (``afterok``: phase iii starts only after its phase ii
    succeeded; a failure cancels what depends on it). With ``wait``, wait for all of them and
    report failures. Job ids and logs are kept under ``folder`` (default
    ``runs/slurm/<grid>/``), with ``jobs.tsv`` listing each run id and its job id."""
    folder = Path(folder or runs_dir() / "slurm" / config.name)
    report, jobs = GridReport(), {}
    try:
        for run in plan(config):
            if is_done(run_path(run.run_id)):
                report.reused.append(run.run_id)
                continue
            after = [jobs[d].job_id for d in run.depends_on if d in jobs]
            executor = submitit.SlurmExecutor(folder=folder / "%j")
            executor.update_parameters(**_sbatch_options(config, run, after))
            jobs[run.run_id] = executor.submit(PhaseJob(run.phase, run.params, str(runs_dir())))
            report.submitted[run.run_id] = jobs[run.run_id].job_id
            log(f"[stilts] {run.run_id}: Slurm job {jobs[run.run_id].job_id}"
                + (f" (after {', '.join(after)})" if after else ""))
    finally:  # the jobs submitted so far, even if a later submission failed
        atomic_write_text(folder / "jobs.tsv", "run_id\tjob_id\n" + "".join(
            f"{run}\t{job}\n" for run, job in report.submitted.items()))
    if wait:
        for identifier, job in jobs.items():
            try:
                job.result()
            except Exception as error:  # submitit's errors carry the job's traceback and log
                report.failed[identifier] = f"Slurm job {job.job_id}: {error}"
            else:
                report.executed.append(identifier)
    return report


def _sbatch_options(config: GridConfig, run: PlannedRun, after: list[str]) -> dict:
    resources, slurm = config.resources_for(run.phase), config.slurm
    options = {"job_name": f"stilts-{run.run_id}", "time": resources.time_min,
               "mem": f"{math.ceil(resources.mem_gb * 1024)}M", "cpus_per_task": resources.cpus,
               "setup": list(slurm.setup),
               "additional_parameters": {"kill_on_invalid_dep": "yes",
                                         **slurm.additional_parameters}}
    if resources.gpus:
        options["gpus_per_node"] = resources.gpus
    if after:
        options["dependency"] = "afterok:" + ":".join(after)
    for name in ("partition", "account", "qos", "constraint"):
        if getattr(slurm, name):
            options[name] = getattr(slurm, name)
    return options


EXECUTORS = {"local": run_local, "slurm": run_slurm}


def collect_grid(config: GridConfig, output: Path, partial: bool = False) -> pd.DataFrame:
    """Merge the results of the grid's finished runs. Refuses while any run is unfinished,
    unless ``partial`` (then only finished runs are merged, and the others are listed)."""
    paths = [run_path(r.run_id) for r in plan(config)]
    finished = [path for path in paths if is_done(path)]
    unfinished = sorted({path.name for path in paths} - {path.name for path in finished})
    if unfinished and not partial:
        raise GridError(f"grid {config.name}: {len(unfinished)} unfinished run(s) "
                        f"({', '.join(unfinished[:5])}{' ...' if len(unfinished) > 5 else ''}); "
                        "run the grid first, or collect the finished ones with --partial")
    return collect(finished, output)


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
