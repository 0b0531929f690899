"""Tables, figures and provenance badges that the book's notebooks show.

The notebooks only call these; every number they show is computed here from the results table.
"""

from __future__ import annotations

import html

import pandas as pd

from .results import NO_INTERMEDIATE, headline_scores, paired_gains, setting

BADGES = {
    "published": ("#1f6feb", "Published figures", "copied from the cited papers"),
    "full-scale run": ("#1a7f37", "Full-scale run", "this project's own run at published scale"),
    "smoke run": ("#bf8700", "Smoke run",
                  "tiny random-init model on bundled fixtures: a pipeline check, not a finding"),
    "simulation": ("#8250df", "Simulation", "data drawn from a statistical model, not a run"),
}


def provenance_badge(table: pd.DataFrame, source: str) -> str:
    """An HTML banner naming the provenance of every result set in ``table`` and its file."""
    parts = []
    for provenance in sorted(table["provenance"].unique()):
        colour, title, meaning = BADGES[provenance]
        parts.append(
            f'<div style="border-left:6px solid {colour};padding:0.4em 0.8em;margin:0.4em 0;'
            f'background:#f6f8fa"><strong style="color:{colour}">{html.escape(title)}</strong>'
            f" &mdash; {html.escape(meaning)}. Source: <code>{html.escape(source)}</code></div>"
        )
    return "\n".join(parts)


def score_summary(table: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Mean and standard deviation over seeds of each headline score, wide by language."""
    rows = headline_scores(table, split)
    summary = (rows.groupby(["target_task", "intermediate_task", "language"])["value"]
               .agg(["mean", "std", "count"]).reset_index())
    summary["score"] = summary.apply(
        lambda r: f"{r['mean']:.1f}" + (f" ± {r['std']:.1f}" if r["count"] > 1 else ""), axis=1)
    wide = summary.pivot_table(index=["target_task", "intermediate_task"], columns="language",
                               values="score", aggfunc="first")
    return wide.fillna("")  # a task without that language


def gain_summary(table: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Mean paired gain (STILTs minus baseline) over seeds, per task and language."""
    gains = paired_gains(headline_scores(table, split))
    if gains.empty:
        return gains
    return (gains.groupby(["target_task", "intermediate_task", "language"])["gain"]
            .agg(["mean", "std", "count"]).round(2).reset_index())


def score_figure(table: pd.DataFrame, split: str = "test"):
    """Headline score per language, baseline vs intermediate tasks, one panel per target task."""
    import seaborn as sns

    rows = headline_scores(table, split).copy()
    rows["setting"] = rows["intermediate_task"].where(
        rows["intermediate_task"] != NO_INTERMEDIATE, "none (baseline)")
    grid = sns.catplot(data=rows, x="language", y="value", hue="setting", col="target_task",
                       kind="bar", errorbar="sd", height=3.2, aspect=1.3, sharex=False)
    grid.set_axis_labels("language", "headline score (%)")
    grid.set_titles("{col_name}")
    return grid.figure


def alignment_curves(table: pd.DataFrame) -> pd.DataFrame:
    """The alignment rows in long form with their layer: model, intermediate task, seed,
    language, layer, measure, value (``stilts_core.alignment`` defines the measures)."""
    from .alignment import METRIC_PREFIX

    rows = table[table["metric"].str.startswith(METRIC_PREFIX)].copy()
    rows["layer"] = setting(rows, "layer").astype("Int64")
    rows["measure"] = rows["metric"].str.removeprefix(METRIC_PREFIX)
    rows["encoder"] = rows["intermediate_task"].where(
        rows["intermediate_task"] != NO_INTERMEDIATE, "none (base encoder)")
    return rows[["model", "encoder", "intermediate_task", "seed", "target_task", "language",
                 "layer", "measure", "value"]].reset_index(drop=True)


def alignment_figure(table: pd.DataFrame):
    """Each alignment measure against the layer, the base and each phase-(ii) encoder; lines
    are means over languages (and seeds), bands one standard deviation."""
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    curves = alignment_curves(table)
    grid = sns.relplot(data=curves, x="layer", y="value", hue="encoder", col="measure",
                       kind="line", errorbar="sd", marker="o", height=2.8, aspect=1.1,
                       facet_kws={"sharey": False})
    grid.set_titles("{col_name}")
    for axis in grid.axes.flat:  # layers are whole numbers
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    return grid.figure
