"""File readers, one per release format: JSON lines in the hub schema, SQuAD-format JSON, CSV,
CoNLL-U (through the ``conllu`` library), the shared data pack's declared files and the raw release
files of tasks not on the hub."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets

from stilts_core.data import pack
from stilts_core.data.sources import LOCAL_SUFFIXES, DataSourceError
from stilts_core.paths import atomic_write_text
from stilts_core.tasks.spec import TaskSpec


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
            return read_jsonl(path)
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
    ranges (``3-4``) and empty nodes (``5.1``) are skipped (the ``conllu`` library gives their
    ids as tuples)."""
    import conllu

    lines = pack.text_lines(path.read_text(encoding="utf-8"))
    for number, line in enumerate(lines, start=1):  # the library reads a short line silently
        if line.strip() and not line.startswith("#") and line.count("\t") != 9:
            raise ValueError(f"line {number} has {line.count(chr(9)) + 1} columns, CoNLL-U has 10")
    text = "\n".join(lines) + "\n"
    try:
        sentences = conllu.parse(text, fields=("id", "form", "lemma", "upos"),
                                 field_parsers={"form": _raw, "upos": _raw})
    except conllu.exceptions.ParseException as error:
        raise ValueError(f"not CoNLL-U: {error}") from None
    rows = []
    for sentence in sentences:
        words = [token for token in sentence if isinstance(token["id"], int)]
        if words:
            rows.append({task.fields.tokens: [token["form"] for token in words],
                         task.fields.tags: [token["upos"] for token in words]})
    return rows


def _raw(line: list[str], position: int) -> str:
    """A CoNLL-U column as written (``conllu`` would read ``_`` as None)."""
    return line[position]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write JSON lines atomically (temporary file, then rename)."""
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(pack.text_lines(path.read_text(encoding="utf-8")), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise DataSourceError(f"{path}, line {number}: not JSON: {error}") from None
    return rows
