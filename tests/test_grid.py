import pytest

from stilts_core.grid.config import GridError
from stilts_core.grid.plan import load_config, plan
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


HEAD = "name: g\nmodels: [tiny-xlmr]\n"


@pytest.mark.parametrize("text, message", [
    ("name: g\nmodels: [tiny-xlmr]\nseeds: [1]\nintermediate_tasks: [none, xnli]\n",
     "not an intermediate task or mixture"),
    ("name: g\nmodels: [tiny-xlmr]\nseeds: [one]\nintermediate_tasks: [none]\n", "seeds.0"),
    ("name: g\nmodels: [tiny-xlmr]\nseeds: [1]\nintermediate_tasks: [none]\ntarget_tasks: [foo]\n",
     "unknown task 'foo'"),
    ("name: g\nmodels: [tiny-xlmr]\nseeds: [1]\nintermediate_tasks: [none]\ncolour: red\n", "colour"),
    ("name: g\nmodels: [tiny-xlmr]\nseeds: [1]\nintermediate_tasks: [none]\nalignment_tasks: [bucc2018]\n",
     "'bucc2018' has no parallel sentences"),
    ("name: g\nmodels: [tiny-xlmr]\nseeds: [1]\nintermediate_tasks: [none]\nretrieval:\n  preset: x\n",
     "unknown representation preset 'x'"),
    ("name: g\nmodels: [tiny-xlmr]\nseeds: [1]\nintermediate_tasks: [none]\nretrieval_protocols: [y]\n",
     "unknown protocol"),
    (f"{HEAD}seeds: [1.5]\nintermediate_tasks: [none]\n", "seeds.0: Input should be a valid integer"),
    (f"{HEAD}seeds: [1]\nintermediate_tasks: [none]\nretrieval_tasks: [tatoeba]\n"
     "alignment_tasks: [tatoeba]\nalignment: {retrieval_layer: 2}\n", "encoded twice"),
    (f"{HEAD}seeds: [1]\nintermediate_tasks: [none]\nalignment_tasks: [tatoeba]\n"
     "alignment_after_target: {tasks: [xnli]}\n", "needs its tasks among target_tasks"),
    (f"{HEAD}seeds: [1]\nintermediate_tasks: [none]\ntarget_tasks: [xnli]\n"
     "alignment_tasks: [tatoeba]\nalignment_after_target: {tasks: [xnli], languages: [xx]}\n",
     "\\['xx'\\] are not languages of tatoeba"),
    (f"{HEAD}seeds: [1]\nintermediate_tasks: [none]\ntarget_tasks: [xnli]\n"
     "alignment_tasks: [tatoeba]\nalignment: {retrieval_layer: 2, layers: [0, 1]}\n",
     "retrieval_layer 2 is not among layers"),
    (f"{HEAD}seeds: ['1']\nintermediate_tasks: [none]\n", "seeds.0: Input should be a valid integer"),
    (f"{HEAD}seeds: [1, 1]\nintermediate_tasks: [none]\n", "repeat a seed"),
    (f"{HEAD}seeds: [1]\nintermediate_tasks: [none]\ntarget_tasks: [xnli]\n"
     "languages: {xnli: [de, xx]}\n", r"languages: .*xnli: \['xx'\] is not a subset"),
    (f"{HEAD}seeds: [1]\nintermediate_tasks: [none]\nresources: {{train: {{gpus: 1}}}}\n",
     r"unknown phase\(s\) \['train'\]"),
    (f"{HEAD}seeds: [1]\nintermediate_tasks: [none]\nresources: {{target: {{gpus: -1}}}}\n",
     "resources.target.gpus"),
    (f"{HEAD}seeds: [1]\nintermediate_tasks: [none]\nresources: {{target: 2}}\n",
     "resources: Value error, give per phase a mapping"),
    (f"{HEAD}seeds: [1]\nintermediate_tasks: [none, mnli]\nhyperparameters: {{learning_rate: 0}}\n",
     r"task 'mnli', seed 1: phase 'intermediate': learning_rate: Input should be greater than 0"),
    (f"{HEAD}seeds: [1]\nintermediate_tasks: [none]\ntarget_tasks: [xnli]\n"
     "hyperparameters_per_task: {xnli: {per_device_batch_size: 5}}\n",
     "task 'xnli', seed 1: .*not a multiple"),
    (f"{HEAD}seeds: [1]\nintermediate_tasks: [none]\nhyperparameters_per_task: {{tatoeba: {{}}}}\n",
     "'tatoeba' is not trained"),
    (f"{HEAD}seeds: [1]\nintermediate_tasks: [none]\nmax_eval_examples: {{mnli: 10}}\n",
     "max_eval_examples: 'mnli' is not scored per language"),
    (f"{HEAD}seeds: [1]\nintermediate_tasks: [none]\nmax_eval_examples: {{xnli: 0}}\n",
     "max_eval_examples: xnli: 0 is not a positive count"),
    (f"{HEAD}seeds: [1]\nintermediate_tasks: [none]\n"
     "variants: {mlm: {intermediate_tasks: [mnli], params: {epochs: 1}}}\n",
     "would pool with plain training"),
])
def test_invalid_configs_name_file_and_field(tmp_path, text, message):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(GridError, match=rf"grid\.yaml: .*{message}"):
        load_config(path)


