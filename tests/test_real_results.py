"""The committed reduced-scale study (``data/real_results/``): every row traces to a run record
that reproduces its run id, the set is complete and of one kind, and a slice of it is
recomputed from the prepared model and the shared data, so the code's numbers cannot drift
from the committed ones unnoticed."""

from __future__ import annotations

import importlib
import json

import pandas as pd
import pytest

from stilts_core.analysis.result_sets import load_book_config
from stilts_core.grid.plan import load_config, plan
from stilts_core.paths import REPO_ROOT
from stilts_core.runs.execution import run_id
from stilts_core.runs.results import read_run_records, read_run_results, records_path

STUDY = REPO_ROOT / "configs" / "e5_study_v2.yaml"
RECOMPUTED_LANGUAGES = ["de", "fi", "ja"]


@pytest.fixture(scope="module")
def study():
    spec = next(s for s in load_book_config().result_sets if s.name == "e5_study_v2")
    table_path = REPO_ROOT / spec.path
    if not table_path.is_file():
        pytest.fail(f"{table_path} is missing: configs/book.yaml names it as a committed set")
    return pd.read_parquet(table_path), read_run_records(records_path(table_path))


def test_every_row_traces_to_a_record_that_reproduces_its_run_id(study):
    table, records = study
    assert set(table["run_id"]) <= set(records)
    for identifier, record in records.items():
        params = dict(record["params"])
        assert run_id(params.pop("phase"), params) == identifier
        assert record["provenance"]["provenance"] == "reduced-scale real run", identifier
        copy = record["provenance"]["model_copy"]  # the weights loaded, or inherited upstream
        assert copy.startswith(("4-bit-derived of intfloat/multilingual-e5-small", "the upstream")), copy
        assert "compute" in record and "data_sources" in record, identifier
    assert set(table["provenance"]) == {"reduced-scale real run"}
    assert set(table["model"]) == {"multilingual-e5-small"}


def test_no_committed_record_or_table_names_a_path_of_the_machine_that_made_it(machine_paths):
    """Every string of every run record and every table cell under ``data/real_results`` reads
    the same on any machine: pack files as ``pack:<path>``, checkpoints (deleted with their
    runs) by name; never an absolute path."""
    folder = REPO_ROOT / "data" / "real_results"
    records = sorted(folder.glob("*.runs.jsonl"))
    tables = sorted(folder.glob("*.parquet"))
    assert records and tables
    for path in records:
        lines = path.read_text(encoding="utf-8").splitlines()
        assert [] == [(path.name, n, found) for n, line in enumerate(lines, 1)
                      for found in machine_paths(json.loads(line))]
    for path in tables:
        cells = pd.read_parquet(path).astype(str).to_numpy().ravel().tolist()
        assert machine_paths(cells) == [], path.name


def test_the_committed_set_is_the_whole_grid_of_its_config(study):
    table, records = study
    planned = {run.run_id for run in plan(load_config(STUDY))}
    assert set(records) == planned
    retrieval = table[(table["target_task"] == "tatoeba") & (table["metric"] == "accuracy")]
    assert retrieval["language"].nunique() == 41


def _recomputed(phase: str, records: dict, tmp_path) -> pd.DataFrame:
    (identifier, record), = [(i, r) for i, r in records.items()
                             if r["params"]["phase"] == phase and not r["params"]["encoder_run"]
                             and not r["params"].get("target_run")]  # the pretrained encoder
    params = {k: v for k, v in record["params"].items() if k != "phase"}
    params["languages"] = RECOMPUTED_LANGUAGES
    procedure = getattr(importlib.import_module(f"stilts_core.phases.{phase}"), phase)
    procedure(params, run_dir=str(tmp_path / phase))
    return identifier, read_run_results(tmp_path / phase)


def test_the_base_encoders_retrieval_and_alignment_recompute_to_the_committed_rows(
        study, e5_model_path, shared_data, tmp_path):
    """The base encoder's Tatoeba retrieval (both directions, among all 500 candidates) and
    every layer's alignment measures, from its one encoding pass, in three languages, from the
    model the wheels give and the pack's files. The trained encoders' rows are not recomputed
    here: each needs its training runs again (minutes to tens of minutes of a core), and their
    run records reproduce their run ids instead."""
    table, records = study
    identifier, fresh = _recomputed("alignment", records, tmp_path)
    key = ["language", "metric", "settings"]
    committed = table[(table["run_id"] == identifier)
                      & table["language"].isin(RECOMPUTED_LANGUAGES)].set_index(key)["value"]
    fresh = fresh.set_index(key)["value"]
    assert len(committed) > 0 and set(fresh.index) == set(committed.index)
    difference = (fresh - committed.loc[fresh.index]).abs()
    assert difference.max() <= 1e-3, difference.sort_values().tail()
