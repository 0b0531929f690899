"""The XTREME leaderboard layout: export runs' predictions as ``<dir>/<task>/test-<lang>.<ext>``
and score such folders against label folders in the same layout, as the official scorer does.

One :class:`Layout` per task format says how its files are written and read and how predictions
are paired with labels. Formats (predictions and labels alike unless said otherwise):

* classification (XNLI, PAWS-X): ``.tsv``, one label per line (PAWS-X: ``0``/``1``);
* multiple choice (XCOPA): ``.jsonl``, one ``{"idx": i, "label": choice}`` per line;
* token classification (UD-POS, PAN-X): ``.tsv``, one tag per line, a blank line after each
  sentence;
* extractive QA (XQuAD, MLQA, TyDiQA): ``.json``, ``{question_id: answer_text}``; labels are
  SQuAD JSON (``data`` → ``paragraphs`` → ``qas`` with ``id`` and ``answers``);
* bitext retrieval (Tatoeba): ``.tsv``, the index of the retrieved English sentence per line;
* bitext mining (BUCC 2018): ``.tsv``, one ``src_id<TAB>tgt_id`` pair per line;
* ranking (Mewsli-X, LAReQA): ``.json``, ``{query_id: [candidate ids, best first]}``; labels
  ``{query_id: [relevant candidate ids]}``. LAReQA's public scorer has no per-language test
  files, so no XTREME-R overall score can be computed with it; here LAReQA files are per
  *question* language (each question ranks the pool of answer sentences of all languages) and
  its task average is the mean of the per-language mAP@20, as XTREME-R reports it.

Scoring follows the official ``evaluate.py``, key for key (mAP@20 is ``map@20`` and
``avg_map@20``): per-language scores, ``avg_<score>`` over the benchmark's languages,
``avg_metric`` (the headline), a group score when all the group's tasks are present and
``all_task`` when every task is. It is stricter in one way: a missing file,
a line-count mismatch or an unknown label is an error that names the file and line, and no
language is skipped unless ``partial`` is asked for (then no group or overall score exists).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stilts_core.evaluation.scoring import score_language
from stilts_core.lookup import lookup
from stilts_core.paths import atomic_write_text
from stilts_core.tasks.benchmarks import Benchmark, get_benchmark
from stilts_core.tasks.metrics import MetricInputError
from stilts_core.tasks.registry import get_task
from stilts_core.tasks.spec import TaskSpec


class SubmissionError(ValueError):
    """A prediction or label file that cannot be scored; the message names the file and line."""


# --- writing ------------------------------------------------------------------------------------

def _write_lines(path: Path, items: list) -> None:
    atomic_write_text(path, "".join(f"{item}\n" for item in items))


def _write_tags(path: Path, sentences: list[list[str]]) -> None:
    atomic_write_text(path, "".join("".join(f"{tag}\n" for tag in tags) + "\n"
                                    for tags in sentences))


def _write_json(path: Path, value) -> None:
    atomic_write_text(path, json.dumps(value, ensure_ascii=False, indent=1) + "\n")


def _write_choices(path: Path, items: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(item) + "\n" for item in items))


def _write_pairs(path: Path, pairs: list[tuple[str, str]]) -> None:
    _write_lines(path, [f"{source}\t{target}" for source, target in pairs])


def _write_squad(path: Path, questions: list[dict]) -> None:
    """Labels of extractive QA as SQuAD JSON, one paragraph per question (its context)."""
    data = [{"title": "", "paragraphs": [{
        "context": q["context"],
        "qas": [{"id": q["id"], "question": q["question"], "answers": [
            {"text": text, "answer_start": start}
            for text, start in zip(q["answers"]["text"], q["answers"]["answer_start"],
                                   strict=True)]}],
    }]} for q in questions]
    _write_json(path, {"version": "1.1", "data": data})


# --- reading ------------------------------------------------------------------------------------

def _read_text(path: Path) -> str:
    if not path.is_file():
        raise SubmissionError(f"{path}: file not found")
    return path.read_text(encoding="utf-8")


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in _read_text(path).splitlines()]


def _read_tags(path: Path) -> list[list[tuple[int, str]]]:
    """Sentences of (line number, tag), split at blank lines exactly as XTREME's ``read_tag``:
    every blank line ends a sentence (two in a row make an empty one)."""
    sentences, current = [], []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        line = line.strip()
        if line:
            current.append((number, line))
        else:
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences


def _read_json(path: Path):
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise SubmissionError(f"{path}: not valid JSON ({error})") from None


def _read_squad(path: Path) -> list[tuple[str, list[str]]]:
    """(question id, gold answer texts) in file order, from SQuAD JSON (or its ``data`` list)."""
    content = _read_json(path)
    articles = content["data"] if isinstance(content, dict) and "data" in content else content
    try:
        return [(str(qa["id"]), [answer["text"] for answer in qa["answers"]])
                for article in articles for paragraph in article["paragraphs"]
                for qa in paragraph["qas"]]
    except (KeyError, TypeError) as error:
        raise SubmissionError(f"{path}: not SQuAD JSON (data -> paragraphs -> qas with id and "
                              f"answers; missing {error})") from None


def _read_string_map(path: Path, value_type: type) -> dict:
    content = _read_json(path)
    if not isinstance(content, dict):
        raise SubmissionError(f"{path}: expected a JSON object of question id -> "
                              f"{value_type.__name__}")
    for key, value in content.items():
        if not isinstance(value, value_type):
            raise SubmissionError(f"{path}: entry {key!r} is {type(value).__name__}, expected "
                                  f"{value_type.__name__}")
    return content


# --- pairing predictions with labels ------------------------------------------------------------

@dataclass
class Paired:
    """Predictions and references in the terms of the task's metric, plus what was noticed."""

    predictions: list
    references: list
    notes: dict


