import json

import pandas as pd
import pytest

from stilts_core.analysis.result_sets import ResultSetError, read_result_set
from stilts_core.book.chapters import results as results_chapter
from stilts_core.runs.results import (
    ResultsError,
    benchmark_scores,
    collect,
    evidence_groups,
    headline_scores,
    make_frame,
    paired_gains,
    read_run_results,
    write_run_results,
)


def row(**overrides):
    base = {"model": "m", "intermediate_task": "none", "target_task": "xnli", "language": "de",
            "seed": 1, "split": "test", "metric": "accuracy", "value": 50.0,
            "provenance": "smoke run", "run_id": "r", "settings": "{}"}
    return {**base, **overrides}


def test_schema_errors_name_the_problem():
    with pytest.raises(ResultsError, match=r"missing column\(s\) \['settings'\]"):
        make_frame([{k: v for k, v in row().items() if k != "settings"}])
    with pytest.raises(ResultsError, match="undeclared provenance class"):
        make_frame([row(provenance="vibes")])


def test_run_results_are_one_file_per_task_and_language_and_keep_missing_seeds(tmp_path):
    written = write_run_results(tmp_path, [row(seed=None), row(language="NA", seed=2),
                                           row(language="NA", seed=2, metric="f1")])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "results/xnli/NA.csv", "results/xnli/de.csv"]
    frame = read_run_results(tmp_path).set_index(["language", "metric"])
    assert pd.isna(frame.loc[("de", "accuracy"), "seed"])
    assert frame.loc[("NA", "f1"), "seed"] == 2  # codes such as "NA" are not read as missing
    assert len(frame) == 3
    assert not list(tmp_path.rglob(".*tmp*"))
    with pytest.raises(ResultsError, match="no result files"):
        read_run_results(tmp_path / "elsewhere")


