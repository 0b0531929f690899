"""Loading task data from the hub or from local files, in one canonical schema per format.

Local data lives at ``<root>/<task>/<split>-<lang>.<ext>``: JSON lines in the hub schema
(``.jsonl``), or the original release formats: SQuAD-format JSON (``.json``: SQuAD, XQuAD,
MLQA, TyDiQA-GoldP), CSV (``.csv``: ANLI, Cosmos QA releases) and CoNLL-U (``.conllu``: UD
treebanks). The bundled fixtures (``data/fixtures``) are such a root, so the offline default
runs exactly the code path an air-gapped cluster uses.

Whatever the source, :func:`load_split` returns the canonical columns of the task's format:

* classification, retrieval and MLM text: ``text``, ``text_pair`` (pairs), ``label`` (classification)
* multiple choice: ``context``, ``question``, ``choices`` (list), ``label`` (choice index)
* token classification: ``tokens``, ``tags`` (tag *names*; ids come from the label set)
* extractive QA: the SQuAD schema ``id``, ``context``, ``question``, ``answers``
"""

from __future__ import annotations

import csv
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import datasets

from .paths import atomic_write_text
from .tasks import TaskSpec

DATA_ROOT_VARIABLE = "STILTS_DATA_ROOT"
LOCAL_SUFFIXES = (".jsonl", ".json", ".csv", ".conllu")


class DataSourceError(RuntimeError):
    """A task's data could not be read; the message says which file or hub id and how to fix it."""


@dataclass(frozen=True)
class DataSources:
    """Where each task's data comes from: one root for all (``None`` or ``'hub'``: the hub),
    per-task roots that override it, and per-task hub revisions that override the registry's."""

    root: Path | None = None
    task_roots: dict[str, Path] = field(default_factory=dict)
    revisions: dict[str, str] = field(default_factory=dict)

    def root_for(self, task: TaskSpec) -> Path | None:
        return self.task_roots.get(task.name, self.root)


def resolve_data_root(data_root: str | Path | None) -> Path | None:
    """An explicit root wins, then ``$STILTS_DATA_ROOT``; ``None`` means the hub."""
    if data_root not in (None, "", "hub"):
        return Path(data_root).expanduser().resolve()
    env = os.environ.get(DATA_ROOT_VARIABLE)
    return Path(env).expanduser().resolve() if env else None


def as_sources(data_root: str | Path | DataSources | None) -> DataSources:
    return data_root if isinstance(data_root, DataSources) else DataSources(resolve_data_root(data_root))


def local_split_path(root: Path, task: TaskSpec, split: str, language: str) -> Path | None:
    """The first existing ``<root>/<task>/<split>-<lang>.<ext>``, or ``None``."""
    for suffix in LOCAL_SUFFIXES:
        path = Path(root) / task.name / f"{split}-{language}{suffix}"
        if path.is_file():
            return path
    return None


