"""The tidy results table: one row per model x intermediate task x target task x language x seed
x metric, with the provenance and the run that produced it.

Each run writes its own ``results.csv`` (never a shared file appended by many writers);
:func:`collect` merges them atomically into ``data/results/<name>.parquet``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

COLUMNS = (
    "model", "intermediate_task", "target_task", "language", "seed", "split", "metric", "value",
    "provenance", "run_id", "settings",
)
KEY = ("model", "intermediate_task", "target_task", "language", "seed", "split", "metric")
NO_INTERMEDIATE = "none"
PROVENANCES = ("published", "full-scale run", "smoke run", "simulation")


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
    bad = sorted(set(frame["provenance"]) - set(PROVENANCES))
    if bad:
        raise ResultsError(f"unknown provenance {bad}; allowed: {list(PROVENANCES)}")
    return frame


def write_run_results(run_dir: Path, rows: list[dict]) -> Path:
    frame = make_frame(rows)
    path = Path(run_dir) / "results.csv"
    tmp = path.with_name(f".results.csv.tmp-{os.getpid()}")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def read_run_results(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"language": str, "settings": str},
                        keep_default_na=False, na_values={"seed": [""]})
    return make_frame(frame.to_dict("records"))


def collect(run_dirs: list[Path], output: Path) -> pd.DataFrame:
    """Merge the results of finished runs into one parquet file, written atomically.

    Identical duplicate rows (the same run listed twice) are merged; rows with the same key but
    different values are a conflict and refused, naming both runs.
    """
    frames = [read_run_results(Path(d) / "results.csv") for d in run_dirs]
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


def paired_gains(table: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """STILTs minus direct fine-tuning for the same model, target task, language and seed.

    Baselines are the rows with ``intermediate_task == 'none'``. Retrieval baselines (the base
    encoder, which no seed changes) carry no seed and are paired with every seed.
    """
    frame = table if metric is None else table[table["metric"] == metric]
    cell = ["model", "target_task", "language", "split", "metric"]
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
    return paired[[*cell[:4], "intermediate_task", "seed", "metric", "value", "value_baseline",
                   "gain", "provenance"]]
