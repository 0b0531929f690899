"""Learning-curve pilot: each candidate training task of a grid at a few budgets on this machine.

    nice -n 5 python benchmarks/learning_curve.py configs/e5_study_v2.yaml \
        --budgets xnli=250,550 panx=100,300 mnli=250,550 sst2=150,400 [--workers 2]

A budget is a number of optimiser steps (``task=steps,steps,...``). Each is one ordinary run of
the grid's training phase (``intermediate`` for an intermediate task, ``target`` for a target
task, from the pretrained model, the grid's first seed), with the grid's hyperparameters for
that task except the size: ``steps x batch size`` training examples, one pass over them, or
several passes where the training set is smaller. Its English dev set is scored at the end with
the learning check (:mod:`stilts_core.evaluation.learning`). A budget that equals the grid's own
size *is* the grid's run (the same parameters, so the same run id), which the grid then reuses:
so every run keeps the weights a later phase reads (its ``encoder/`` or ``model/``, as the grid's
``keep_weights: downstream`` does), since a budget may become the grid's size once the pilot has
spoken.

Prints one line per run: steps, examples, passes, seconds, the dev score with its 95% interval,
the floor and whether the run learned; and writes them, with the machine, the library versions,
the date and the command, to ``--output`` (default
``benchmarks/results/learning-curve-<machine>-<workers>workers.json``), which the book's set-up
chapter shows.
Asserts nothing. Seconds are each run's wall time in its worker (its ``compute.json``), with
``--workers`` runs side by side as in the grid (one thread each). Rerunning the command reuses
the finished runs and rewrites the file from their records.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stilts_core import logs
from stilts_core.grid.plan import load_config  # noqa: E402
from stilts_core.paths import REPO_ROOT, atomic_write_text  # noqa: E402
from stilts_core.phases.common import load_task_split  # noqa: E402
from stilts_core.phases.params import PARAMS, WEIGHTS_READ_DOWNSTREAM, validate_params  # noqa: E402
from stilts_core.runs.execution import (  # noqa: E402
    cpu_model,
    execute_phase,
    prune_weights,
    read_compute,
    run_id,
)
from stilts_core.tasks.registry import MIXTURES, get_task  # noqa: E402


def phase_of(task: str) -> str:
    return "intermediate" if task in MIXTURES or get_task(task).role == "intermediate" else "target"


def grid_params(config, task: str) -> dict:
    """The task's training parameters in the grid (the first model and seed, no upstream run)."""
    params = {"model": config.models[0], "data_root": config.data_root, "smoke": config.smoke,
              **({"threads": config.threads} if config.threads else {}),
              **config.hyperparameters, **config.hyperparameters_per_task.get(task, {}),
              "task": task, "seed": config.seeds[0]}
    return validate_params(phase_of(task), params)


def training_set_sizes(phase: str, params: dict) -> list[int]:
    """The examples of each training set the run reads (uncapped): one per task, plus the sets
    an intermediate task is combined with (ANLI+: ANLI, SNLI, MNLI), each of which the cap
    ``max_train_examples`` applies to."""
    p = PARAMS[phase](**{**params, "max_train_examples": None})
    if phase == "intermediate":
        return [len(load_task_split(get_task(name), "train", "en", p, "train"))
                for task in p.member_tasks()
                for name in (task.name, *(task.combined_with if p.combined_with is None
                                          else p.combined_with))]
    stage = get_task(p.task).training[-1].train
    return [len(load_task_split(get_task(stage.task), stage.split, stage.language, p, "train"))]


def grid_steps(params: dict, sets: int) -> int | None:
    """Optimiser steps of a run whose ``sets`` training sets are each capped at the same size."""
    if params.get("max_train_examples") is None:
        return None
    return math.ceil(sets * params["max_train_examples"] / params["batch_size"] * params["epochs"])


def budget_params(grid: dict, phase: str, steps: int, sizes: list[int]) -> dict:
    """The grid's parameters resized to ``steps`` optimiser steps: one pass over
    ``steps x batch`` examples, or more passes over a smaller set; the grid's own parameters
    when they already make that many steps (so the run is the grid's)."""
    if grid_steps(grid, len(sizes)) == steps:
        return grid
    wanted = math.ceil(steps * grid["batch_size"] / len(sizes))  # per training set
    examples = min(wanted, *sizes)
    return validate_params(phase, {**grid, "max_train_examples": examples,
                                   "epochs": wanted / examples})


def run_budget(job: tuple[str, str, int, dict, bool]) -> list[dict]:
    """Run (or reuse) one budget's run in this worker; return its lines of the curve, one per
    dev task it scores (a mixture scores each member's)."""
    task, phase, steps, params, is_grid_run = job
    path = execute_phase(phase, params)
    metrics = json.loads((path / "metrics.json").read_text())
    stages = metrics.get("stages")
    checks = (stages[-1] if stages else metrics)["learning"]
    compute = read_compute(path) or {}
    provenance = json.loads((path / "provenance.json").read_text())["provenance"]
    prune_weights(path, WEIGHTS_READ_DOWNSTREAM[phase])  # as the grid's keep_weights: downstream
    return [{"task": task, "dev_task": dev_task, "phase": phase, "steps": steps,
             "examples": params["max_train_examples"], "passes": params["epochs"],
             "learning_rate": params["learning_rate"], "batch_size": params["batch_size"],
             "max_length": params.get("max_length"), "seconds": compute.get("seconds"),
             "run_id": path.name, "grid_run": is_grid_run, "provenance": provenance,
             **{f"dev_{key}": value for key, value in check.items()}}
            for dev_task, check in checks.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("--budgets", nargs="+", required=True, metavar="TASK=STEPS,...",
                        help="optimiser steps per task, e.g. xnli=250,550")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    logs.configure()  # the library's progress lines and notes

    config = load_config(args.config)
    jobs = []
    for budget in args.budgets:
        task, _, steps_list = budget.partition("=")
        phase = phase_of(task)
        grid = grid_params(config, task)
        sizes = training_set_sizes(phase, grid)
        for steps in map(int, steps_list.split(",")):
            params = budget_params(grid, phase, steps, sizes)
            jobs.append((task, phase, steps, params, run_id(phase, params) == run_id(phase, grid)))
    with ProcessPoolExecutor(args.workers) as pool:
        curve = []
        for line in (line for lines in pool.map(run_budget, jobs) for line in lines):
            curve.append(line)
            print(f"{line['task']:>15} ({line['dev_task']}) {line['steps']:>4} steps, "
                  f"{line['examples']:>5} examples "
                  f"x {line['passes']:.2f}: {line['seconds']:>6.0f} s, dev {line['dev_metric']} "
                  f"{line['dev_value']:.1f} [{line['dev_interval_low']:.1f}, "
                  f"{line['dev_interval_high']:.1f}] on {line['dev_examples']}, floor "
                  f"{line['dev_floor']:.1f} ({line['dev_floor_kind']}): "
                  f"{'learned' if line['dev_learned'] else 'NOT LEARNED'}", flush=True)
    import torch
    import transformers

    record = {
        "benchmark": "learning_curve", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]), "config": args.config,
        "cpu": cpu_model(), "machine": platform.machine(), "workers": args.workers,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(),
        "run_seconds": round(sum(line["seconds"] for line in curve), 1), "curve": curve,
    }
    output = args.output or (REPO_ROOT / "benchmarks" / "results" /
                             f"learning-curve-{platform.machine()}-{args.workers}workers.json")
    atomic_write_text(output, json.dumps(record, indent=1) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
