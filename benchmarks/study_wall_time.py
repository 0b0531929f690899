"""What a grid cost, from its runs' records: per phase and task the runs, their summed and
median seconds, and the wall-clock span from the first run's start to the last run's end.

    python benchmarks/study_wall_time.py data/real_results/e5_study_v2.runs.jsonl

Reads ``compute`` of every record (``stilts collect --records``): seconds summed over every
attempt and when the last attempt finished. The span counts idle gaps, pauses and restarts of
the grid; the summed seconds count the work of every worker. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stilts_core.runs.results import read_run_records  # noqa: E402


def cost_table(records: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for identifier, record in records.items():
        compute = record["compute"]
        finished = datetime.strptime(compute["finished"], "%Y-%m-%dT%H:%M:%S%z")
        rows.append({"run_id": identifier, "phase": record["params"]["phase"],
                     "task": record["params"].get("task")  # zero-shot: its target run's task
                     or record["params"]["target_run"].split("-")[1],
                     "seconds": float(compute["seconds"]), "attempts": int(compute["attempts"]),
                     "finished": finished,
                     "started": finished - timedelta(seconds=float(compute["attempt_seconds"][-1]))})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", type=Path, help="a <table>.runs.jsonl of stilts collect --records")
    args = parser.parse_args(argv)
    table = cost_table(read_run_records(args.records))
    summary = (table.groupby(["phase", "task"])["seconds"]
               .agg(runs="count", total_min=lambda s: s.sum() / 60, median_s="median")
               .round(1))
    print(summary.to_string())
    span = (table["finished"].max() - table["started"].min()).total_seconds() / 60
    print(f"{len(table)} runs, {table['attempts'].sum()} attempts; {table['seconds'].sum() / 60:.1f} "
          f"min of run time summed over workers; {span:.1f} min from the first start "
          f"({table['started'].min():%Y-%m-%d %H:%M} UTC) to the last end "
          f"({table['finished'].max():%H:%M} UTC)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
