import pandas as pd
import pytest

from stilts_core.results import (
    ResultsError,
    collect,
    make_frame,
    paired_gains,
    read_run_results,
    write_run_results,
)


def row(**overrides):
    base = {"model": "m", "intermediate_task": "none", "target_task": "xnli", "language": "de",
            "seed": 1, "split": "test", "metric": "accuracy", "value": 50.0,
            "provenance": "smoke run", "run_id": "r", "settings": "{}"}
    return {**base, **overrides}


def test_schema_errors_name_the_problem():
    with pytest.raises(ResultsError, match=r"lack column\(s\) \['settings'\]"):
        make_frame([{k: v for k, v in row().items() if k != "settings"}])
    with pytest.raises(ResultsError, match="unknown provenance"):
        make_frame([row(provenance="vibes")])


def test_run_results_round_trip_keeps_missing_seeds(tmp_path):
    write_run_results(tmp_path, [row(seed=None), row(language="NA", seed=2)])
    frame = read_run_results(tmp_path / "results.csv")
    assert frame["seed"].isna().tolist() == [True, False]
    assert frame["language"].tolist() == ["de", "NA"]  # codes such as "NA" are not read as missing
    assert not list(tmp_path.glob(".*tmp*"))


def test_collect_merges_identical_duplicates_and_refuses_conflicts(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    for path in (a, b, c):
        path.mkdir()
    write_run_results(a, [row()])
    write_run_results(b, [row(language="fr")])
    table = collect([a, b, a], tmp_path / "out.parquet")
    assert len(table) == 2 and len(pd.read_parquet(tmp_path / "out.parquet")) == 2
    write_run_results(c, [row(value=51.0, run_id="other")])
    with pytest.raises(ResultsError, match="conflicting results"):
        collect([a, c], tmp_path / "clash.parquet")
    assert not (tmp_path / "clash.parquet").exists()


def test_paired_gains_pair_by_seed_and_broadcast_unseeded_baselines():
    table = make_frame([
        row(seed=1, value=50.0), row(seed=2, value=40.0),
        row(intermediate_task="mnli", seed=1, value=55.0),
        row(intermediate_task="mnli", seed=2, value=41.0),
        row(target_task="tatoeba", seed=None, value=30.0),
        row(target_task="tatoeba", intermediate_task="mnli", seed=1, value=45.0),
        row(target_task="tatoeba", intermediate_task="mnli", seed=2, value=20.0),
    ])
    gains = paired_gains(table).sort_values(["target_task", "seed"])
    assert gains["gain"].tolist() == [15.0, -10.0, 5.0, 1.0]
