"""The tidy results table: one row per model x intermediate task x target task x language x seed
x metric, with the provenance and the run that produced it.

Each run writes one file per task and language, ``results/<task>/<language>.csv`` in its folder,
atomically (never a shared file appended by many writers, and a crash leaves no half-written
rows); :func:`collect` merges them atomically into ``data/results/<name>.parquet``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from stilts_core.tasks.metrics import get_metric
from stilts_core.provenance import CLASSES
from stilts_core.tasks.registry import get_benchmark, get_task

COLUMNS = (
    "model", "intermediate_task", "target_task", "language", "seed", "split", "metric", "value",
    "provenance", "run_id", "settings",
)
# ``settings`` is part of a cell's identity: a layer of the alignment curves, a retrieval protocol.
KEY = ("model", "intermediate_task", "target_task", "language", "seed", "split", "metric",
       "settings")
NO_INTERMEDIATE = "none"


class ResultsError(ValueError):
    """The results files disagree or break the schema; the message names the rows or file."""


def make_frame(rows: list[dict]) -> pd.DataFrame:
    """Validate rows against the schema and return them as a typed frame."""
    frame = pd.DataFrame(rows)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ResultsError(f"result rows lack column(s) {missing}; schema: {list(COLUMNS)}")
    frame = frame[list(COLUMNS)].copy()
    frame["seed"] = frame["seed"].astype("Int64")
    frame["value"] = frame["value"].astype(float)
    bad = sorted(set(frame["provenance"]) - set(CLASSES))
    if bad:
        raise ResultsError(f"unknown provenance {bad}; allowed: {list(CLASSES)}")
    return frame


RESULTS_FOLDER = "results"


def result_file(run_dir: Path, task: str, language: str) -> Path:
    """Where a run keeps its rows of one task and language."""
    return Path(run_dir) / RESULTS_FOLDER / task / f"{language}.csv"


def write_run_results(run_dir: Path, rows: list[dict]) -> list[Path]:
    """One file per task x language, each written to a temporary name and renamed."""
    frame = make_frame(rows)
    written = []
    for (task, language), part in frame.groupby(["target_task", "language"], sort=True):
        path = result_file(run_dir, task, language)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        part.to_csv(tmp, index=False)
        os.replace(tmp, path)
        written.append(path)
    return written


def read_result_file(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"language": str, "settings": str},
                        keep_default_na=False, na_values={"seed": [""]})
    try:
        return make_frame(frame.to_dict("records"))
    except (ResultsError, ValueError) as error:
        raise ResultsError(f"{path}: {error}") from None


def read_run_results(run_dir: Path) -> pd.DataFrame:
    """Every result row of one run (all its task x language files)."""
    files = sorted((Path(run_dir) / RESULTS_FOLDER).glob("*/*.csv"))
    if not files:
        raise ResultsError(f"{run_dir}: no result files ({RESULTS_FOLDER}/<task>/<language>.csv); "
                           "is the run finished?")
    return pd.concat([read_result_file(path) for path in files], ignore_index=True)


def collect(run_dirs: list[Path], output: Path) -> pd.DataFrame:
    """Merge the results of finished runs into one parquet file, written atomically.

    Identical duplicate rows (the same run listed twice) are merged; rows with the same key but
    different values are a conflict and refused, naming both runs.
    """
    frames = [read_run_results(d) for d in run_dirs]
    if not frames:
        raise ResultsError("no finished runs to collect")
    table = pd.concat(frames, ignore_index=True).drop_duplicates()
    clashes = table[table.duplicated(list(KEY), keep=False)]
    if not clashes.empty:
        raise ResultsError(
            "conflicting results for the same cell (same key, different value):\n"
            + clashes.sort_values(list(KEY)).to_string(index=False)
        )
    table = table.sort_values(list(KEY), na_position="first").reset_index(drop=True)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    table.to_parquet(tmp, index=False)
    os.replace(tmp, output)
    return table


# The small records of a run that trace its numbers (what it was asked, what evidence it is,
# which data files or hub commits it read, what it cost, what it measured); never weights,
# checkpoints or per-example predictions.
RUN_RECORDS = ("params.json", "provenance.json", "data_sources.json", "compute.json",
               "metrics.json", "skipped_languages.json")


def records_path(table_path: Path) -> Path:
    """Where the run records of a collected table go: ``<table>.runs.jsonl`` beside it."""
    table_path = Path(table_path)
    return table_path.with_name(f"{table_path.stem}.runs.jsonl")


def write_run_records(run_dirs: list[Path], output: Path) -> Path:
    """One JSON line per run, ``{"run_id": ..., "params": {...}, "provenance": {...}, ...}``
    (each of :data:`RUN_RECORDS` the run has), sorted by run id and written atomically, so a
    table committed without its run folders still traces every row (``run_id``) to its
    parameters, data sources, provenance and compute."""
    lines = []
    for folder in sorted(map(Path, run_dirs), key=lambda path: path.name):
        record = {"run_id": folder.name}
        for name in RUN_RECORDS:
            if (folder / name).is_file():
                record[name.removesuffix(".json")] = json.loads((folder / name).read_text())
        lines.append(json.dumps(record, sort_keys=True, ensure_ascii=False))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, output)
    return output


def read_run_records(path: Path) -> dict[str, dict]:
    """The records :func:`write_run_records` wrote, by run id."""
    with open(path, encoding="utf-8") as handle:
        return {record["run_id"]: record for record in map(json.loads, handle) if record}


def paired_gains(table: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """STILTs minus direct fine-tuning for the same model, target task, language, seed and
    settings (retrieval: the same layer, pooling and protocol).

    Baselines are the rows with ``intermediate_task == 'none'``. Retrieval baselines (the base
    encoder, which no seed changes) carry no seed and are paired with every seed.
    """
    frame = table if metric is None else table[table["metric"] == metric]
    cell = ["model", "target_task", "language", "split", "metric", "settings"]
    base = frame[frame["intermediate_task"] == NO_INTERMEDIATE]
    stilts = frame[frame["intermediate_task"] != NO_INTERMEDIATE]
    seeded = base[base["seed"].notna()]
    unseeded = base[base["seed"].isna()].drop(columns="seed")
    paired = pd.concat([
        stilts.merge(seeded[[*cell, "seed", "value"]], on=[*cell, "seed"],
                     suffixes=("", "_baseline")),
        stilts.merge(unseeded[[*cell, "value"]], on=cell, suffixes=("", "_baseline")),
    ], ignore_index=True)
    paired["gain"] = paired["value"] - paired["value_baseline"]
    return paired[[*cell[:4], "intermediate_task", "seed", "metric", "settings", "value",
                   "value_baseline", "gain", "provenance"]]


MODEL_CELL = ["model", "intermediate_task", "seed"]


def _headline(task_name: str) -> tuple[str, ...]:
    return get_metric(get_task(task_name).metric).headline


def headline_scores(table: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """One row per model x intermediate task x target task x language x seed with the task's
    headline score (``metric == 'headline'``): the mean of exact match and F1 for QA, F1 for
    tagging, accuracy or mAP@20 otherwise, from the score rows of the task's metric."""
    cell = [*MODEL_CELL, "target_task", "language", "split", "provenance", "run_id", "settings"]
    parts = []
    for task_name, rows in table[table["split"] == split].groupby("target_task"):
        headline = _headline(task_name)
        scores = rows[rows["metric"].isin(headline)]
        frame = scores.groupby(cell, dropna=False)["value"].agg(["mean", "count"]).reset_index()
        parts.append(frame[frame["count"] == len(headline)].rename(columns={"mean": "value"}))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cell)
    frame["metric"] = "headline"
    return make_frame(frame[list(COLUMNS)].to_dict("records")) if len(frame) else frame


