"""Zero-shot evaluation: a phase-(iii) model scored in every language of its task."""

from __future__ import annotations

import logging

from stilts_core.data.readers import write_jsonl
from stilts_core.evaluation.scoring import predict, references, score_language
from stilts_core.evaluation.submission import prediction_records
from stilts_core.formats import Encoding, model_head
from stilts_core.models.registry import load_tokenizer
from stilts_core.phases.assessment import assess
from stilts_core.phases.common import (
    available_languages,
    cuda_available,
    each_language,
    encoder_source,
    load_task_split,
    record_sources,
    result_row,
    start_phase,
    write_metrics,
)
from stilts_core.phases.params import EVERY_LANGUAGE, ParameterError
from stilts_core.runs.execution import load_done_run
from stilts_core.tasks.registry import get_task

logger = logging.getLogger(__name__)


def zero_shot_eval(params: dict, run_dir: str = "") -> dict:
    """Score a target model on the evaluation split of every language of its task: every score
    of the task's metrics per language into the results table, and the raw predictions (with
    the gold side) per language under ``predictions/`` for export and re-scoring."""
    import transformers


    path, p = start_phase("zero_shot_eval", params, run_dir)
    if not p.target_run:
        raise ParameterError("zero_shot_eval needs target_run (the run id of a target run)")
    target_dir, tp = load_done_run(p.target_run, "model")
    _, intermediate_task, _ = encoder_source(tp["model"], tp["intermediate_run"],
                                             "intermediate_run")
    task = get_task(tp["task"])
    model_dir = str(target_dir / "model")
    tokenizer = load_tokenizer(model_dir)
    model = getattr(transformers, model_head(task.format).auto_class).from_pretrained(model_dir)
    model.to("cuda" if cuda_available() else "cpu")
    labels = tuple(model.config.id2label[i] for i in range(len(model.config.id2label)))
    encoding = Encoding(max_length=tp["max_length"] or task.defaults.max_length,
                        doc_stride=tp["doc_stride"], labels=labels)
    split = task.evaluation_split
    languages = p.languages or available_languages(task, split, p, path)
    provenance = assess(path, tp["model"], p, [(task, split, EVERY_LANGUAGE)], [p.target_run]).label
    record_sources(path, p, [task])

    def score(language: str) -> tuple[dict, list]:
        examples = load_task_split(task, split, language, p, "eval")
        predicted = predict(task, model, tokenizer, examples, encoding, p.batch_size)
        scores = score_language(task, predicted, references(task, examples), language)
        write_jsonl(path / "predictions" / f"{split}-{language}.jsonl",
                            prediction_records(task, examples, predicted))
        shown = ", ".join(f"{name} {value:.2f}" for name, value in scores.items())
        logger.info(f"{task.name} {language}: {shown} ({len(examples)} examples)")
        return {**scores, "examples": len(examples)}, [
            result_row(tp["model"], intermediate_task, task.name, language, tp["seed"], split, name,
                       value, provenance, path) for name, value in scores.items()]

    metrics = {"task": task.name, "split": split,
               **each_language(path, task.name, languages, score)}
    write_metrics(path, metrics)
    return metrics
