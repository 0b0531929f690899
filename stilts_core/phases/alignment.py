"""Layer-wise cross-lingual alignment of an encoder with English on parallel sentences."""

from __future__ import annotations

from stilts_core.evaluation.alignment import METRIC_PREFIX, alignment_scores
from stilts_core.evaluation.retrieval import RepresentationSettings, embed_layers
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
from stilts_core.phases.params import EVERY_LANGUAGE
from stilts_core.tasks.registry import get_task


def alignment(params: dict, run_dir: str = "") -> dict:
    """Layer-wise alignment with English on parallel sentences: every measure of
    :mod:`stilts_core.evaluation.alignment` for every layer and language, from one forward pass per batch."""
    path, p = start_phase("alignment", params, run_dir)
    task = get_task(p.task)
    model_path, intermediate_task, seed = encoder_source(p.model, p.encoder_run, "encoder_run")
    tokenizer, model = load_encoder(model_path)
    layers = p.layers or list(range(model.config.num_hidden_layers + 1))
    provenance = assess(path, p.model, p, [(task, "test", EVERY_LANGUAGE)], [p.encoder_run],
                        None if p.encoder_run else model_path).label
    record_sources(path, p, [task])

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
            rows += [result_row(p.model, intermediate_task, task.name, language, seed, "test",
                                METRIC_PREFIX + name, value, provenance, path, settings)
                     for name, value in by_layer[layer].items()]
        best = max(layers, key=lambda layer: by_layer[layer]["retrieval_accuracy"])
        print(f"alignment {language}: best retrieval at layer {best} "
              f"({by_layer[best]['retrieval_accuracy']:.1f}%, {len(pairs)} pairs)")
        return by_layer, rows

    languages = p.languages or available_languages(task, "test", p, path)
    metrics = {"task": task.name, "split": "test", "layers": layers,
               **each_language(path, task.name, languages, score)}
    write_metrics(path, metrics)
    return metrics
