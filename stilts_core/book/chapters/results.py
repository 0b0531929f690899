"""Chapter "Results" (``05_results``): scores, gains over the baseline, the learning check and alignment."""

from __future__ import annotations

import pandas as pd

from stilts_core.evaluation.alignment import METRIC_PREFIX
from stilts_core.runs.results import (
    NEVER_POOLED,
    NO_INTERMEDIATE,
    benchmark_scores,
    evidence_groups,
    headline_scores,
    paired_gains,
    setting,
    with_protocol,
)
from stilts_core.tasks.registry import get_task


def score_summary(table: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Mean and standard deviation over seeds of each headline score, wide by language, one
    row per provenance class x model x target task x protocol x intermediate setting."""
    rows = with_protocol(headline_scores(table, split))
    keys = [*NEVER_POOLED, "target_task", "intermediate_task"]
    summary = (rows.groupby([*keys, "language"])["value"].agg(["mean", "std", "count"])
               .reset_index())
    summary["score"] = summary.apply(
        lambda r: f"{r['mean']:.1f}" + (f" ± {r['std']:.1f}" if r["count"] > 1 else ""), axis=1)
    wide = summary.pivot_table(index=keys, columns="language", values="score", aggfunc="first")
    return wide.fillna("")  # a task without that language


def gain_summary(table: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Mean paired gain (STILTs minus baseline) over seeds, per provenance class, model,
    protocol, task and language."""
    gains = with_protocol(paired_gains(headline_scores(table, split)))
    if gains.empty:
        return gains
    return (gains.groupby([*NEVER_POOLED, "target_task", "intermediate_task", "language"])["gain"]
            .agg(["mean", "std", "count"]).round(2).reset_index())


def chance_level(task_name: str) -> float | None:
    """The headline score of guessing: one over the labels or choices (classification,
    multiple choice), none of the spans or entities (tagging, QA); ``None`` where undefined."""
    task = get_task(task_name)
    if task.format == "classification" and task.labels:
        return 100 / len(task.labels)
    if task.format == "multiple_choice" and len(task.fields.choices) > 1:
        return 100 / len(task.fields.choices)
    if task.format in ("token_classification", "extractive_qa"):
        return 0.0
    return None


def learning_check(table: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Did direct target fine-tuning learn? Per provenance class, model and target task (not
    retrieval): the baseline's headline score in English and over the other languages (mean over
    seeds) beside the score of guessing. A baseline near chance in English has learned little
    to transfer, so the task's gains measure noise."""
    rows = headline_scores(table, split)
    rows = rows[(rows["intermediate_task"] == NO_INTERMEDIATE)
                & (rows["target_task"].map(lambda name: get_task(name).role) == "target")]
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(where=rows["language"].where(rows["language"] == "en", "other languages"))
    wide = (rows.groupby(["provenance", "model", "target_task", "where"])["value"].mean()
            .unstack("where").round(1).rename_axis(columns=None))
    wide["chance"] = [None if (level := chance_level(task)) is None else round(level, 1)
                      for task in wide.index.get_level_values("target_task")]
    return wide.reset_index()


def score_figure(table: pd.DataFrame, split: str = "test") -> list:
    """Headline score per language, baseline vs intermediate tasks, one panel per target task;
    one figure per provenance class x model x protocol."""
    import seaborn as sns

    figures = []
    for title, rows in evidence_groups(headline_scores(table, split)):
        rows = rows.copy()
        rows["setting"] = rows["intermediate_task"].where(
            rows["intermediate_task"] != NO_INTERMEDIATE, "none (baseline)")
        grid = sns.catplot(data=rows, x="language", y="value", hue="setting", col="target_task",
                           kind="bar", errorbar="sd", height=3.2, aspect=1.3, sharex=False)
        grid.set_axis_labels("language", "headline score (%)")
        grid.set_titles("{col_name}")
        grid.figure.suptitle(title, y=1.03)
        figures.append(grid.figure)
    return figures


def alignment_curves(table: pd.DataFrame) -> pd.DataFrame:
    """The alignment rows in long form with their layer: model, intermediate task, seed,
    language, layer, measure, value (``stilts_core.evaluation.alignment`` defines the measures)."""
    rows = table[table["metric"].str.startswith(METRIC_PREFIX)].copy()
    rows["layer"] = setting(rows, "layer").astype("Int64")
    rows["measure"] = rows["metric"].str.removeprefix(METRIC_PREFIX)
    rows["encoder"] = rows["intermediate_task"].where(
        rows["intermediate_task"] != NO_INTERMEDIATE, "none (base encoder)")
    return rows[["provenance", "model", "encoder", "intermediate_task", "seed", "target_task",
                 "language", "layer", "measure", "value"]].reset_index(drop=True)


def alignment_figure(table: pd.DataFrame) -> list:
    """Each alignment measure against the layer, the base and each phase-(ii) encoder; lines
    are means over the non-English languages (and seeds), bands one standard deviation; one
    figure per provenance class x model."""
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator


    figures = []
    aligned = table[table["metric"].str.startswith(METRIC_PREFIX) & (table["language"] != "en")]
    for title, rows in evidence_groups(aligned):
        grid = sns.relplot(data=alignment_curves(rows), x="layer", y="value", hue="encoder",
                           col="measure", kind="line", errorbar="sd", marker="o", height=2.8,
                           aspect=1.1, facet_kws={"sharey": False})
        grid.set_titles("{col_name}")
        grid.figure.suptitle(title, y=1.03)
        for axis in grid.axes.flat:  # layers are whole numbers
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        figures.append(grid.figure)
    return figures


def gain_heatmaps(table: pd.DataFrame, split: str = "test") -> list:
    """Mean paired gain (points) of target task x language, over intermediate settings and
    seeds, and of intermediate setting x target task, over languages and seeds; English is
    marked apart (its gains are not zero-shot). One figure per provenance class x model x
    protocol."""
    gains = paired_gains(headline_scores(table, split))
    return [_gain_heatmap(rows, title) for title, rows in evidence_groups(gains)]


def _gain_heatmap(gains: pd.DataFrame, title: str):
    import matplotlib.pyplot as plt
    import seaborn as sns

    by_language = gains.pivot_table(index="target_task", columns="language", values="gain",
                                    aggfunc="mean")
    by_language = by_language[["en", *[c for c in by_language.columns if c != "en"]]
                              if "en" in by_language.columns else list(by_language.columns)]
    by_setting = gains.pivot_table(index="intermediate_task", columns="target_task", values="gain",
                                   aggfunc="mean")
    limit = max(abs(gains["gain"]).quantile(0.98), 1e-6)
    heights = [0.4 * len(by_language) + 1.2, 0.4 * len(by_setting) + 1.2]
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(max(7.0, 0.24 * by_language.shape[1] + 2.5), sum(heights) + 0.6),
        gridspec_kw={"height_ratios": heights})
    options = {"cmap": "RdBu", "center": 0, "vmin": -limit, "vmax": limit,
               "cbar_kws": {"label": "gain (points)"}}
    sns.heatmap(by_language, ax=top, **options)
    top.set_title(f"{title}: mean gain per target task and language (en: not zero-shot)")
    top.set_xlabel("language")
    top.set_ylabel("target task")
    sns.heatmap(by_setting, ax=bottom, annot=by_setting.shape[1] <= 12, fmt=".1f", **options)
    bottom.set_title("mean gain per intermediate setting and target task")
    bottom.set_xlabel("target task")
    bottom.set_ylabel("intermediate task")
    figure.tight_layout()
    return figure


def benchmark_table(table: pd.DataFrame, benchmark: str = "xtreme-r") -> pd.DataFrame:
    """The official aggregates (:func:`results.benchmark_scores`) per provenance class and
    retrieval protocol present, never one across them."""
    table = with_protocol(table)
    parts = []
    for provenance, rows in table.groupby("provenance"):
        protocols = sorted(set(rows["protocol"]) - {""}) or ["encoder"]
        for protocol in protocols:
            scores = benchmark_scores(rows.drop(columns="protocol"), benchmark, protocol=protocol)
            parts.append(scores.assign(provenance=provenance, protocol=protocol))
    if not parts:
        return pd.DataFrame()
    frame = pd.concat(parts, ignore_index=True)
    return frame[["provenance", "protocol", *[c for c in frame.columns
                                              if c not in ("provenance", "protocol")]]]
