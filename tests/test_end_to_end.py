"""The phases at a smaller size on the tiny offline model: learning, reuse, collection."""

import json

import pandas as pd
import pytest
import yaml

from stilts_core.cli import main
from stilts_core.grid.executors import run_local
from stilts_core.grid.plan import collect_grid, load_config, plan
from stilts_core.runs.execution import run_path
from stilts_core.runs.results import read_run_results

pytestmark = pytest.mark.slow
CHANCE = 100 / 3


@pytest.fixture(scope="module")
def grid(tmp_path_factory, isolated_outputs):
    config_path = tmp_path_factory.mktemp("grid") / "e2e.yaml"
    config_path.write_text(yaml.safe_dump({
        "name": "e2e", "models": ["tiny-xlmr"], "smoke": True,  # data: the bundled fixtures
        "seeds": [1], "intermediate_tasks": ["none", "mnli"], "target_tasks": ["xnli"],
        "retrieval_tasks": ["tatoeba"],
        "hyperparameters": {"learning_rate": 5e-4, "batch_size": 32, "per_device_batch_size": 32,
                            "epochs": 20, "max_length": 64, "eval_steps": 100},
        "retrieval": {"layer": -1, "max_length": 64},
    }))
    config = load_config(config_path)
    assert run_local(config).ok
    return config_path, config


def test_intermediate_and_target_models_learn_the_fixtures(grid):
    _, config = grid
    trained = [r for r in plan(config) if r.phase in ("intermediate", "target")]
    assert len(trained) == 3
    for run in trained:
        dev = read_run_results(run_path(run.run_id)).query("split == 'validation'")
        dev = dict(zip(dev["metric"], dev["value"], strict=True))
        assert list(dev) == ["accuracy", "dev_interval_low", "dev_interval_high",
                             "learning_floor", "dev_examples"]  # the score and its check
        assert dev["accuracy"] > CHANCE + 15, run.run_id
        assert dev["dev_interval_low"] > dev["learning_floor"] >= CHANCE - 1e-9, run.run_id


def test_target_run_starts_from_the_intermediate_encoder(grid):
    _, config = grid
    runs = plan(config)
    intermediate = next(r for r in runs if r.phase == "intermediate")
    stilts = next(r for r in runs if r.phase == "target" and r.params["intermediate_run"])
    assert stilts.params["intermediate_run"] == intermediate.run_id
    executed = (run_path(stilts.run_id) / "notebook.ipynb").read_text()
    assert intermediate.run_id in executed  # the injected parameters are kept


def test_zero_shot_predictions_for_every_fixture_language(grid):
    _, config = grid
    evaluation = next(r for r in plan(config) if r.phase == "zero_shot_eval")
    folder = run_path(evaluation.run_id) / "predictions"
    assert sorted(p.name for p in folder.iterdir()) == [
        "test-de.jsonl", "test-en.jsonl", "test-es.jsonl", "test-fr.jsonl"]
    assert len((folder / "test-de.jsonl").read_text().splitlines()) == 200  # smoke cap


def test_rerun_reuses_every_run(grid):
    config_path, config = grid
    done_times = {r.run_id: (run_path(r.run_id) / "DONE").stat().st_mtime for r in plan(config)}
    report = run_local(config)
    assert sorted(report.reused) == sorted(done_times) and not report.executed
    assert all((run_path(i) / "DONE").stat().st_mtime == t for i, t in done_times.items())
    retrieval = next(r for r in plan(config) if r.phase == "retrieval")
    args = ["run", "retrieval"]
    for name, value in retrieval.params.items():
        args += ["-p", name, json.dumps(value) if not isinstance(value, str) else value]
    assert main(args) == 0  # the CLI derives the same run id and reuses it


def test_plan_lists_every_run_done_and_collect_refuses_an_unfinished_grid(grid, tmp_path,
                                                                        capsys):
    config_path, config = grid
    assert main(["grid", "plan", str(config_path), "--output", str(tmp_path / "plan.csv")]) == 0
    printed = capsys.readouterr().out
    assert f"grid e2e: {len(plan(config))} runs (done {len(plan(config))}," in printed
    table = pd.read_csv(tmp_path / "plan.csv")
    assert set(table["status"]) == {"done"} and table["run_id"].is_unique
    larger = tmp_path / "larger.yaml"  # one more seed, not run
    larger.write_text(yaml.safe_dump({**yaml.safe_load(config_path.read_text()), "seeds": [1, 2]}))
    assert main(["collect", str(larger), "--output", str(tmp_path / "x.parquet")]) == 2
    assert "unfinished run(s)" in capsys.readouterr().err
    assert main(["collect", str(larger), "--partial", "--output", str(tmp_path / "x.parquet")]) == 0
    assert pd.read_parquet(tmp_path / "x.parquet").equals(collect_grid(config, tmp_path / "y.parquet"))


def test_collected_table_is_tidy_and_labelled(grid, tmp_path):
    _, config = grid
    table = collect_grid(config, tmp_path / "e2e.parquet")
    assert table.equals(pd.read_parquet(tmp_path / "e2e.parquet"))
    assert set(table["provenance"]) == {"smoke run"}
    xnli = table[(table["target_task"] == "xnli") & (table["split"] == "test")]
    assert sorted(xnli["language"].unique()) == ["de", "en", "es", "fr"]
    assert set(xnli["intermediate_task"]) == {"none", "mnli"}
    tatoeba = table[table["target_task"] == "tatoeba"]
    assert tatoeba[tatoeba["intermediate_task"] == "none"]["seed"].isna().all()
    assert (tatoeba["settings"].map(json.loads).map(lambda s: s["pooling"]) == "mean").all()


def test_exported_submission_rescores_to_the_numbers_the_runs_recorded(grid, tmp_path):
    config_path, config = grid
    submission, labels, report = tmp_path / "submission", tmp_path / "labels", tmp_path / "r.json"
    assert main(["export-submission", "--config", str(config_path), "--intermediate", "mnli",
                 "--seed", "1", "--output", str(submission), "--labels", str(labels)]) == 0
    assert sorted(p.name for p in submission.iterdir()) == ["tatoeba", "xnli"]
    assert (submission / "xnli" / "test-de.tsv").read_text().split("\n")[0] in (
        "entailment", "neutral", "contradiction")
    assert main(["score", "--predictions", str(submission), "--labels", str(labels),
                 "--benchmark", "xtreme", "--partial", "--output", str(report)]) == 0
    scored = json.loads(report.read_text())
    table = collect_grid(config, tmp_path / "e2e.parquet")
    recorded = table[(table["intermediate_task"] == "mnli") & (table["split"] == "test")
                     & (table["metric"] == "accuracy")]
    assert len(recorded) == 4 + 3  # XNLI en/de/fr/es, Tatoeba de/fr/es
    for row in recorded.itertuples():
        assert scored[row.target_task]["accuracy"][row.language] == row.value, row


def test_every_run_records_its_compute_and_the_grid_sums_it(grid):
    from stilts_core.grid.plan import compute_table
    from stilts_core.runs.execution import read_compute

    _, config = grid
    runs = plan(config)
    records = [read_compute(run_path(run.run_id)) for run in runs]
    assert all(r["seconds"] > 0 and r["gpus"] == 0 and r["device"].startswith("CPU")
               for r in records)
    table = compute_table(config)
    assert table.loc["all", "runs"] == table.loc["all", "done"] == len(runs)
    assert table.loc["all", "wall_hours"] == pytest.approx(
        sum(r["seconds"] for r in records) / 3600, abs=1e-3)
    assert table.loc["all", "gpu_hours"] == 0  # no GPU-hours on a CPU
