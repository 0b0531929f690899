"""Loading task data from the hub or from local files, in one canonical schema per format.

Local data lives at ``<root>/<task>/<split>-<lang>.<ext>``: JSON lines in the hub schema
(``.jsonl``), or the original release formats: SQuAD-format JSON (``.json``: SQuAD, XQuAD,
MLQA, TyDiQA-GoldP), CSV (``.csv``: ANLI, Cosmos QA releases) and CoNLL-U (``.conllu``: UD
treebanks). The bundled fixtures (``data/fixtures``) are such a root, so the offline default
runs exactly the code path an air-gapped cluster uses. The shared data pack (``data_root:
pack``, or any root holding its ``MANIFEST.tsv``) is read through its declared layout instead
(:mod:`stilts_core.data.pack`): release file names and formats, and stand-in splits said as such.

Whatever the source, :func:`load_split` returns the canonical columns of the task's format:

* classification, retrieval and MLM text: ``text``, ``text_pair`` (pairs), ``label`` (classification)
* multiple choice: ``context``, ``question``, ``choices`` (list), ``label`` (choice index)
* token classification: ``tokens``, ``tags`` (tag *names*; ids come from the label set)
* extractive QA: the SQuAD schema ``id``, ``context``, ``question``, ``answers``
"""

from __future__ import annotations

from pathlib import Path

import datasets

from stilts_core.data import pack
from stilts_core.data.canonical import canonicalise
from stilts_core.data.readers import read_local_file, read_pack_split, read_release_files
from stilts_core.data.sources import (
    DATA_ROOT_VARIABLE,
    LOCAL_SUFFIXES,
    DataSourceError,
    DataSources,
    as_sources,
    fetch_release_files,
    load_from_hub,
    local_release_paths,
    local_split_path,
    release_names,
    source_fields,
)
from stilts_core.tasks.spec import TaskSpec


def load_split(task: TaskSpec, split: str, language: str,
               data_root: str | Path | DataSources | None = None,
               translated: bool = False, sample: int | None = None) -> datasets.Dataset:
    """One split of one task in one language, in the canonical schema of the task's format.

    ``translated`` allows a language the task does not declare: machine-translated copies of an
    English task, which only a local root can supply. ``sample``: a fixed-seed sample of that
    many examples (:data:`SAMPLE_SEED`; the same rows whatever the caller's seed).
    """
    if language not in task.languages and not translated:
        raise DataSourceError(
            f"task {task.name!r} has no language {language!r}; declared: {', '.join(task.languages)}"
        )
    sources = as_sources(data_root)
    root = sources.root_for(task)
    if root is None and (task.hub is None or translated):
        why = task.local_only_reason or (
            f"translated {task.name!r} data ({language}) comes only from local files")
        raise DataSourceError(f"task {task.name!r}: {why}. Pass data_root=<root> (or "
                              f"data_roots={{'{task.name}': <root>}}, or set ${DATA_ROOT_VARIABLE}).")
    if pack.is_pack(root):
        dataset, origin = read_pack_split(root, task, split, language)
    elif root is None and release_names(task, split, language):
        paths = fetch_release_files(task, split, language)
        dataset, origin = read_release_files(task, paths), str(paths[0].parent)
    elif root is None:
        dataset = load_from_hub(task, split, language, sources.revisions.get(task.name))
        origin = f"hub dataset {task.hub.path!r} (config {task.hub_config(language)!r})"
    elif local_split_path(root, task, split, language) is None and local_release_paths(
            root, task, split, language):
        paths = local_release_paths(root, task, split, language)
        dataset, origin = read_release_files(task, paths), str(paths[0].parent)
    else:
        path = local_split_path(root, task, split, language)
        if path is None:
            hint = f" {task.local_only_reason}." if task.local_only_reason else ""
            raise DataSourceError(
                f"{Path(root) / task.name / f'{split}-{language}.jsonl'}: no {split!r} data for "
                f"task {task.name!r}, language {language!r} (also looked for "
                f"{', '.join(LOCAL_SUFFIXES[1:])}). Put a file in the hub schema there (fields: "
                f"{', '.join(source_fields(task))}), or point data_root / ${DATA_ROOT_VARIABLE} "
                f"at a directory that has it.{hint}"
            )
        dataset, origin = read_local_file(task, path), str(path)
    if sample is not None and not task.drop_labels:
        dataset = sample_rows(dataset, sample)  # before converting: the same rows, far fewer to convert
    return sample_rows(canonicalise(dataset, task, origin), sample)


SAMPLE_SEED = 0  # the subsample of a capped split does not depend on the run's seed


def sample_rows(dataset: datasets.Dataset, size: int | None) -> datasets.Dataset:
    """The first ``size`` rows of a :data:`SAMPLE_SEED` shuffle. Conversion keeps rows one to
    one unless a task drops labels, so sampling before or after it picks the same examples."""
    if size is None or size >= len(dataset):
        return dataset
    return dataset.shuffle(seed=SAMPLE_SEED).select(range(size))
