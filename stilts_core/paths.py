"""Where things live: repository root, bundled data, runs, results, caches.

Every location can be moved with an environment variable so that clusters can put runs on
scratch storage and tests can work in temporary directories.
"""

from __future__ import annotations

import os
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


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary sibling, then rename, so no reader ever sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
