"""Where a task's data comes from: the data roots (local copies, the shared data pack), the
release files of the original distributions, and the Hugging Face hub with its pinned revisions."""

from __future__ import annotations

import os
import socket
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import datasets

from stilts_core.data import pack
from stilts_core.paths import atomic_output, cache_dir, shared_data_dir
from stilts_core.tasks.spec import ReleaseFiles, TaskSpec

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
            try:
                with (atomic_output(path) as partial,
                      urllib.request.urlopen(url, timeout=60) as response):
                    partial.write_bytes(response.read())
            except OSError as error:
                raise DataSourceError(
                    f"task {task.name!r}, language {language!r}: could not download {url} "
                    f"({error}). The hub copy {task.hub.path!r} lacks this language; put the "
                    f"release file {name} under <root>/{task.name}/ and pass "
                    f"data_roots={{'{task.name}': <root>}}.") from error
        paths.append(path)
    return paths


def source_fields(task: TaskSpec) -> list[str]:
    """Top-level source fields the task reads (dotted names count by their first part)."""
    f = task.fields
    names = [*f.text, f.label, *f.context, f.question, *f.choices, f.tokens, f.tags, f.id, f.answers]
    return list(dict.fromkeys(n.split(".")[0] for n in names if n))


def load_from_hub(task: TaskSpec, split: str, language: str,
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


def local_root(task: TaskSpec, sources: DataSources) -> Path:
    """The local root of a task whose release files only a local copy can supply."""
    root = sources.root_for(task)
    if root is None:
        raise DataSourceError(
            f"task {task.name!r}: {task.local_only_reason} Pass data_root=<root> or "
            f"data_roots={{'{task.name}': <root>}} with the release files under "
            f"<root>/{task.name}/.")
    return root
