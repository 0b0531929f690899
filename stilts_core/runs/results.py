"""The tidy results table: one row per model x intermediate task x target task x language x seed
x metric, with the provenance and the run that produced it.

Each run writes one file per task and language, ``results/<task>/<language>.csv`` in its folder,
atomically (never a shared file appended by many writers, and a crash leaves no half-written
rows); :func:`collect` merges them atomically into ``data/results/<name>.parquet``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stilts_core.paths import atomic_output, atomic_write_text, checkpoint_name, portable_text
from stilts_core.provenance import CLASSES
from stilts_core.tasks.benchmarks import get_benchmark
from stilts_core.tasks.metrics import get_metric
from stilts_core.tasks.registry import get_task

NO_INTERMEDIATE = "none"
PERCENT = (0.0, 100.0)

# The range of every score a result row may carry. The official metrics report percentages; the
# layer-wise alignment measures their own scales. A metric not declared here is refused, so a new
# score cannot enter the statistics unchecked.
VALUE_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(("accuracy", "accuracy_en_to_xx", "token_accuracy", "f1", "precision",
                     "recall", "exact_match", "map_at_20", "oracle_f1", "headline",
                     "alignment_retrieval_accuracy", "alignment_centred_retrieval_accuracy"),
                    PERCENT),
    **dict.fromkeys(("dev_interval_low", "dev_interval_high", "learning_floor"), PERCENT),
    "dev_examples": (1.0, float("inf")),  # the dev examples a training run's score counts
    "alignment_cosine_gap": (-2.0, 2.0),  # a difference of two mean cosines
    "alignment_linear_cka": (0.0, 1.0),
}


@dataclass(frozen=True)
class Column:
    """One column of the results table: ``kind`` is ``text``, ``seed`` or ``score``; ``empty``
    says whether a row may leave it empty."""

    name: str
    kind: str
    meaning: str
    empty: bool = False


@dataclass(frozen=True)
class ResultsSchema:
    """The one declaration every results table is checked against, on every write and every
    read (:func:`validate`): columns and their kinds, finite scores within each metric's range
    (:data:`VALUE_RANGES`), provenance from the declared classes, and one row per ``key``."""

    columns: tuple[Column, ...]
    key: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


SCHEMA = ResultsSchema(
    columns=(
        Column("model", "text", "the model's registry name"),
        Column("intermediate_task", "text", f"the phase-(ii) task, '{NO_INTERMEDIATE}' for direct "
                                            "fine-tuning"),
        Column("target_task", "text", "the task scored"),
        Column("language", "text", "the language scored"),
        Column("seed", "seed", "the training seed; empty for an encoder no seed changed", True),
        Column("split", "text", "the split scored"),
        Column("metric", "text", "a score name declared in VALUE_RANGES"),
        Column("value", "score", "a finite number within the metric's declared range"),
        Column("provenance", "text", "a declared provenance class"),
        Column("run_id", "text", "the run that wrote the row"),
        # part of a cell's identity: a layer of the alignment curves, a retrieval protocol
        Column("settings", "text", "JSON of the settings that changed the number", True),
    ),
    key=("model", "intermediate_task", "target_task", "language", "seed", "split", "metric",
         "settings"),
)
COLUMNS = SCHEMA.names
KEY = SCHEMA.key


class ResultsError(ValueError):
    """A results table breaks the schema or results disagree; the message names the file, the
    column, the first offending rows and the fix."""


SHOWN_ROWS = 5


def _refuse(source: str, column: str, problem: str, rows: pd.DataFrame, fix: str):
    """The error for ``rows`` that break the schema: one line saying where (``column``), what
    and the fix (the line the command line prints last), then the first offending rows."""
    shown = rows.head(SHOWN_ROWS).to_string()
    more = f"\n... and {len(rows) - SHOWN_ROWS} more" if len(rows) > SHOWN_ROWS else ""
    raise ResultsError(f"{source}: {column}: {len(rows)} row(s) {problem}; {fix}\n"
                       f"first offending rows (by row number):\n{shown}{more}")


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _not_text(values: pd.Series, empty: bool) -> pd.Series:
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # the usual case, at C speed
        return values.eq("") & (not empty)
    return values.map(lambda v: not isinstance(v, str) or (v == "" and not empty))


def _not_seed(values: pd.Series) -> pd.Series:
    """Where a value is neither a whole number nor missing."""
    if pd.api.types.is_integer_dtype(values):
        return pd.Series(False, index=values.index)

    def whole(value) -> bool:
        if isinstance(value, (bool, np.bool_)):
            return False
        return isinstance(value, (int, np.integer)) or (
            isinstance(value, (float, np.floating)) and float(value).is_integer())
    return values.map(lambda v: not _missing(v) and not whole(v))


def _not_number(values: pd.Series) -> pd.Series:
    """Where a value is not a number (a missing one is a number that is not finite)."""
    if pd.api.types.is_float_dtype(values) or pd.api.types.is_integer_dtype(values):
        return pd.Series(False, index=values.index)
    return values.map(lambda v: not _missing(v) and (
        isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number))))


CHECKS = {"text": lambda values, column: _not_text(values, column.empty),
          "seed": lambda values, column: _not_seed(values),
          "score": lambda values, column: _not_number(values)}
FIXES = {"text": "each row needs a non-empty text value here",
         "seed": "seeds are whole numbers, or empty for an encoder no seed changed",
         "score": "scores are numbers, not text (convert a column written as text, such as "
                  "'35.0', with pandas.to_numeric)"}


def validate(frame: pd.DataFrame, source: str, schema: ResultsSchema = SCHEMA) -> pd.DataFrame:
    """``frame`` checked against ``schema`` and typed (its columns in order, ``seed`` as
    ``Int64``, ``value`` as float); a :class:`ResultsError` naming ``source`` otherwise. Nothing
    is dropped or repaired: a table that needs fixing is refused."""
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise ResultsError(f"{source}: missing column(s) {missing}; a results table has the "
                           f"columns {list(schema.names)} (a table written by `stilts collect` "
                           "has them all)")
    frame = frame[list(schema.names)].reset_index(drop=True)
    for column in schema.columns:
        bad = CHECKS[column.kind](frame[column.name], column)
        if bad.any():
            _refuse(source, f"column {column.name!r}", f"of the wrong kind ({column.meaning})",
                    frame[bad], FIXES[column.kind])
    frame = frame.assign(seed=pd.to_numeric(frame["seed"].astype(object).where(
        frame["seed"].notna(), None)).astype("Int64"),
        value=pd.to_numeric(frame["value"].astype(object).where(frame["value"].notna(), np.nan))
        .astype(float))
    infinite = ~np.isfinite(frame["value"])
    if infinite.any():
        _refuse(source, "column 'value'", "not finite (NaN or infinite)", frame[infinite],
                "rescore the runs named in run_id, or remove their whole cell (every seed and the "
                "baseline) and say so; a missing score is never read as a number")
    unknown = ~frame["metric"].isin(list(VALUE_RANGES))
    if unknown.any():
        _refuse(source, "column 'metric'", "with a metric whose range is not declared",
                frame[unknown],
                "declare its range in stilts_core.runs.results.VALUE_RANGES (declared: "
                f"{', '.join(VALUE_RANGES)})")
    low = frame["metric"].map({metric: low for metric, (low, _) in VALUE_RANGES.items()})
    high = frame["metric"].map({metric: high for metric, (_, high) in VALUE_RANGES.items()})
    outside = (frame["value"] < low) | (frame["value"] > high)
    if outside.any():
        _refuse(source, "column 'value'", "outside their metric's range",
                frame[outside].assign(allowed=[str(VALUE_RANGES[m]) for m in
                                               frame.loc[outside, "metric"]]),
                "scores are on the metric's scale (percent for the official metrics); rescore "
                "the runs named in run_id")
    unknown = ~frame["provenance"].isin(list(CLASSES))
    if unknown.any():
        _refuse(source, "column 'provenance'", "with an undeclared provenance class",
                frame[unknown],
                f"use one of the declared classes: {', '.join(CLASSES)}")
    key = f"key columns ({', '.join(schema.key)})"
    twice = frame.duplicated(keep=False)
    if twice.any():
        _refuse(source, key, "that are exact copies of another row", frame[twice],
                "keep one of each (the same rows were added twice)")
    clashes = frame.duplicated(list(schema.key), keep=False)
    if clashes.any():
        _refuse(source, key, "that give one cell different values",
                frame[clashes].sort_values(list(schema.key)),
                "keep the run you mean (by run_id) and remove the other's rows")
    return frame


def make_frame(rows: list[dict] | pd.DataFrame, source: str = "result rows") -> pd.DataFrame:
    """Rows as a typed frame checked against the schema (:func:`validate`)."""
    return validate(pd.DataFrame(rows), source)


def read_results(path: Path) -> pd.DataFrame:
    """A collected results table (parquet), checked against the schema: every reader of a table
    (statistics, the book, its chapters) goes through here."""
    path = Path(path)
    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results table; collect one with `stilts collect "
                           "CONFIG`") from None
    except (OSError, ValueError) as error:
        raise ResultsError(f"{path}: not a parquet results table ({error}); pass a table written "
                           "by `stilts collect`") from None
    if frame.empty:
        raise ResultsError(f"{path}: the table has no rows; collect finished runs into it")
    return validate(frame, str(path))


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
        with atomic_output(path) as staging:
            part.to_csv(staging, index=False)
        written.append(path)
    return written


def read_result_file(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"language": str, "settings": str},
                        keep_default_na=False, na_values={"seed": [""], "value": [""]})
    # one text cell makes the whole column text: read the numbers back, keep the text to refuse
    if "value" in frame:
        numbers = pd.to_numeric(frame["value"], errors="coerce")
        frame["value"] = numbers.astype(object).where(numbers.notna() | frame["value"].isna(),
                                                      frame["value"])
    return make_frame(frame, str(path))


def read_run_results(run_dir: Path) -> pd.DataFrame:
    """Every result row of one run (all its task x language files)."""
    files = sorted((Path(run_dir) / RESULTS_FOLDER).glob("*/*.csv"))
    if not files:
        raise ResultsError(f"{run_dir}: no result files ({RESULTS_FOLDER}/<task>/<language>.csv); "
                           "is the run finished?")
    return pd.concat([read_result_file(path) for path in files], ignore_index=True)


ORIGIN_KEY = b"stilts.origin"


def table_origin(path: Path) -> dict | None:
    """What a collected table was collected from (``{"grid": ..., "config_sha256": ...}``), or
    ``None`` for a table that does not say."""
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[ORIGIN_KEY]) if ORIGIN_KEY in metadata else None


def collect(run_dirs: list[Path], output: Path, origin: dict | None = None,
            force: bool = False) -> pd.DataFrame:
    """Merge the results of finished runs into one parquet file, written atomically.

    A run listed twice is read once; the merged table is checked against the schema, so rows
    with the same key (from two runs) are refused, naming both runs. ``origin`` (which grid
    config) is stored in the file, and a table collected from another origin is not
    overwritten unless ``force``.
    """
    output = Path(output)
    if origin is not None and output.is_file() and not force:  # before reading any run
        existing = table_origin(output)
        if existing is not None and existing != origin:
            raise ResultsError(
                f"{output} was collected from grid {existing.get('grid')!r} (config sha256 "
                f"{existing.get('config_sha256', '?')[:12]}), not from this config (grid "
                f"{origin.get('grid')!r}, sha256 {origin.get('config_sha256', '?')[:12]}); "
                "write elsewhere (--output, or another name: in the config), or pass --force "
                "to overwrite it")
    frames = [read_run_results(d) for d in dict.fromkeys(Path(d).resolve() for d in run_dirs)]
    if not frames:
        raise ResultsError("no finished runs to collect")
    table = validate(pd.concat(frames, ignore_index=True), f"the runs collected into {output}")
    table = table.sort_values(list(KEY), na_position="first").reset_index(drop=True)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if origin is not None:
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                               ORIGIN_KEY: json.dumps(origin).encode()})
    with atomic_output(output) as staging:
        pq.write_table(arrow, staging)
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


# Fields of the training summaries (``metrics.json``) that name a checkpoint, which a finished
# run has deleted: records keep its name (``checkpoint-<step>``), never its path.
CHECKPOINT_FIELDS = ("best_checkpoint", "resumed_from")


def portable_record(value, field: str | None = None):
    """A run record with every absolute path in it named by
    :func:`~stilts_core.paths.portable_location`, and checkpoints by their name, so that runs
    made before the phases wrote portable records carry no machine's paths either. Parameters
    are named so too: a run given a folder by its absolute path (not ``pack`` or a path relative
    to the repository) has an id that hashes that path, and its record says so by not
    reproducing the id."""
    if isinstance(value, dict):
        return {key: portable_record(item, key) for key, item in value.items()}
    if isinstance(value, list):
        return [portable_record(item, field) for item in value]
    if isinstance(value, str):
        return checkpoint_name(value) if field in CHECKPOINT_FIELDS else portable_text(value)
    return value


def write_run_records(run_dirs: list[Path], output: Path) -> Path:
    """One JSON line per run, ``{"run_id": ..., "params": {...}, "provenance": {...}, ...}``
    (each of :data:`RUN_RECORDS` the run has), sorted by run id and written atomically, so a
    table committed without its run folders still traces every row (``run_id``) to its
    parameters, data sources, provenance and compute, on any machine (:func:`portable_record`)."""
    lines = []
    for folder in sorted(map(Path, run_dirs), key=lambda path: path.name):
        record = {"run_id": folder.name}
        for name in RUN_RECORDS:
            if (folder / name).is_file():
                record[name.removesuffix(".json")] = json.loads((folder / name).read_text())
        lines.append(json.dumps(portable_record(record), sort_keys=True, ensure_ascii=False))
    output = Path(output)
    atomic_write_text(output, "\n".join(lines) + "\n")
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


def headline_scores(table: pd.DataFrame, split: str = "test",
                    fine_tuned: bool = False) -> pd.DataFrame:
    """One row per model x intermediate task x target task x language x seed with the task's
    headline score (``metric == 'headline'``): the mean of exact match and F1 for QA, F1 for
    tagging, accuracy or mAP@20 otherwise, from the score rows of the task's metric. Scores of
    encoders that target fine-tuning left (:func:`before_target_fine_tuning`) only with
    ``fine_tuned``: they measure how fine-tuning moved alignment, another quantity."""
    cell = [*MODEL_CELL, "target_task", "language", "split", "provenance", "run_id", "settings"]
    parts = []
    table = table if fine_tuned else before_target_fine_tuning(table)
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


def before_target_fine_tuning(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of encoders as intermediate training left them: none of an encoder that target
    fine-tuning left (``fine_tuned_on`` in its settings), whose retrieval rows measure how
    fine-tuning moved alignment, not the retrieval task of its intermediate task and seed."""
    return table[setting(table, "fine_tuned_on").isna()]


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
    ``protocol`` (``encoder``: the encoder as it is; ``dual_encoder``: XTREME-R's). Retrieval by
    an encoder that target fine-tuning left (``fine_tuned_on`` in its settings) measures how
    fine-tuning moved alignment, not the benchmark's retrieval task, and is left out."""
    bench = get_benchmark(benchmark)
    rows = table[(table["split"] == "test") & table["target_task"].isin(list(bench.tasks))]
    headline = rows["target_task"].map(_headline)
    rows = rows[[metric in names for metric, names in zip(rows["metric"], headline, strict=True)]]
    rows = before_target_fine_tuning(rows[setting(rows, "protocol").isin([None, protocol])])
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
