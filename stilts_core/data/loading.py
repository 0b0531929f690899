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

import csv
import json
import os
import re
import socket
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import datasets

from stilts_core.data import pack
from stilts_core.paths import atomic_write_text, cache_dir, shared_data_dir
from stilts_core.tasks.registry import ReleaseFiles, TaskSpec, get_task

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
    """An explicit root wins (``'pack'``: the shared data pack), then ``$STILTS_DATA_ROOT``;
    ``None`` means the hub."""
    if data_root == pack.PACK:
        return shared_data_dir()
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


def release_names(task: TaskSpec, split: str, language: str) -> tuple[str, ...] | None:
    """The release's file names of one split and language, or ``None`` if it has none."""
    release = task.release
    if release is None or language not in release.languages or split not in release.files:
        return None
    return release.names(split, task.language_codes.get(language, language))


def local_release_paths(root: Path, task: TaskSpec, split: str, language: str) -> list[Path] | None:
    """``<root>/<task>/<release file>`` for each file of the split, if all exist."""
    names = release_names(task, split, language)
    paths = [Path(root) / task.name / name for name in names or ()]
    return paths if paths and all(p.is_file() for p in paths) else None


def has_local_split(root: Path, task: TaskSpec, split: str, language: str) -> bool:
    """Whether a local root holds one split and language: in the shared data pack's declared
    layout, as ``<split>-<lang>.<ext>``, or as the task's release files."""
    if pack.is_pack(root):
        entry = pack.pack_entry(task.name, split, language)
        code = task.language_codes.get(language, language)
        return entry is not None and all(path.is_file()
                                         for path in pack.entry_paths(root, entry, language, code))
    return (local_split_path(root, task, split, language) is not None
            or local_release_paths(root, task, split, language) is not None)


def read_release_files(task: TaskSpec, paths: list[Path]) -> datasets.Dataset:
    """Line-aligned release files as one row per line, one text field per file."""
    columns = []
    for path in paths:
        try:
            columns.append(path.read_text(encoding="utf-8").splitlines())
        except (OSError, UnicodeDecodeError) as error:
            raise DataSourceError(f"{path}: cannot read it as UTF-8 text: {error}") from error
    if len({len(lines) for lines in columns}) != 1:
        counts = ", ".join(f"{p.name}: {len(lines)}" for p, lines in zip(paths, columns, strict=True))
        raise DataSourceError(f"{paths[0].parent}: the release files of task {task.name!r} must be "
                              f"line-aligned, but their line counts differ ({counts})")
    return datasets.Dataset.from_dict(dict(zip(task.fields.text, columns, strict=True)))


def fetch_release_files(task: TaskSpec, split: str, language: str,
                        target: Path | None = None) -> list[Path]:
    """Download a language's release files at the declared commit into the cache (once; each
    file written to a temporary name, then renamed). Any ``urllib`` URL works, ``file://`` too."""
    release: ReleaseFiles = task.release
    folder = Path(target or cache_dir() / "release" / task.name / release.revision)
    paths = []
    for name in release_names(task, split, language):
        path = folder / name
        if not path.is_file():
            url = release.url.format(revision=release.revision, name=name)
            folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{name}.part-{os.getpid()}")
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    partial.write_bytes(response.read())
            except OSError as error:
                partial.unlink(missing_ok=True)
                raise DataSourceError(
                    f"task {task.name!r}, language {language!r}: could not download {url} "
                    f"({error}). The hub copy {task.hub.path!r} lacks this language; put the "
                    f"release file {name} under <root>/{task.name}/ and pass "
                    f"data_roots={{'{task.name}': <root>}}.") from error
            os.replace(partial, path)
        paths.append(path)
    return paths


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
        dataset = _load_from_hub(task, split, language, sources.revisions.get(task.name))
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


