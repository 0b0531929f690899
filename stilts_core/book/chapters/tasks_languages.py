"""Chapter "Tasks and languages" (``00_tasks_languages``): the task registry and language coverage."""

from __future__ import annotations

import pandas as pd

from stilts_core.tasks.benchmarks import get_benchmark
from stilts_core.tasks.registry import TASKS


def task_table(role: str) -> pd.DataFrame:
    """The registry's tasks of one role: format, XTREME-R group, metric, languages, data source."""
    rows = []
    for task in TASKS.values():
        if task.role != role:
            continue
        source = (f"{task.hub.path}" + (f" ({task.hub.config})" if task.hub.config else "")
                  if task.hub else f"local files: {task.local_only_reason}")
        rows.append({"task": task.name, "format": task.format, "group": task.group or "",
                     "metric": task.metric, "languages": len(task.languages),
                     "language codes": " ".join(task.languages), "data source": source,
                     "description": task.description})
    return pd.DataFrame(rows).set_index("task")


def language_coverage(languages: pd.DataFrame, benchmark: str = "xtreme-r") -> pd.DataFrame:
    """Each language of ``data/languages.csv`` with the benchmark's tasks that score it."""
    tasks = get_benchmark(benchmark).tasks
    table = languages.set_index("iso639_1")[["name", "family", "genus", "script",
                                              "cc100_tokens_m"]].copy()
    table["tasks"] = [", ".join(t for t, langs in tasks.items() if code in langs)
                      for code in table.index]
    table["n_tasks"] = [sum(code in langs for langs in tasks.values()) for code in table.index]
    return table.rename(columns={"cc100_tokens_m": "CC-100 tokens (M)"})


def coverage_matrix_figure(languages: pd.DataFrame, benchmark: str = "xtreme-r"):
    """Languages x tasks: which task scores which language."""
    import matplotlib.pyplot as plt
    import seaborn as sns


    tasks = get_benchmark(benchmark).tasks
    codes = list(languages.sort_values(["family", "iso639_1"])["iso639_1"])
    matrix = pd.DataFrame({task: [code in langs for code in codes] for task, langs in tasks.items()},
                          index=codes).T.astype(int)
    figure, axis = plt.subplots(figsize=(13, 3.4))
    sns.heatmap(matrix, cmap="Greens", cbar=False, linewidths=0.3, linecolor="white", ax=axis)
    axis.set_xlabel("language (ISO 639-1, grouped by family)")
    axis.set_ylabel(f"{benchmark} task")
    figure.tight_layout()
    return figure
