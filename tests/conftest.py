"""Shared test set-up: every test works in temporary run, result and cache folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stilts_core.paths import REPO_ROOT, shared_data_dir


@pytest.fixture(scope="session", autouse=True)
def isolated_outputs(tmp_path_factory):
    """Runs, results and the tiny-model cache go to a session temp dir, never the checkout."""
    base = tmp_path_factory.mktemp("stilts")
    saved = {k: os.environ.get(k) for k in ("STILTS_RUNS_DIR", "STILTS_RESULTS_DIR",
                                            "STILTS_CACHE_DIR", "STILTS_DATA_ROOT",
                                            "STILTS_MODEL_ROOT")}
    os.environ.update(STILTS_RUNS_DIR=str(base / "runs"), STILTS_RESULTS_DIR=str(base / "results"),
                      STILTS_CACHE_DIR=str(base / "cache"))
    os.environ.pop("STILTS_DATA_ROOT", None)
    os.environ.pop("STILTS_MODEL_ROOT", None)
    yield base
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def tiny_model_path(isolated_outputs) -> str:
    from stilts_core.modelling import resolve_model

    return resolve_model("tiny-xlmr")


@pytest.fixture(scope="session")
def fixtures_root() -> Path:
    return REPO_ROOT / "data" / "fixtures"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"public data pack not found at {path} (set STILTS_SHARED_DATA)")
    return path
