"""The parameters of every phase: one pydantic model per phase whose fields are exactly the
names in its notebook's ``parameters`` cell (a test keeps the two in step), and their validation.

Defaults follow the published setup (jiant's XTREME recipe, Phang et al. 2020) on XLM-R Large; the
embedded offline default config (``configs/smoke.yaml``) overrides them for the tiny model. The
validated parameters are what identifies a run (:func:`stilts_core.runs.execution.run_id`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stilts_core.data.pack import PACK
from stilts_core.data.sources import DataSources, resolve_data_root
from stilts_core.evaluation.retrieval import RepresentationChoice, RepresentationSettings
from stilts_core.models.registry import retrieval_protocol
from stilts_core.paths import REPO_ROOT
from stilts_core.runs.execution import DEFAULT_THREADS
from stilts_core.tasks.registry import MIXTURES, get_mixture, get_task, intermediate_choices
from stilts_core.tasks.spec import TaskSpec, TrainingDefaults
from stilts_core.training.inputs import Efficiency, Hyperparameters

SMOKE_MAX_TRAIN = 1000
SMOKE_MAX_EVAL = 200
EVERY_LANGUAGE = "each language"  # an evaluation split read in every language of the run


class PhaseParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataParams(PhaseParams):
    data_root: str = Field(
        "data/fixtures",
        description="'hub' for the Hugging Face hub, else a local root (<root>/<task>/<split>-<lang>"
                    ".jsonl); relative paths are from the repository root",
    )
    data_roots: dict[str, str] = Field(
        default_factory=dict, description="per-task local roots that override data_root")
    data_revisions: dict[str, str] = Field(
        default_factory=dict, description="per-task hub revisions (commits) that override the registry")
    smoke: bool = Field(False, description="truncate every split to a few hundred examples")
    max_train_examples: int | None = Field(
        None, ge=1, description="train on this many examples of each training set (a fixed-seed "
                                "sample, the same for every run); empty: all")
    max_eval_examples: int | None = Field(
        None, ge=1, description="score or stop early on this many examples per language (a "
                                "fixed-seed sample); empty: all")
    threads: int | None = Field(
        None, ge=1, description="CPU threads the run computes with (torch and BLAS): a sum split "
                                "over more threads rounds differently, so the count is part of "
                                f"the run; empty: {DEFAULT_THREADS}")

    def sources(self) -> DataSources:
        return DataSources(
            root=None if self.data_root == "hub" else resolve_data_root(_repo_path(self.data_root)),
            task_roots={task: _repo_path(root) for task, root in self.data_roots.items()},
            revisions=dict(self.data_revisions),
        )


# Parameters added after runs existed: left out of a run's identity while empty, so that the
# run ids of earlier runs stay what they were.
UNSET_NOT_IN_IDENTITY = ("max_train_examples", "max_eval_examples", "threads", "prefix",
                         "retrieval_layer", "target_run")


def _repo_path(path: str) -> str | Path:
    """Relative paths are from the repository root; ``'pack'`` names the shared data pack."""
    return path if path == PACK else (REPO_ROOT / path).resolve()


class TrainParams(Efficiency, DataParams):
    model: str = "xlm-roberta-large"
    seed: int = 1
    learning_rate: float = 1e-5
    batch_size: int | None = Field(None, description="effective batch size; empty: the task's")
    per_device_batch_size: int = 8
    epochs: float | None = Field(None, description="empty: the task's published default")
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int | None = Field(None, description="empty: each task's published default")
    doc_stride: int = 128
    eval_steps: int = 1000
    early_stopping_patience: int = 30
    max_steps: int = -1

    def max_length_for(self, task: TaskSpec) -> int:
        """The length ``task``'s examples are cut to: the run's, or the task's published one."""
        return self.max_length or task.defaults.max_length

    def hyperparameters(self) -> Hyperparameters:
        values = {k: getattr(self, k) for k in Hyperparameters.model_fields}
        if values["max_length"] is None:
            values["max_length"] = self.defaults().max_length
        return Hyperparameters(**values)

    @model_validator(mode="after")
    def _fill_and_check(self) -> TrainParams:
        """Fill the task's published defaults, then refuse bad settings at planning time."""
        defaults = self.defaults()  # each phase knows where its task's defaults are declared
        if self.batch_size is None:
            self.batch_size = defaults.batch_size
        if self.epochs is None:
            self.epochs = defaults.epochs
        self.hyperparameters()
        return self


class IntermediateParams(TrainParams):
    task: str = Field("mnli", description="an intermediate task or a mixture ('multi')")
    mixture_tasks: list[str] | None = Field(None, description="tasks of a mixture; empty: declared")
    temperature: float | None = Field(None, description="mixing temperature; empty: declared")
    mixture_cap: int | None = None
    combined_with: list[str] | None = Field(
        None, description="extra training sets added to the task's (ANLI+); empty: declared")
    train_languages: list[str] = Field(
        default_factory=lambda: ["en"],
        description="languages of the training data; non-English ones are machine-translated "
                    "copies read from local files (<root>/<task>/train-<lang>.jsonl)")
    mlm_languages: list[str] = Field(
        default_factory=list, description="continue multilingual MLM on text in these languages")
    mlm_examples_per_language: int = 20000

    def defaults(self) -> TrainingDefaults:
        if self.task in MIXTURES:
            return get_mixture(self.task).defaults
        task = get_task(self.task)
        if task.role != "intermediate":
            raise ValueError(f"task {self.task!r} is a {task.role} task, not an intermediate task; "
                             f"choose from {', '.join(intermediate_choices())}")
        return task.defaults

    def member_tasks(self) -> list[TaskSpec]:
        if self.task in MIXTURES:
            return [get_task(name) for name in self.mixture_tasks or get_mixture(self.task).tasks]
        return [get_task(self.task)]


