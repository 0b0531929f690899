"""The leaderboard layout: conformance with the official scorer, aggregation, errors, and the
round trip from a run's predictions through the files back to the same numbers."""

import json
from pathlib import Path

import datasets
import pytest

from stilts_core.cli import main
from stilts_core.evaluation.scoring import references, retrieval_records, score_language
from stilts_core.evaluation.submission import (
    SubmissionError,
    export_run,
    format_report,
    get_layout,
    prediction_records,
    score_folders,
)
from stilts_core.tasks.benchmarks import Benchmark, get_benchmark
from stilts_core.tasks.registry import get_task

MOCK = Path(__file__).parent / "data" / "xtreme_mock"
# google-research/xtreme evaluate_test.py, TASK2AVG_SCORES: what the official evaluate.py gives
# on its mock submission
OFFICIAL_AVERAGES = {
    "bucc2018": {"avg_f1": 55.0, "avg_precision": 55.0, "avg_recall": 55.0},
    "mlqa": {"avg_exact_match": 57.142857142857146, "avg_f1": 81.76870748299321},
    "tydiqa": {"avg_exact_match": 88.88888888888889, "avg_f1": 97.22222222222223},
}


def test_official_mock_submission_scores_exactly_as_the_official_scorer():
    report = score_folders(MOCK / "predictions", MOCK / "labels", "xtreme")
    for task, expected in OFFICIAL_AVERAGES.items():
        averages = {k: v for k, v in report[task].items() if k.startswith("avg_")}
        assert averages == {**expected, "avg_metric": averages["avg_metric"]}, task
    assert report["mlqa"]["avg_metric"] == (57.142857142857146 + 81.76870748299321) / 2
    assert "qa" not in report and "all_task" not in report  # XQuAD is missing


def _task_folders(tmp_path, task: str) -> tuple[Path, Path]:
    predictions, labels = tmp_path / "p", tmp_path / "l"
    (labels / task).mkdir(parents=True)
    (predictions / task).mkdir(parents=True)
    return predictions, labels


def _one_task(task: str, languages) -> Benchmark:
    return Benchmark(name=f"only-{task}", tasks={task: tuple(languages)}, groups={"g": (task,)},
                     source="test")


# --- a whole benchmark: groups and the overall score --------------------------------------------

def _write_language(task, language, folder_predictions, folder_labels, wrong: bool):
    """Two examples per language; every prediction right, or (``wrong``) one of two wrong."""
    layout = get_layout(task)
    name = f"test-{language}.{layout.extension}"
    if task.format == "classification":
        gold = list(task.label_names[:2])
        predicted = [gold[0], gold[0]] if wrong else gold
    elif task.format == "token_classification":
        gold = [[task.labels[1], task.labels[2]], [task.labels[0]]]
        predicted = gold
    elif task.format == "extractive_qa":
        gold = [{"id": f"{language}-{i}", "question": "q", "context": f"answer {i}",
                 "answers": {"text": [f"answer {i}"], "answer_start": [0]}} for i in range(2)]
        predicted = {q["id"]: q["context"] for q in gold}
    elif task.format == "bitext_retrieval":
        gold, predicted = ["0", "1"], ["0", "1"]
    else:  # bitext mining
        gold = [(f"{language}-1", "en-1"), (f"{language}-2", "en-2")]
        predicted = gold
    layout.write_labels(folder_labels / task.name / name, gold)
    layout.write_predictions(folder_predictions / task.name / name, predicted)


@pytest.fixture
def xtreme_folders(tmp_path):
    predictions, labels = tmp_path / "predictions", tmp_path / "labels"
    for task_name, languages in get_benchmark("xtreme").tasks.items():
        for language in languages:
            _write_language(get_task(task_name), language, predictions, labels,
                            wrong=task_name == "pawsx")
    return predictions, labels


def test_group_and_overall_scores_are_means_of_task_headlines(xtreme_folders):
    report = score_folders(*xtreme_folders, "xtreme")
    assert report["pawsx"]["avg_accuracy"] == 50.0
    assert report["classification"] == 75.0
    assert report["tagging"] == report["qa"] == report["retrieval"] == 100.0
    assert report["all_task"] == (50.0 + 8 * 100.0) / 9
    assert report["xquad"]["avg_metric"] == 100.0 and set(report["xquad"]) == {
        "exact_match", "f1", "avg_exact_match", "avg_f1", "avg_metric"}
    assert report["udpos"]["avg_token_accuracy"] == 100.0  # reported beside seqeval F1
    assert report["udpos"]["avg_metric"] == report["udpos"]["avg_f1"]


def test_a_missing_language_is_an_error_unless_partial(xtreme_folders):
    predictions, labels = xtreme_folders
    (predictions / "xnli" / "test-sw.tsv").unlink()
    with pytest.raises(SubmissionError, match=r"xnli/test-sw\.tsv: file not found"):
        score_folders(predictions, labels, "xtreme")
    report = score_folders(predictions, labels, "xtreme", partial=True)
    assert report["notes"]["xnli"]["missing_languages"] == ["sw"]
    assert "sw" not in report["xnli"]["accuracy"]
    assert "classification" not in report and "all_task" not in report
    assert report["tagging"] == 100.0  # complete groups are still scored