def test_full_catalogue_grid_plans_with_each_tasks_published_defaults(tmp_path):
    path = tmp_path / "full.yaml"
    path.write_text("name: full\nmodels: [xlm-roberta-large]\ndata_root: hub\nseeds: [1, 2, 3]\n"
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
    from stilts_core.grid.plan import load_config, plan, submission_runs

    path = tmp_path / "grid.yaml"
    path.write_text(
        "name: g\nmodels: [tiny-xlmr]\nseeds: [1, 2]\nintermediate_tasks: [none, mnli]\n"
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


def test_plan_covers_models_variants_languages_and_per_task_settings(tmp_path):
    from stilts_core.grid.config import DEFAULT_RESOURCES
    from stilts_core.grid.plan import plan_table

    path = tmp_path / "grid.yaml"
    path.write_text(
        "name: g\nmodels: [tiny-xlmr, xlm-roberta-base]\nseeds: [1, 2]\nintermediate_tasks: [none, mnli]\n"
        "variants: {mlm: {intermediate_tasks: [mnli], params: {mlm_languages: [de, fr]}}}\n"
        "target_tasks: [xnli]\nlanguages: {xnli: [de, fr]}\n"
        "hyperparameters: {learning_rate: 2.0e-5}\n"
        "hyperparameters_per_task: {mnli: {epochs: 1}}\n"
        "resources: {target: {gpus: 2, time_min: 90}, zero_shot_eval: {gpus: 2}}\n")
    config = load_config(path)
    runs = plan(config)
    intermediate = [r.params for r in runs if r.phase == "intermediate"]
    # 2 models x 2 seeds x (plain mnli, mnli with continued MLM)
    assert len(intermediate) == 8
    assert sum(bool(p["mlm_languages"]) for p in intermediate) == 4
    assert {p["epochs"] for p in intermediate} == {1}
    targets = [r.params for r in runs if r.phase == "target"]
    assert len(targets) == 2 * 2 * 3 and {p["learning_rate"] for p in targets} == {2e-5}
    assert {p["epochs"] for p in targets} == {2}  # XNLI's published default is kept
    evaluations = [r.params for r in runs if r.phase == "zero_shot_eval"]
    assert {tuple(p["languages"]) for p in evaluations} == {("de", "fr")}
    table = plan_table(config)
    assert len(table) == len(runs) and set(table["status"]) == {"to do"}
    target_rows = table[table["phase"] == "target"]
    assert (target_rows["requested_gpu_hours"] == 3.0).all()  # 2 GPUs x 1.5 h
    # a phase's settings override its own defaults one by one
    evaluation = config.resources_for("zero_shot_eval")
    assert evaluation == DEFAULT_RESOURCES["zero_shot_eval"].model_copy(update={"gpus": 2})
    assert evaluation.mem_gb == 32 and evaluation.time_min == 4 * 60
    assert table["run_id"].is_unique
    labelled = {r.run_id: r for r in runs}
    upstream = target_rows["upstream"][target_rows["upstream"] != ""]
    assert all(labelled[u].phase == "intermediate" for u in upstream)


def test_identical_runs_are_planned_once(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("name: g\nmodels: [tiny-xlmr, tiny-xlmr]\nseeds: [1]\n"
                    "intermediate_tasks: [none, mnli, mnli]\ntarget_tasks: [xnli]\n")
    phases = [r.phase for r in plan(load_config(path))]
    assert phases.count("intermediate") == 1 and phases.count("target") == 2


def test_the_learning_study_scores_enough_dev_examples_and_aligns_at_three_points():
    """configs/e5_study_v2.yaml: every training run scores at least the learning check's dev
    examples with one thread; Tatoeba is scored by the alignment pass of the base
    encoder, the 12 phase-(ii) encoders and the 15 encoders PAN-X fine-tuning leaves, 500 pairs
    per language."""
    from stilts_core.evaluation.learning import MIN_DEV_EXAMPLES

    runs = plan(load_config(configs_dir() / "e5_study_v2.yaml"))
    phases = [r.phase for r in runs]
    assert (phases.count("intermediate"), phases.count("target"), phases.count("zero_shot_eval"),
            phases.count("retrieval"), phases.count("alignment")) == (12, 30, 30, 0, 28)
    trained = [r for r in runs if r.phase in ("intermediate", "target")]
    assert all(r.params["max_eval_examples"] >= MIN_DEV_EXAMPLES and r.params["threads"] == 1
               for r in trained)
    aligned = [r for r in runs if r.phase == "alignment"]
    assert all(r.params["retrieval_layer"] == 12 and r.params["max_eval_examples"] == 500
               for r in aligned)
    assert sum(bool(r.params.get("target_run")) for r in aligned) == 15


def test_an_unknown_model_is_refused_when_the_grid_is_planned(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(f"{HEAD.replace('tiny-xlmr', 'xlm-roberta-huge')}seeds: [1]\n"
                    "intermediate_tasks: [none]\n")
    with pytest.raises(GridError, match=r"grid\.yaml: models: .*unknown model 'xlm-roberta-huge'.* "
                                        r"registered: .*tiny-xlmr"):
        load_config(path)


def test_a_relative_data_root_is_read_from_the_config_folder(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "configs").mkdir()
    path = tmp_path / "configs" / "grid.yaml"
    path.write_text(f"{HEAD}data_root: ../corpus\nseeds: [1]\nintermediate_tasks: [none]\n"
                    "target_tasks: [xnli]\n")
    assert {r.params["data_root"] for r in plan(load_config(path))} == {
        str((tmp_path / "corpus").resolve())}
    path.write_text(f"{HEAD}data_root: corpus\nseeds: [1]\nintermediate_tasks: [none]\n")
    with pytest.raises(GridError, match=r"data_root 'corpus': no folder .*configs/corpus \(a "
                                        r"relative data_root is read from the config file's"):
        load_config(path)


def test_data_roots_inside_the_repository_are_recorded_relative_to_it(tmp_path):
    """The smoke grid names its fixtures relative to its own folder; a copy elsewhere names them
    by an absolute path: both plan the same runs, with the same ids."""
    smoke = load_config(configs_dir() / "smoke.yaml")
    assert smoke.data_root == "data/fixtures"
    copy = tmp_path / "smoke.yaml"
    text = (configs_dir() / "smoke.yaml").read_text()
    copy.write_text(text.replace("data_root: ../data/fixtures",
                                 f"data_root: {configs_dir().parent / 'data' / 'fixtures'}"))
    assert [r.run_id for r in plan(load_config(copy))] == [r.run_id for r in plan(smoke)]


def test_threads_declared_in_the_config_are_part_of_every_run():
    from stilts_core.runs.execution import DEFAULT_THREADS

    smoke = load_config(configs_dir() / "smoke.yaml")
    assert smoke.threads is None and all("threads" not in r.params for r in plan(smoke))
    two = smoke.model_copy(update={"threads": 2})
    assert {r.params["threads"] for r in plan(two)} == {2}
    assert not {r.run_id for r in plan(two)} & {r.run_id for r in plan(smoke)}
    assert DEFAULT_THREADS == 1


def test_the_run_summary_counts_each_run_once():
    from stilts_core.grid.executors import GridReport

    first = GridReport(executed=["a"], reused=["b", "c"])
    second = GridReport(executed=["d"], reused=["a", "b", "c"])
    merged = first.merge(second)
    assert (merged.executed, merged.reused) == (["a", "d"], ["b", "c"])
    assert merged.summary().startswith("2 executed, 2 already done")


def test_alignment_after_target_and_retrieval_from_the_alignment_pass_are_planned(tmp_path):
    """The third point in training: one alignment run per target run of the named task, on the
    declared languages, after that run; the other alignment runs score the retrieval too."""
    path = tmp_path / "g.yaml"
    path.write_text(f"{HEAD}data_root: {configs_dir().parent / 'data' / 'fixtures'}\n"
                    "seeds: [1, 2]\nintermediate_tasks: [none, mnli]\ntarget_tasks: [xnli]\n"
                    "alignment_tasks: [tatoeba]\nalignment: {retrieval_layer: 2}\n"
                    "alignment_after_target: {tasks: [xnli], languages: [de, fr]}\n")
    runs = plan(load_config(path))
    targets = {r.run_id for r in runs if r.phase == "target"}
    after = [r for r in runs if r.phase == "alignment" and r.params.get("target_run")]
    assert {r.params["target_run"] for r in after} == targets and len(after) == 4
    assert all(r.depends_on == [r.params["target_run"]] and r.params["languages"] == ["de", "fr"]
               for r in after)
    before = [r for r in runs if r.phase == "alignment" and not r.params.get("target_run")]
    assert len(before) == 3 and all(r.params["retrieval_layer"] == 2 and not r.params["languages"]
                                    for r in before)
    assert not [r for r in runs if r.phase == "retrieval"]
