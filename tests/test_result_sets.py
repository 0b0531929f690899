"""The book configuration: result sets, the plan, what the statistics analyse; a run's cost
counts every attempt."""

import json

import pytest
import yaml

from stilts_core.analysis.result_sets import AnalysisSettings, ResultSet, ResultSetError, load_book_config
from stilts_core.book.build import CHAPTERS, Build
from stilts_core.runs.execution import attempt, compute_record


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
    (lambda c: c["plan"]["outcomes"][1].update(task_groups=["tagging"]),
     r"outcome 'transfer': unknown task groups \['tagging'\]"),
    (lambda c: c["plan"]["outcomes"].append(dict(c["plan"]["outcomes"][0])), r"outcome names repeat"),
])
def test_book_configuration_errors_name_the_file_and_field(tmp_path, change, message):
    from stilts_core.analysis.result_sets import DEFAULT_BOOK_CONFIG

    config = yaml.safe_load(DEFAULT_BOOK_CONFIG.read_text())
    change(config)
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ResultSetError, match=rf"book.yaml: (?s:.*){message}"):
        load_book_config(path)
    with pytest.raises(ResultSetError, match=r"no such book configuration"):
        load_book_config(tmp_path / "none.yaml")


def result_set(name, provenance, groups=("classification", "retrieval")):
    return ResultSet(name=name, path=f"{name}.parquet", provenance=provenance, description=name,
                     models=("m",), task_groups=frozenset(groups))


def test_the_statistics_analyse_findings_and_a_simulation_only_without_one():
    config = load_book_config()
    simulation = result_set("simulation", "simulation")
    smoke, reduced = result_set("smoke", "smoke run"), result_set("e5", "reduced-scale real run")
    assert Build(config, (smoke,), (), simulation).analysed() == [simulation]
    assert Build(config, (smoke, reduced), (), None).analysed() == [reduced]
    analysis = next(c for c in CHAPTERS if c.page == "mixed_effects")
    parameters = analysis.parameters(Build(config, (reduced,), (), None), reduced,
                                     config.plan.outcomes[0])
    assert parameters["bootstrap_reps"] == config.plan.bootstrap_reps
    assert parameters["formula"] == config.plan.formula and parameters["task_groups"] == []


def test_each_finding_is_analysed_for_every_outcome_it_has_gains_for():
    """The pre-registered outcome (every gain) first, then transfer and alignment where the set
    has their task groups; a simulation gets the pre-registered outcome only."""
    config = load_book_config()
    outcomes = {o.name: o for o in config.plan.outcomes}
    both = result_set("e5", "reduced-scale real run", ("classification", "retrieval"))
    retrieval_only = result_set("r", "reduced-scale real run", ("retrieval",))
    build = Build(config, (both, retrieval_only), (), None)
    assert [(s.name, o.name) for s, _, o in build.analyses()] == [
        ("e5", "all"), ("e5", "transfer"), ("e5", "alignment"), ("r", "all"), ("r", "alignment")]
    simulation = result_set("simulation", "simulation")
    assert [o.name for _, _, o in Build(config, (), (), simulation).analyses()] == ["all"]
    power = next(c for c in CHAPTERS if c.page == "power")
    alignment = power.parameters(build, both, outcomes["alignment"])
    assert alignment["task_groups"] == ["retrieval"]
    assert "task_group" not in alignment["formula"] and "morph" in alignment["formula"]
    assert alignment["outcome"].startswith("alignment: ")


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


def test_a_committed_set_in_the_book_configuration_is_read_not_run(tmp_path):
    """A ``path`` set is a table (e.g. a committed real set): planning the build reads it, runs
    no grid, and, as it is a finding, analyses it instead of a simulation."""
    import pandas as pd

    from stilts_core.analysis.result_sets import DEFAULT_BOOK_CONFIG
    from stilts_core.book.build import plan_build

    table = tmp_path / "real.parquet"
    pd.DataFrame([{"model": "multilingual-e5-small", "intermediate_task": "none",
                   "target_task": "tatoeba", "language": "de", "seed": None, "split": "test",
                   "metric": "accuracy", "value": 90.0, "provenance": "reduced-scale real run",
                   "run_id": "r", "settings": "{}"}]).to_parquet(table)
    config = yaml.safe_load(DEFAULT_BOOK_CONFIG.read_text())
    config["result_sets"] = [{"name": "real", "description": "a committed set", "path": str(table),
                              "analysis": {"bootstrap_reps": 50}}]
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump(config))
    build = plan_build(path)
    (real,) = build.sets
    assert (real.name, real.provenance, real.analysed) == ("real", "reduced-scale real run", True)
    assert build.simulation is None and build.analysed() == [real]
    assert build.grids == ("configs/xstilts.yaml",)
    assert build.config.plan.with_settings(real.analysis)["bootstrap_reps"] == 50