def test_files_that_cannot_be_scored_are_named_with_their_line(tmp_path):
    task = get_task("xnli")
    benchmark = _one_task("xnli", ["de"])
    predictions, labels = _task_folders(tmp_path, "xnli")
    (labels / "xnli" / "test-de.tsv").write_text("entailment\nneutral\n")
    (predictions / "xnli" / "test-de.tsv").write_text("entailment\nmaybe\n")
    with pytest.raises(SubmissionError, match=r"test-de\.tsv, line 2: unknown label 'maybe'"):
        score_folders(predictions, labels, benchmark)
    (predictions / "xnli" / "test-de.tsv").write_text("entailment\n")
    with pytest.raises(SubmissionError, match="1 lines but .* has 2"):
        score_folders(predictions, labels, benchmark)
    assert task.label_names == ("entailment", "neutral", "contradiction")


def test_tag_files_are_read_like_the_official_read_tag(tmp_path):
    udpos = _one_task("udpos", ["de"])
    predictions, labels = _task_folders(tmp_path, "udpos")
    (labels / "udpos" / "test-de.tsv").write_text("NOUN\nVERB\n\nDET\nNOUN\n\n")
    (predictions / "udpos" / "test-de.tsv").write_text("NOUN\nVERB\n\nDET\n\n")
    with pytest.raises(SubmissionError, match=r"sentence 2 \(line 4\): 1 tags but .* has 2"):
        score_folders(predictions, labels, udpos)
    (predictions / "udpos" / "test-de.tsv").write_text("NOUN\nVERB\n\nDET\nB-PER\n")
    with pytest.raises(SubmissionError, match="line 5: unknown tag 'B-PER'"):
        score_folders(predictions, labels, udpos)
    (predictions / "udpos" / "test-de.tsv").write_text("NOUN\nNOUN\n\nDET\nNOUN\n")  # no final blank
    report = score_folders(predictions, labels, udpos)
    assert report["udpos"]["token_accuracy"]["de"] == 75.0
    # 0.0.12 chunks: gold NOUN|VERB|DET|NOUN (4), predicted NOUN NOUN as one chunk|DET|NOUN (3),
    # 2 shared: precision 2/3, recall 1/2
    assert report["udpos"]["precision"]["de"] == pytest.approx(200 / 3)
    assert report["udpos"]["f1"]["de"] == pytest.approx(400 / 7)


def test_qa_unanswered_and_unknown_questions_are_counted_not_hidden(tmp_path):
    mlqa = _one_task("mlqa", ["zh"])
    labels, predictions = tmp_path / "l", tmp_path / "p"
    questions = [{"id": f"q{i}", "question": "?", "context": "电化电池。",
                  "answers": {"text": ["电化电池"], "answer_start": [0]}} for i in range(4)]
    get_layout(get_task("mlqa")).write_labels(labels / "mlqa" / "test-zh.json", questions)
    get_layout(get_task("mlqa")).write_predictions(
        predictions / "mlqa" / "test-zh.json",
        {"q0": "电化电池。", "q1": "化学电池", "q2": "", "elsewhere": "电化电池"})
    report = score_folders(predictions, labels, mlqa)
    assert report["mlqa"]["exact_match"]["zh"] == 25.0
    assert report["mlqa"]["f1"]["zh"] == (100 + 75 + 0 + 0) / 4
    assert report["notes"]["mlqa"]["zh"] == {"unanswered": 1, "unknown_ids": 1}


def test_xtreme_r_formats_multiple_choice_and_rankings(tmp_path):
    predictions, labels = tmp_path / "p", tmp_path / "l"
    xcopa, mewslix = get_layout(get_task("xcopa")), get_layout(get_task("mewslix"))
    xcopa.write_labels(labels / "xcopa" / "test-it.jsonl", [{"idx": 0, "label": 1},
                                                            {"idx": 1, "label": 0}])
    xcopa.write_predictions(predictions / "xcopa" / "test-it.jsonl", [{"idx": 0, "label": 1},
                                                                      {"idx": 1, "label": 1}])
    mewslix.write_labels(labels / "mewslix" / "test-de.json", {"m1": ["Q1"], "m2": ["Q2"]})
    mewslix.write_predictions(predictions / "mewslix" / "test-de.json",
                              {"m1": ["Q9", "Q1"], "m2": ["Q2", "Q2"]})
    report = score_folders(predictions, labels, "xtreme-r", partial=True)
    assert report["xcopa"]["accuracy"] == {"it": 50.0}
    assert report["mewslix"]["map@20"] == {"de": (0.5 + 1.0) / 2 * 100}
    assert report["mewslix"]["avg_map@20"] == report["mewslix"]["avg_metric"] == 75.0
    assert not [key for key in report["mewslix"] if "map_at" in key]
    assert "map@20" in format_report(report)
    assert report["notes"]["xcopa"]["missing_languages"][0] == "et"
    xcopa.write_predictions(predictions / "xcopa" / "test-it.jsonl", [{"idx": 1, "label": 1},
                                                                      {"idx": 0, "label": 1}])
    with pytest.raises(SubmissionError, match="line 1: idx 1 but .* has idx 0"):
        score_folders(predictions, labels, "xtreme-r", partial=True)


