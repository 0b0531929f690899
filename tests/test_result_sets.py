"""Result sets: one provenance class each, declared in a book configuration; summaries never
pool models, protocols or classes; a run's cost counts every attempt."""

import json

import pandas as pd
import pytest
import yaml

from stilts_core import report
from stilts_core.book import CHAPTERS, Build
from stilts_core.result_sets import (
    AnalysisSettings,
    ResultSet,
    ResultSetError,
    load_book_config,
    read_result_set,
)
from stilts_core.runs import attempt, compute_record


def row(**overrides):
    base = {"model": "m", "intermediate_task": "none", "target_task": "xnli", "language": "de",
            "seed": 1, "split": "test", "metric": "accuracy", "value": 50.0,
            "provenance": "smoke run", "run_id": "r", "settings": "{}"}
    return {**base, **overrides}


def write(path, rows):
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_a_result_set_holds_one_provenance_class(tmp_path):
    one = read_result_set(write(tmp_path / "Cluster Run.parquet", [row(provenance="partial run")]))
    assert (one.name, one.provenance, one.models) == ("cluster-run", "partial run", ("m",))
    mixed = write(tmp_path / "mixed.parquet", [row(), row(provenance="full-scale run", seed=2)])
    with pytest.raises(ResultSetError, match=r"mixed.parquet: .*one provenance class.*split it"):
        read_result_set(mixed)
    with pytest.raises(ResultSetError, match=r"missing.parquet: no such results table.*stilts collect"):
        read_result_set(tmp_path / "missing.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(ResultSetError, match=r"bad.parquet: not a collected results table"):
        read_result_set(tmp_path / "bad.parquet")


def test_the_default_book_configuration_is_valid_and_plans_the_smoke_grid():
    config = load_book_config()
    assert [s.name for s in config.result_sets][0] == "smoke"
    assert config.plan.bootstrap_reps == 1000
    assert config.simulation.analysis.bootstrap_reps < config.plan.bootstrap_reps
    settings = config.plan.with_settings(AnalysisSettings(bootstrap_reps=7))
    assert settings["bootstrap_reps"] == 7 and settings["power_reps"] == config.plan.power_reps


@pytest.mark.parametrize("change, message", [
    (lambda c: c["result_sets"][0].update(path="x.parquet"), r"result_sets.0: .*either grid .* or path"),
    (lambda c: c["result_sets"].append(dict(c["result_sets"][0])), r"names repeat"),
    (lambda c: c["plan"].update(colour="red"), r"plan.colour: Extra inputs"),
    (lambda c: c["plan"].update(power_test="anova"), r"plan.power_test: String should match"),
])
def test_book_configuration_errors_name_the_file_and_field(tmp_path, change, message):
    from stilts_core.result_sets import DEFAULT_BOOK_CONFIG

    config = yaml.safe_load(DEFAULT_BOOK_CONFIG.read_text())
    change(config)
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ResultSetError, match=rf"book.yaml: (?s:.*){message}"):
        load_book_config(path)
    with pytest.raises(ResultSetError, match=r"no such book configuration"):
        load_book_config(tmp_path / "none.yaml")


def result_set(name, provenance):
    return ResultSet(name=name, path=f"{name}.parquet", provenance=provenance, description=name,
                     models=("m",))


def test_the_statistics_analyse_findings_and_a_simulation_only_without_one():
    config = load_book_config()
    simulation = result_set("simulation", "simulation")
    smoke, reduced = result_set("smoke", "smoke run"), result_set("e5", "reduced-scale real run")
    assert Build(config, (smoke,), (), simulation).analysed() == [simulation]
    assert Build(config, (smoke, reduced), (), None).analysed() == [reduced]
    analysis = next(c for c in CHAPTERS if c.page == "mixed_effects")
    parameters = analysis.parameters(Build(config, (reduced,), (), None), reduced)
    assert parameters["bootstrap_reps"] == config.plan.bootstrap_reps
    assert parameters["formula"] == config.plan.formula


def test_summaries_and_figures_never_pool_models_protocols_or_classes():
    rows = []
    for model, offset in (("a", 0.0), ("b", 10.0)):
        rows += [row(model=model, intermediate_task="none", value=50 + offset),
                 row(model=model, intermediate_task="mnli", value=52 + offset)]
    for protocol, gain in (("encoder", 1.0), ("dual_encoder", 5.0)):
        settings = json.dumps({"protocol": protocol})
        rows += [row(target_task="tatoeba", intermediate_task="none", seed=None, settings=settings),
                 row(target_task="tatoeba", intermediate_task="mnli", value=50 + gain,
                     settings=settings)]
    rows.append(row(model="a", intermediate_task="none", seed=2, provenance="partial run"))
    table = pd.DataFrame(rows)
    gains = report.gain_summary(table)
    assert len(gains) == 4  # two models on xnli, two protocols on tatoeba
    assert set(gains.loc[gains["target_task"] == "tatoeba", "mean"]) == {1.0, 5.0}
    scores = report.score_summary(table)
    assert {key[:3] for key in scores.index} == {
        ("partial run", "a", ""), ("smoke run", "a", ""), ("smoke run", "b", ""),
        ("smoke run", "m", "dual_encoder"), ("smoke run", "m", "encoder")}
    titles = [title for title, _ in report.evidence_groups(table)]
    assert len(titles) == 5 and "m (smoke run), dual_encoder protocol" in titles
    assert len(report.gain_heatmaps(table)) == 4  # one figure per group that has gains
    aggregates = report.benchmark_table(table, "xtreme")
    assert set(zip(aggregates["provenance"], aggregates["protocol"], strict=True)) == {
        ("partial run", "encoder"), ("smoke run", "encoder"), ("smoke run", "dual_encoder")}


def test_the_cost_of_a_resumed_run_counts_every_attempt(tmp_path):
    killed = {"started": 100.0, "last_seen": 160.0, "finished": None, "gpus": 2, "device": "GPU"}
    resumed = {"started": 500.0, "last_seen": 590.0, "finished": 600.0, "gpus": 1, "device": "GPU"}
    record = compute_record([killed, resumed])
    assert record["seconds"] == 160.0 and record["attempts"] == 2
    assert record["attempt_seconds"] == [60.0, 100.0]
    assert record["gpu_seconds"] == 60.0 * 2 + 100.0
    (tmp_path / "attempts.json").write_text(json.dumps([killed]))
    with attempt(tmp_path) as attempts:
        on_disk = json.loads((tmp_path / "attempts.json").read_text())
        assert len(on_disk) == 2 and on_disk[1]["finished"] is None  # visible while it runs
    assert attempts[1]["finished"] is not None
    assert compute_record(attempts)["seconds"] >= 60.0
