import pytest
from pydantic import ValidationError

from stilts_core.formats import FORMATS, model_head
from stilts_core.tasks.metrics import METRICS
from stilts_core.tasks.registry import MIXTURES, TASKS, get_task
from stilts_core.tasks.spec import Fields, HubSource, TaskSpec


def test_the_catalogue_of_phang_et_al_and_xtreme_r_is_declared():
    intermediate = {n for n, t in TASKS.items() if t.role == "intermediate"}
    assert intermediate == {"anli_plus", "ccg", "commonsense_qa", "cosmos_qa", "hellaswag", "mnli",
                            "qqp", "squad", "squad_v1", "sst2"}
    assert set(MIXTURES["multi"].tasks) == intermediate - {"squad_v1"}
    targets = {n for n, t in TASKS.items() if t.role == "target"}
    assert targets == {"xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "xcopa"}
    sizes = {name: len(get_task(name).languages) for name in ("udpos", "panx", "tatoeba", "xcopa",
                                                               "xquad", "mlqa", "tydiqa", "xnli")}
    assert sizes == {"udpos": 38, "panx": 48, "tatoeba": 41, "xcopa": 11, "xquad": 12, "mlqa": 7,
                     "tydiqa": 9, "xnli": 15}


def test_training_stages_point_at_english_data_of_the_same_format():
    for task in TASKS.values():
        for stage in task.training:
            for ref in (stage.train, stage.dev):
                source = get_task(ref.task)
                assert source.format == task.format, (task.name, ref.task)
                assert ref.language in source.languages
        if task.role in ("intermediate", "target"):
            assert model_head(task.format) and task.dev_metric in METRICS, task.name
    assert [s.train.task for s in get_task("xcopa").training] == ["siqa", "copa"]
    assert get_task("xquad").training[0].train.task == "squad_v1"
    assert get_task("xnli").training[0].train.task == "mnli"


def test_published_defaults_are_declared_per_task():
    epochs = {n: get_task(n).defaults.epochs for n in ("xnli", "pawsx", "udpos", "panx", "xquad",
                                                       "mlqa", "tydiqa", "mnli")}
    assert epochs == {"xnli": 2, "pawsx": 5, "udpos": 10, "panx": 10, "xquad": 2, "mlqa": 2,
                      "tydiqa": 2, "mnli": 3}
    assert get_task("xquad").defaults.batch_size == 16 and get_task("xquad").defaults.max_length == 384
    assert get_task("panx").defaults.batch_size == 32 and get_task("panx").defaults.max_length == 256


def test_unknown_task_names_the_registered_ones_and_the_closest():
    with pytest.raises(KeyError, match="registered: .*mnli") as unknown:
        get_task("nope")
    assert "did you mean" not in str(unknown.value)  # nothing registered is close to it
    with pytest.raises(KeyError, match=r"unknown task 'xnl'; did you mean 'xnli'\?"):
        get_task("xnl")


def test_hub_config_uses_the_task_language_code():
    assert get_task("tatoeba").hub_config("zh") == "tatoeba.cmn"
    assert get_task("tatoeba").hub_config("fa") == "tatoeba.pes"
    assert get_task("xnli").hub_config("de") == "de"


def test_each_format_checks_its_declared_fields():
    common = dict(name="bad", role="source", description="", languages=("en",),
                  hub=HubSource(path="x", splits={"test": "test"}, evidence="test"),
                  metric="accuracy",
                  dev_metric="accuracy", citation="c")
    with pytest.raises(ValidationError, match="one or two text fields"):
        TaskSpec(format="classification", fields=Fields(text=("a", "b", "c"), label="l"),
                 labels=("x",), **common)
    with pytest.raises(ValidationError, match="needs tokens and tags"):
        TaskSpec(format="token_classification", fields=Fields(tokens="t"), **common)
    with pytest.raises(ValidationError, match="hub source or a local_only_reason"):
        TaskSpec(format="classification", fields=Fields(text=("a",), label="l"), labels=("x",),
                 **{**common, "hub": None})
    with pytest.raises(ValidationError, match=r"unknown task format 'clasification'; did you mean "
                                              r"'classification' or"):
        TaskSpec(format="clasification", fields=Fields(text=("a",), label="l"), labels=("x",),
                 **common)


def test_a_format_is_one_declared_object_that_every_layer_looks_up():
    """Each format module declares everything about its format; the task, data, training and
    evaluation code only look it up, so a new format is one module plus its registry entry."""
    from stilts_core.formats.registry import DECLARED

    assert set(FORMATS) == {declared.name for declared in DECLARED}
    for task in TASKS.values():
        declared = FORMATS[task.format]
        assert task.group == declared.group and task.declared_format is declared, task.name
    trained = {name for name, declared in FORMATS.items() if declared.head is not None}
    assert trained == {"classification", "multiple_choice", "token_classification",
                       "extractive_qa"}
    with pytest.raises(KeyError, match=r"unknown trainable format 'ranking'"):
        model_head("ranking")
    scored = {name: declared.protocols for name, declared in FORMATS.items() if declared.protocols}
    assert scored == {"bitext_retrieval": ("encoder",), "bitext_mining": ("encoder",),
                      "ranking": ("encoder", "dual_encoder")}
    assert [name for name, declared in FORMATS.items() if declared.parallel] == ["bitext_retrieval"]


def test_tasks_are_frozen_and_reject_unknown_keys():
    with pytest.raises(ValidationError, match="colour"):
        TaskSpec(**{**get_task("xnli").model_dump(), "colour": "red"})
    with pytest.raises(ValidationError, match="frozen"):
        get_task("xnli").metric = "f1"


def test_metrics_are_validated_against_the_registry():
    with pytest.raises(ValidationError, match=r"unknown metric\(s\) \['seqeval_f1'\]"):
        TaskSpec(name="t", role="retrieval", format="bitext_retrieval", description="d",
                 languages=("en",), hub=HubSource(path="p", splits={"test": "test"}, evidence="test"),
                 fields=Fields(text=("a", "b")), metric="seqeval_f1", dev_metric="accuracy",
                 citation="c")
    assert get_task("udpos").metric == get_task("panx").metric == "seqeval"
    assert get_task("udpos").extra_metrics == ("token_accuracy",)
    assert get_task("mlqa").metric == "mlqa" and get_task("squad").metric == "squad_v2"


def test_benchmarks_declare_the_official_task_lists_and_groups():
    from stilts_core.evaluation.submission import LAYOUTS
    from stilts_core.tasks.benchmarks import BENCHMARKS

    xtreme, xtreme_r = BENCHMARKS["xtreme"], BENCHMARKS["xtreme-r"]
    assert len(xtreme.tasks) == 9 and len(xtreme_r.tasks) == 10
    assert {t: len(langs) for t, langs in xtreme.tasks.items()} == {
        "pawsx": 7, "xnli": 15, "panx": 40, "udpos": 33, "bucc2018": 4, "tatoeba": 36,
        "xquad": 11, "mlqa": 7, "tydiqa": 9}
    assert xtreme.groups["retrieval"] == ("bucc2018", "tatoeba")
    assert set(xtreme_r.groups) == {"classification", "structured_prediction", "qa", "retrieval"}
    for name in {*xtreme.tasks, *xtreme_r.tasks}:
        task = get_task(name)
        assert task.format in LAYOUTS and task.group is not None, name
    assert get_task("pawsx").label_names == ("0", "1")  # XTREME's PAWS-X files say 0/1
    assert {get_task(n).group for n in ("xnli", "xcopa", "udpos", "tydiqa", "lareqa")} == {
        "classification", "multiple_choice", "structured_prediction", "qa", "retrieval"}
