"""What every phase does the same way: start in the run's folder, read a split at the run's size,
record where the data came from, score language by language with resume, and write the results.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import datasets
import threadpoolctl
from pydantic import BaseModel

from stilts_core import logs
from stilts_core.data.loading import load_split, sample_rows
from stilts_core.data.pack import is_pack, pack_record
from stilts_core.data.sources import DataSourceError, has_local_split, resolved_revision
from stilts_core.evaluation.learning import RECORD_METRICS
from stilts_core.evaluation.retrieval import RepresentationSettings, encode
from stilts_core.models.registry import load_tokenizer, resolve_model
from stilts_core.paths import atomic_write_text, hub_location, portable_location
from stilts_core.phases.params import (
    PARAMS,
    SMOKE_MAX_EVAL,
    SMOKE_MAX_TRAIN,
    DataParams,
    ParameterError,
    intermediate_label,
    validate_params,
)
from stilts_core.runs.execution import load_done_run, run_id, run_path, run_threads
from stilts_core.runs.results import NO_INTERMEDIATE, result_file, write_run_results
from stilts_core.tasks.spec import TaskSpec
from stilts_core.training.progress import Progress, write_line

logger = logging.getLogger(__name__)


def start_phase(phase: str, params: dict, run_dir: str) -> tuple[Path, BaseModel]:
    """Validate ``params`` and make the run's folder (``run_dir``, else the folder of the run
    id the parameters hash to); returns it with the parameter model."""
    logs.configure()
    quiet_libraries()
    validated = validate_params(phase, params)
    path = Path(run_dir) if run_dir else run_path(run_id(phase, validated))
    path.mkdir(parents=True, exist_ok=True)
    compute_with_threads(run_threads(validated))
    return path, PARAMS[phase](**validated)


def compute_with_threads(threads: int) -> None:
    """Compute with exactly ``threads`` threads in torch and in every BLAS library, whatever the
    environment the scheduler gave the process, so that a run's numbers do not depend on how
    many workers shared the machine."""
    import torch

    torch.set_num_threads(threads)
    threadpoolctl.threadpool_limits(threads)


def head_rows(dataset, limit: int):
    """The first ``limit`` rows (the smoke cut: the same rows every time)."""
    return dataset.select(range(min(limit, len(dataset))))


SMOKE_LIMITS = {"train": SMOKE_MAX_TRAIN, "eval": SMOKE_MAX_EVAL}


def load_task_split(task: TaskSpec, split: str, language: str, p: DataParams, purpose: str,
                    translated: bool = False):
    """A split for training (``purpose='train'``) or for scoring and early stopping
    (``'eval'``), cut to the smoke size, or sampled down to the run's cap for that purpose."""
    cap = p.max_train_examples if purpose == "train" else p.max_eval_examples
    if p.smoke:
        dataset = load_split(task, split, language, p.sources(), translated=translated)
        return sample_rows(head_rows(dataset, SMOKE_LIMITS[purpose]), cap)
    return load_split(task, split, language, p.sources(), translated=translated,
                              sample=cap)


def record_sources(path: Path, p: DataParams, tasks: list[TaskSpec]) -> None:
    """Which files or hub commits each task's data came from, beside the run's results."""
    sources = p.sources()
    record = {}
    for task in {task.name: task for task in tasks}.values():  # one hub lookup per task
        root = sources.root_for(task)
        if is_pack(root):
            record[task.name] = {"pack": portable_location(root), "splits": pack_record(task.name)}
        elif root is not None:
            record[task.name] = {"local_root": portable_location(root)}
        else:  # the commit it resolved to, or the revision asked for when the hub is out of reach
            revision = sources.revisions.get(task.name, task.hub.revision)
            commit = resolved_revision(task, revision)
            record[task.name] = {"hub": hub_location(task.hub.path, commit or revision),
                                 "revision": revision, "resolved_commit": commit}
    atomic_write_text(path / "data_sources.json", json.dumps(record, indent=1))


def write_metrics(path: Path, metrics: dict) -> None:
    """The run's summary (``metrics.json``), which its notebook also returns."""
    atomic_write_text(path / "metrics.json", json.dumps(metrics, indent=1, default=str))


def write_outputs(path: Path, metrics: dict, rows: list[dict]) -> None:
    """The summary and the result rows of a phase that writes them all at the end."""
    write_metrics(path, metrics)
    write_run_results(path, rows)


