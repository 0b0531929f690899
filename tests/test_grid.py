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
    ("name: g\nmodel: m\nseeds: [1]\nintermediate_tasks: [none]\nalignment_tasks: [bucc2018]\n",
     "'bucc2018' has no parallel sentences"),
    ("name: g\nmodel: m\nseeds: [1]\nintermediate_tasks: [none]\nretrieval:\n  preset: x\n",
     "unknown representation preset 'x'"),
    ("name: g\nmodel: m\nseeds: [1]\nintermediate_tasks: [none]\nretrieval_protocols: [y]\n",
     "unknown protocol"),
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


def test_retrieval_plan_covers_protocols_presets_and_alignment(tmp_path):
    from stilts_core.grid import load_config, plan, submission_runs

    path = tmp_path / "grid.yaml"
    path.write_text(
        "name: g\nmodel: tiny-xlmr\nseeds: [1, 2]\nintermediate_tasks: [none, mnli]\n"
        "retrieval_tasks: [tatoeba, bucc2018, lareqa]\nretrieval_protocols: [encoder, dual_encoder]\n"
        "retrieval: {preset: xtreme-tatoeba}\nretrieval_per_task: {bucc2018: {layer: 7, pooling: first}}\n"
        "alignment_tasks: [tatoeba]\n")
    config = load_config(path)
    runs = plan(config)
    retrieval = [r for r in runs if r.phase == "retrieval"]
    # encoder protocol: the base encoder once, each of the 2 phase-(ii) encoders; 3 tasks
    encoder = [r for r in retrieval if r.params["protocol"] == "encoder"]
    assert len(encoder) == 3 * 3
    # dual encoder: LAReQA only, base and phase-(ii) encoders, once per seed
    dual = [r for r in retrieval if r.params["protocol"] == "dual_encoder"]
    assert {(r.params["task"], r.params["seed"]) for r in dual} == {("lareqa", 1), ("lareqa", 2)}
    assert len(dual) == 4
    bucc = next(r for r in encoder if r.params["task"] == "bucc2018")
    assert (bucc.params["layer"], bucc.params["pooling"]) == (7, "first")
    tatoeba = next(r for r in encoder if r.params["task"] == "tatoeba")
    assert tatoeba.params["layer"] == 14 and tatoeba.params["include_special_tokens"]
    assert tatoeba.params["max_length"] == 512
    lareqa = next(r for r in dual if r.params["task"] == "lareqa")
    assert (lareqa.params["max_length"], lareqa.params["candidate_max_length"]) == (96, 256)
    assert len([r for r in runs if r.phase == "alignment"]) == 3
    chosen = {r.run_id: r for r in runs}
    picked = [chosen[i] for i in submission_runs(config, "mnli", 2, protocol="dual_encoder")]
    lareqa_runs = [r for r in picked if r.params.get("task") == "lareqa"]
    assert len(lareqa_runs) == 1 and lareqa_runs[0].params["protocol"] == "dual_encoder"
    assert lareqa_runs[0].params["seed"] == 2