def test_cli_writes_the_report_and_fails_clearly(tmp_path, capsys):
    output = tmp_path / "report.json"
    args = ["score", "--predictions", str(MOCK / "predictions"), "--labels", str(MOCK / "labels"),
            "--benchmark", "xtreme", "--output", str(output)]
    assert main(args) == 0
    report = json.loads(output.read_text())
    assert report["bucc2018"]["f1"]["zh"] == 70.0
    printed = capsys.readouterr().out
    assert "mlqa" in printed and "81.77" in printed
    assert main(["score", "--predictions", str(tmp_path / "none"), "--labels",
                 str(MOCK / "labels")]) == 2
    assert "no such folder" in capsys.readouterr().err


# --- round trip: a run's records -> leaderboard files -> the same numbers -----------------------

def _examples(task_name: str) -> tuple[datasets.Dataset, list]:
    """Canonical examples of a task and predictions for them, some right and some wrong."""
    if task_name == "pawsx":
        rows = [{"text": f"a {i}", "text_pair": f"b {i}", "label": i % 2} for i in range(7)]
        return datasets.Dataset.from_list(rows), [0, 1, 1, 1, 0, 0, 0]
    if task_name == "xcopa":
        rows = [{"context": "c", "question": "q", "choices": ["x", "y"], "label": i % 2}
                for i in range(5)]
        return datasets.Dataset.from_list(rows), [0, 0, 0, 1, 1]
    if task_name == "udpos":
        rows = [{"tokens": ["Der", "Hund", "und", "weil"], "tags": ["DET", "NOUN", "CCONJ", "SCONJ"]},
                {"tokens": ["X"], "tags": ["X"]}]
        return datasets.Dataset.from_list(rows), [["DET", "NOUN", "CCONJ", "ADP"], ["X"]]
    rows = [{"id": f"q{i}", "question": "哪个？", "context": "电化电池和化学电池。",
             "answers": {"text": ["电化电池"], "answer_start": [0]}} for i in range(3)]
    return datasets.Dataset.from_list(rows), ["电化电池。", "化学电池", ""]


@pytest.mark.parametrize(("task_name", "language"), [
    ("pawsx", "de"), ("xcopa", "it"), ("udpos", "de"), ("mlqa", "zh"), ("tatoeba", "fr")])
def test_exported_predictions_rescore_to_the_recorded_numbers(tmp_path, task_name, language):
    task = get_task(task_name)
    run = tmp_path / "run"
    (run / "predictions").mkdir(parents=True)
    if task_name == "tatoeba":
        predicted, gold = [0, 2, 2, 3, 1], [0, 1, 2, 3, 4]
        recorded = score_language(task, predicted, gold, language)
        records = retrieval_records(predicted, gold)
    else:
        examples, predicted = _examples(task_name)
        recorded = score_language(task, predicted, references(task, examples), language)
        records = prediction_records(task, examples, predicted)
    (run / "predictions" / f"test-{language}.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    (run / "metrics.json").write_text(json.dumps({"task": task_name}))
    written = export_run(run, tmp_path / "submission", tmp_path / "labels")
    assert {p.relative_to(tmp_path).parts[0] for p in written} == {"submission", "labels"}
    report = score_folders(tmp_path / "submission", tmp_path / "labels",
                           _one_task(task_name, [language]))
    rescored = {score: values[language] for score, values in report[task_name].items()
                if not score.startswith("avg_")}
    assert rescored == recorded
    assert 0 < report[task_name]["avg_metric"] < 100  # the cases mix right and wrong


@pytest.mark.parametrize("layout", ["empty", "unmatched"])
def test_score_refuses_a_folder_with_nothing_to_score(tmp_path, capsys, layout):
    predictions, labels = tmp_path / "predictions", tmp_path / "labels"
    predictions.mkdir()
    labels.mkdir()
    if layout == "unmatched":  # a task folder the benchmark does not have
        (predictions / "sentiment").mkdir()
        (predictions / "sentiment" / "test-de.tsv").write_text("positive\n")
    assert main(["score", "--predictions", str(predictions), "--labels", str(labels),
                 "--benchmark", "xtreme-r", "--output", str(tmp_path / "report.json")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    found = "['sentiment']" if layout == "unmatched" else "no task folder"
    assert last.startswith(f"stilts: error: {predictions}: nothing to score for xtreme-r: "
                           f"found {found}; expected one or more of xnli/test-<lang>.tsv")
    assert not (tmp_path / "report.json").exists()
