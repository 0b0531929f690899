"""Retrieval with an encoder as it is (Phang et al.) or as an XTREME-R dual encoder: one
procedure per retrieval format (bitext retrieval, BUCC mining, ranking), looked up by format.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from stilts_core.data.readers import write_jsonl
from stilts_core.data.releases import load_mining_corpus, load_ranking_set, load_training_pairs
from stilts_core.data.sources import local_root
from stilts_core.evaluation.retrieval import RepresentationSettings
from stilts_core.evaluation.scoring import bitext_scores, mining_scores, ranking_scores
from stilts_core.evaluation.submission import mining_records
from stilts_core.models.registry import load_tokenizer
from stilts_core.paths import atomic_write_text
from stilts_core.phases.assessment import assess
from stilts_core.phases.common import (
    available_languages,
    embedder,
    encoder_source,
    load_encoder,
    load_task_split,
    record_sources,
    result_row,
    start_phase,
    write_outputs,
)
from stilts_core.phases.params import EVERY_LANGUAGE, SMOKE_MAX_TRAIN, RetrievalParams
from stilts_core.tasks.registry import get_task
from stilts_core.tasks.spec import TaskSpec

logger = logging.getLogger(__name__)


def _dual_encoder(path: Path, p: RetrievalParams, task: TaskSpec, init_path: str,
                  settings: RepresentationSettings) -> tuple[str, dict]:
    """Fine-tune the dual encoder once per run (kept under ``dual_encoder/``; a rerun after a
    crash resumes its checkpoint or reuses the finished encoder)."""
    from stilts_core.training.dual_encoder import DualEncoderHyperparameters, train_dual_encoder

    folder = path / "dual_encoder"
    summary_path = folder / "summary.json"
    if summary_path.is_file():
        return str(folder / "encoder"), json.loads(summary_path.read_text())
    hyper = DualEncoderHyperparameters(
        learning_rate=p.dual_learning_rate, batch_size=p.dual_batch_size, epochs=p.dual_epochs,
        max_steps=p.dual_max_steps, query_max_length=p.max_length,
        candidate_max_length=p.candidate_max_length)
    pairs = load_training_pairs(task, p.sources(), limit=SMOKE_MAX_TRAIN if p.smoke else None)
    summary = train_dual_encoder(init_path, pairs, load_tokenizer(init_path), folder, settings,
                                 hyper, p.seed, progress_dir=path)
    atomic_write_text(summary_path, json.dumps(summary, indent=1))
    return str(folder / "encoder"), summary


def retrieval(params: dict, run_dir: str = "") -> dict:
    """A retrieval task with an encoder as it is (the base model or a phase-(ii) encoder), or,
    with ``protocol='dual_encoder'``, after fine-tuning it on the task's English pairs."""
    path, p = start_phase("retrieval", params, run_dir)
    task = get_task(p.task)
    model_path, intermediate_task, seed = encoder_source(p.model, p.encoder_run, "encoder_run")
    base_path = None if p.encoder_run else model_path
    settings = p.representation()
    record = p.settings_record()
    metrics = {"task": task.name, "split": task.evaluation_split, "settings": record}
    if p.protocol == "dual_encoder":
        model_path, metrics["dual_encoder"] = _dual_encoder(path, p, task, model_path, settings)
        seed = p.seed
    tokenizer, model = load_encoder(model_path)
    embed = embedder(model, tokenizer, settings, p.batch_size, path)
    provenance = assess(path, p.model, p, [(task, task.evaluation_split, EVERY_LANGUAGE)],
                         [p.encoder_run], base_path).label
    record_sources(path, p, [task])

    def row(language: str, split: str, metric: str, value: float) -> dict:
        return result_row(p.model, intermediate_task, task.name, language, seed, split, metric, value,
                          provenance, path, record)

    rows = _RETRIEVAL_PROCEDURES[task.format](task, p, embed, path, metrics, row)
    write_outputs(path, metrics, rows)
    return metrics


def _bitext(task: TaskSpec, p: RetrievalParams, embed, path: Path, metrics: dict, row) -> list:
    rows = []
    for language in p.languages or available_languages(task, "test", p, path):
        pairs = load_task_split(task, "test", language, p, "eval")
        scores, records = bitext_scores(task, pairs, embed, p.max_length, p.candidate_max_length,
                                        language)
        metrics[language] = {**scores, "pairs": len(pairs)}
        write_jsonl(path / "predictions" / f"test-{language}.jsonl", records)
        rows += [row(language, "test", name, value) for name, value in scores.items()]
        logger.info(f"{task.name} {language}: xx->en {scores['accuracy']:.2f}, "
                    f"en->xx {scores['accuracy_en_to_xx']:.2f} ({len(pairs)} pairs)")
    return rows


def _mining(task: TaskSpec, p: RetrievalParams, embed, path: Path, metrics: dict, row) -> list:
    """BUCC: per language, the threshold tuned on the dev gold is applied to test; the test
    gold's own best threshold is reported only as ``oracle_f1``."""

    root = local_root(task, p.sources())
    rows = []
    for language in p.languages or list(task.languages):
        dev = load_mining_corpus(task, "validation", language, root)
        test = load_mining_corpus(task, "test", language, root)
        result = mining_scores(task, dev, test, embed, p.max_length, p.margin_k, p.margin,
                               p.mining_mode, language)
        metrics[language] = {key: value for key, value in result.items() if key != "predicted"}
        write_jsonl(path / "predictions" / f"test-{language}.jsonl",
                            mining_records(result["predicted"], sorted(test.gold)))
        rows += [row(language, "test", name, value) for name, value in result["test"].items()]
        rows += [row(language, "validation", name, value)
                 for name, value in result["validation"].items()]
        rows.append(row(language, "test", "oracle_f1", result["oracle_f1"]))
        logger.info(f"{task.name} {language}: test F1 {result['test']['f1']:.2f} at the dev-tuned "
                    f"threshold {result['threshold']:.4f} (dev F1 {result['validation']['f1']:.2f}; "
                    f"oracle test F1 {result['oracle_f1']:.2f})")
    return rows


def _ranking(task: TaskSpec, p: RetrievalParams, embed, path: Path, metrics: dict, row) -> list:
    split = task.evaluation_split
    ranking_set = load_ranking_set(task, split, local_root(task, p.sources()))
    present = sorted(set(ranking_set.query_languages))
    languages = p.languages or [lang for lang in task.languages if lang in present]
    results = ranking_scores(task, ranking_set, embed, p.max_length, p.candidate_max_length,
                             languages)
    rows = []
    for language, result in results.items():
        metrics[language] = {**result["scores"], "queries": len(result["records"]),
                             "candidates": len(ranking_set.candidate_ids)}
        write_jsonl(path / "predictions" / f"{split}-{language}.jsonl", result["records"])
        rows += [row(language, split, name, value) for name, value in result["scores"].items()]
        logger.info(f"{task.name} {language}: mAP@20 {result['scores']['map_at_20']:.2f} "
                    f"({len(result['records'])} queries, {len(ranking_set.candidate_ids)} candidates)")
    return rows


_RETRIEVAL_PROCEDURES = {"bitext_retrieval": _bitext, "bitext_mining": _mining, "ranking": _ranking}
