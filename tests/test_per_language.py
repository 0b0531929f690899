"""Per-language views: the gain table, the map's outlines and coordinates, the gain against each
index; and the power analysis's design taken from the analysed set itself."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

from stilts_core.analysis import per_language
from stilts_core.analysis import statistics as st
from stilts_core.book.chapters import maps
from stilts_core.book.chapters.mixed_effects import gain_index_figure
from stilts_core.tasks.languages import read_languages_table

matplotlib.use("Agg")


def results(rows):
    return pd.DataFrame([{"model": "m", "target_task": "tatoeba", "split": "test",
                          "metric": "accuracy", "provenance": "reduced-scale real run",
                          "run_id": f"r-{i}", "settings": '{"protocol": "encoder"}', **row}
                         for i, row in enumerate(rows)])


@pytest.fixture(scope="module")
def table():
    rows = []
    for language, base in (("de", 80.0), ("fi", 60.0), ("en", 95.0)):
        rows.append({"intermediate_task": "none", "language": language, "seed": None, "value": base})
        for seed, (mnli, sst2) in enumerate(((2.0, -1.0), (4.0, -3.0)), start=1):
            rows += [{"intermediate_task": "mnli", "language": language, "seed": seed, "value": base + mnli},
                     {"intermediate_task": "sst2", "language": language, "seed": seed, "value": base + sst2}]
    return results(rows)


def test_each_languages_gain_is_its_mean_over_seeds_beside_the_base_score(table):
    gains = per_language.language_gains(table, "tatoeba").set_index("language")
    assert gains.loc["de", "gain mnli"] == 3.0 and gains.loc["de", "gain sst2"] == -2.0
    assert gains.loc["de", "mean gain"] == 0.5 and gains.loc["fi", "baseline"] == 60.0
    assert gains.loc["en", "training language"] and not gains.loc["fi", "training language"]
    assert per_language.language_gains(table, "xnli").empty


def test_land_outlines_are_on_the_globe_and_cover_the_continents():
    outlines = maps.land_outlines()
    points = np.concatenate(outlines)
    assert len(outlines) > 500
    assert points[:, 0].min() >= -180 and points[:, 0].max() <= 180
    assert points[:, 1].min() >= -90 and points[:, 1].max() <= 90
    largest = max(outlines, key=len)  # Eurasia reaches from western Europe to the Pacific
    assert largest[:, 0].min() < 0 < 150 < largest[:, 0].max()


def test_the_map_places_every_language_and_refuses_one_without_coordinates(table):
    languages = read_languages_table()
    assert languages[["latitude", "longitude"]].notna().all().all()
    finnish = languages.set_index("iso639_1").loc["fi"]
    assert 55 < finnish["latitude"] < 70 and 20 < finnish["longitude"] < 32
    figures = maps.gain_maps(table, languages, "tatoeba")
    (axis,) = [a for a in figures[0].axes if a.get_label() != "<colorbar>"][:1]
    assert sorted(t.get_text() for t in axis.texts) == ["de", "fi"]  # English is not mapped
    unknown = pd.DataFrame({"language": ["xx"], "mean gain": [1.0]})
    with pytest.raises(ValueError, match=r"without coordinates .*\['xx'\]"):
        maps.gain_map(unknown, languages)


def test_gain_against_indices_pairs_each_languages_mean_gain_with_its_raw_index():
    frame = pd.DataFrame({"language": ["de", "de", "fi"], "gain": [1.0, 3.0, -1.0]})
    wide = pd.DataFrame({"mattr": [0.5, 0.8], "fertility": [1.4, np.nan]}, index=["de", "fi"])
    points = per_language.gain_against_indices(frame, wide, ["mattr", "fertility", "absent"])
    assert points.to_dict("records") == [
        {"index": "mattr", "language": "de", "value": 0.5, "gain": 2.0},
        {"index": "mattr", "language": "fi", "value": 0.8, "gain": -1.0},
        {"index": "fertility", "language": "de", "value": 1.4, "gain": 2.0}]
    assert len(gain_index_figure(points).axes) == 2


def test_the_power_design_is_the_one_the_set_has():
    frame = pd.DataFrame({"target_task": ["xnli", "xnli", "tatoeba"] * 2,
                          "language": ["de", "fi", "de"] * 2,
                          "intermediate_task": ["mnli"] * 3 + ["sst2"] * 3,
                          "seed": [1, 2, 3] * 2})
    design = st.observed_design(frame)
    assert design.tasks == {"tatoeba": ("de",), "xnli": ("de", "fi")}
    assert design.intermediate_tasks == ("mnli", "sst2") and design.seeds == (1, 2, 3)


def test_the_learning_check_counts_the_seeds_whose_runs_learned_in_every_phase():
    from stilts_core.book.chapters.results import learning_check

    def run(task, dev_task, seed, low, checked=True):
        cell = {"model": "m", "intermediate_task": task, "target_task": dev_task, "language": "en",
                "seed": seed, "split": "validation", "provenance": "smoke run",
                "run_id": f"{task}-{dev_task}-{seed}", "settings": "{}"}
        checks = (("dev_interval_low", low), ("dev_interval_high", low + 10.0),
                  ("learning_floor", 33.3), ("dev_examples", 300)) if checked else ()
        return [{**cell, "metric": metric, "value": value}
                for metric, value in (("accuracy", low + 5.0), *checks)]

    table = pd.DataFrame(run("none", "xnli", 1, 50.0) + run("none", "xnli", 2, 30.0)
                         + run("mnli", "mnli", 1, 70.0) + run("mnli", "mnli", 2, 60.0, checked=False)
                         + [{"model": "m", "intermediate_task": "none", "target_task": "xnli",
                             "language": "de", "seed": 1, "split": "test", "metric": "accuracy",
                             "value": 40.0, "provenance": "smoke run", "run_id": "none-xnli-1",
                             "settings": "{}"}])
    check = learning_check(table).set_index(["phase", "intermediate_task", "target_task"])
    assert list(check.index) == [("intermediate", "mnli", "mnli"), ("target", "none", "xnli")]
    baseline = check.loc[("target", "none", "xnli")]
    intermediate = check.loc[("intermediate", "mnli", "mnli")]
    assert (baseline["score"], baseline["interval"], baseline["floor"]) == (45.0, "30.0 to 60.0", 33.3)
    assert (baseline["dev_examples"], baseline["learned"]) == (300, "1 of 2 seeds")
    assert baseline["why_not"] == "interval does not clear the floor"
    assert (intermediate["learned"], intermediate["why_not"]) == ("1 of 2 seeds", "no interval recorded")
    assert learning_check(table[table["split"] == "test"]).empty


def test_a_statistics_page_shows_its_set_under_its_badge_and_keeps_only_its_task_groups(
        tmp_path, monkeypatch):
    from stilts_core.analysis.morphology import read_indices, wide_view
    from stilts_core.book import simulation
    from stilts_core.book.chapters import analysis_set as preamble
    from stilts_core.paths import REPO_ROOT

    indices_path, languages_path = (REPO_ROOT / "data/morphology/indices.csv",
                                    REPO_ROOT / "data/languages.csv")
    path = tmp_path / "simulated.parquet"
    simulation.write_simulation(path, read_languages_table(languages_path),
                                wide_view(read_indices(indices_path)), "mattr_over_english", 1.0,
                                simulation.BOOK_SIMULATION["variances"])
    shown = []
    monkeypatch.setattr(preamble, "display", shown.append)
    page = preamble.analysis_set(str(path), "mattr_over_english", indices_path=str(indices_path),
                                 languages_path=str(languages_path), task_groups=["qa"])
    badge, truth = (getattr(item, "data", "") for item in shown)
    assert "simulation" in badge.lower() and "**Simulation truth**: index `mattr_over_english`" in truth
    assert set(page.gains["task_group"]) == {"qa"} and set(page.frame["task_group"]) == {"qa"}
    assert f"{len(page.frame)} gains over {page.frame['language'].nunique()} languages" in (
        page.summary("qa", "mattr_over_english").data)
    assert simulation.read_truth(tmp_path / "other.parquet") is None