def each_language(path: Path, task: str, languages: list[str], score) -> dict:
    """``score(language) -> (metrics entry, rows)`` for each language, keeping each language's
    result rows as soon as it is scored; a rerun after a crash reads finished languages back
    instead of scoring them again (the rows file, written last, marks a language finished).
    Each language scored is reported in the run's progress log. Returns the metrics entries by
    language."""
    def scored_before(language: str) -> bool:
        finished = result_file(path, task, language)
        return finished.is_file() and finished.with_suffix(".json").is_file()

    metrics = {}
    done = sum(map(scored_before, languages))
    progress = Progress(path, f"score {task} language", len(languages), done=done)
    for language in languages:
        entry_file = result_file(path, task, language).with_suffix(".json")
        if scored_before(language):
            metrics[language] = json.loads(entry_file.read_text())
            logger.info(f"{task} {language}: scored before the run was interrupted, read back")
            continue
        metrics[language], rows = score(language)
        atomic_write_text(entry_file, json.dumps(metrics[language], default=str))
        write_run_results(path, rows)
        done += 1
        progress.update(done, f"{language} scored")
    return metrics


def result_row(model: str, intermediate: str, target: str, language: str, seed, split: str,
               metric: str, value: float, provenance: str, path: Path, settings: dict | None = None):
    """One tidy result row (:data:`stilts_core.runs.results.COLUMNS`) of this run."""
    return {"model": model, "intermediate_task": intermediate, "target_task": target,
            "language": language, "seed": seed, "split": split, "metric": metric,
            "value": value, "provenance": provenance, "run_id": path.name,
            "settings": json.dumps(settings or {}, sort_keys=True)}


def dev_rows(model: str, intermediate: str, task: str, language: str, seed, provenance: str,
             path: Path, learning: dict) -> list[dict]:
    """A training run's dev score on ``task`` and its learning check
    (:func:`stilts_core.evaluation.learning.learning_record`) as result rows: the score under
    the dev metric's name, then its interval, the floor and the examples scored."""
    rows = [(learning["metric"], learning["value"])] + [
        (name, learning[field]) for field, name in RECORD_METRICS.items()]
    return [result_row(model, intermediate, task, language, seed, "validation", metric, value,
                       provenance, path) for metric, value in rows]


def encoder_source(model: str, intermediate_run: str, field: str) -> tuple[str, str, int | None]:
    """Path, intermediate task and seed of an encoder: a phase-(ii) run's, or the pretrained
    model's (no intermediate task, no seed)."""
    if not intermediate_run:
        return resolve_model(model), NO_INTERMEDIATE, None
    upstream, upstream_params = load_done_run(intermediate_run, "encoder")
    if upstream_params["model"] != model:
        raise ParameterError(
            f"{field} {intermediate_run!r} trained {upstream_params['model']!r}, "
            f"but this run's model is {model!r}"
        )
    return str(upstream / "encoder"), intermediate_label(upstream_params), upstream_params["seed"]


def load_encoder(path: str):
    """Tokenizer and encoder (no head) at ``path``, on the GPU when there is one."""
    from transformers import AutoModel

    return load_tokenizer(path), AutoModel.from_pretrained(path).to("cuda" if cuda_available() else "cpu")


def embedder(model, tokenizer, settings: RepresentationSettings, batch_size: int, path: Path):
    """``embed(texts, max_length)``: the run's sentence vectors at either side's length; how
    far the encoding is (its first and last batch, and one every 30 s between: ``encode``
    spaces them) goes to the notebook and to the run's (``path``) progress log."""
    def report(message: str) -> None:
        logger.info(message)
        write_line(path, message)

    def embed(texts, max_length: int):
        return encode(list(texts), model, tokenizer,
                      settings.model_copy(update={"max_length": max_length}), batch_size,
                      progress=report)
    return embed


def available_languages(task: TaskSpec, split: str, p: DataParams, path: Path) -> list[str]:
    """On the hub every declared language; in a local root those that have a file (or the
    task's release files). The others are skipped, and said so: in the log and in the run's
    ``skipped_languages.json``."""
    root = p.sources().root_for(task)
    if root is None:
        return list(task.evaluation_languages)
    found = [lang for lang in task.evaluation_languages
             if has_local_split(root, task, split, lang)]
    if not found:
        where = ("the shared data pack's layout (stilts_core.data.pack.PACK_LAYOUT)"
                 if is_pack(root) else f"{split}-<lang>.jsonl")
        raise DataSourceError(
            f"{root / task.name}: no {split} files for task {task.name!r}; expected "
            f"{where} for languages among {', '.join(task.languages)}"
        )
    skipped = {lang: f"no {split} file under {portable_location(root / task.name)}"
               for lang in task.evaluation_languages if lang not in found}
    if skipped:
        logger.info(f"{task.name}: skipping {len(skipped)} of {len(task.evaluation_languages)} "
                    f"languages without local {split} files ({', '.join(skipped)}); name them in "
                    f"'languages' to make a missing file an error")
    atomic_write_text(path / "skipped_languages.json",
                      json.dumps({"task": task.name, "split": split, "root": portable_location(root),
                                  "skipped": skipped}, indent=1) + "\n")
    return found


def cuda_available() -> bool:
    """Whether a GPU is there (torch is imported only when a phase asks)."""
    import torch

    return torch.cuda.is_available()


def quiet_libraries() -> None:
    """Keep executed notebooks readable: library load reports and progress bars off."""
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