def _same_count(predictions: list, labels: list, prediction_path: Path, label_path: Path,
                unit: str) -> None:
    if len(predictions) != len(labels):
        raise SubmissionError(f"{prediction_path}: {len(predictions)} {unit} but {label_path} "
                              f"has {len(labels)}")


def _pair_lines(problem: Callable[[str], str | None], prediction_path: Path,
                label_path: Path) -> Paired:
    """One item per line on both sides, each checked by ``problem`` (None when fine)."""
    sides = []
    for path in (prediction_path, label_path):
        lines = _read_lines(path)
        for number, line in enumerate(lines, start=1):
            if (message := problem(line)) is not None:
                raise SubmissionError(f"{path}, line {number}: {message}")
        sides.append(lines)
    _same_count(*sides, prediction_path, label_path, "lines")
    return Paired(sides[0], sides[1], {})


def _pair_labels(task: TaskSpec, prediction_path: Path, label_path: Path) -> Paired:
    allowed = set(task.label_names)
    return _pair_lines(lambda line: None if line in allowed else
                       f"unknown label {line!r}; {task.name} labels are {sorted(allowed)}",
                       prediction_path, label_path)


def _pair_indices(task: TaskSpec, prediction_path: Path, label_path: Path) -> Paired:
    return _pair_lines(lambda line: None if line.isdigit() else
                       f"{line!r} is not a sentence index", prediction_path, label_path)


