"""Where things live: repository root, bundled data, runs, results, caches.

Every location can be moved with an environment variable so that clusters can put runs on
scratch storage and tests can work in temporary directories.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_path(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path:
    """Bundled data (fixtures, tables) shipped with the repository."""
    return REPO_ROOT / "data"


def fixtures_dir() -> Path:
    return data_dir() / "fixtures"


def configs_dir() -> Path:
    return REPO_ROOT / "configs"


def notebooks_dir() -> Path:
    return REPO_ROOT / "notebooks"


def book_dir() -> Path:
    return REPO_ROOT / "book"


def cache_dir() -> Path:
    """Built artefacts that can be recreated (the tiny tokenizer and model)."""
    return _env_path("STILTS_CACHE_DIR", data_dir() / "cache")


def runs_dir() -> Path:
    """One folder per phase run: checkpoints, metrics, predictions, executed notebook."""
    return _env_path("STILTS_RUNS_DIR", REPO_ROOT / "runs")


def results_dir() -> Path:
    """Collected tidy results tables, one file per grid."""
    return _env_path("STILTS_RESULTS_DIR", data_dir() / "results")


def shared_data_dir() -> Path:
    """The public data pack beside the checkout (real WALS, Tatoeba, UD, XCOPA, XQuAD files)."""
    return _env_path("STILTS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")


def portable_location(path: str | Path) -> str:
    """How run records name a file or folder, so that they read the same on every machine:
    ``pack:<path>`` inside the shared data pack, ``fixtures:<path>`` inside the bundled fixtures,
    a path relative to the repository root elsewhere in the checkout (``.`` names a root itself),
    and anything else ``local:<name>@sha256:<digest>`` (a file's bytes) or
    ``local:<name>@listing-sha256:<digest>`` (a folder's file names and sizes, not its bytes,
    which would take minutes for a data root), or just ``local:<name>`` once it is gone."""
    path = Path(path).expanduser().resolve()
    for prefix, root in (("pack:", shared_data_dir()), ("fixtures:", fixtures_dir()), ("", REPO_ROOT)):
        if path.is_relative_to(root.resolve()):
            return prefix + path.relative_to(root.resolve()).as_posix()
    if path.is_file():
        with open(path, "rb") as handle:
            return f"local:{path.name}@sha256:{hashlib.file_digest(handle, 'sha256').hexdigest()[:16]}"
    if path.is_dir():
        return f"local:{path.name}@listing-sha256:{_listing_digest(path)}"
    return f"local:{path.name}"


def _listing_digest(folder: Path) -> str:
    """A folder's file names and sizes, hashed."""
    listing = "".join(f"{file.relative_to(folder).as_posix()}\t{file.stat().st_size}\n"
                      for file in sorted(folder.rglob("*")) if file.is_file())
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def hub_location(repo_id: str, revision: str) -> str:
    """How run records name data or weights on the Hugging Face hub."""
    return f"hub:{repo_id}@{revision}"


# An absolute path in free text: a slash that follows no word character, dot, colon or slash
# (so not ``a/b``, ``./a`` or ``https://``), up to white space, a quote or punctuation that
# ends a phrase, and not ending in a full stop.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/[^\s\"'`,;:()\[\]{}<>]+(?<!\.)")


def portable_text(text: str) -> str:
    """``text`` with every absolute path in it named by :func:`portable_location`."""
    return _ABSOLUTE_PATH.sub(lambda match: portable_location(match.group()), text)


def checkpoint_name(path: str | Path | None) -> str | None:
    """A training checkpoint by its name (``checkpoint-<step>``), not its path: a finished run
    deletes its checkpoints, so the path would point at nothing."""
    return Path(path).name if path else None


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` (in its folder, so on its file system) to write a file or
    a folder into. When the block ends without an error the sibling replaces ``path`` in one
    rename; in any case nothing of it is left behind, so no reader ever sees half an output.
    Renaming a folder onto a folder that exists raises ``OSError``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove(staging)
    try:
        yield staging
        os.replace(staging, path)
    finally:
        _remove(staging)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` through :func:`atomic_output`."""
    with atomic_output(path) as staging:
        staging.write_text(text, encoding="utf-8")
