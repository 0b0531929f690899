"""The question page's answer: a quantity is read only where every training run behind it
learned, the page records reach it, and a build without a finding answers nothing."""

import json

import pandas as pd
import pytest

from stilts_core.analysis.result_sets import read_result_set
from stilts_core.book import answer
from stilts_core.runs.results import make_frame

LANGUAGES = ["de", "fi", "sw", "tr"]


def score(intermediate, language, seed, value, target="xnli"):
    return {"model": "m", "intermediate_task": intermediate, "target_task": target,
            "language": language, "seed": seed, "split": "test", "metric": "accuracy",
            "value": value, "provenance": "reduced-scale real run",
            "run_id": f"{intermediate}-{target}-{seed}", "settings": "{}"}


def dev(intermediate, dev_task, seed, low):
    cell = {"model": "m", "intermediate_task": intermediate, "target_task": dev_task,
            "language": "en", "seed": seed, "split": "validation",
            "provenance": "reduced-scale real run", "run_id": f"{intermediate}-{dev_task}-{seed}",
            "settings": "{}"}
    return [{**cell, "metric": metric, "value": value}
            for metric, value in (("accuracy", low + 5.0), ("dev_interval_low", low),
                                  ("dev_interval_high", low + 10.0), ("learning_floor", 33.3),
                                  ("dev_examples", 300))]


def study(mnli_seed_2_low: float) -> pd.DataFrame:
    """Two seeds of baseline and MNLI on XNLI, MNLI gaining 2 to 5 points in every language;
    MNLI's seed-2 intermediate run has the dev interval given."""
    rows = [score(task, language, seed, 50.0 + (2.0 + k if task == "mnli" else 0.0) + seed)
            for task in ("none", "mnli") for seed in (1, 2)
            for k, language in enumerate(LANGUAGES)]
    for seed in (1, 2):
        rows += dev("none", "xnli", seed, 50.0) + dev("mnli", "xnli", seed, 50.0)
    rows += dev("mnli", "mnli", 1, 60.0) + dev("mnli", "mnli", 2, mnli_seed_2_low)
    return make_frame(rows)


def test_a_gain_is_read_only_where_every_run_behind_it_learned():
    learned = answer.answer_with_learning(study(60.0)).set_index("quantity")
    gain = learned.loc["xnli transfer gain from mnli"]
    assert gain["runs_learned"] == "2 of 2 seeds" and gain["decides"] == "positive"
    assert gain["estimate"] == pytest.approx(3.5)

    unlearned = answer.answer_with_learning(study(20.0)).set_index("quantity")
    gain = unlearned.loc["xnli transfer gain from mnli"]
    assert gain["runs_learned"] == "1 of 2 seeds"
    assert gain["decides"] == "not read: its runs did not all learn"
    assert gain["estimate"] == pytest.approx(3.5)  # the number stays; it is not read


def test_a_table_without_learning_checks_reads_nothing():
    table = study(60.0)
    unchecked = table[~table["metric"].str.startswith(("dev_", "learning_"))]
    row = answer.answer_with_learning(unchecked).iloc[0]
    assert row["runs_learned"] == "0 of 2 seeds" and row["decides"].startswith("not read")


@pytest.fixture
def finding(tmp_path):
    path = tmp_path / "study.parquet"
    study(60.0).to_parquet(path, index=False)
    return read_result_set(path, name="study", description="a study")


class Outcome:
    name = "all"


def test_the_answer_page_states_the_gains_and_the_records_of_the_statistics_pages(tmp_path,
                                                                               finding):
    class Report:
        slopes = pd.DataFrame({"estimate": [-0.4], "wald_low": [-1.1], "wald_high": [0.3]},
                              index=["average"])
        converged = True

    folder = tmp_path / "generated"
    answer.record_morphology(str(folder / answer.RECORDS / "mixed_effects-study-all.json"),
                             "mattr_over_english", Report(), {"p_value": 0.21, "df": 1}, Report())
    answer.record_power(str(folder / answer.RECORDS / "power-study-all.json"), 1.7, 8, 200, "lrt",
                        2.0)
    pages = [("results", "results-study", finding, None),
             ("mixed_effects", "mixed_effects-study-all", finding, Outcome()),
             ("power", "power-study-all", finding, Outcome())]
    page = answer.write_answer(folder, pages)
    text = page.read_text()
    assert "| xnli transfer gain from mnli | 3.50 |" in text
    assert "| 2 of 2 seeds | positive |" in text
    assert "6 of 6 training runs" in text
    assert ("| all | `mattr_over_english` | -0.40 | -1.10 to 0.30 | undecided | 0.210 | "
            "1.70 (8 simulated sets per slope; planned 200) |") in text
    assert "| all | `subword_fertility` | -0.40 | -1.10 to 0.30 | undecided | — | — |" in text
    assert "{doc}`/generated/results-study`" in text
    assert "**The data decide the sign of** 1 of 1 mean gains" in text
    assert json.loads((folder / answer.RECORDS / "power-study-all.json").read_text())["reps"] == 8
    answer.record_power(str(folder / answer.RECORDS / "power-study-all.json"), None, 8, 200, "lrt",
                        2.0)
    text = answer.write_answer(folder, pages).read_text()
    assert "| none up to 2.00 (8 simulated sets per slope; planned 200) |" in text


def test_a_build_without_a_finding_answers_nothing(tmp_path):
    smoke = tmp_path / "smoke.parquet"
    table = study(60.0).assign(provenance="smoke run")
    table.to_parquet(smoke, index=False)
    result_set = read_result_set(smoke, name="smoke")
    text = answer.write_answer(tmp_path, [("results", "results-smoke", result_set, None)]).read_text()
    assert text.startswith("No result set of this build is a finding")
    assert "transfer gain" not in text


def test_a_page_run_by_hand_leaves_no_record(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    answer.record_power("", 1.0, 8, 200, "lrt", 2.0)
    assert not any(tmp_path.iterdir())