def _read_choices(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise SubmissionError(f"{path}, line {number}: not a JSON object") from None
        label = row.get("label") if isinstance(row, dict) else None
        if not isinstance(label, int) or isinstance(label, bool) or label < 0:
            raise SubmissionError(f"{path}, line {number}: 'label' must be a choice index "
                                  f"(0, 1, ...), got {label!r}")
        rows.append({"line": number, **row})
    return rows


def _pair_choices(task: TaskSpec, prediction_path: Path, label_path: Path) -> Paired:
    predicted, gold = _read_choices(prediction_path), _read_choices(label_path)
    _same_count(predicted, gold, prediction_path, label_path, "lines")
    for p, g in zip(predicted, gold, strict=True):
        if "idx" in p and "idx" in g and p["idx"] != g["idx"]:
            raise SubmissionError(f"{prediction_path}, line {p['line']}: idx {p['idx']} but "
                                  f"{label_path} line {g['line']} has idx {g['idx']}")
    return Paired([p["label"] for p in predicted], [g["label"] for g in gold], {})


def _pair_tags(task: TaskSpec, prediction_path: Path, label_path: Path) -> Paired:
    allowed = set(task.labels)
    predicted, gold = _read_tags(prediction_path), _read_tags(label_path)
    for path, sentences in ((prediction_path, predicted), (label_path, gold)):
        for sentence in sentences:
            for number, tag in sentence:
                if tag not in allowed:
                    raise SubmissionError(f"{path}, line {number}: unknown tag {tag!r}; "
                                          f"{task.name} tags are {sorted(allowed)}")
    _same_count(predicted, gold, prediction_path, label_path, "sentences")
    for index, (p, g) in enumerate(zip(predicted, gold, strict=True), start=1):
        if len(p) != len(g):
            where = f"line {p[0][0]}" if p else "an empty sentence"
            raise SubmissionError(f"{prediction_path}, sentence {index} ({where}): {len(p)} tags "
                                  f"but {label_path} has {len(g)}")
    strip = lambda sentences: [[tag for _, tag in s] for s in sentences]  # noqa: E731
    return Paired(strip(predicted), strip(gold), {})


def _pair_answers(task: TaskSpec, prediction_path: Path, label_path: Path) -> Paired:
    """Answers paired by question id in label order; an unanswered question scores 0 and an
    answer to an unknown question is ignored, as in the official script (both are counted)."""
    answers = _read_string_map(prediction_path, str)
    questions = _read_squad(label_path)
    ids = {question_id for question_id, _ in questions}
    notes = {"unanswered": sum(question_id not in answers for question_id in ids),
             "unknown_ids": sum(key not in ids for key in answers)}
    return Paired([answers.get(question_id) for question_id, _ in questions],
                  [golds for _, golds in questions], {k: v for k, v in notes.items() if v})


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        fields = line.strip().split("\t")
        if fields == [""]:
            continue
        if len(fields) != 2:
            raise SubmissionError(f"{path}, line {number}: expected source_id<TAB>target_id, "
                                  f"got {len(fields)} field(s)")
        pairs.append((fields[0], fields[1]))
    return pairs


def _pair_mined(task: TaskSpec, prediction_path: Path, label_path: Path) -> Paired:
    predicted, gold = _read_pairs(prediction_path), _read_pairs(label_path)
    duplicates = len(predicted) - len(set(predicted))
    return Paired(predicted, gold, {"duplicate_pairs": duplicates} if duplicates else {})


def _pair_rankings(task: TaskSpec, prediction_path: Path, label_path: Path) -> Paired:
    rankings = _read_string_map(prediction_path, list)
    relevant = _read_string_map(label_path, list)
    notes = {"unranked": sum(query not in rankings for query in relevant),
             "unknown_ids": sum(query not in relevant for query in rankings)}
    return Paired([rankings.get(query) for query in relevant],
                  [set(ids) for ids in relevant.values()], {k: v for k, v in notes.items() if v})


# --- a run's records (what a zero-shot run keeps) and the items the writers take ---------------

def _label_records(task: TaskSpec, examples, predicted: list) -> list[dict]:
    names = task.label_names
    return [{"prediction": names[p], "label": names[g]}
            for p, g in zip(predicted, examples["label"], strict=True)]


def _choice_records(task: TaskSpec, examples, predicted: list) -> list[dict]:
    return [{"idx": i, "prediction": p, "label": g}
            for i, (p, g) in enumerate(zip(predicted, examples["label"], strict=True))]


def _tag_records(task: TaskSpec, examples, predicted: list) -> list[dict]:
    return [{"tokens": tokens, "prediction": p, "label": g} for tokens, p, g in
            zip(examples["tokens"], predicted, examples["tags"], strict=True)]


def _answer_records(task: TaskSpec, examples, predicted: list) -> list[dict]:
    return [{"id": e["id"], "prediction": p, "question": e["question"], "context": e["context"],
             "answers": e["answers"]} for e, p in zip(examples, predicted, strict=True)]


def _side_items(records: list[dict], side: str) -> list:
    """Prediction (``side='prediction'``) or label items of a run's records."""
    return [r[side] for r in records]


def _choice_items(records: list[dict], side: str) -> list[dict]:
    return [{"idx": r["idx"], "label": r[side]} for r in records]


def _tag_items(records: list[dict], side: str) -> list:
    if side == "prediction":
        for number, record in enumerate(records, start=1):
            if any(tag is None for tag in record["prediction"]):
                raise SubmissionError(f"sentence {number} has words without a predicted tag")
    return _side_items(records, side)


def _answer_items(records: list[dict], side: str):
    """Predictions ``{question_id: answer}``; labels the records (the SQuAD writer's input)."""
    return {r["id"]: r["prediction"] for r in records} if side == "prediction" else records


def _present_items(records: list[dict], side: str) -> list:
    """BUCC: predicted and gold pairs are separate records (the two sets differ in size)."""
    return [tuple(r[side]) for r in records if side in r]


def _ranking_items(records: list[dict], side: str) -> dict:
    return {r["id"]: r[side] for r in records}


def mining_records(predicted: list[tuple[str, str]], gold: list[tuple[str, str]]) -> list[dict]:
    return ([{"prediction": list(pair)} for pair in predicted]
            + [{"label": list(pair)} for pair in gold])


@dataclass(frozen=True)
class Layout:
    """How one format's files look: extension, writers for prediction and label items, the
    reader that pairs a prediction file with its label file, and how a run's records become
    those items (``records``: what a zero-shot run keeps; None where no zero-shot run exists)."""

    extension: str
    write_predictions: Callable[[Path, list], None]
    write_labels: Callable[[Path, list], None]
    pair: Callable[[TaskSpec, Path, Path], Paired]
    records: Callable[[TaskSpec, object, list], list[dict]] | None = None
    items: Callable[[list[dict], str], list] = _side_items


LAYOUTS: dict[str, Layout] = {
    "classification": Layout("tsv", _write_lines, _write_lines, _pair_labels, _label_records),
    "multiple_choice": Layout("jsonl", _write_choices, _write_choices, _pair_choices,
                              _choice_records, _choice_items),
    "token_classification": Layout("tsv", _write_tags, _write_tags, _pair_tags, _tag_records,
                                   _tag_items),
    "extractive_qa": Layout("json", _write_json, _write_squad, _pair_answers, _answer_records,
                            _answer_items),
    "bitext_retrieval": Layout("tsv", _write_lines, _write_lines, _pair_indices),
    "bitext_mining": Layout("tsv", _write_pairs, _write_pairs, _pair_mined,
                            items=_present_items),
    "ranking": Layout("json", _write_json, _write_json, _pair_rankings, items=_ranking_items),
}


def get_layout(task: TaskSpec) -> Layout:
    return lookup(LAYOUTS, task.format, "submission format", SubmissionError,
                  f" (task {task.name!r} has no submission format)")


# --- export ---------------------------------------------------------------------------------------

def prediction_records(task: TaskSpec, examples, predicted: list) -> list[dict]:
    """What a zero-shot run keeps per example: the prediction, the gold side and what the
    submission files need (question ids and texts, choice indices, words), in file terms."""
    records = get_layout(task).records
    if records is None:
        raise SubmissionError(f"task {task.name!r} ({task.format}): no zero-shot prediction "
                              f"records")
    return records(task, examples, predicted)


def export_run(run_dir: Path, output: Path, labels: Path | None = None) -> list[Path]:
    """Write a finished zero-shot or retrieval run's predictions (and, with ``labels``, its gold
    labels) in the leaderboard layout; returns the files written."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if "task" not in metrics:
        raise SubmissionError(f"{run_dir}: not a zero-shot evaluation or retrieval run (its "
                              f"metrics.json names no task)")
    task = get_task(metrics["task"])
    layout = get_layout(task)
    files = sorted((run_dir / "predictions").glob("*.jsonl"))
    if not files:
        raise SubmissionError(f"{run_dir / 'predictions'}: no prediction files")
    written = []
    for source in files:
        language = source.stem.split("-", 1)[1]
        records = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
        name = f"test-{language}.{layout.extension}"
        targets = [(output, layout.write_predictions, "prediction")]
        if labels is not None:
            targets.append((labels, layout.write_labels, "label"))
        for folder, write, side in targets:
            path = Path(folder) / task.name / name
            if path in written:
                raise SubmissionError(f"two runs export {task.name} {language}: {path}")
            write(path, layout.items(records, side))
            written.append(path)
    return written


# --- scoring ------------------------------------------------------------------------------------

def score_file(task: TaskSpec, prediction_path: Path, label_path: Path, language: str
               ) -> tuple[dict[str, float], dict]:
    paired = get_layout(task).pair(task, Path(prediction_path), Path(label_path))
    try:
        return score_language(task, paired.predictions, paired.references, language), paired.notes
    except MetricInputError as error:
        raise SubmissionError(f"{prediction_path}: {error}") from None


def score_folders(predictions: Path, labels: Path, benchmark: str | Benchmark,
                  partial: bool = False) -> dict:
    """Score a predictions folder against a labels folder for ``benchmark`` (``xtreme`` or
    ``xtreme-r``). Returns the report: per task ``{score: {lang: value}}``, ``avg_<score>``
    and ``avg_metric``; group scores and ``all_task`` where complete; ``notes``."""
    bench = get_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
    predictions, labels = Path(predictions), Path(labels)
    for folder in (predictions, labels):
        if not folder.is_dir():
            raise SubmissionError(f"{folder}: no such folder")
    present = {p.name for p in predictions.iterdir() if p.is_dir()}
    report: dict = {"benchmark": bench.name}
    notes: dict = {}
    tasks: dict[str, dict] = {}
    incomplete: dict[str, list[str]] = {}
    ignored = sorted(present - set(bench.tasks))
    if ignored:
        notes["ignored_tasks"] = ignored
    for name, languages in bench.tasks.items():
        if name not in present:
            continue
        if not (labels / name).is_dir():
            raise SubmissionError(f"{labels / name}: no labels for task {name}, whose "
                                  f"predictions are in {predictions / name}")
        task = get_task(name)
        files = {language: f"test-{language}.{get_layout(task).extension}"
                 for language in languages}
        scores: dict[str, dict[str, float]] = {}
        missing, task_notes = [], {}
        for language, file_name in files.items():
            prediction_path = predictions / name / file_name
            label_path = labels / name / file_name
            if partial and not (prediction_path.is_file() and label_path.is_file()):
                missing.append(language)
                continue
            values, language_notes = score_file(task, prediction_path, label_path, language)
            for score, value in values.items():
                scores.setdefault(score, {})[language] = value
            if language_notes:
                task_notes[language] = language_notes
        extra = sorted(p.name for p in (predictions / name).iterdir()
                       if p.name not in files.values())
        if extra:
            task_notes["ignored_files"] = extra
        if missing:
            task_notes["missing_languages"] = incomplete[name] = missing
        if not scores:
            raise SubmissionError(f"{predictions / name}: none of the {bench.name} languages of "
                                  f"{name} has both a prediction and a label file")
        tasks[name] = scores
        if task_notes:
            notes[name] = task_notes
    if not tasks:
        layouts = ", ".join(f"{name}/test-<lang>.{get_layout(get_task(name)).extension}"
                            for name in bench.tasks)
        raise SubmissionError(f"{predictions}: nothing to score for {bench.name}: found "
                              f"{sorted(present) or 'no task folder'}; expected one or more of "
                              f"{layouts} (`stilts export-submission` writes this layout)")
    summary = bench.summarise(tasks, incomplete)
    report.update({name: _official_keys(value) if name in tasks else value
                   for name, value in summary.items()})
    report["notes"] = notes
    return report


# The official scorer's names for scores this package names as Python identifiers.
OFFICIAL_SCORE_KEYS = {"map_at_20": "map@20"}


def _official_keys(scores: dict) -> dict:
    """A task's scores under the official ``evaluate.py`` keys (``map@20``, ``avg_map@20``)."""
    renamed = {}
    for key, value in scores.items():
        average = key.startswith("avg_")
        name = key[4:] if average else key
        renamed[("avg_" if average else "") + OFFICIAL_SCORE_KEYS.get(name, name)] = value
    return renamed


def format_report(report: dict) -> str:
    """The per-language table printed by ``stilts score``."""
    lines = [f"benchmark {report['benchmark']}"]
    for name, summary in report.items():
        if not isinstance(summary, dict) or name == "notes":
            continue
        scores = [key for key in summary if not key.startswith("avg_")]
        languages = list(summary[scores[0]])
        lines.append(f"\n{name}")
        lines.append("  " + f"{'lang':<6}" + "".join(f"{s:>16}" for s in scores))
        for language in languages:
            lines.append("  " + f"{language:<6}" + "".join(
                f"{summary[s][language]:>16.2f}" for s in scores))
        lines.append("  " + f"{'avg':<6}" + "".join(f"{summary['avg_' + s]:>16.2f}"
                                                   for s in scores))
        lines.append(f"  headline (avg_metric): {summary['avg_metric']:.2f}")
    totals = {k: v for k, v in report.items() if isinstance(v, float)}
    if totals:
        lines.append("")
        lines.extend(f"{key}: {value:.2f}" for key, value in totals.items())
    for name, note in report.get("notes", {}).items():
        lines.append(f"note: {name}: {note}")
    return "\n".join(lines)
