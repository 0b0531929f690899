"""The four phase runs that the notebooks call: parameters, validation and the work itself.

Each phase has a parameter model whose fields are exactly the names in its notebook's
``parameters`` cell (a test keeps the two in step). Defaults follow the published setup
(jiant's XTREME recipe, Phang et al. 2020) on XLM-R Large; the embedded offline default config
(``configs/smoke.yaml``) overrides them for the tiny model.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import data as data_io
from .modelling import load_tokenizer, provenance_of, resolve_model
from .paths import REPO_ROOT, atomic_write_text, fixtures_dir
from .results import NO_INTERMEDIATE, write_run_results
from .retrieval import RepresentationSettings, bitext_retrieval_accuracy, encode
from .runs import load_done_run, run_id, run_path
from .tasks import TaskSpec, get_task
from .training import Hyperparameters, train_classifier

SMOKE_MAX_TRAIN = 1000
SMOKE_MAX_EVAL = 200


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _DataParams(_Params):
    data_root: str = Field(
        "data/fixtures",
        description="'hub' for the Hugging Face hub, else a local root (<root>/<task>/<split>-<lang>"
                    ".jsonl); relative paths are from the repository root",
    )
    smoke: bool = Field(False, description="truncate every split to a few hundred examples")


class _TrainParams(_DataParams):
    model: str = "xlm-roberta-large"
    seed: int = 1
    learning_rate: float = 1e-5
    batch_size: int = 32
    per_device_batch_size: int = 8
    epochs: float = 3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 256
    eval_steps: int = 1000
    early_stopping_patience: int = 30

    def hyperparameters(self) -> Hyperparameters:
        return Hyperparameters(**{k: getattr(self, k) for k in Hyperparameters.model_fields})

    @model_validator(mode="after")
    def _valid_hyperparameters(self) -> _TrainParams:
        """Refuse at planning time, not after the data is loaded."""
        self.hyperparameters()
        return self


class IntermediateParams(_TrainParams):
    task: str = "mnli"


class TargetParams(_TrainParams):
    task: str = "xnli"
    intermediate_run: str = Field(
        "", description="run id of the phase-(ii) run whose encoder to start from; empty: the baseline"
    )


class ZeroShotParams(_DataParams):
    target_run: str = Field("", description="run id of the phase-(iii) target run to score")
    languages: list[str] = Field(default_factory=list, description="empty: every language of the task")
    batch_size: int = 64


class RetrievalParams(_DataParams):
    model: str = "xlm-roberta-large"
    task: str = "tatoeba"
    encoder_run: str = Field("", description="phase-(ii) run id; empty: the base encoder")
    languages: list[str] = Field(default_factory=list, description="empty: every language of the task")
    layer: int = Field(
        14, description="hidden_states index, 0 is the embeddings; 14 is XTREME's Tatoeba choice"
    )
    pooling: str = Field("mean", pattern="^(mean|first)$")
    include_special_tokens: bool = False
    max_length: int = 128
    batch_size: int = 64


PARAMS: dict[str, type[_Params]] = {
    "intermediate": IntermediateParams,
    "target": TargetParams,
    "zero_shot_eval": ZeroShotParams,
    "retrieval": RetrievalParams,
}


class ParameterError(ValueError):
    """Parameters of a phase are invalid; the message names the field and the fix."""


def validate_params(phase: str, params: dict) -> dict:
    """Fill defaults, check names and types; returns the plain dict that identifies the run."""
    model = PARAMS[phase]
    try:
        return model(**params).model_dump()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
        )
        raise ParameterError(
            f"phase {phase!r}: {problems}. Allowed parameters: {', '.join(model.model_fields)}"
        ) from None


def _start(phase: str, params: dict, run_dir: str) -> tuple[Path, BaseModel]:
    _quiet_libraries()
    validated = validate_params(phase, params)
    path = Path(run_dir) if run_dir else run_path(run_id(phase, validated))
    path.mkdir(parents=True, exist_ok=True)
    return path, PARAMS[phase](**validated)


def _data_root(p: _DataParams) -> Path | str:
    return "hub" if p.data_root == "hub" else (REPO_ROOT / p.data_root).resolve()


def _provenance(model: str, p: _DataParams) -> str:
    """Full-scale only for a registered full-size model on real data without truncation."""
    on_fixtures = p.data_root != "hub" and _data_root(p) == fixtures_dir().resolve()
    if p.smoke or on_fixtures:
        return "smoke run"
    return provenance_of(model)


def _load(task: TaskSpec, split: str, language: str, p: _DataParams, limit: int):
    dataset = data_io.load_split(task, split, language, _data_root(p))
    return dataset.select(range(min(limit, len(dataset)))) if p.smoke else dataset


def _write_outputs(path: Path, metrics: dict, rows: list[dict]) -> None:
    atomic_write_text(path / "metrics.json", json.dumps(metrics, indent=1, default=str))
    write_run_results(path, rows)


def _row(model: str, intermediate: str, target: str, language: str, seed, split: str,
         metric: str, value: float, provenance: str, path: Path, settings: dict | None = None):
    return {"model": model, "intermediate_task": intermediate, "target_task": target,
            "language": language, "seed": seed, "split": split, "metric": metric,
            "value": value, "provenance": provenance, "run_id": path.name,
            "settings": json.dumps(settings or {}, sort_keys=True)}


def _train_phase(path: Path, p: _TrainParams, init_path: str, intermediate: str) -> dict:
    task = get_task(p.task)
    tokenizer = load_tokenizer(init_path)
    language = task.train_language
    train = data_io.tokenize_pairs(_load(task, "train", language, p, SMOKE_MAX_TRAIN),
                                   tokenizer, task, p.max_length)
    dev = data_io.tokenize_pairs(_load(task, "validation", language, p, SMOKE_MAX_EVAL),
                                 tokenizer, task, p.max_length)
    metrics = train_classifier(init_path, task, train, dev, tokenizer, path,
                               p.hyperparameters(), p.seed)
    metrics.update(train_examples=len(train), dev_examples=len(dev))
    value = metrics[f"dev_{task.metric}"]
    rows = [_row(p.model, intermediate, task.name, language, p.seed, "validation", task.metric,
                 value, _provenance(p.model, p), path)]
    _write_outputs(path, metrics, rows)
    return metrics


def intermediate(params: dict, run_dir: str = "") -> dict:
    """Phase (ii): train the pretrained encoder on an English intermediate task."""
    path, p = _start("intermediate", params, run_dir)
    task = get_task(p.task)
    if task.role != "intermediate":
        raise ParameterError(f"task {p.task!r} is a {task.role} task, not an intermediate task")
    return _train_phase(path, p, resolve_model(p.model), intermediate=p.task)


def target(params: dict, run_dir: str = "") -> dict:
    """Phase (iii): fine-tune on the target task's English training data.

    Starts from the phase-(ii) encoder of ``intermediate_run`` under a fresh head, or from the
    pretrained model for the baseline: the same code either way.
    """
    path, p = _start("target", params, run_dir)
    if get_task(p.task).role != "target":
        raise ParameterError(f"task {p.task!r} is not a target task")
    init_path, intermediate_task, _ = _encoder_source(p.model, p.intermediate_run,
                                                      "intermediate_run")
    return _train_phase(path, p, init_path, intermediate=intermediate_task)


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
    return str(upstream / "encoder"), upstream_params["task"], upstream_params["seed"]


def zero_shot_eval(params: dict, run_dir: str = "") -> dict:
    """Score a target model on the test split of every language of its task."""
    from transformers import AutoModelForSequenceClassification

    from .evaluation import get_metric, predict_classes

    path, p = _start("zero_shot_eval", params, run_dir)
    if not p.target_run:
        raise ParameterError("zero_shot_eval needs target_run (the run id of a target run)")
    target_dir, tp = load_done_run(p.target_run)
    intermediate_task = NO_INTERMEDIATE
    if tp["intermediate_run"]:
        intermediate_task = load_done_run(tp["intermediate_run"])[1]["task"]
    task = get_task(tp["task"])
    metric = get_metric(task.metric)
    model_dir = str(target_dir / "model")
    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    model.to("cuda" if _cuda() else "cpu")
    languages = p.languages or _available_languages(task, "test", p)
    provenance = _provenance(tp["model"], p)
    metrics, rows = {}, []
    for language in languages:
        test = _load(task, "test", language, p, SMOKE_MAX_EVAL)
        features = data_io.tokenize_pairs(test, tokenizer, task, tp["max_length"])
        predicted = predict_classes(model, tokenizer, features, p.batch_size)
        value = metric.compute(predicted.tolist(), test["label"])
        metrics[language] = {task.metric: value, "examples": len(test)}
        data_io.write_jsonl(path / "predictions" / f"test-{language}.jsonl",
                            [{"prediction": task.labels[i]} for i in predicted])
        rows.append(_row(tp["model"], intermediate_task, task.name, language, tp["seed"], "test",
                         task.metric, value, provenance, path))
        print(f"{task.name} {language}: {task.metric} {value:.2f} ({len(test)} examples)")
    _write_outputs(path, metrics, rows)
    return metrics


def retrieval(params: dict, run_dir: str = "") -> dict:
    """Bitext retrieval with an encoder as it is: the base model or a phase-(ii) encoder."""
    from transformers import AutoModel

    path, p = _start("retrieval", params, run_dir)
    task = get_task(p.task)
    if task.format != "bitext_retrieval":
        raise ParameterError(f"task {p.task!r} is not a bitext retrieval task")
    model_path, intermediate_task, seed = _encoder_source(p.model, p.encoder_run, "encoder_run")
    settings = RepresentationSettings(layer=p.layer, pooling=p.pooling,
                                      include_special_tokens=p.include_special_tokens,
                                      max_length=p.max_length)
    tokenizer = load_tokenizer(model_path)
    model = AutoModel.from_pretrained(model_path).to("cuda" if _cuda() else "cpu")
    languages = p.languages or _available_languages(task, "test", p)
    provenance = _provenance(p.model, p)
    source_field, target_field = task.text_fields
    metrics, rows = {"settings": settings.as_record()}, []
    for language in languages:
        pairs = _load(task, "test", language, p, SMOKE_MAX_EVAL)
        source = encode(pairs[source_field], model, tokenizer, settings, p.batch_size)
        english = encode(pairs[target_field], model, tokenizer, settings, p.batch_size)
        scores = bitext_retrieval_accuracy(source, english)
        metrics[language] = {**scores, "pairs": len(pairs)}
        for direction, metric_name in (("xx->en", "accuracy"), ("en->xx", "accuracy_en_to_xx")):
            rows.append(_row(p.model, intermediate_task, task.name, language, seed, "test",
                             metric_name, scores[direction], provenance, path,
                             settings.as_record()))
        print(f"{task.name} {language}: xx->en {scores['xx->en']:.2f}, "
              f"en->xx {scores['en->xx']:.2f} ({len(pairs)} pairs)")
    _write_outputs(path, metrics, rows)
    return metrics


def _available_languages(task: TaskSpec, split: str, p: _DataParams) -> list[str]:
    """On the hub every declared language; in a local root those that have a file."""
    root = _data_root(p)
    if root == "hub":
        return list(task.evaluation_languages)
    found = [lang for lang in task.evaluation_languages
             if data_io.local_split_path(root, task, split, lang).is_file()]
    if not found:
        raise data_io.DataSourceError(
            f"{root / task.name}: no {split} files for task {task.name!r}; expected "
            f"{split}-<lang>.jsonl for languages among {', '.join(task.languages)}"
        )
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
