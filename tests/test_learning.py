"""The learning check of every training run: the floor a model gets without learning, the dev
score's interval, and the rows a training run writes."""

from __future__ import annotations

import pytest
from statsmodels.stats.proportion import proportion_confint

from stilts_core.evaluation import learning
from stilts_core.tasks.registry import get_task


def test_the_floor_is_chance_for_balanced_labels_and_the_majority_class_otherwise():
    xnli = get_task("xnli")
    balanced = [0, 1, 2] * 100
    assert learning.floor(xnli, balanced) == (pytest.approx(100 / 3), "chance")
    skewed = [0] * 150 + [1] * 100 + [2] * 50
    assert learning.floor(xnli, skewed) == (50.0, "majority class")
    csqa = get_task("commonsense_qa")  # five choices
    assert learning.floor(csqa, [0, 1, 2, 3, 4] * 40) == (20.0, "chance")


def test_the_tagging_floor_is_no_entity_for_ner_and_the_commonest_tag_otherwise():
    panx = get_task("panx")  # dev metric: entity F1
    gold = [["B-PER", "I-PER", "O", "O"], ["O", "B-LOC", "O"]]
    assert learning.floor(panx, gold) == (0.0, "no entity")
    udpos = get_task("udpos")  # dev metric: token accuracy
    value, kind = learning.floor(udpos, [["NOUN", "VERB", "NOUN"], ["NOUN", "ADJ"]])
    assert (value, kind) == (60.0, "every word NOUN")


def test_accuracy_gets_wilson_and_other_metrics_a_seeded_bootstrap():
    predictions, gold = [1] * 140 + [0] * 60, [1] * 200
    low, high = learning.interval("accuracy", predictions, gold)
    expected = proportion_confint(140, 200, alpha=0.05, method="wilson")
    assert (low, high) == pytest.approx((100 * expected[0], 100 * expected[1]))
    tags = [["B-PER", "O"], ["O", "B-LOC"], ["B-ORG", "I-ORG"]] * 70
    predicted = [["B-PER", "O"], ["O", "O"], ["B-ORG", "I-ORG"]] * 70
    first = learning.interval("seqeval", predicted, tags)
    assert first == learning.interval("seqeval", predicted, tags)  # the same resamples
    point = learning.metric_value("seqeval", predicted, tags)
    assert first[0] < point < first[1]


@pytest.mark.parametrize("examples, right, learned", [
    (300, 150, True),     # 50% [44.4, 55.6] clears a 33.3 floor
    (300, 110, False),    # 36.7% [31.4, 42.3]: the interval reaches below the floor
    (150, 100, False),    # far above the floor, but too few examples for the check
])
def test_a_run_learned_only_with_enough_examples_and_an_interval_above_the_floor(
        examples, right, learned):
    gold = [0, 1, 2] * (examples // 3)
    predictions = gold[:right] + [(label + 1) % 3 for label in gold[right:]]
    record = learning.learning_record(get_task("xnli"), predictions, gold)
    assert record["learned"] is learned
    assert record["metric"] == "accuracy" and record["examples"] == examples
    assert record["floor_kind"] == "chance" and record["interval_low"] < record["value"]


def test_the_dev_rows_of_a_training_run_carry_the_check(tmp_path):
    from stilts_core.phases.common import dev_rows
    from stilts_core.runs.results import make_frame

    record = learning.learning_record(get_task("xnli"), [0, 1, 2] * 100, [0, 1, 2] * 100)
    rows = make_frame(dev_rows("m", "none", "xnli", "en", 1, "smoke run", tmp_path, record))
    assert dict(zip(rows["metric"], rows["value"], strict=True)) == pytest.approx({
        "accuracy": 100.0, "dev_interval_low": record["interval_low"],
        "dev_interval_high": 100.0, "learning_floor": 100 / 3, "dev_examples": 300})
    assert set(rows["split"]) == {"validation"}


def test_the_setup_chapter_shows_the_pilots_curve_with_its_floors(tmp_path):
    import json

    from stilts_core.book.chapters.setup import learning_curve, learning_curve_figure

    def line(task, dev_task, steps, value, learned):
        return {"task": task, "dev_task": dev_task, "phase": "intermediate", "steps": steps,
                "examples": 16 * steps, "passes": 1.0, "seconds": 3.0 * steps,
                "provenance": "reduced-scale real run", "grid_run": steps == 250,
                "dev_metric": "accuracy", "dev_value": value, "dev_interval_low": value - 5,
                "dev_interval_high": value + 5, "dev_examples": 300, "dev_floor": 34.7,
                "dev_floor_kind": "majority class", "dev_learned": learned}

    path = tmp_path / "curve.json"
    path.write_text(json.dumps({"curve": [line("mnli", "mnli", 550, 36.7, False),
                                          line("mnli", "mnli", 250, 56.0, True),
                                          line("multi", "sst2", 250, 80.0, True)]}))
    table = learning_curve(path)
    assert table["steps"].tolist() == [250, 550, 250]  # by task, then budget
    assert table.loc[0, "95% interval"] == "51.0 to 61.0"
    assert table.loc[0, "floor"] == "34.7 (majority class)"
    assert table["learned"].tolist() == [True, False, True]
    figure = learning_curve_figure(path)
    assert [axis.get_title() for axis in figure.axes] == ["mnli", "multi (sst2)"]
