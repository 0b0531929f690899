"""Wall time of ``stilts stats export`` on the committed reduced-scale study, alone and beside a
training-like load that keeps every core busy: as the command runs (its fits on one BLAS thread)
and, as the baseline in the same run, with the thread limit lifted (BLAS takes every core, as it
did before the limit). Prints each time, the medians and the ratio baseline / limited. Asserts
nothing about speed.

    python benchmarks/stats_export_threads.py [--repeats 3] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stilts_core.runs.execution import cpu_model

REPO = Path(__file__).resolve().parent.parent
COMMAND = ["stats", "export", "--results", str(REPO / "data/real_results/e5_study_v2.parquet"),
           "--index", "mattr_over_english", "--missing", "exclude"]
# The baseline: the same command with threadpoolctl's limit made a no-op in its process.
UNLIMITED = ("import contextlib, sys, threadpoolctl; "
             "threadpoolctl.threadpool_limits = lambda *a, **k: contextlib.nullcontext(); "
             "from stilts_core.cli import main; sys.exit(main(sys.argv[1:]))")
LIMITED = "import sys; from stilts_core.cli import main; sys.exit(main(sys.argv[1:]))"
LOAD = ("import os, torch; torch.set_num_threads(os.cpu_count()); a = torch.randn(1024, 1024)\n"
        "while True: a = torch.tanh(a @ a.T / 32)")


def export_seconds(code: str, output: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *COMMAND, "--output", str(output)], check=True,
                   capture_output=True, env={k: v for k, v in os.environ.items()
                                             if k not in ("OMP_NUM_THREADS",
                                                          "OPENBLAS_NUM_THREADS")})
    return time.perf_counter() - started


def measure(repeats: int, output: Path) -> dict:
    """Limited and baseline, alternating, ``repeats`` times each."""
    times = {"one_blas_thread": [], "baseline_unlimited": []}
    for _ in range(repeats):
        times["one_blas_thread"].append(export_seconds(LIMITED, output))
        times["baseline_unlimited"].append(export_seconds(UNLIMITED, output))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results"
                        / f"stats-export-{platform.machine()}-{os.cpu_count()}cores.json")
    args = parser.parse_args()
    report = {"command": "stilts " + " ".join(COMMAND[:2] + COMMAND[4:]), "cores": os.cpu_count(),
              "cpu": cpu_model(), "date": time.strftime("%F"),
              "python": platform.python_version(), "conditions": {}}
    with tempfile.TemporaryDirectory() as folder:
        report["conditions"]["alone"] = measure(args.repeats, Path(folder))
        load = subprocess.Popen([sys.executable, "-c", LOAD])
        try:
            time.sleep(5)  # the load's threads are running
            report["conditions"]["beside a load on every core"] = measure(args.repeats,
                                                                          Path(folder))
        finally:
            load.kill()
            load.wait()
    for condition, times in report["conditions"].items():
        medians = {name: statistics.median(values) for name, values in times.items()}
        ratio = medians["baseline_unlimited"] / medians["one_blas_thread"]
        print(f"{condition}: one BLAS thread {medians['one_blas_thread']:.1f} s "
              f"({', '.join(f'{v:.1f}' for v in times['one_blas_thread'])}); baseline, unlimited "
              f"{medians['baseline_unlimited']:.1f} s "
              f"({', '.join(f'{v:.1f}' for v in times['baseline_unlimited'])}); "
              f"baseline / limited {ratio:.2f}")
        report["conditions"][condition] = {"seconds": times, "median_seconds": medians,
                                           "ratio_baseline_over_limited": round(ratio, 2)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
