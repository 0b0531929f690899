"""A grid's YAML config: the model, seeds, intermediate and target tasks, retrieval protocols,
variants, resources and Slurm settings of a whole study, checked against the registry on load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from stilts_core.evaluation.retrieval import get_preset
from stilts_core.models.registry import MODELS
from stilts_core.paths import configs_dir
from stilts_core.phases.params import intermediate_label
from stilts_core.runs.execution import PHASES
from stilts_core.runs.results import NO_INTERMEDIATE
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


class AlignmentAfterTarget(BaseModel):
    """The third point in training: the alignment of the encoder each target run of ``tasks``
    leaves, on ``languages`` of the alignment task (empty: the ones the other alignment runs
    score)."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[str] = Field(min_length=1)
    languages: list[str] = Field(default_factory=list)


class GridConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    models: list[str] = Field(min_length=1)
    data_root: str = Field(
        "data/fixtures", description="'hub', 'pack' or a folder; a relative folder is read from "
                                     "the config file's folder (load_config)")
    smoke: bool = False
    threads: int | None = Field(
        None, ge=1, description="CPU threads every run computes with, whatever the workers beside "
                                "it; empty: the phases' fixed default (one)")
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
    alignment: dict = Field(default_factory=dict, description="alignment settings; with "
                            "retrieval_layer the alignment runs also score the task's retrieval")
    alignment_after_target: AlignmentAfterTarget | None = None
    resources: dict[str, Resources] = Field(default_factory=dict)
    keep_weights: Literal["all", "downstream"] = Field(
        "all", description="downstream: once a run is done in a local grid run, delete the weight "
                           "folders that no later phase reads "
                           "(stilts_core.phases.params.WEIGHTS_READ_DOWNSTREAM)")
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)

    @field_validator("models")
    @classmethod
    def _models(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in MODELS and not Path(name).is_dir():
                raise ValueError(f"unknown model {name!r}; registered: {', '.join(sorted(MODELS))}"
                                 " (or an existing local checkpoint directory)")
        return names

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
            if _role(name) != "retrieval" or not get_task(name).declared_format.parallel:
                raise ValueError(f"{name!r} has no parallel sentences; alignment needs a bitext "
                                 f"retrieval task such as tatoeba")
        return names

    @field_validator("alignment_after_target")
    @classmethod
    def _after_target(cls, chosen: AlignmentAfterTarget | None) -> AlignmentAfterTarget | None:
        for name in chosen.tasks if chosen else []:
            if _role(name) != "target":
                raise ValueError(f"alignment_after_target: {name!r} is not a target task")
        return chosen

    @model_validator(mode="after")
    def _one_encoding_pass(self) -> GridConfig:
        """A bitext task whose alignment runs score its retrieval is not also a retrieval task
        (that would encode the same sentences twice); alignment after a target needs both."""
        if self.alignment.get("retrieval_layer") is not None:
            twice = sorted(set(self.retrieval_tasks) & set(self.alignment_tasks))
            if twice:
                raise ValueError(f"retrieval_tasks {twice} are also alignment_tasks whose runs "
                                 "score their retrieval (alignment.retrieval_layer); drop them "
                                 "from retrieval_tasks, or the sentences are encoded twice")
        if self.alignment_after_target:
            missing = sorted(set(self.alignment_after_target.tasks) - set(self.target_tasks))
            if missing or not self.alignment_tasks:
                raise ValueError(f"alignment_after_target: needs its tasks among target_tasks "
                                 f"(missing {missing}) and an alignment task "
                                 f"(alignment_tasks: {self.alignment_tasks})")
            for task in self.alignment_tasks:
                known = get_task(task).evaluation_languages
                unknown = [lang for lang in self.alignment_after_target.languages
                           if lang not in known]
                if unknown:
                    raise ValueError(f"alignment_after_target.languages: {unknown} are not "
                                     f"languages of {task} ({', '.join(known)})")
        return self

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