class TargetParams(TrainParams):
    task: str = "xnli"
    intermediate_run: str = Field(
        "", description="run id of the phase-(ii) run whose encoder to start from; empty: the baseline"
    )

    def defaults(self) -> TrainingDefaults:
        task = get_task(self.task)
        if task.role != "target":
            raise ValueError(f"task {self.task!r} is a {task.role} task, not a target task")
        return task.defaults


class ZeroShotParams(DataParams):
    target_run: str = Field("", description="run id of the phase-(iii) target run to score")
    languages: list[str] = Field(default_factory=list, description="empty: every language of the task")
    batch_size: int = 64


class EncoderParams(DataParams):
    """Which encoder, and how a sentence vector is made from it: every field is recorded with
    the results (``settings``). Empty representation fields take the model's declared retrieval
    protocol (``ModelSpec.retrieval``; e5: the mean of its last layer), else XTREME's Tatoeba
    choice for XLM-R Large, mean pooling (over ``<s>`` and ``</s>`` too, as its script does) at
    ``hidden_states[14]``."""

    model: str = "xlm-roberta-large"
    encoder_run: str = Field("", description="phase-(ii) run id; empty: the base encoder")
    languages: list[str] = Field(default_factory=list, description="empty: every language of the task")
    pooling: str | None = Field(None, pattern="^(mean|first)$",
                                description="empty: the model's declared protocol")
    include_special_tokens: bool | None = Field(
        None, description="empty: the model's declared protocol")
    prefix: str | None = Field(
        None, description="text before every sentence; empty: the model's declared protocol")
    batch_size: int = 64

    @model_validator(mode="after")
    def _declared_protocol(self) -> EncoderParams:
        """Fill every representation field left empty from the model's declared protocol, or
        from the defaults; a prefix that stays empty is left unset (so run ids made before
        prefixes existed stay what they were)."""
        declared = retrieval_protocol(self.model)
        settings = declared.settings() if declared else RepresentationChoice().model_dump()
        for name in ("layer", "pooling", "include_special_tokens", "prefix"):
            if name in type(self).model_fields and getattr(self, name) is None:
                setattr(self, name, settings[name] or None)
        return self

    def representation_choice(self, layer: int) -> RepresentationChoice:
        return RepresentationChoice(layer=layer, pooling=self.pooling,
                                    include_special_tokens=self.include_special_tokens,
                                    prefix=self.prefix or "")


class RetrievalParams(EncoderParams):
    task: str = "tatoeba"
    layer: int | None = Field(
        None, description="hidden_states index, 0 is the embeddings; empty: the model's declared "
                          "protocol (14, XTREME's Tatoeba choice, for XLM-R Large)")
    protocol: str = Field(
        "encoder", pattern="^(encoder|dual_encoder)$",
        description="encoder: the encoder as it is (Phang et al.); dual_encoder: first fine-tune "
                    "it on the task's English pairs with in-batch negatives (XTREME-R; ranking "
                    "tasks)")
    max_length: int | None = Field(None, description="query side; empty: the task's published length")
    candidate_max_length: int | None = Field(None, description="empty: the task's published length")
    margin: str = Field("ratio", pattern="^(ratio|distance|absolute)$", description="BUCC")
    margin_k: int = Field(4, ge=1, description="BUCC: neighbours in the margin's denominator")
    mining_mode: str = Field("max", pattern="^(max|forward|backward|intersection)$",
                             description="BUCC: how candidate pairs are mined")
    seed: int = Field(1, description="dual_encoder: the training seed")
    dual_learning_rate: float | None = Field(None, description="empty: the task's published value")
    dual_batch_size: int | None = Field(None, description="empty: the task's published value")
    dual_epochs: float | None = Field(None, description="empty: the task's published value")
    dual_max_steps: int = -1

    @model_validator(mode="after")
    def _fill_and_check(self) -> RetrievalParams:
        task = get_task(self.task)
        if task.role != "retrieval" or task.retrieval is None:
            raise ValueError(f"task {self.task!r} is not a retrieval task")
        published = task.retrieval
        if self.protocol not in task.declared_format.protocols:
            raise ValueError(f"protocol {self.protocol!r} does not score {task.format} tasks such "
                             f"as {self.task!r} (theirs: "
                             f"{', '.join(task.declared_format.protocols)}); 'dual_encoder' is "
                             f"for ranking tasks (mewslix, lareqa)")
        self.max_length = self.max_length or published.query_max_length
        self.candidate_max_length = self.candidate_max_length or published.candidate_max_length
        if self.protocol == "dual_encoder":
            self.dual_learning_rate = self.dual_learning_rate or published.learning_rate
            self.dual_batch_size = self.dual_batch_size or published.batch_size
            self.dual_epochs = self.dual_epochs or published.epochs
        return self

    def representation(self) -> RepresentationSettings:
        return RepresentationSettings(**self.representation_choice(self.layer).model_dump(),
                                      max_length=self.max_length)

    def settings_record(self) -> dict:
        """What the results rows carry: everything that changes the numbers, nothing that
        names the encoder (the pairing of gains matches on it)."""
        record = {**self.representation().as_record(), "protocol": self.protocol,
                  "candidate_max_length": self.candidate_max_length}
        if get_task(self.task).format == "bitext_mining":
            record.update(margin=self.margin, margin_k=self.margin_k, mining_mode=self.mining_mode)
        if self.protocol == "dual_encoder":
            record.update(dual_learning_rate=self.dual_learning_rate,
                          dual_batch_size=self.dual_batch_size, dual_epochs=self.dual_epochs,
                          dual_max_steps=self.dual_max_steps)
        return record