def setting(table: pd.DataFrame, name: str) -> pd.Series:
    """One field of the ``settings`` JSON per row (``None`` where a row does not set it):
    the layer of an alignment row, the protocol of a retrieval row."""
    return table["settings"].map(lambda text: json.loads(text or "{}").get(name))


def with_protocol(table: pd.DataFrame) -> pd.DataFrame:
    """``protocol`` as a column: a retrieval row's protocol, empty for rows without one."""
    table = table.copy()
    table["protocol"] = setting(table, "protocol").fillna("")
    return table


# Rows that differ in these are never averaged together: each summary and figure shows them apart.
NEVER_POOLED = ["provenance", "model", "protocol"]


def evidence_groups(table: pd.DataFrame):
    """``(title, rows)`` per provenance class x model x retrieval protocol present in ``table``:
    the units a figure may draw, since averaging across them mixes kinds of evidence."""
    table = with_protocol(table)
    for key, rows in table.groupby(NEVER_POOLED, sort=True):
        provenance, model, protocol = key
        title = f"{model} ({provenance})" + (f", {protocol} protocol" if protocol else "")
        yield title, rows


def benchmark_scores(table: pd.DataFrame, benchmark: str,
                     protocol: str = "encoder") -> pd.DataFrame:
    """The official aggregates per model x intermediate task x seed (XTREME's ``evaluate.py``):
    each task's average over the benchmark's languages (``level='task'``, ``complete`` when the
    table has all of them), group scores and the overall score (``all_task``), the last two only
    where every task they need is complete. Unseeded rows (the base encoder's retrieval) count
    for every seed of the same model and intermediate task. Retrieval rows count under one
    ``protocol`` (``encoder``: the encoder as it is; ``dual_encoder``: XTREME-R's)."""
    bench = get_benchmark(benchmark)
    rows = table[(table["split"] == "test") & table["target_task"].isin(list(bench.tasks))]
    headline = rows["target_task"].map(_headline)
    rows = rows[[metric in names for metric, names in zip(rows["metric"], headline, strict=True)]]
    rows = rows[setting(rows, "protocol").isin([None, protocol])]
    clashes = rows[rows.duplicated([*MODEL_CELL, "target_task", "language", "metric"], keep=False)]
    if not clashes.empty:
        raise ResultsError(
            f"{benchmark}: several settings for the same score; select one per task first "
            "(e.g. by results.setting(table, 'layer')):\n"
            + clashes[[*MODEL_CELL, "target_task", "language", "metric", "settings"]]
            .to_string(index=False))
    seeded, unseeded = rows[rows["seed"].notna()], rows[rows["seed"].isna()]
    seeds = seeded[MODEL_CELL].drop_duplicates()
    broadcast = unseeded.drop(columns="seed").merge(seeds, on=MODEL_CELL[:2])
    alone = unseeded.merge(seeds[MODEL_CELL[:2]].drop_duplicates(), on=MODEL_CELL[:2],
                           how="left", indicator=True)
    alone = alone[alone["_merge"] == "left_only"].drop(columns="_merge")
    rows = pd.concat([seeded, broadcast[rows.columns], alone[rows.columns]], ignore_index=True)
    records = []
    for key, model_rows in rows.groupby(MODEL_CELL, dropna=False):
        scores, missing = {}, {}
        for task_name, languages in bench.tasks.items():
            headline = _headline(task_name)
            task_rows = model_rows[(model_rows["target_task"] == task_name)
                                   & model_rows["metric"].isin(headline)]
            values = {score: dict(zip(part["language"], part["value"], strict=True))
                      for score, part in task_rows.groupby("metric")}
            present = [lang for lang in languages
                       if all(lang in values.get(score, {}) for score in headline)]
            if present:
                scores[task_name] = {score: {lang: values[score][lang] for lang in present}
                                     for score in headline}
                missing[task_name] = [lang for lang in languages if lang not in present]
        for name, value in bench.summarise(scores, missing).items():
            is_task = isinstance(value, dict)
            records.append({
                **dict(zip(MODEL_CELL, key, strict=True)), "benchmark": bench.name,
                "level": "task" if is_task else ("overall" if name == "all_task" else "group"),
                "name": name, "value": value["avg_metric"] if is_task else value,
                "complete": not missing.get(name) if is_task else True,
            })
    return pd.DataFrame(records, columns=[*MODEL_CELL, "benchmark", "level", "name", "value",
                                          "complete"])
