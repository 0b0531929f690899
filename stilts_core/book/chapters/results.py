"""Chapter "Results" (``05_results``): scores, gains over the baseline, the learning check and alignment."""

from __future__ import annotations

import pandas as pd

from stilts_core.analysis import alignment_transfer, estimates
from stilts_core.evaluation import learning
from stilts_core.evaluation.alignment import METRIC_PREFIX
from stilts_core.runs.results import (
    NEVER_POOLED,
    NO_INTERMEDIATE,
    before_target_fine_tuning,
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
    protocol, task and language, with ``runs_learned``: ``all`` when every training run behind
    every seed's gain learned (:func:`gain_learning`), else ``k of n`` seeds whose runs all
    learned; ``not checked`` for a table without training runs (no ``validation`` rows)."""
    gains = with_protocol(paired_gains(headline_scores(table, split)))
    if gains.empty:
        return gains
    runs = learning_runs(table)
    gains["learned"] = gain_learning(gains, runs)
    summary = (gains.groupby([*NEVER_POOLED, "target_task", "intermediate_task", "language"])
               .agg(mean=("gain", "mean"), std=("gain", "std"), count=("gain", "size"),
                    learned=("learned", "sum"))
               .round(2).reset_index())
    summary["runs_learned"] = ("not checked" if runs.empty else
                               [f"{k} of {n}" if k < n else "all"
                                for k, n in zip(summary["learned"], summary["count"], strict=True)])
    return summary.drop(columns="learned")


# A training run is the rows one run wrote for one dev task (a mixture scores several).
RUN = ["provenance", "model", "intermediate_task", "target_task", "seed", "run_id"]
# The check's result rows by their column in :func:`learning_runs`.
CHECK_FIELDS = {name: field for field, name in learning.RECORD_METRICS.items()} | {
    learning.RECORD_METRICS["examples"]: "dev_examples"}


def _role(task_name: str) -> str:
    return get_task(task_name).role


def _why_not(examples: float, interval_low: float, floor_value: float) -> str:
    """Why a run did not learn (:func:`stilts_core.evaluation.learning.learned`); empty when it
    did. A run whose check was not recorded (tables older than the check) did not pass it."""
    if pd.isna(examples) or pd.isna(interval_low) or pd.isna(floor_value):
        return "no interval recorded"
    if learning.learned(int(examples), interval_low, floor_value):
        return ""
    if examples < learning.MIN_DEV_EXAMPLES:
        return f"only {int(examples)} dev examples (< {learning.MIN_DEV_EXAMPLES})"
    return "interval does not clear the floor"


def learning_runs(table: pd.DataFrame) -> pd.DataFrame:
    """One row per training run and dev task in the table's ``validation`` rows (retrieval
    tasks, which tune on their dev sets without training, left out): ``phase`` (``target``
    when the dev task is a target task, else ``intermediate``, a mixture's member dev tasks
    included), the dev score and its ``metric``, ``interval_low``, ``interval_high``,
    ``floor``, ``dev_examples``, ``learned`` and, when it did not, ``why``."""
    rows = table[table["split"] == "validation"]
    rows = rows[rows["target_task"].map(_role) != "retrieval"]
    checked = rows["metric"].isin(list(CHECK_FIELDS))
    runs = rows.loc[~checked, [*RUN, "metric", "value"]].rename(columns={"value": "score"})
    checks = (rows[checked].pivot(index=RUN, columns="metric", values="value")
              .reindex(columns=list(CHECK_FIELDS)).rename(columns=CHECK_FIELDS).reset_index())
    runs = runs.merge(checks, on=RUN, how="left").reset_index(drop=True)
    runs.insert(2, "phase", ["target" if _role(task) == "target" else "intermediate"
                             for task in runs["target_task"]])
    runs["why"] = [_why_not(*check) for check in
                   zip(runs["dev_examples"], runs["interval_low"], runs["floor"], strict=True)]
    runs["learned"] = runs["why"] == ""
    return runs[[c for c in runs.columns if c != "why"] + ["why"]]


def learning_check(table: pd.DataFrame) -> pd.DataFrame:
    """Did every training run learn (:mod:`stilts_core.evaluation.learning`)? Per provenance
    class, model, phase, intermediate task and dev task: the mean dev score over seeds, the
    range of their 95% intervals, the floor, the dev examples and in how many seeds the run
    learned (at least 200 examples, interval above the floor), with why the others did not."""
    runs = learning_runs(table)
    if runs.empty:
        return runs
    check = (runs.groupby(["provenance", "model", "phase", "intermediate_task", "target_task",
                           "metric"])
             .agg(score=("score", "mean"), low=("interval_low", "min"),
                  high=("interval_high", "max"), floor=("floor", "mean"),
                  dev_examples=("dev_examples", "max"), learned=("learned", "sum"),
                  seeds=("learned", "size"),
                  why_not=("why", lambda whys: "; ".join(sorted(set(whys) - {""}))))
             .reset_index())
    check["interval"] = [f"{low:.1f} to {high:.1f}" if pd.notna(low) and pd.notna(high)
                         else "not recorded" for low, high in zip(check["low"], check["high"],
                                                                  strict=True)]
    check["learned"] = [f"{k} of {n} seeds" for k, n in zip(check["learned"], check["seeds"],
                                                            strict=True)]
    check = check.assign(score=check["score"].round(1), floor=check["floor"].round(1),
                         dev_examples=check["dev_examples"].astype("Int64"))
    return check[
        ["provenance", "model", "phase", "intermediate_task", "target_task", "metric", "score",
         "interval", "floor", "dev_examples", "learned", "why_not"]]


def gain_learning(gains: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """Per gain (:func:`~stilts_core.runs.results.paired_gains`), whether every training run
    behind it learned (``runs``: :func:`learning_runs`): the intermediate run of its seed
    (every member dev task of a mixture), and for a target task also the STILTs and the
    baseline target runs of that seed; a retrieval gain has only the intermediate run. A run
    absent from ``runs`` did not pass."""
    target = runs[runs["phase"] == "target"].groupby(
        ["model", "intermediate_task", "target_task", "seed"])["learned"].all().to_dict()
    intermediate = runs[runs["phase"] == "intermediate"].groupby(
        ["model", "intermediate_task", "seed"])["learned"].all().to_dict()

    def passed(model: str, intermediate_task: str, task: str, seed) -> bool:
        needed = [intermediate.get((model, intermediate_task, seed), False)]
        if _role(task) == "target":
            needed += [target.get((model, start, task, seed), False)
                       for start in (intermediate_task, NO_INTERMEDIATE)]
        return all(needed)

    return pd.Series([passed(*gain) for gain in zip(
        gains["model"], gains["intermediate_task"], gains["target_task"], gains["seed"],
        strict=True)], index=gains.index, dtype=bool)


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


def _before_target_training(table: pd.DataFrame) -> pd.DataFrame:
    """The alignment rows of the pretrained and phase-(ii) encoders: none of an encoder left
    after target fine-tuning (``fine_tuned_on`` in its settings; :func:`alignment_stages`)."""
    return before_target_fine_tuning(estimates.alignment_rows(table))


def alignment_curves(table: pd.DataFrame) -> pd.DataFrame:
    """The alignment rows of the pretrained and phase-(ii) encoders in long form with their
    layer: model, intermediate task, seed, language, layer, measure, value
    (``stilts_core.evaluation.alignment`` defines the measures)."""
    rows = _before_target_training(table).copy()
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
    aligned = _before_target_training(table)
    for title, rows in evidence_groups(aligned[aligned["language"] != "en"]):
        grid = sns.relplot(data=alignment_curves(rows), x="layer", y="value", hue="encoder",
                           col="measure", kind="line", errorbar="sd", marker="o", height=2.8,
                           aspect=1.1, facet_kws={"sharey": False})
        grid.set_titles("{col_name}")
        grid.figure.suptitle(title, y=1.03)
        for axis in grid.axes.flat:  # layers are whole numbers
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        figures.append(grid.figure)
    return figures


PRETRAINED, AFTER_INTERMEDIATE = "pretrained", "after intermediate"


def alignment_stages(table: pd.DataFrame) -> pd.DataFrame:
    """Alignment at each point in training, long form: per provenance class, model,
    intermediate task, seed, language, representation (``settings`` less the point: layer,
    pooling, length), ``layer`` and ``measure``, one row per ``stage`` with its ``value``:
    ``pretrained`` (the pretrained encoder, which no seed changes, beside every encoder a
    seed did), ``after intermediate`` (the phase-(ii) encoder) and ``after <target task>``
    (the encoder target fine-tuning left, one stage per target task). The baseline
    (intermediate task ``none``) has no ``after intermediate``: pretrained, then after target."""
    rows = estimates.alignment_rows(table)
    tuned = setting(rows, "fine_tuned_on")
    untuned = rows["intermediate_task"].map(
        lambda task: PRETRAINED if task == NO_INTERMEDIATE else AFTER_INTERMEDIATE)
    rows = rows.assign(stage=tuned.map(lambda task: f"after {task}", na_action="ignore")
                       .fillna(untuned),
                       settings=rows["settings"].map(estimates.without_stage),
                       layer=setting(rows, "layer").astype("Int64"),
                       measure=rows["metric"].str.removeprefix(METRIC_PREFIX))
    trained = rows[rows["stage"] != PRETRAINED]
    lines = trained[["provenance", "model", "intermediate_task", "seed"]].drop_duplicates()
    pretrained = (rows[rows["stage"] == PRETRAINED].drop(columns=["intermediate_task", "seed"])
                  .merge(lines, on=["provenance", "model"]))
    return pd.concat([pretrained, trained], ignore_index=True)[
        ["provenance", "model", "intermediate_task", "seed", "language", "settings", "layer",
         "measure", "stage", "value"]]


def alignment_stage_figure(table: pd.DataFrame) -> list:
    """Each alignment measure (a row of panels) against the layer, one line per point in
    training (:func:`alignment_stages`) and one panel per intermediate task; lines are means
    over the non-English languages that every point was measured in (target fine-tuning may be
    aligned in fewer) and seeds, bands one standard deviation. One figure per provenance class
    x model that has alignment after target fine-tuning; none otherwise."""
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    figures = []
    aligned = estimates.alignment_rows(table)
    aligned = aligned[aligned["language"] != "en"]
    for title, rows in evidence_groups(aligned):
        stages = alignment_stages(rows)
        after_target = sorted(set(stages["stage"]) - {PRETRAINED, AFTER_INTERMEDIATE})
        if not after_target:
            continue
        everywhere = set.intersection(*(set(part["language"])
                                        for _, part in stages.groupby("stage")))
        stages = stages[stages["language"].isin(everywhere)]
        order = [stage for stage in (PRETRAINED, AFTER_INTERMEDIATE) if stage in set(stages["stage"])]
        grid = sns.relplot(data=stages, x="layer", y="value", hue="stage",
                           hue_order=order + after_target, row="measure", col="intermediate_task",
                           kind="line", errorbar="sd", marker="o", height=2.4, aspect=1.1,
                           facet_kws={"sharey": "row"})
        grid.set_titles("{row_name}, {col_name}")
        grid.figure.suptitle(title, y=1.02)
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


# --- alignment as a route to transfer (stilts_core.analysis.alignment_transfer) -----------------

ALIGNMENT_AXIS = {
    alignment_transfer.ALIGNMENT_GAIN: "alignment gain (Tatoeba accuracy, points)",
    alignment_transfer.ALIGNMENT_CHANGE: "alignment change from fine-tuning (points)",
}


def alignment_transfer_missing(table: pd.DataFrame, x: str, split: str = "test") -> str:
    """Why a result set has no points to relate (empty when it has some), in words for the page."""
    transfer = alignment_transfer.transfer_gains(table, split)
    if x == alignment_transfer.ALIGNMENT_GAIN:
        alignment = alignment_transfer.alignment_gains(table, split)
        lacks = ("no alignment gain at the retrieval layer (Tatoeba accuracy of a phase-(ii) "
                 "encoder, as it is, beside the pretrained encoder's)")
    else:
        alignment = estimates.fine_tuning_alignment_changes(table)
        alignment = alignment[alignment["intermediate_task"] != NO_INTERMEDIATE]
        lacks = ("no alignment after target fine-tuning of a phase-(ii) encoder (alignment runs "
                 "with `target_run`, whose rows carry `fine_tuned_on`)")
    reasons = [(alignment.empty, lacks),
               (transfer.empty, "no zero-shot transfer gain (a target task scored in a "
                                "non-English language with and without intermediate training)"),
               (True, "no language, intermediate task and seed with both gains")]
    return "This result set has " + next(reason for missing, reason in reasons if missing) + "."


def alignment_transfer_table(found: pd.DataFrame) -> pd.DataFrame:
    """The association per provenance class, model and target task as the page shows it:
    ``r`` and the slope (transfer points per alignment point) with their 95% intervals, p, the
    points, languages, intermediate tasks and residual degrees of freedom behind them, the
    pooled correlation for contrast, and why there is no estimate where there is none."""
    def interval(low, high):
        return f"{low:.2f} to {high:.2f}" if pd.notna(low) else ""

    shown = found[[*alignment_transfer.GROUP, "points", "languages", "intermediate_tasks"]]
    return shown.assign(
        df=found["df"].astype("Int64").where(found["r"].notna()),
        r=found["r"].round(2), r_interval=[interval(*pair) for pair in
                                           zip(found["r_low"], found["r_high"], strict=True)],
        slope=found["slope"].round(3),
        slope_interval=[interval(*pair) for pair in
                        zip(found["slope_low"], found["slope_high"], strict=True)],
        p=found["p"].map(lambda p: f"{p:.2g}" if pd.notna(p) else ""),
        pooled_r=found["pooled_r"].round(2), note=found["note"])


def alignment_transfer_text(found: pd.DataFrame) -> str:
    """One sentence per row of :func:`~stilts_core.analysis.alignment_transfer.associations`,
    stating the estimate with its interval (Markdown)."""
    def sentence(row) -> str:
        where = f"**{row.target_task}** ({row.model}, {row.provenance})"
        if pd.isna(row.r):
            return f"- {where}: no estimate; {row.note}."
        return (f"- {where}: r = {row.r:.2f} (95% interval {row.r_low:.2f} to {row.r_high:.2f}; "
                f"p = {row.p:.2g}), a slope of {row.slope:.3f} transfer points per alignment "
                f"point ({row.slope_low:.3f} to {row.slope_high:.3f}); {row.points} points, "
                f"{row.languages} languages, {row.intermediate_tasks} intermediate tasks, "
                f"{row.df} residual degrees of freedom. Pooled over all points as if independent, "
                f"r would be {row.pooled_r:.2f}.")
    return "\n".join(sentence(row) for row in found.itertuples())


def alignment_transfer_figure(pairs: pd.DataFrame, found: pd.DataFrame, x: str) -> list:
    """One point per language x intermediate task (both gains the mean over their shared
    seeds), coloured by intermediate task, and the within-language-and-task slope drawn through
    the points' mean; one panel per target task and one figure per provenance class and model,
    never pooled."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    figures = []
    for (provenance, model), points in pairs.groupby(["provenance", "model"], sort=True):
        tasks = sorted(points["target_task"].unique())
        figure, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 4.0), squeeze=False)
        estimates_of = found.set_index(alignment_transfer.GROUP)
        for axis, task in zip(axes[0], tasks, strict=True):
            panel = points[points["target_task"] == task]
            sns.scatterplot(data=panel, x=x, y=alignment_transfer.TRANSFER_GAIN,
                            hue="intermediate_task", ax=axis, s=28, alpha=0.8)
            row = estimates_of.loc[(provenance, model, task)]
            if pd.notna(row["slope"]):
                xs = panel[x].agg(["min", "max"]).to_numpy()
                centre_x, centre_y = panel[x].mean(), panel[alignment_transfer.TRANSFER_GAIN].mean()
                axis.plot(xs, centre_y + row["slope"] * (xs - centre_x), color="black",
                          label="within language and task")
                axis.set_title(f"{task}: r = {row['r']:.2f} "
                               f"[{row['r_low']:.2f}, {row['r_high']:.2f}]", fontsize=10)
            else:
                axis.set_title(f"{task}: no estimate (see the table)", fontsize=10)
            axis.axhline(0, color="grey", linewidth=0.6)
            axis.axvline(0, color="grey", linewidth=0.6)
            axis.set_xlabel(ALIGNMENT_AXIS[x], fontsize=9)
            axis.set_ylabel("transfer gain (headline points)")
            axis.legend(fontsize=7, title_fontsize=8)
        figure.suptitle(f"{model} ({provenance})", y=1.02)
        figure.tight_layout()
        figures.append(figure)
    return figures
