import pytest

from stilts_core.grid import GridError, load_config, plan
from stilts_core.paths import configs_dir


def test_smoke_grid_plan_has_each_run_once_in_dependency_order():
    runs = plan(load_config(configs_dir() / "smoke.yaml"))
    ids = [r.run_id for r in runs]
    assert len(ids) == len(set(ids))
    phases = [r.phase for r in runs]
    # 2 seeds x (1 intermediate + 2 target + 2 evaluations + 1 retrieval) + base retrieval
    assert (phases.count("intermediate"), phases.count("target"),
            phases.count("zero_shot_eval"), phases.count("retrieval")) == (2, 4, 4, 3)
    position = {run_id: i for i, run_id in enumerate(ids)}
    for run in runs:
        assert all(position[d] < position[run.run_id] for d in run.depends_on)
    baselines = [r for r in runs if r.phase == "target" and not r.params["intermediate_run"]]
    assert {r.params["seed"] for r in baselines} == {1, 2}


@pytest.mark.parametrize("text, message", [
    ("name: g\nmodel: m\nseeds: [1]\nintermediate_tasks: [none, xnli]\n",
     "not an intermediate task or mixture"),
    ("name: g\nmodel: m\nseeds: [one]\nintermediate_tasks: [none]\n", "seeds.0"),
    ("name: g\nmodel: m\nseeds: [1]\nintermediate_tasks: [none]\ntarget_tasks: [foo]\n",
     "unknown task 'foo'"),
    ("name: g\nmodel: m\nseeds: [1]\nintermediate_tasks: [none]\ncolour: red\n", "colour"),
    ("name: g\nmodel: m\nseeds: [1]\nintermediate_tasks: [none]\nretrieval_tasks: [bucc2018]\n",
     "is bitext_mining: score its predictions with `stilts score`"),
])
def test_invalid_configs_name_file_and_field(tmp_path, text, message):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(GridError, match=rf"grid\.yaml: .*{message}"):
        load_config(path)


def test_full_catalogue_grid_plans_with_each_tasks_published_defaults(tmp_path):
    path = tmp_path / "full.yaml"
    path.write_text("name: full\nmodel: xlm-roberta-large\ndata_root: hub\nseeds: [1, 2, 3]\n"
                    "intermediate_tasks: [none, multi, squad, ccg, hellaswag]\n"
                    "target_tasks: [xnli, pawsx, udpos, panx, xquad, mlqa, tydiqa, xcopa]\n")
    runs = plan(load_config(path))
    targets = [r.params for r in runs if r.phase == "target"]
    assert len(targets) == 3 * 5 * 8
    settings = {p["task"]: (p["epochs"], p["batch_size"]) for p in targets}
    assert settings == {"xnli": (2, 32), "pawsx": (5, 32), "udpos": (10, 32), "panx": (10, 32),
                        "xquad": (2, 16), "mlqa": (2, 16), "tydiqa": (2, 16), "xcopa": (2, 32)}
    multi = next(r.params for r in runs if r.phase == "intermediate" and r.params["task"] == "multi")
    assert multi["epochs"] == 3 and multi["learning_rate"] == 1e-5