def read_pack_split(root: Path, task: TaskSpec, split: str,
                    language: str) -> tuple[datasets.Dataset, str]:
    """One split from the shared data pack, through its declared layout (:mod:`stilts_core.data.pack`)."""
    entry = pack.pack_entry(task.name, split, language)
    if entry is None:
        raise DataSourceError(
            f"{root}: the shared data pack has no {split!r} data for task {task.name!r}, language "
            f"{language!r} (stilts_core.data.pack.PACK_LAYOUT lists what it has). Use another root for "
            f"this task: data_roots={{'{task.name}': <root>}} or data_root=hub.")
    paths = pack.entry_paths(root, entry, language, task.language_codes.get(language, language))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataSourceError(f"{missing[0]}: missing from the shared data pack (task {task.name!r}, "
                              f"{split}-{language}); check the pack against its MANIFEST.tsv")
    if entry.reader == "aligned_lines":
        rows = read_release_files(task, paths).to_list()
    else:
        rows = [row for path in paths for row in _read_pack_file(task, entry, path)]
    rows = pack.select_rows(rows, entry.rows, entry.hold_out_every)
    rows = [_pack_row(row, entry, task) for row in rows]
    origin = ", ".join(str(p) for p in paths) + (f" ({entry.rows} rows)" if entry.rows != "all" else "")
    if not rows:
        raise DataSourceError(f"{origin}: no examples for task {task.name!r}")
    return datasets.Dataset.from_list(rows), origin


def _read_pack_file(task: TaskSpec, entry: pack.PackFile, path: Path) -> list[dict]:
    try:
        if entry.reader in pack.PACK_READERS:
            return pack.PACK_READERS[entry.reader](path, entry.columns)
        if entry.reader == "jsonl":
            return _jsonl(path)
        if entry.reader == "squad_json":
            return _read_squad_json(path)
        if entry.reader == "conllu":
            return _read_conllu(path, task)
    except pack.PackFormatError as error:
        raise DataSourceError(str(error)) from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise DataSourceError(f"{path}: cannot read it as {entry.reader} data: {error}") from error
    raise DataSourceError(f"{path}: unknown pack reader {entry.reader!r}")


