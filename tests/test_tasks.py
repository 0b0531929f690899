import pytest
from pydantic import ValidationError

from stilts_core.tasks import TASKS, HubSource, TaskSpec, get_task


def test_registry_declares_the_three_fixture_tasks_with_consistent_roles():
    assert get_task("mnli").role == "intermediate"
    assert get_task("xnli").role == "target"
    assert get_task("tatoeba").role == "retrieval"
    for task in TASKS.values():
        assert task.metric
        assert task.train_language in task.languages or task.role == "retrieval"


def test_unknown_task_names_the_registered_ones():
    with pytest.raises(KeyError, match="registered tasks: .*mnli"):
        get_task("nope")


def test_hub_config_uses_the_task_language_code():
    assert get_task("tatoeba").hub_config("zh") == "tatoeba.cmn"
    assert get_task("tatoeba").hub_config("fa") == "tatoeba.pes"
    assert get_task("xnli").hub_config("de") == "de"


def test_pair_classification_needs_two_fields_and_labels():
    with pytest.raises(ValidationError, match="two text_fields"):
        TaskSpec(name="bad", role="target", format="pair_classification", description="",
                 languages=("en",), hub=HubSource(path="x", splits={"test": "test"}),
                 text_fields=("a",), label_field="label", labels=("x",), metric="accuracy",
                 citation="c")


def test_tasks_are_frozen_and_reject_unknown_keys():
    with pytest.raises(ValidationError, match="colour"):
        TaskSpec(**{**get_task("xnli").model_dump(), "colour": "red"})
    with pytest.raises(ValidationError, match="frozen"):
        get_task("xnli").metric = "f1"
