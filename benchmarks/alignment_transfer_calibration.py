"""Calibration of the alignment-transfer association (``stilts_core.analysis.alignment_transfer``)
by simulation with a known truth: per setting, the rejection rate at alpha = 0.05 of the book's
test (within language and intermediate task, a residual variance per task) and of three methods
that leave a part of it out, with Wilson 95% intervals, and the book's mean slope and interval
coverage. Null settings carry language-level confounding (a pooled correlation sees it) and
intermediate-task effects shared by every language; the target is the book's type-I error
within [0.03, 0.08] and its 95% coverage within [0.92, 0.98]. Writes
``benchmarks/results/alignment_transfer_calibration.json``.

    python benchmarks/alignment_transfer_calibration.py [--reps 1000]
"""

from __future__ import annotations

import os

# one BLAS thread: the matrices are small, and threads that spin for each other on a shared
# machine make a factorisation far slower
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from stilts_core.analysis import alignment_transfer as at  # noqa: E402
from stilts_core.paths import atomic_write_text  # noqa: E402

TARGET = {"type-I error": (0.03, 0.08), "coverage": (0.92, 0.98)}
TASKS = {"task_sd": 2.0}  # intermediate-task effects (SD 2) on both gains, independent
HETEROSCEDASTIC = {**TASKS, "noise": "t3", "noisy_task_scale": 3.0}
# the designs of the book's sets: XNLI's 15 languages (14 without English) and PAN-X's 39, with
# three to six intermediate tasks (configs/e5_study_v2.yaml has four)
SETTINGS = {
    "null, 15 x 3, language confounding only": {},
    "null, 15 x 3, + task effects": TASKS,
    "null, 15 x 3, + t3 noise, one task 3x": HETEROSCEDASTIC,
    "null, 15 x 6, + task effects": {**TASKS, "intermediate_tasks": 6},
    "null, 15 x 6, + t3 noise, one task 3x": {**HETEROSCEDASTIC, "intermediate_tasks": 6},
    "null, 39 x 6, + t3 noise, one task 3x": {**HETEROSCEDASTIC, "languages": 39,
                                             "intermediate_tasks": 6},
    "slope 0.5, 15 x 3, + task effects": {**TASKS, "slope": 0.5},
    "slope 0.5, 15 x 3, + t3 noise, one task 3x": {**HETEROSCEDASTIC, "slope": 0.5},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results"
                        / "alignment_transfer_calibration.json")
    args = parser.parse_args()
    print(f"{args.reps} simulated sets per setting; python {platform.python_version()}, "
          f"{os.cpu_count()} CPU(s)")
    start = time.perf_counter()
    parts = []
    for number, (setting, arguments) in enumerate(SETTINGS.items()):
        parts.append(at.calibration({setting: arguments}, args.reps, seed=args.seed + number))
        print(f"\n{setting}")
        for row in parts[-1].itertuples():
            extra = (f"; mean slope {row.mean_slope:.3f}, coverage {row.coverage:.3f}"
                     if row.method == at.BOOK_METHOD else "")
            print(f"  {row.method:<66} rejects {row.rejection_rate:.3f} "
                  f"({row.wilson_low:.3f}-{row.wilson_high:.3f}){extra}", flush=True)
    found = pd.concat(parts, ignore_index=True)
    seconds = time.perf_counter() - start
    book = found[found["method"] == at.BOOK_METHOD]
    nulls = book[book["true_slope"] == 0]
    within = {"type-I error": bool(nulls["rejection_rate"].between(*TARGET["type-I error"]).all()),
              "coverage": bool(book["coverage"].between(*TARGET["coverage"]).all())}
    print(f"\nthe book's test within the targets {TARGET}: {within}; {seconds:.0f} s")
    atomic_write_text(args.output, json.dumps({
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "date": str(date.today()),
        "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "reps": args.reps, "seed": args.seed, "seconds": seconds,
        "settings": SETTINGS, "target": TARGET, "book_within_target": within,
        "results": found.to_dict("records")}, indent=1) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
