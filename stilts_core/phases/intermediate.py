"""Phase (ii): train the pretrained encoder on an English intermediate task or mixture."""

from __future__ import annotations

import datasets

from stilts_core.models.registry import load_tokenizer, resolve_model
from stilts_core.phases.assessment import assess
from stilts_core.phases.common import (
    dev_rows,
    head_rows,
    load_task_split,
    record_sources,
    start_phase,
    write_outputs,
)
from stilts_core.phases.params import IntermediateParams
from stilts_core.tasks.registry import MIXTURES, get_mixture, get_task
from stilts_core.tasks.spec import TaskSpec
from stilts_core.training.inputs import Hyperparameters, prepare_mlm, prepare_task
from stilts_core.training.trainer import train


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
            head_rows(load_task_split(text, "train", language, p, "train"), p.mlm_examples_per_language)
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
    path, p = start_phase("intermediate", params, run_dir)
    init_path = resolve_model(p.model)
    provenance = assess(path, p.model, p, intermediate_reads(p), [], init_path).label
    tokenizer = load_tokenizer(init_path)
    hyper = p.hyperparameters()
    tasks, used = _intermediate_tasks(p, tokenizer, hyper)
    record_sources(path, p, used)
    mixture = get_mixture(p.task) if p.task in MIXTURES else None
    temperature = p.temperature or (mixture.temperature if mixture else 1.0)
    cap = p.mixture_cap or (mixture.cap if mixture else None)
    metrics = train(init_path, tasks, tokenizer, path, hyper, p.seed, temperature, cap,
                    progress_dir=path)
    metrics.update(hyperparameters=hyper.model_dump(), temperature=temperature, cap=cap,
                   train_examples={t.name: len(t.train) for t in tasks})
    rows = [row for name, learning in metrics["learning"].items()
            for row in dev_rows(p.model, p.task, name, "en", p.seed, provenance, path, learning)]
    write_outputs(path, metrics, rows)
    return metrics
