"""Chapter "Published reference figures" (``09_published``): the published tables and gains."""

from __future__ import annotations

import pandas as pd

from stilts_core.paths import data_dir


def published_table(name: str) -> pd.DataFrame:
    """A committed copy under ``data/published/`` (sources in its README)."""
    return pd.read_csv(data_dir() / "published" / name, sep="\t")


def published_gains(averages: pd.DataFrame, stilts: str = "X-STILTs",
                    baseline: str = "XLM-R") -> pd.DataFrame:
    """Per task, the published X-STILTs average minus the published XLM-R Large average."""
    wide = averages.pivot_table(index="task", columns="model", values="score", aggfunc="first")
    wide["X-STILTs minus XLM-R"] = (wide[stilts] - wide[baseline]).round(1)
    return wide


def published_figure(averages: pd.DataFrame):
    import seaborn as sns

    grid = sns.catplot(data=averages, x="task", y="score", hue="model", kind="bar", height=3.4,
                       aspect=2.0)
    grid.set_axis_labels("XTREME task", "published test average")
    return grid.figure