def _pack_row(row: dict, entry: pack.PackFile, task: TaskSpec) -> dict:
    """The release's field names and label values as the registry's (``local_aliases`` rename
    release columns such as ANLI's ``context`` only where the registry's name is absent)."""
    row = {entry.renames.get(name, name): value for name, value in row.items()}
    aliases = {old: new for old, new in task.local_aliases.items() if old in row and new not in row}
    row = {aliases.get(name, name): value for name, value in row.items()}
    for name, mapping in entry.values.items():
        if name in row:
            row[name] = mapping.get(row[name], row[name])
    return row


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
    for number, line in enumerate(pack.text_lines(path.read_text(encoding="utf-8")), start=1):
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
                  f"data_roots={{'{task.name}': <root>}} (or data_root=<root>, or set "
                  f"${DATA_ROOT_VARIABLE})")
    if task.hub.languages is not None and language not in task.hub.languages:
        raise DataSourceError(
            f"task {task.name!r}: the hub copy {task.hub.path!r} has no {language!r} (it has "
            f"{len(task.hub.languages)} of the task's {len(task.languages)} languages). "
            f"{local_hint}."
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
        doubt = (f" The registry is not sure of this source: {task.hub.uncertainty}."
                 if task.hub.uncertainty else "")
        raise DataSourceError(
            f"task {task.name!r}: could not load hub dataset {task.hub.path!r} "
            f"(config {config!r}, revision {revision!r}): {type(error).__name__}: "
            f"{error}.{doubt} To use another revision that loads, pass "
            f"data_revisions={{'{task.name}': <commit>}}; to use local files: {local_hint}."
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
    source = _Origin(origin, _class_label_names(dataset, task.fields.tags or task.fields.label))
    convert = _CONVERTERS[task.format](task, source)
    return dataset.map(convert, with_indices=True, remove_columns=dataset.column_names,
                       desc=f"canonicalise {task.name}")


@dataclass(frozen=True)
class _Origin:
    """Where the examples come from (named in every error) and, for a hub data set whose labels
    are ``ClassLabel`` ids, their names."""

    name: str
    label_names: list[str] | None

    def __str__(self) -> str:
        return self.name


def _label_error(origin: _Origin, index: int, field_name: str, value, expected: str) -> DataSourceError:
    return DataSourceError(f"{origin}, example {index + 1}: field {field_name!r} has {value!r}; "
                           f"expected {expected}")


def _classification(task: TaskSpec, origin: _Origin):
    names = {name: i for i, name in enumerate(task.labels)}
    names.update({alias: names[target] for alias, target in task.label_aliases.items()})
    hub_names = origin.label_names
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


def _multiple_choice(task: TaskSpec, origin: _Origin):
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


def _token_classification(task: TaskSpec, origin: _Origin):
    allowed = set(task.labels)
    hub_names = origin.label_names

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


def _extractive_qa(task: TaskSpec, origin: _Origin):
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


# --- release formats of the retrieval tasks -----------------------------------------------------
# BUCC 2018, Mewsli-X and LAReQA are not on the hub. Their readers take the files as the
# original releases ship them (XTREME's download scripts keep these names) and return the
# searches' inputs: two monolingual sets with gold pairs, or queries with a candidate pool.

@dataclass(frozen=True)
class MiningCorpus:
    """BUCC: two monolingual sets of ``(id, sentence)`` and the gold translation pairs (ids)."""

    source_ids: list[str]
    source_texts: list[str]
    target_ids: list[str]
    target_texts: list[str]
    gold: set[tuple[str, str]]
    origin: str


@dataclass(frozen=True)
class RankingSet:
    """Queries (with their language and the ids of their relevant candidates) and the one
    candidate pool they are all searched against."""

    query_ids: list[str]
    query_texts: list[str]
    query_languages: list[str]
    relevant: list[set[str]]
    candidate_ids: list[str]
    candidate_texts: list[str]
    origin: str

    def for_language(self, language: str) -> list[int]:
        return [i for i, lang in enumerate(self.query_languages) if lang == language]


@dataclass(frozen=True)
class TrainingPairs:
    """English (query, relevant candidate) texts for dual-encoder training."""

    queries: list[str]
    candidates: list[str]
    origin: str


# XTREME renames the BUCC "sample" split to dev and "training" (public gold) to test.
BUCC_SPLITS = {"validation": ("dev", "sample"), "test": ("test", "training")}


def _release_file(root: Path, task: str, names: list[str], what: str) -> Path:
    for name in names:
        path = Path(root) / task / name
        if path.is_file():
            return path
    raise DataSourceError(f"{Path(root) / task / names[0]}: no {what} (also looked for "
                          f"{', '.join(names[1:]) or 'nothing else'}). Put the release files "
                          f"there, or point data_root / data_roots at a directory that has them.")


def _id_lines(path: Path, columns: int) -> list[list[str]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != columns or not all(p.strip() for p in parts[:columns - 1]):
            raise DataSourceError(f"{path}, line {number}: expected {columns} tab-separated "
                                  f"fields, found {len(parts)}: {line[:80]!r}")
        rows.append(parts)
    if not rows:
        raise DataSourceError(f"{path}: empty")
    return rows


def load_mining_corpus(task: TaskSpec, split: str, language: str, root: Path) -> MiningCorpus:
    """``<root>/bucc2018/<lang>-en.<split>.{<lang>,en,gold}``, split ``sample``/``dev`` for
    validation and ``training``/``test`` for test; lines ``id<TAB>sentence`` and gold lines
    ``source id<TAB>English id``."""
    if split not in BUCC_SPLITS:
        raise DataSourceError(f"task {task.name!r} has splits {list(BUCC_SPLITS)}, not {split!r}")
    if language not in task.languages:
        raise DataSourceError(f"task {task.name!r} has no language {language!r}; declared: "
                              f"{', '.join(task.languages)}")
    names = BUCC_SPLITS[split]

    def find(suffix: str, what: str) -> Path:
        return _release_file(root, task.name, [f"{language}-en.{n}.{suffix}" for n in names], what)

    source = _id_lines(find(language, f"{language} sentences"), 2)
    target = _id_lines(find("en", "English sentences"), 2)
    gold_path = find("gold", "gold pairs")
    gold = {(s, t) for s, t in _id_lines(gold_path, 2)}
    known_source, known_target = {r[0] for r in source}, {r[0] for r in target}
    stray = [pair for pair in sorted(gold) if pair[0] not in known_source
             or pair[1] not in known_target]
    if stray:
        raise DataSourceError(f"{gold_path}: {len(stray)} gold pair(s) name sentence ids that "
                              f"are not in the sentence files, e.g. {stray[0]}")
    return MiningCorpus([r[0] for r in source], [r[1].strip() for r in source],
                        [r[0] for r in target], [r[1].strip() for r in target], gold,
                        str(gold_path.parent))


def _jsonl(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(pack.text_lines(path.read_text(encoding="utf-8")), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise DataSourceError(f"{path}, line {number}: not JSON: {error}") from None
    return rows


def _field(row: dict, dotted: str, path: Path, number: int):
    try:
        return _get(row, dotted)
    except (KeyError, TypeError):
        raise DataSourceError(f"{path}, record {number}: missing field {dotted!r}") from None


def _clean(text: str) -> str:
    """Mewsli-X's normalisation: newlines to spaces, double spaces to one, stripped."""
    return text.replace("\n", " ").replace("  ", " ").strip()


def mewslix_mention_text(context: dict, mention: dict) -> str:
    """The query text of a Mewsli-X mention, as XTREME-R's ``preprocess_mention``: the sentence
    that contains the mention, the mention marked with braces and repeated in front:
    ``"{mention}: {left} { {mention} } {right}"``."""
    text, start, end = context["text"], mention["mention_span"]["start"], mention["mention_span"]["end"]
    spans = context.get("sentence_spans") or [{"start": 0, "end": len(text)}]
    sentence = next((s for s in spans if s["start"] <= start and end <= s["end"]), None)
    if sentence is None:
        raise ValueError(f"mention {mention.get('example_id')!r} crosses a sentence boundary")
    left = text[sentence["start"]:start].replace("{", "(").replace("}", ")")
    right = text[end:sentence["end"]].replace("{", "(").replace("}", ")")
    surface = text[start:end]
    return _clean(f"{surface}: {left} {{ {surface} }} {right}")


def mewslix_entity_text(entity: dict) -> str:
    """An entity's description, the candidate text (the title is not used)."""
    description = entity["description"]
    spans = entity.get("sentence_spans") or [{"start": 0, "end": len(description)}]
    return _clean(" ".join(description[s["start"]:s["end"]] for s in spans))


def load_mewslix(task: TaskSpec, split: str, root: Path) -> RankingSet:
    """``candidate_set_entities.jsonl`` (the pool) and ``wikinews_mentions-<dev|test>.jsonl``
    (one document per line with its mentions), as the Mewsli-X release ships them."""
    names = {"validation": "dev", "test": "test"}
    if split not in names:
        raise DataSourceError(f"task {task.name!r} has splits {list(names)}, not {split!r}")
    pool_path = _release_file(root, task.name, ["candidate_set_entities.jsonl"], "entity pool")
    mentions_path = _release_file(root, task.name, [f"wikinews_mentions-{names[split]}.jsonl"],
                                  f"{split} mentions")
    candidate_ids, candidate_texts = [], []
    for number, entity in enumerate(_jsonl(pool_path), start=1):
        candidate_ids.append(str(_field(entity, "entity_id", pool_path, number)))
        _field(entity, "description", pool_path, number)
        candidate_texts.append(mewslix_entity_text(entity))
    known = set(candidate_ids)
    ids, texts, languages, relevant = [], [], [], []
    for number, document in enumerate(_jsonl(mentions_path), start=1):
        context = _field(document, "context", mentions_path, number)
        language = _field(document, "context.language", mentions_path, number)
        for mention in _field(document, "mentions", mentions_path, number):
            entity = str(mention["entity_id"])
            if entity not in known:
                raise DataSourceError(f"{mentions_path}, record {number}: entity {entity!r} of "
                                      f"mention {mention.get('example_id')!r} is not in {pool_path}")
            try:
                texts.append(mewslix_mention_text(context, mention))
            except (KeyError, ValueError) as error:
                raise DataSourceError(f"{mentions_path}, record {number}: {error}") from None
            ids.append(str(mention["example_id"]))
            languages.append(language)
            relevant.append({entity})
    return RankingSet(ids, texts, languages, relevant, candidate_ids, candidate_texts,
                      str(mentions_path))


def load_mewslix_training(task: TaskSpec, root: Path) -> TrainingPairs:
    """``wikipedia_pairs-train.jsonl``: (contextual mention, entity) pairs from Wikipedia."""
    path = _release_file(root, task.name, ["wikipedia_pairs-train.jsonl"], "training pairs")
    queries, candidates = [], []
    for number, pair in enumerate(_jsonl(path), start=1):
        mention = _field(pair, "contextual_mention", path, number)
        try:
            queries.append(mewslix_mention_text(mention["context"], mention["mention"]))
            candidates.append(mewslix_entity_text(pair["entity"]))
        except (KeyError, ValueError) as error:
            raise DataSourceError(f"{path}, record {number}: {error}") from None
    return TrainingPairs(queries, candidates, str(path))


def lareqa_candidate_text(sentence: str, context: str) -> str:
    """What XTREME-R encodes for a LAReQA candidate: the sentence immediately followed by its
    whole paragraph (no separator), newlines removed."""
    return (sentence + context).replace("\n", "")


def _answer_sentence(breaks: list, answer_start: int) -> int | None:
    return next((i for i, (start, end) in enumerate(breaks) if start <= answer_start < end), None)


def load_lareqa(task: TaskSpec, split: str, root: Path) -> RankingSet:
    """``<root>/lareqa/<lang>.json`` for all 11 languages (XQuAD-R: SQuAD JSON whose paragraphs
    carry ``sentence_breaks``). The pool is every sentence of every paragraph in every language;
    a question's relevant candidates are its answer sentence in each language (XTREME-R's
    ``utils_lareqa``). Questions whose answer lies in no sentence are skipped, as there."""
    if split != "test":
        raise DataSourceError(f"task {task.name!r} has only a test split (XQuAD-R), not {split!r}")
    candidate_ids, candidate_texts = [], []
    answers: dict[str, dict[str, str]] = {}  # SQuAD id -> language -> answer sentence
    by_text: dict[str, dict[str, list[str]]] = {}  # language -> sentence -> candidate ids
    questions = []
    for language in task.languages:
        path = _release_file(root, task.name, [f"{language}.json", f"xquad-r/{language}.json"],
                             f"XQuAD-R {language} file")
        try:
            articles = json.loads(path.read_text(encoding="utf-8"))["data"]
        except (json.JSONDecodeError, KeyError) as error:
            raise DataSourceError(f"{path}: not XQuAD-R JSON ({error})") from None
        sentences = by_text.setdefault(language, {})
        paragraphs = (p for article in articles for p in article["paragraphs"])
        for counter, paragraph in enumerate(paragraphs):
            if "sentence_breaks" not in paragraph:
                raise DataSourceError(f"{path}: a paragraph has no 'sentence_breaks'; this is "
                                      "SQuAD/XQuAD, not XQuAD-R")
            context, breaks = paragraph["context"], paragraph["sentence_breaks"]
            for position, (start, end) in enumerate(breaks):
                uid = f"{language}_{counter}_{position}"
                candidate_ids.append(uid)
                candidate_texts.append(lareqa_candidate_text(context[start:end], context))
                sentences.setdefault(context[start:end], []).append(uid)
            for qa in paragraph["qas"]:
                found = _answer_sentence(breaks, int(qa["answers"][0]["answer_start"]))
                if found is not None:
                    start, end = breaks[found]
                    answers.setdefault(qa["id"], {})[language] = context[start:end]
                    questions.append((qa["id"], qa["question"], language))
    ids, texts, languages, relevant = [], [], [], []
    for squad_id, question, language in questions:
        ids.append(f"{squad_id}_{language}")
        texts.append(question)
        languages.append(language)
        relevant.append({uid for lang, sentence in answers[squad_id].items()
                         for uid in by_text[lang][sentence]})
    return RankingSet(ids, texts, languages, relevant, candidate_ids, candidate_texts, str(root))


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def sentence_breaks(text: str) -> list[tuple[int, int]]:
    """Sentence spans of English text: a split after ``.``, ``!`` or ``?`` (and closing quotes)
    before whitespace and a capital or digit. A documented stand-in for the rule-based splitter
    XTREME-R applies to SQuAD (``sb_sed``); abbreviations such as "Dr. X" split too."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def squad_training_pairs(squad: datasets.Dataset) -> TrainingPairs:
    """LAReQA's English training data: SQuAD v1.1 questions paired with the sentence that holds
    their first answer (the candidate text as at evaluation); unplaceable answers are skipped."""
    queries, candidates = [], []
    for row in squad:
        if not row["answers"]["answer_start"]:
            continue
        breaks = sentence_breaks(row["context"])
        found = _answer_sentence(breaks, row["answers"]["answer_start"][0])
        if found is None:
            continue
        start, end = breaks[found]
        queries.append(row["question"])
        candidates.append(lareqa_candidate_text(row["context"][start:end], row["context"]))
    return TrainingPairs(queries, candidates, "squad_v1 train")


RANKING_READERS = {"mewslix": load_mewslix, "lareqa": load_lareqa}


def load_ranking_set(task: TaskSpec, split: str, root: Path) -> RankingSet:
    """A ranking task's queries and candidate pool from its release files under ``root``."""
    if task.name not in RANKING_READERS:
        raise DataSourceError(f"task {task.name!r} has no ranking reader; readers: "
                              f"{', '.join(RANKING_READERS)}")
    return RANKING_READERS[task.name](task, split, root)


def _lareqa_training(task: TaskSpec, sources: DataSources) -> TrainingPairs:
    return squad_training_pairs(load_split(get_task("squad_v1"), "train", "en", sources))


def local_root(task: TaskSpec, sources: DataSources) -> Path:
    """The local root of a task whose release files only a local copy can supply."""
    root = sources.root_for(task)
    if root is None:
        raise DataSourceError(
            f"task {task.name!r}: {task.local_only_reason} Pass data_root=<root> or "
            f"data_roots={{'{task.name}': <root>}} with the release files under "
            f"<root>/{task.name}/.")
    return root


def _mewslix_training(task: TaskSpec, sources: DataSources) -> TrainingPairs:
    return load_mewslix_training(task, local_root(task, sources))


TRAINING_PAIR_READERS = {"mewslix": _mewslix_training, "lareqa": _lareqa_training}


def load_training_pairs(task: TaskSpec, sources: DataSources,
                        limit: int | None = None) -> TrainingPairs:
    """The English (query, candidate) pairs of a ranking task's dual-encoder protocol."""
    if task.name not in TRAINING_PAIR_READERS:
        raise DataSourceError(f"task {task.name!r} has no dual-encoder training data; tasks "
                              f"with one: {', '.join(TRAINING_PAIR_READERS)}")
    pairs = TRAINING_PAIR_READERS[task.name](task, sources)
    if limit is not None:
        pairs = TrainingPairs(pairs.queries[:limit], pairs.candidates[:limit], pairs.origin)
    return pairs