class AlignmentParams(EncoderParams):
    task: str = Field("tatoeba", description="parallel data: a bitext retrieval task")
    target_run: str | None = Field(
        None, description="phase-(iii) run id: align the encoder that target fine-tuning left "
                          "(its model without the head) instead of encoder_run's; empty: none")
    layers: list[int] = Field(default_factory=list,
                              description="hidden_states indices; empty: every layer, 0 to the top")
    retrieval_layer: int | None = Field(
        None, description="also score the task's own retrieval metrics (both directions) at "
                          "this hidden_states index, from the same encoding pass; empty: none")
    max_length: int = 512

    @model_validator(mode="after")
    def _parallel(self) -> AlignmentParams:
        if not get_task(self.task).declared_format.parallel:
            raise ValueError(f"alignment needs parallel sentences (a bitext_retrieval task such "
                             f"as tatoeba); {self.task!r} is {get_task(self.task).format}")
        if self.target_run and self.encoder_run:
            raise ValueError("give encoder_run or target_run, not both: a target run names its "
                             "own phase-(ii) encoder")
        if self.layers and self.retrieval_layer is not None \
                and self.retrieval_layer not in self.layers:
            raise ValueError(f"retrieval_layer {self.retrieval_layer} is not among layers "
                             f"{self.layers}; add it, or leave layers empty (every layer)")
        return self

    def retrieval_settings(self, layer: int) -> dict:
        """The settings of the retrieval rows, as a retrieval run of the same representation
        and length records them (so the two kinds of run pair and compare)."""
        return {**self.representation_choice(layer).as_record(), "max_length": self.max_length,
                "protocol": "encoder", "candidate_max_length": self.max_length}


PARAMS: dict[str, type[PhaseParams]] = {
    "intermediate": IntermediateParams,
    "target": TargetParams,
    "zero_shot_eval": ZeroShotParams,
    "retrieval": RetrievalParams,
    "alignment": AlignmentParams,
}


# The weight folders of a finished run that later phases read (zero_shot_eval reads a target
# run's ``model/``; target, retrieval and alignment read an intermediate run's ``encoder/``).
# Every other weight folder (stage copies, per-task heads, dual encoders of retrieval runs,
# checkpoints) is only a by-product, which ``keep_weights: downstream`` deletes.
WEIGHTS_READ_DOWNSTREAM: dict[str, tuple[str, ...]] = {
    "intermediate": ("encoder",),
    "target": ("model",),
    "zero_shot_eval": (),
    "retrieval": (),
    "alignment": (),
}


class ParameterError(ValueError):
    """Parameters of a phase are invalid; the message names the field and the fix."""


def validate_params(phase: str, params: dict) -> dict:
    """Fill defaults, check names and types; returns the plain dict that identifies the run."""
    model = PARAMS[phase]
    try:
        validated = model(**params).model_dump()
    except (ValidationError, KeyError) as error:
        if isinstance(error, KeyError):
            problems = str(error.args[0])
        else:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'parameters'}: {e['msg']}" for e in error.errors()
            )
        raise ParameterError(
            f"phase {phase!r}: {problems}. Allowed parameters: {', '.join(model.model_fields)}"
        ) from None
    return {name: value for name, value in validated.items()
            if not (name in UNSET_NOT_IN_IDENTITY and value is None)}


VARIANT_SUFFIXES = {"mlm": "+mlm", "translated": "+translated"}


def intermediate_label(params: dict) -> str:
    """The ``intermediate_task`` of results downstream of a phase-(ii) run: the task, marked
    with Phang et al.'s variants so that they never pool with plain English training
    (``mnli+mlm``: continued multilingual MLM; ``mnli+translated``: machine-translated data)."""
    label = params["task"]
    if params.get("mlm_languages"):
        label += VARIANT_SUFFIXES["mlm"]
    if [language for language in params.get("train_languages", ["en"]) if language != "en"]:
        label += VARIANT_SUFFIXES["translated"]
    return label
