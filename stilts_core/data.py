"""Loading task data from the hub or from a local directory, and turning it into model inputs.

A local directory mirrors the hub schema, one JSON-lines file per split and language:
``<root>/<task>/<split>-<lang>.jsonl``. The bundled fixtures (``data/fixtures``) are such a root,
so the offline default runs exactly the code path an air-gapped cluster uses.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import datasets

from .paths import atomic_write_text
from .tasks import TaskSpec

DATA_ROOT_VARIABLE = "STILTS_DATA_ROOT"


class DataSourceError(RuntimeError):
    """A task's data could not be read; the message says which file or hub id and how to fix it."""


def local_split_path(root: Path, task: TaskSpec, split: str, language: str) -> Path:
    return Path(root) / task.name / f"{split}-{language}.jsonl"


def resolve_data_root(data_root: str | Path | None) -> Path | None:
    """An explicit root wins, then ``$STILTS_DATA_ROOT``; ``None`` means the hub."""
    if data_root not in (None, "", "hub"):
        return Path(data_root).expanduser().resolve()
    env = os.environ.get(DATA_ROOT_VARIABLE)
    return Path(env).expanduser().resolve() if env else None


def load_split(
    task: TaskSpec, split: str, language: str, data_root: str | Path | None = None
) -> datasets.Dataset:
    """One split of one task in one language, validated against the task's declared schema."""
    if language not in task.languages:
        raise DataSourceError(
            f"task {task.name!r} has no language {language!r}; declared: {', '.join(task.languages)}"
        )
    root = resolve_data_root(data_root)
    if root is None:
        dataset = _load_from_hub(task, split, language)
        origin = f"hub dataset {task.hub.path!r} (config {task.hub_config(language)!r})"
    else:
        path = local_split_path(root, task, split, language)
        if not path.is_file():
            raise DataSourceError(
                f"{path}: no {split!r} data for task {task.name!r}, language {language!r}. "
                f"Put a JSON-lines file in the hub schema there (fields: "
                f"{', '.join(_required_fields(task))}), or point data_root / ${DATA_ROOT_VARIABLE} "
                "at a directory that has it."
            )
        dataset = datasets.load_dataset("json", data_files=str(path), split="train")
        origin = str(path)
    _validate_fields(dataset, task, origin)
    if task.label_field:
        dataset = _labels_to_ids(dataset, task, origin)
    return dataset


def _required_fields(task: TaskSpec) -> list[str]:
    return [*task.text_fields, *([task.label_field] if task.label_field else [])]


def _load_from_hub(task: TaskSpec, split: str, language: str) -> datasets.Dataset:
    if split not in task.hub.splits:
        raise DataSourceError(
            f"task {task.name!r} declares no {split!r} split on the hub; "
            f"available: {', '.join(task.hub.splits)}"
        )
    config = task.hub_config(language)
    unreachable = _hub_unreachable()
    if unreachable:
        raise DataSourceError(
            f"task {task.name!r}: the Hugging Face hub is unreachable ({unreachable}), so "
            f"{task.hub.path!r} (config {config!r}) cannot be loaded. Save the data as "
            f"<root>/{task.name}/{split}-{language}.jsonl and pass data_root=<root> (or set "
            f"${DATA_ROOT_VARIABLE}); to read a copy already in the HF cache, set HF_HUB_OFFLINE=1."
        )
    try:
        return datasets.load_dataset(
            task.hub.path, config, split=task.hub.splits[split], revision=task.hub.revision
        )
    except Exception as error:  # datasets raises many types; all mean "not loadable here"
        raise DataSourceError(
            f"task {task.name!r}: could not load hub dataset {task.hub.path!r} "
            f"(config {config!r}, revision {task.hub.revision!r}): {type(error).__name__}: "
            f"{error}. Offline or air-gapped? Download it elsewhere, save it as "
            f"<root>/{task.name}/{split}-{language}.jsonl and pass data_root=<root> "
            f"(or set ${DATA_ROOT_VARIABLE})."
        ) from error


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the hub cannot be reached, or ``None``; one short TCP probe instead of minutes of
    retries inside ``datasets``. Skipped in offline mode, where ``datasets`` reads its cache."""
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


def _validate_fields(dataset: datasets.Dataset, task: TaskSpec, origin: str) -> None:
    missing = [field for field in _required_fields(task) if field not in dataset.column_names]
    if missing:
        raise DataSourceError(
            f"{origin}: missing field(s) {missing} required by task {task.name!r}; "
            f"found {dataset.column_names}. Rename the fields to the hub schema."
        )
    if len(dataset) == 0:
        raise DataSourceError(f"{origin}: no examples for task {task.name!r}")


def _labels_to_ids(dataset: datasets.Dataset, task: TaskSpec, origin: str) -> datasets.Dataset:
    """Accept labels as ids (hub convention) or names; reject anything else by line number."""
    field = task.label_field
    names = {name: index for index, name in enumerate(task.labels)}
    ids = []
    for line, value in enumerate(dataset[field], start=1):
        if isinstance(value, str) and value in names:
            ids.append(names[value])
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
            ids.append(value)
        else:
            raise DataSourceError(
                f"{origin}, example {line}: field {field!r} has {value!r}; expected one of "
                f"{list(task.labels)} or an id 0..{len(names) - 1}"
            )
    return dataset.remove_columns(field).add_column("label", ids)


def tokenize_pairs(dataset: datasets.Dataset, tokenizer, task: TaskSpec, max_length: int):
    """Sentence-pair classification inputs; padding is left to the collator (dynamic)."""
    first, second = task.text_fields

    def encode(batch):
        encoded = tokenizer(batch[first], batch[second], truncation=True, max_length=max_length)
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    keep = {"label"}
    return dataset.map(
        encode,
        batched=True,
        remove_columns=[c for c in dataset.column_names if c not in keep],
        desc=f"tokenize {task.name}",
    )


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write JSON lines atomically (temporary file, then rename)."""
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
