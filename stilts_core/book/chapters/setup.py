"""Chapter "Training and evaluation set-up" (``00_setup``):
the phases, hyperparameters and retrieval settings a config runs, and the learning-curve pilot
that sized the reduced-scale study.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from stilts_core.evaluation.retrieval import RepresentationChoice
from stilts_core.grid.plan import plan
from stilts_core.runs.execution import PHASES
from stilts_core.tasks.registry import get_task

TRAINING_FIELDS = ("learning_rate", "batch_size", "per_device_batch_size", "epochs", "max_length",
                   "doc_stride", "warmup_ratio", "weight_decay", "max_grad_norm", "eval_steps",
                   "early_stopping_patience", "max_steps")


def hyperparameter_table(config) -> pd.DataFrame:
    """The effective training settings of every phase-(ii) and phase-(iii) run a grid config
    plans (the task's published defaults with the config's overrides), one row per task."""
    rows = {}
    for run in plan(config):
        if run.phase in ("intermediate", "target"):
            rows.setdefault((run.phase, run.params["task"]),
                            {field: run.params.get(field) for field in TRAINING_FIELDS})
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["phase", "task"])
    table["accumulation"] = table["batch_size"] // table["per_device_batch_size"]
    return table


def retrieval_table(config) -> pd.DataFrame:
    """The representation and protocol of every retrieval task a grid config plans."""

    rows = []
    for name in config.retrieval_tasks:
        task = get_task(name)
        chosen = config.retrieval_settings(name)
        settings = RepresentationChoice(**{k: v for k, v in chosen.items()
                                           if k in RepresentationChoice.model_fields})
        defaults = task.retrieval
        rows.append({"task": name, "format": task.format, "metric": task.metric,
                     "layer": settings.layer, "pooling": settings.pooling,
                     "special tokens": settings.include_special_tokens,
                     "query length": chosen.get("max_length") or defaults.query_max_length,
                     "candidate length": (chosen.get("candidate_max_length")
                                          or defaults.candidate_max_length),
                     "protocols": ", ".join(p for p in config.retrieval_protocols
                                            if p in task.declared_format.protocols),
                     "dual encoder (lr, batch, epochs)":
                         (f"{defaults.learning_rate}, {defaults.batch_size}, {defaults.epochs}"
                          if defaults.learning_rate else ""),
                     "source": defaults.source})
    return pd.DataFrame(rows).set_index("task") if rows else pd.DataFrame()


def phase_table() -> pd.DataFrame:
    """The phase registry (``stilts_core.runs.execution.PHASES``): notebook and what each phase does."""
    return pd.DataFrame([{"phase": p.name, "notebook": f"notebooks/{p.notebook}",
                          "what it does": p.description} for p in PHASES.values()]).set_index("phase")


def learning_curve(path: str | Path) -> pd.DataFrame:
    """The learning-curve pilot's runs (``benchmarks/learning_curve.py``), one row per task and
    budget: optimiser steps, training examples and passes, seconds, the English dev score with
    its 95% interval, the floor, whether the run learned, and whether it is the grid's own run."""
    curve = pd.DataFrame(json.loads(Path(path).read_text(encoding="utf-8"))["curve"])
    curve = curve.sort_values(["phase", "task", "dev_task", "steps"])
    return pd.DataFrame({
        "provenance": curve["provenance"], "phase": curve["phase"], "task": curve["task"],
        "dev task": curve["dev_task"],
        "steps": curve["steps"], "examples": curve["examples"],
        "passes": curve["passes"].round(2), "seconds": curve["seconds"].round(0).astype(int),
        "metric": curve["dev_metric"], "dev score": curve["dev_value"].round(1),
        "95% interval": [f"{low:.1f} to {high:.1f}" for low, high in
                         zip(curve["dev_interval_low"], curve["dev_interval_high"], strict=True)],
        "dev examples": curve["dev_examples"],
        "floor": [f"{value:.1f} ({kind})" for value, kind in
                  zip(curve["dev_floor"], curve["dev_floor_kind"], strict=True)],
        "learned": curve["dev_learned"], "grid run": curve["grid_run"],
    }).reset_index(drop=True)


def learning_curve_figure(path: str | Path):
    """Dev score against optimiser steps, one panel per task (and per member of a mixture): the
    points with their 95% intervals and the task's floor (dashed)."""
    import matplotlib.pyplot as plt

    curve = pd.DataFrame(json.loads(Path(path).read_text(encoding="utf-8"))["curve"])
    curve["task"] = [task if task == dev else f"{task} ({dev})"
                     for task, dev in zip(curve["task"], curve["dev_task"], strict=True)]
    tasks = sorted(curve["task"].unique())
    figure, axes = plt.subplots(1, len(tasks), figsize=(2.3 * len(tasks), 2.6), sharey=False,
                                squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        rows = curve[curve["task"] == task].sort_values("steps")
        axis.errorbar(rows["steps"], rows["dev_value"],
                      yerr=[rows["dev_value"] - rows["dev_interval_low"],
                            rows["dev_interval_high"] - rows["dev_value"]],
                      marker="o", capsize=3)
        axis.axhline(rows["dev_floor"].max(), linestyle="--", color="grey")
        axis.set_title(task)
        axis.set_xlabel("optimiser steps")
        axis.set_ylabel(f"dev {rows['dev_metric'].iloc[0]}")
        axis.set_xlim(0, rows["steps"].max() * 1.15)
    figure.tight_layout()
    return figure