def load_split(task: TaskSpec, split: str, language: str,
               data_root: str | Path | DataSources | None = None,
               translated: bool = False) -> datasets.Dataset:
    """One split of one task in one language, in the canonical schema of the task's format.

    ``translated`` allows a language the task does not declare: machine-translated copies of an
    English task, which only a local root can supply.
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
    if root is None:
        dataset = _load_from_hub(task, split, language, sources.revisions.get(task.name))
        origin = f"hub dataset {task.hub.path!r} (config {task.hub_config(language)!r})"
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
    return canonicalise(dataset, task, origin)


def read_local_file(task: TaskSpec, path: str | Path) -> datasets.Dataset:
    """A local file in the hub schema or an original release format, with the task's field
    names (``local_aliases`` rename release columns such as ANLI's ``context``)."""
    path = Path(path)
    try:
        if path.suffix == ".jsonl":
            dataset = datasets.load_dataset("json", data_files=str(path), split="train")
        elif path.suffix == ".json":
            dataset = datasets.Dataset.from_list(_read_squad_json(path))
        elif path.suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as handle:
                dataset = datasets.Dataset.from_list(list(csv.DictReader(handle)))
        elif path.suffix == ".conllu":
            dataset = datasets.Dataset.from_list(_read_conllu(path, task))
        else:
            raise DataSourceError(f"{path}: unsupported file type; use one of {LOCAL_SUFFIXES}")
    except (OSError, ValueError, KeyError, datasets.exceptions.DatasetGenerationError) as error:
        raise DataSourceError(f"{path}: cannot read it as {path.suffix} data: {error}") from error
    renames = {old: new for old, new in task.local_aliases.items()
               if old in dataset.column_names and new not in dataset.column_names}
    return dataset.rename_columns(renames) if renames else dataset


def _read_squad_json(path: Path) -> list[dict]:
    """SQuAD-format JSON (``data`` → ``paragraphs`` → ``qas``) as flat hub-schema rows."""
    rows = []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                rows.append({
                    "id": qa["id"], "title": article.get("title", ""),
                    "context": paragraph["context"], "question": qa["question"],
                    "answers": {"text": [a["text"] for a in answers],
                                "answer_start": [int(a["answer_start"]) for a in answers]},
                })
    return rows


def _read_conllu(path: Path, task: TaskSpec) -> list[dict]:
    """Syntactic words and their UPOS tags, as XTREME's preprocessing reads UD: multiword-token
    ranges (``3-4``) and empty nodes (``5.1``) are skipped."""
    rows, tokens, tags = [], [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            if tokens:
                rows.append({task.fields.tokens: tokens, task.fields.tags: tags})
            tokens, tags = [], []
            continue
        if line.startswith("#"):
            continue
        columns = line.split("\t")
        if len(columns) != 10:
            raise ValueError(f"line {number} has {len(columns)} columns, CoNLL-U has 10")
        if "-" in columns[0] or "." in columns[0]:
            continue
        tokens.append(columns[1])
        tags.append(columns[3])
    if tokens:
        rows.append({task.fields.tokens: tokens, task.fields.tags: tags})
    return rows


def source_fields(task: TaskSpec) -> list[str]:
    """Top-level source fields the task reads (dotted names count by their first part)."""
    f = task.fields
    names = [*f.text, f.label, *f.context, f.question, *f.choices, f.tokens, f.tags, f.id, f.answers]
    return list(dict.fromkeys(n.split(".")[0] for n in names if n))


def _load_from_hub(task: TaskSpec, split: str, language: str,
                   revision: str | None) -> datasets.Dataset:
    if split not in task.hub.splits:
        raise DataSourceError(
            f"task {task.name!r} declares no {split!r} split on the hub; "
            f"available: {', '.join(task.hub.splits)}"
        )
    config = task.hub_config(language)
    local_hint = (f"Save the data as <root>/{task.name}/{split}-{language}.jsonl and pass "
                  f"data_root=<root> (or data_roots={{'{task.name}': <root>}}, or set "
                  f"${DATA_ROOT_VARIABLE})")
    if task.hub.languages is not None and language not in task.hub.languages:
        raise DataSourceError(
            f"task {task.name!r}: the hub copy {task.hub.path!r} has no {language!r}. {local_hint}."
        )
    unreachable = hub_unreachable()
    if unreachable:
        raise DataSourceError(
            f"task {task.name!r}: the Hugging Face hub is unreachable ({unreachable}), so "
            f"{task.hub.path!r} (config {config!r}) cannot be loaded. {local_hint}; to read a "
            "copy already in the HF cache, set HF_HUB_OFFLINE=1."
        )
    revision = revision or task.hub.revision
    try:
        dataset = datasets.load_dataset(task.hub.path, config, split=task.hub.splits[split],
                                        revision=revision)
    except Exception as error:  # datasets raises many types; all mean "not loadable here"
        raise DataSourceError(
            f"task {task.name!r}: could not load hub dataset {task.hub.path!r} "
            f"(config {config!r}, revision {revision!r}): {type(error).__name__}: "
            f"{error}. Offline or air-gapped? {local_hint}."
        ) from error
    prefix = task.language_prefix(language)
    if prefix:
        field_name, start = prefix
        dataset = dataset.filter(lambda value: value.startswith(start), input_columns=field_name)
    return dataset


def hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the hub cannot be reached, or ``None``; one short TCP probe instead of minutes of
    retries inside ``datasets``/``transformers``. Skipped in offline mode, where they read
    their caches."""
    if any(os.environ.get(variable, "").lower() in {"1", "true", "yes"}
           for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return None
    from huggingface_hub import constants

    endpoint = urlsplit(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
    except OSError as error:
        return f"{endpoint.hostname}:{port}: {error}"
    return None


def resolved_revision(task: TaskSpec, revision: str | None = None) -> str | None:
    """The hub commit a task's data resolves to (recorded with every run), or ``None`` offline."""
    if task.hub is None or hub_unreachable(timeout=1.0):
        return None
    from huggingface_hub import HfApi

    try:
        return HfApi().dataset_info(task.hub.path, revision=revision or task.hub.revision).sha
    except Exception:  # the record is best-effort; loading itself reports real failures
        return None


# --- canonical schema ---------------------------------------------------------------------------

def _get(row: dict, dotted: str):
    value = row
    for part in dotted.split("."):
        value = value[part]
    return value


def _class_label_names(dataset: datasets.Dataset, name: str | None) -> list[str] | None:
    """Names of a hub ``ClassLabel`` feature (or of a sequence of them), else ``None``."""
    feature = dataset.features.get(name) if name else None
    feature = getattr(feature, "feature", feature)  # Sequence(ClassLabel) / List(ClassLabel)
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def canonicalise(dataset: datasets.Dataset, task: TaskSpec, origin: str) -> datasets.Dataset:
    """Validate the declared fields and convert rows to the canonical schema of the format."""
    missing = [name for name in source_fields(task) if name not in dataset.column_names]
    if missing:
        raise DataSourceError(
            f"{origin}: missing field(s) {missing} required by task {task.name!r}; "
            f"found {dataset.column_names}. Rename the fields to the hub schema."
        )
    if task.drop_labels:
        dataset = dataset.filter(lambda value: value not in task.drop_labels,
                                 input_columns=task.fields.label)
    if len(dataset) == 0:
        raise DataSourceError(f"{origin}: no examples for task {task.name!r}")
    if task.format not in _CONVERTERS:
        raise DataSourceError(f"{origin}: task {task.name!r} ({task.format}) has no data reader; "
                              f"its predictions can be scored with `stilts score`")
    hub_names = _class_label_names(dataset, task.fields.tags or task.fields.label)
    convert = _CONVERTERS[task.format](task, origin, hub_names)
    return dataset.map(convert, with_indices=True, remove_columns=dataset.column_names,
                       desc=f"canonicalise {task.name}")


def _label_error(origin: str, index: int, field_name: str, value, expected: str) -> DataSourceError:
    return DataSourceError(f"{origin}, example {index + 1}: field {field_name!r} has {value!r}; "
                           f"expected {expected}")


def _classification(task: TaskSpec, origin: str, hub_names: list[str] | None):
    names = {name: i for i, name in enumerate(task.labels)}
    names.update({alias: names[target] for alias, target in task.label_aliases.items()})
    remap = hub_names if hub_names and set(hub_names) <= set(names) else None
    with_label = task.format == "classification"

    def convert(row: dict, index: int) -> dict:
        texts = [_get(row, name) for name in task.fields.text]
        out = {"text": texts[0]}
        if len(texts) == 2:
            out["text_pair"] = texts[1]
        if not with_label:
            return out
        value = _get(row, task.fields.label)
        if remap is not None and isinstance(value, int):
            value = remap[value]
        if isinstance(value, str) and value.strip() in names:
            out["label"] = names[value.strip()]
        elif isinstance(value, str) and value.strip().isdigit() and int(value) < len(task.labels):
            out["label"] = int(value)
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(task.labels):
            out["label"] = value
        else:
            raise _label_error(origin, index, task.fields.label, value,
                               f"one of {list(names)} or an id 0..{len(task.labels) - 1}")
        return out

    return convert


def _multiple_choice(task: TaskSpec, origin: str, hub_names: list[str] | None):
    f = task.fields

    def convert(row: dict, index: int) -> dict:
        if len(f.choices) == 1:
            choices = list(_get(row, f.choices[0]))
        else:
            choices = [_get(row, name) for name in f.choices]
        question = _get(row, f.question) if f.question else ""
        question = f.question_templates.get(question, question)
        value = _get(row, f.label)
        if task.choice_labels:
            label = task.choice_labels.index(str(value)) if str(value) in task.choice_labels else -1
        else:
            label = int(value) if str(value).strip().lstrip("-").isdigit() else -1
        if not 0 <= label < len(choices):
            expected = (f"one of {list(task.choice_labels)}" if task.choice_labels
                        else f"a choice index 0..{len(choices) - 1}")
            raise _label_error(origin, index, f.label, value, expected)
        context = " ".join(str(_get(row, name)) for name in f.context)
        return {"context": context, "question": question, "choices": [str(c) for c in choices],
                "label": label}

    return convert


def _token_classification(task: TaskSpec, origin: str, hub_names: list[str] | None):
    allowed = set(task.labels)

    def convert(row: dict, index: int) -> dict:
        tokens, tags = list(row[task.fields.tokens]), list(row[task.fields.tags])
        if hub_names is not None:
            tags = [hub_names[t] if isinstance(t, int) else t for t in tags]
        if len(tokens) != len(tags):
            raise DataSourceError(f"{origin}, example {index + 1}: {len(tokens)} tokens but "
                                  f"{len(tags)} tags; each word needs exactly one tag")
        unknown = sorted({t for t in tags if not isinstance(t, str) or (allowed and t not in allowed)},
                         key=str)
        if unknown:
            raise _label_error(origin, index, task.fields.tags, unknown,
                               f"tags among {sorted(allowed)}" if allowed else "tag strings")
        return {"tokens": [str(t) for t in tokens], "tags": tags}

    return convert


def _extractive_qa(task: TaskSpec, origin: str, hub_names: list[str] | None):
    def convert(row: dict, index: int) -> dict:
        answers = row[task.fields.answers]
        texts, starts = list(answers["text"]), [int(s) for s in answers["answer_start"]]
        context = row[task.fields.context[0]]
        for text, start in zip(texts, starts, strict=True):
            if context[start:start + len(text)] != text:
                raise DataSourceError(
                    f"{origin}, example {index + 1} (id {row[task.fields.id]!r}): answer {text!r} "
                    f"is not at answer_start {start} of the context")
        return {"id": str(row[task.fields.id]), "context": context,
                "question": row[task.fields.question],
                "answers": {"text": texts, "answer_start": starts}}

    return convert


_CONVERTERS = {
    "classification": _classification,
    "bitext_retrieval": _classification,
    "masked_lm": _classification,
    "multiple_choice": _multiple_choice,
    "token_classification": _token_classification,
    "extractive_qa": _extractive_qa,
}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write JSON lines atomically (temporary file, then rename)."""
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
