"""Chapter "Training and evaluation set-up" (``00_setup``):
the phases, hyperparameters and retrieval settings a config runs.
"""

from __future__ import annotations

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
                                            if p == "encoder" or task.format == "ranking"),
                     "dual encoder (lr, batch, epochs)":
                         (f"{defaults.learning_rate}, {defaults.batch_size}, {defaults.epochs}"
                          if defaults.learning_rate else ""),
                     "source": defaults.source})
    return pd.DataFrame(rows).set_index("task") if rows else pd.DataFrame()


def phase_table() -> pd.DataFrame:
    """The phase registry (``stilts_core.runs.execution.PHASES``): notebook and what each phase does."""
    return pd.DataFrame([{"phase": p.name, "notebook": f"notebooks/{p.notebook}",
                          "what it does": p.description} for p in PHASES.values()]).set_index("phase")