def test_collect_reads_a_run_listed_twice_once_and_refuses_conflicts(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    for path in (a, b, c):
        path.mkdir()
    write_run_results(a, [row()])
    write_run_results(b, [row(language="fr")])
    table = collect([a, b, a], tmp_path / "out.parquet")
    assert len(table) == 2 and len(pd.read_parquet(tmp_path / "out.parquet")) == 2
    write_run_results(c, [row(value=51.0, run_id="other")])
    with pytest.raises(ResultsError, match=r"key columns .* give one cell different values"):
        collect([a, c], tmp_path / "clash.parquet")
    assert not (tmp_path / "clash.parquet").exists()


def test_paired_gains_pair_by_seed_and_broadcast_unseeded_baselines():
    table = make_frame([
        row(seed=1, value=50.0), row(seed=2, value=40.0),
        row(intermediate_task="mnli", seed=1, value=55.0),
        row(intermediate_task="mnli", seed=2, value=41.0),
        row(target_task="tatoeba", seed=None, value=30.0),
        row(target_task="tatoeba", intermediate_task="mnli", seed=1, value=45.0),
        row(target_task="tatoeba", intermediate_task="mnli", seed=2, value=20.0),
    ])
    gains = paired_gains(table).sort_values(["target_task", "seed"])
    assert gains["gain"].tolist() == [15.0, -10.0, 5.0, 1.0]


def test_headline_of_qa_is_the_mean_of_exact_match_and_f1():
    table = make_frame([
        row(target_task="mlqa", language="zh", metric="exact_match", value=40.0),
        row(target_task="mlqa", language="zh", metric="f1", value=60.0),
        row(target_task="mlqa", language="de", metric="f1", value=70.0),  # no exact match: none
        row(target_task="udpos", language="de", metric="f1", value=80.0),
        row(target_task="udpos", language="de", metric="token_accuracy", value=95.0),
        row(target_task="xnli", language="de", metric="accuracy", value=70.0),
    ])
    headline = headline_scores(table).set_index(["target_task", "language"])["value"]
    assert headline.to_dict() == {("mlqa", "zh"): 50.0, ("udpos", "de"): 80.0,
                                  ("xnli", "de"): 70.0}


def test_benchmark_scores_follow_the_official_aggregation():
    from stilts_core.tasks.benchmarks import get_benchmark

    tasks = get_benchmark("xtreme").tasks
    rows = [row(target_task="mlqa", language=lang, metric=m, value=v)
            for lang in tasks["mlqa"] for m, v in (("exact_match", 40.0), ("f1", 60.0))]
    rows += [row(target_task="tydiqa", language=lang, metric=m, value=100.0)
             for lang in tasks["tydiqa"] for m in ("exact_match", "f1")]
    rows += [row(target_task="xnli", language="de", value=70.0)]  # one of 15 languages
    scores = benchmark_scores(make_frame(rows), "xtreme").set_index("name")
    assert scores.loc["mlqa", "value"] == 50.0 and scores.loc["mlqa", "complete"]
    assert scores.loc["xnli", "value"] == 70.0 and not scores.loc["xnli", "complete"]
    assert "qa" not in scores.index and "all_task" not in scores.index  # XQuAD is absent
    rows += [row(target_task="xquad", language=lang, metric=m, value=80.0)
             for lang in tasks["xquad"] for m in ("exact_match", "f1")]
    scores = benchmark_scores(make_frame(rows), "xtreme").set_index("name")
    assert scores.loc["qa", "value"] == (50.0 + 100.0 + 80.0) / 3
    assert scores.loc["qa", "level"] == "group" and "classification" not in scores.index


def test_benchmark_scores_count_unseeded_retrieval_for_every_seed():
    rows = [row(seed=seed, language=lang, value=60.0) for seed in (1, 2) for lang in ("de", "fr")]
    rows += [row(target_task="tatoeba", seed=None, language="de", value=30.0)]
    scores = benchmark_scores(make_frame(rows), "xtreme")
    tatoeba = scores[scores["name"] == "tatoeba"]
    assert sorted(tatoeba["seed"].tolist()) == [1, 2] and set(tatoeba["value"]) == {30.0}
    only_base = benchmark_scores(make_frame([row(target_task="tatoeba", seed=None)]), "xtreme")
    assert only_base["seed"].isna().all() and len(only_base) == 1


def test_benchmark_scores_leave_out_retrieval_after_target_fine_tuning():
    """The encoder PAN-X fine-tuning left is aligned too; its Tatoeba rows are not the
    benchmark's retrieval score of that intermediate task and seed."""
    import json

    def tatoeba(value: float, **settings) -> dict:
        return row(target_task="tatoeba", seed=1, value=value,
                   settings=json.dumps({"layer": 12, **settings}))

    table = make_frame([tatoeba(60.0), tatoeba(20.0, fine_tuned_on="panx")])
    scores = benchmark_scores(table, "xtreme-r").set_index("name")
    assert scores.loc["tatoeba", "value"] == 60.0


def test_settings_separate_cells_protocols_and_layers():
    import json

    def ranked(protocol: str, value: float, intermediate: str = "none") -> dict:
        return row(target_task="lareqa", metric="map_at_20", value=value,
                   intermediate_task=intermediate, settings=json.dumps({"protocol": protocol}))

    table = make_frame([ranked("encoder", 10.0), ranked("dual_encoder", 20.0),
                        ranked("encoder", 13.0, "mnli"), ranked("dual_encoder", 21.0, "mnli")])
    scores = benchmark_scores(table, "xtreme-r")
    assert scores.set_index(["intermediate_task", "name"]).loc[("none", "lareqa"), "value"] == 10.0
    dual = benchmark_scores(table, "xtreme-r", protocol="dual_encoder")
    assert dual.set_index(["intermediate_task", "name"]).loc[("mnli", "lareqa"), "value"] == 21.0
    gains = paired_gains(table).set_index("settings")["gain"]  # each protocol with its own base
    assert gains[json.dumps({"protocol": "encoder"})] == 3.0
    assert gains[json.dumps({"protocol": "dual_encoder"})] == 1.0
    twice = make_frame([ranked("encoder", 10.0),
                        {**ranked("encoder", 11.0), "settings": '{"protocol": "encoder", "layer": 7}'}])
    with pytest.raises(ResultsError, match="several settings for the same score"):
        benchmark_scores(twice, "xtreme-r")


# --- result sets and summaries: one provenance class a set; models, protocols and classes apart

def write(path, rows):
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_a_result_set_holds_one_provenance_class(tmp_path):
    one = read_result_set(write(tmp_path / "Cluster Run.parquet", [row(provenance="partial run")]))
    assert (one.name, one.provenance, one.models) == ("cluster-run", "partial run", ("m",))
    mixed = write(tmp_path / "mixed.parquet", [row(), row(provenance="full-scale run", seed=2)])
    with pytest.raises(ResultSetError, match=r"mixed.parquet: .*one provenance class.*split it"):
        read_result_set(mixed)
    with pytest.raises(ResultSetError, match=r"missing.parquet: no such results table.*stilts collect"):
        read_result_set(tmp_path / "missing.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(ResultSetError, match=r"bad.parquet: not a parquet results table"):
        read_result_set(tmp_path / "bad.parquet")


def test_summaries_and_figures_never_pool_models_protocols_or_classes():
    rows = []
    for model, offset in (("a", 0.0), ("b", 10.0)):
        rows += [row(model=model, intermediate_task="none", value=50 + offset),
                 row(model=model, intermediate_task="mnli", value=52 + offset)]
    for protocol, gain in (("encoder", 1.0), ("dual_encoder", 5.0)):
        settings = json.dumps({"protocol": protocol})
        rows += [row(target_task="tatoeba", intermediate_task="none", seed=None, settings=settings),
                 row(target_task="tatoeba", intermediate_task="mnli", value=50 + gain,
                     settings=settings)]
    rows.append(row(model="a", intermediate_task="none", seed=2, provenance="partial run"))
    table = pd.DataFrame(rows)
    gains = results_chapter.gain_summary(table)
    assert len(gains) == 4  # two models on xnli, two protocols on tatoeba
    assert set(gains.loc[gains["target_task"] == "tatoeba", "mean"]) == {1.0, 5.0}
    scores = results_chapter.score_summary(table)
    assert {key[:3] for key in scores.index} == {
        ("partial run", "a", ""), ("smoke run", "a", ""), ("smoke run", "b", ""),
        ("smoke run", "m", "dual_encoder"), ("smoke run", "m", "encoder")}
    titles = [title for title, _ in evidence_groups(table)]
    assert len(titles) == 5 and "m (smoke run), dual_encoder protocol" in titles
    assert len(results_chapter.gain_heatmaps(table)) == 4  # one figure per group that has gains
    aggregates = results_chapter.benchmark_table(table, "xtreme")
    assert set(zip(aggregates["provenance"], aggregates["protocol"], strict=True)) == {
        ("partial run", "encoder"), ("smoke run", "encoder"), ("smoke run", "dual_encoder")}


def test_collect_keeps_a_table_of_another_config_unless_forced(tmp_path):
    from stilts_core.runs.results import table_origin

    run = tmp_path / "run"
    write_run_results(run, [row()])
    output = tmp_path / "smoke.parquet"
    smoke = {"grid": "smoke", "config_sha256": "a" * 64}
    collect([run], output, origin=smoke)
    assert table_origin(output) == smoke
    collect([run], output, origin=smoke)  # the same config again: refreshed
    cut_down = {"grid": "smoke", "config_sha256": "b" * 64}  # a copy that kept the name
    with pytest.raises(ResultsError, match=r"smoke.parquet was collected from grid 'smoke' "
                                           r"\(config sha256 aaaaaaaaaaaa\), not from this.*--force"):
        collect([run], output, origin=cut_down)
    assert table_origin(output) == smoke
    collect([run], output, origin=cut_down, force=True)
    assert table_origin(output) == cut_down


# --- did each training run learn? the per-run check, gains marked by it, alignment by stage

def dev_rows(intermediate="none", task="xnli", seed=1, low=55.0, floor=33.3, examples=300,
             checked=True):
    """A training run's dev score and, when ``checked``, its interval, floor and examples."""
    cell = {"intermediate_task": intermediate, "target_task": task, "language": "en", "seed": seed,
            "split": "validation", "run_id": f"{intermediate}-{task}-{seed}"}
    rows = [row(**cell, value=low + 5)]
    if checked:
        rows += [row(**cell, metric=metric, value=value) for metric, value in (
            ("dev_interval_low", low), ("dev_interval_high", low + 10),
            ("learning_floor", floor), ("dev_examples", examples))]
    return rows


def test_a_run_learned_only_with_enough_examples_and_its_interval_above_the_floor():
    table = make_frame(dev_rows(seed=1) + dev_rows(seed=2, examples=150)
                       + dev_rows(seed=3, low=30.0) + dev_rows(seed=4, checked=False)
                       + dev_rows("mnli", "mnli") + dev_rows("multi", "sst2", floor=50.0))
    runs = results_chapter.learning_runs(table).set_index(["intermediate_task", "target_task",
                                                           "seed"])
    assert runs["learned"].to_dict() == {
        ("none", "xnli", 1): True, ("none", "xnli", 2): False, ("none", "xnli", 3): False,
        ("none", "xnli", 4): False, ("mnli", "mnli", 1): True, ("multi", "sst2", 1): True}
    why = runs["why"]
    assert why[("none", "xnli", 1)] == ""
    assert why[("none", "xnli", 2)] == "only 150 dev examples (< 200)"
    assert why[("none", "xnli", 3)] == "interval does not clear the floor"
    assert why[("none", "xnli", 4)] == "no interval recorded"
    assert runs.loc[("none", "xnli", 4), ["interval_low", "floor", "dev_examples"]].isna().all()
    assert runs["phase"].to_dict() == {
        key: "target" if key[1] == "xnli" else "intermediate" for key in runs.index}
    assert runs.loc[("none", "xnli", 1), ["score", "floor", "dev_examples"]].tolist() == [
        60.0, 33.3, 300.0]


def test_gains_say_in_how_many_seeds_their_runs_learned():
    rows = []
    for seed in (1, 2):
        rows += [row(seed=seed, value=50.0), row(intermediate_task="mnli", seed=seed, value=52.0),
                 row(target_task="tatoeba", intermediate_task="mnli", seed=seed, value=40.0)]
        rows += (dev_rows(seed=seed, low=55.0 if seed == 1 else 30.0)  # seed 2's baseline: floor
                 + dev_rows("mnli", seed=seed) + dev_rows("mnli", "mnli", seed=seed))
    rows.append(row(target_task="tatoeba", seed=None, value=30.0))
    gains = results_chapter.gain_summary(make_frame(rows)).set_index("target_task")
    assert gains.loc["xnli", "runs_learned"] == "1 of 2"
    assert gains.loc["tatoeba", "runs_learned"] == "all"  # retrieval: the intermediate run only
    scores_only = make_frame([r for r in rows if r["split"] == "test"])
    assert set(results_chapter.gain_summary(scores_only)["runs_learned"]) == {"not checked"}
    failed = make_frame([r for r in rows if not (r["target_task"] == "mnli" and r["seed"] == 1)])
    assert results_chapter.gain_summary(failed).set_index("target_task").loc[
        "tatoeba", "runs_learned"] == "1 of 2"  # no intermediate run recorded: not learned


def test_alignment_stages_follow_each_encoder_through_training():
    def aligned(intermediate, seed, value, layer, tuned=None):
        settings = {"layer": layer, "pooling": "mean", **({"fine_tuned_on": tuned} if tuned else {})}
        return row(intermediate_task=intermediate, target_task="tatoeba", seed=seed,
                   metric="alignment_linear_cka", value=value,
                   settings=json.dumps(settings, sort_keys=True))

    rows = []
    for layer in (0, 1):
        rows += [aligned("none", None, 0.5, layer), aligned("mnli", 1, 0.6, layer),
                 aligned("mnli", 1, 0.4, layer, "xnli"), aligned("none", 1, 0.3, layer, "xnli")]
    table = make_frame(rows)
    stages = results_chapter.alignment_stages(table)
    by_line = stages.groupby("intermediate_task")["stage"].agg(lambda s: sorted(set(s)))
    assert by_line["mnli"] == ["after intermediate", "after xnli", "pretrained"]
    assert by_line["none"] == ["after xnli", "pretrained"]
    assert len(stages) == 10 and (stages["seed"] == 1).all() and set(stages["layer"]) == {0, 1}
    values = stages.set_index(["intermediate_task", "layer", "stage"])["value"]
    assert values[("mnli", 1, "pretrained")] == 0.5 and values[("none", 0, "after xnli")] == 0.3
    curves = results_chapter.alignment_curves(table)  # the pretrained and phase-(ii) encoders
    assert sorted(set(curves["encoder"])) == ["mnli", "none (base encoder)"] and len(curves) == 4
    assert len(results_chapter.alignment_stage_figure(table)) == 1
    untuned = make_frame([r for r in rows if "fine_tuned_on" not in r["settings"]])
    assert results_chapter.alignment_stage_figure(untuned) == []
