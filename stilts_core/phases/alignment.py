"""Layer-wise cross-lingual alignment of an encoder with English on parallel sentences: the
pretrained encoder, a phase-(ii) encoder, or the encoder a target fine-tuning left. One encoding
pass per sentence serves every layer, every measure and, with ``retrieval_layer``, the task's
own retrieval scores."""

from __future__ import annotations

import logging

from stilts_core.data.readers import write_jsonl
from stilts_core.evaluation.alignment import METRIC_PREFIX, alignment_scores
from stilts_core.evaluation.retrieval import embed_layers
from stilts_core.evaluation.scoring import bitext_vector_scores
from stilts_core.models.registry import retrieval_protocol
from stilts_core.phases.assessment import assess
from stilts_core.phases.common import (
    available_languages,
    each_language,
    encoder_source,
    load_encoder,
    load_task_split,
    record_sources,
    result_row,
    start_phase,
    write_metrics,
)
from stilts_core.phases.params import EVERY_LANGUAGE, AlignmentParams, intermediate_label
from stilts_core.runs.execution import load_done_run
from stilts_core.runs.results import NO_INTERMEDIATE
from stilts_core.tasks.registry import get_task

logger = logging.getLogger(__name__)


def aligned_encoder(p: AlignmentParams) -> tuple[str, str, int | None, dict, list[str]]:
    """Path, intermediate task, seed, the settings that mark the point in training (after
    which target fine-tuning, if any) and the upstream runs of the encoder to align."""
    if not p.target_run:
        path, intermediate, seed = encoder_source(p.model, p.encoder_run, "encoder_run")
        return path, intermediate, seed, {}, [p.encoder_run]
    target_dir, target = load_done_run(p.target_run, "model")
    if target["model"] != p.model:
        raise ValueError(f"target_run {p.target_run!r} trained {target['model']!r}, but this "
                         f"run's model is {p.model!r}")
    intermediate = NO_INTERMEDIATE
    if target["intermediate_run"]:
        intermediate = intermediate_label(load_done_run(target["intermediate_run"])[1])
    return (str(target_dir / "model"), intermediate, target["seed"],
            {"fine_tuned_on": target["task"]}, [p.target_run])


def alignment(params: dict, run_dir: str = "") -> dict:
    """Layer-wise alignment with English on parallel sentences: every measure of
    :mod:`stilts_core.evaluation.alignment` for every layer and language, from one forward pass
    per batch; with ``retrieval_layer``, the task's retrieval scores from the same vectors."""
    path, p = start_phase("alignment", params, run_dir)
    task = get_task(p.task)
    model_path, intermediate_task, seed, stage, upstream = aligned_encoder(p)
    tokenizer, model = load_encoder(model_path)
    layers = p.layers or list(range(model.config.num_hidden_layers + 1))
    base = None if p.encoder_run or p.target_run else model_path
    provenance = assess(path, p.model, p, [(task, "test", EVERY_LANGUAGE)], upstream, base).label
    record_sources(path, p, [task])

    def row(language: str, metric: str, value: float, settings: dict) -> dict:
        return result_row(p.model, intermediate_task, task.name, language, seed, "test", metric,
                          value, provenance, path, {**settings, **stage})

    def score(language: str) -> tuple[dict, list]:
        pairs = load_task_split(task, "test", language, p, "eval")
        sides = [embed_layers(pairs[column], model, tokenizer, layers, p.pooling,
                              p.include_special_tokens, p.max_length, p.batch_size,
                              prefix=p.prefix or "")
                 for column in ("text", "text_pair")]
        by_layer, rows = {}, []
        for slot, layer in enumerate(layers):
            settings = {**p.representation_choice(layer).as_record(), "max_length": p.max_length}
            by_layer[layer] = alignment_scores(sides[0][slot], sides[1][slot])
            rows += [row(language, METRIC_PREFIX + name, value, settings)
                     for name, value in by_layer[layer].items()]
        entry = {"layers": by_layer, "pairs": len(pairs)}
        if p.retrieval_layer is not None:
            slot = layers.index(p.retrieval_layer)
            scores, records = bitext_vector_scores(task, sides[0][slot], sides[1][slot], language)
            write_jsonl(path / "predictions" / f"test-{language}.jsonl", records)
            rows += [row(language, name, value, p.retrieval_settings(p.retrieval_layer))
                     for name, value in scores.items()]
            entry["retrieval"] = scores
        best = max(layers, key=lambda layer: by_layer[layer]["retrieval_accuracy"])
        logger.info(f"alignment {language}: best retrieval at layer {best} "
                    f"({by_layer[best]['retrieval_accuracy']:.1f}%, {len(pairs)} pairs)")
        return entry, rows

    languages = p.languages or available_languages(task, "test", p, path)
    declared = retrieval_protocol(p.model)
    metrics = {"task": task.name, "split": "test", "layers": layers,
               "retrieval_layer": p.retrieval_layer,
               "representation": {"pooling": p.pooling, "include_special_tokens":
                                  p.include_special_tokens, "prefix": p.prefix or "",
                                  "max_length": p.max_length,
                                  "declared_by": declared.source if declared else None},
               **stage, **each_language(path, task.name, languages, score)}
    write_metrics(path, metrics)
    return metrics
