"""Tables, figures and provenance badges that the book's notebooks show.

The notebooks only call these; every number they show is computed here from the results table.
"""

from __future__ import annotations

import html

import pandas as pd

from stilts_core.provenance import get_class
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


def badge_label(provenance: str) -> str:
    """A provenance class's badge text in its colour: the one label every page shows."""
    kind = get_class(provenance)
    return f'<strong style="color:{kind.colour}">{html.escape(kind.badge)}</strong>'


def provenance_badge(table: pd.DataFrame, source: str) -> str:
    """An HTML banner naming the provenance class of every result set in ``table`` (its badge
    and definition, declared in :mod:`stilts_core.provenance`) and its file."""
    parts = []
    for provenance in sorted(table["provenance"].unique()):
        kind = get_class(provenance)
        parts.append(
            f'<div style="border-left:6px solid {kind.colour};padding:0.4em 0.8em;margin:0.4em 0;'
            f'background:#f6f8fa">{badge_label(provenance)} &mdash; '
            f"{html.escape(kind.definition)}. Source: <code>{html.escape(source)}</code></div>"
        )
    return "\n".join(parts)


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
    from stilts_core.tasks.registry import get_task

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
    from stilts_core.tasks.registry import get_task

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
    from stilts_core.evaluation.alignment import METRIC_PREFIX

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

    from stilts_core.evaluation.alignment import METRIC_PREFIX

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


# --- morphological complexity (data/morphology) -------------------------------------------------

def morphology_sources(indices: pd.DataFrame) -> pd.DataFrame:
    """Per family of measures: the sources, their versions, and how many languages and
    measures have values (each row of ``indices.csv`` names its own file version)."""
    rows = indices[indices["primary"] & indices["value"].notna()]

    def versions(values: pd.Series) -> str:
        unique = sorted(set(values))
        return unique[0] if len(unique) == 1 else f"{len(unique)} file versions (per row)"

    return (rows.groupby("family")
            .agg(sources=("source", lambda s: s.str.replace(r" \(.*\)$", "", regex=True).nunique()),
                 source_versions=("source_version", versions),
                 languages=("language", "nunique"), measures=("measure", "nunique"))
            .reset_index())


def _zscores(wide: pd.DataFrame) -> pd.DataFrame:
    return (wide - wide.mean()) / wide.std()


def morphology_heatmap(indices: pd.DataFrame, measures: list[str] | None = None):
    """Languages x measures, each measure standardised over the languages it covers (blank:
    no value); languages ordered by their mean standardised value."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from stilts_core.analysis.morphology import wide_view

    wide = wide_view(indices)
    wide = wide[measures] if measures else wide.dropna(axis=1, thresh=10)
    z = _zscores(wide)
    z = z.loc[z.mean(axis=1).sort_values(ascending=False).index]
    figure, axis = plt.subplots(figsize=(0.42 * z.shape[1] + 3, 0.22 * z.shape[0] + 2))
    sns.heatmap(z, cmap="vlag", center=0, ax=axis, cbar_kws={"label": "z-score over languages"},
                xticklabels=True, yticklabels=True)
    axis.set_xlabel("")
    axis.set_ylabel("language")
    figure.tight_layout()
    return figure


def morphology_bars(indices: pd.DataFrame, measures: list[str]):
    """The raw value of each named measure per language, one panel per measure, sorted."""
    import matplotlib.pyplot as plt

    from stilts_core.analysis.morphology import wide_view

    wide = wide_view(indices)
    figure, axes = plt.subplots(1, len(measures), figsize=(3.2 * len(measures), 9.5))
    for axis, measure in zip(axes, measures, strict=True):
        values = wide[measure].dropna().sort_values()
        axis.barh(values.index, values.to_numpy(), color="#4c72b0")
        axis.set_title(measure, fontsize=9)
        axis.tick_params(axis="y", labelsize=7)
    figure.tight_layout()
    return figure


def measure_correlations(indices: pd.DataFrame, min_languages: int = 8,
                         method: str = "spearman") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pairwise rank correlations between measures over the languages both cover, and the
    number of those languages; a pair sharing fewer than ``min_languages`` is left empty."""
    from stilts_core.analysis.morphology import wide_view

    wide = wide_view(indices).dropna(axis=1, thresh=min_languages)
    present = wide.notna().astype(int)
    counts = present.T @ present
    correlations = wide.corr(method=method, min_periods=min_languages)
    return correlations, counts


def correlation_heatmap(correlations: pd.DataFrame):
    import matplotlib.pyplot as plt
    import seaborn as sns

    size = 0.38 * len(correlations) + 2
    figure, axis = plt.subplots(figsize=(size + 1, size))
    sns.heatmap(correlations, cmap="vlag", vmin=-1, vmax=1, ax=axis, square=True,
                xticklabels=True, yticklabels=True,
                cbar_kws={"label": "Spearman correlation over languages"})
    figure.tight_layout()
    return figure


def measure_disagreements(indices: pd.DataFrame, first: str, second: str,
                          top: int = 5) -> pd.DataFrame:
    """Languages whose rank on two measures differs most (ranks as percentiles over the
    languages both measures cover)."""
    from stilts_core.analysis.morphology import wide_view

    both = wide_view(indices)[[first, second]].dropna()
    ranks = both.rank(pct=True)
    ranks["rank_difference"] = ranks[first] - ranks[second]
    order = ranks["rank_difference"].abs().sort_values(ascending=False).index[:top]
    return both.join(ranks.add_suffix("_percentile"))[
        [first, second, f"{first}_percentile", f"{second}_percentile",
         "rank_difference_percentile"]].loc[order].rename(
        columns={"rank_difference_percentile": "percentile_difference"}).round(3)


def weakest_agreements(correlations: pd.DataFrame, counts: pd.DataFrame,
                       top: int = 8) -> pd.DataFrame:
    """The measure pairs (from different families where possible) that agree least."""
    pairs = [(a, b, correlations.loc[a, b], counts.loc[a, b])
             for i, a in enumerate(correlations.index) for b in correlations.columns[i + 1:]
             if pd.notna(correlations.loc[a, b])]
    table = pd.DataFrame(pairs, columns=["measure", "other_measure", "spearman", "languages"])
    return table.sort_values("spearman").head(top).round(3).reset_index(drop=True)


# --- mixed-effects models (stilts_core.analysis.statistics) ------------------------------------------------

def fit_table(report) -> pd.DataFrame:
    """Fixed effects of a :class:`~stilts_core.analysis.statistics.FitReport`, rounded for reading."""
    return report.params.round(4)


def fit_diagnostics(report) -> pd.DataFrame:
    """Optimiser, convergence, singular components and warnings of a fit, as one table."""
    return pd.DataFrame({
        "method": ["REML" if report.reml else "ML"], "optimiser": [report.optimiser],
        "converged": [report.converged],
        "variance at zero": [", ".join(report.singular) or "none"],
        "warnings": ["; ".join(report.warnings) or "none"],
        "observations": [report.n_obs],
        "levels": [", ".join(f"{k} {v}" for k, v in report.n_groups.items())],
    })


def residual_figure(result):
    """Residuals against fitted values, and a normal QQ plot of the residuals."""
    import matplotlib.pyplot as plt
    from scipy import stats

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    left.scatter(result.fittedvalues, result.resid, s=4, alpha=0.3)
    left.axhline(0, color="grey", linewidth=0.8)
    left.set(xlabel="fitted gain", ylabel="residual", title="residuals vs fitted")
    stats.probplot(result.resid, dist="norm", plot=right)
    right.set_title("normal QQ plot of residuals")
    figure.tight_layout()
    return figure


def caterpillar_figure(result):
    """Each random intercept's conditional mean with a 95% interval, one panel per factor."""
    import matplotlib.pyplot as plt

    effects = result.random_effects[next(iter(result.random_effects))]
    spread = result.random_effects_cov[next(iter(result.random_effects_cov))]
    frame = pd.DataFrame({"name": effects.index, "effect": effects.to_numpy(),
                          "sd": [spread.loc[n, n] ** 0.5 for n in effects.index]})
    frame["factor"] = frame["name"].str.extract(r"^([^\[]+)\[")[0]
    frame["level"] = frame["name"].str.extract(r"\[([^\[\]]+)\]\]$")[0]
    factors = list(dict.fromkeys(frame["factor"]))
    heights = [max(1.2, 0.16 * (frame["factor"] == f).sum()) for f in factors]
    figure, axes = plt.subplots(len(factors), 1, figsize=(6, sum(heights) + 1),
                                gridspec_kw={"height_ratios": heights}, squeeze=False)
    for axis, factor in zip(axes[:, 0], factors, strict=True):
        part = frame[frame["factor"] == factor].sort_values("effect")
        axis.errorbar(part["effect"], range(len(part)), xerr=1.96 * part["sd"], fmt="o",
                      markersize=3, linewidth=0.8)
        axis.set_yticks(range(len(part)), part["level"], fontsize=7)
        axis.axvline(0, color="grey", linewidth=0.8)
        axis.set_title(f"random intercepts: {factor}", fontsize=9)
    axes[-1, 0].set_xlabel("conditional mean (gain points), 95% interval")
    figure.tight_layout()
    return figure


def partial_effects(result, frame: pd.DataFrame, points: int = 25) -> pd.DataFrame:
    """Predicted gain (fixed effects) against the standardised index per task group, the
    other covariates at their means over the rows, with a 95% Wald band."""
    import numpy as np
    from patsy import build_design_matrices

    grid = []
    for group, rows in frame.groupby("task_group"):
        values = np.linspace(rows["morph"].min(), rows["morph"].max(), points)
        grid.append(pd.DataFrame({"task_group": group, "morph": values}))
    grid = pd.concat(grid, ignore_index=True)
    for column in ("log_pretraining_size", "latin_script", "indo_european"):
        grid[column] = frame[column].mean()
    grid["gain"] = 0.0
    (design,) = build_design_matrices([result.model.data.model_spec], grid,
                                      return_type="dataframe")
    names = list(result.fe_params.index)
    design = design[names].to_numpy()
    covariance = result.cov_params().loc[names, names].to_numpy()
    grid["predicted"] = design @ result.fe_params.to_numpy()
    half = 1.96 * np.sqrt(np.einsum("ij,jk,ik->i", design, covariance, design))
    grid["low"], grid["high"] = grid["predicted"] - half, grid["predicted"] + half
    return grid.drop(columns="gain")


def partial_effect_figure(result, frame: pd.DataFrame):
    """Partial effect of the index per task group, over each language's mean gain."""
    import matplotlib.pyplot as plt

    curves = partial_effects(result, frame)
    means = frame.groupby(["task_group", "language"])[["morph", "gain"]].mean().reset_index()
    groups = list(dict.fromkeys(curves["task_group"]))
    figure, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 3.2), sharey=True,
                                squeeze=False)
    for axis, group in zip(axes[0], groups, strict=True):
        curve = curves[curves["task_group"] == group]
        dots = means[means["task_group"] == group]
        axis.scatter(dots["morph"], dots["gain"], s=10, alpha=0.6, color="#4c72b0")
        axis.plot(curve["morph"], curve["predicted"], color="#c44e52")
        axis.fill_between(curve["morph"], curve["low"], curve["high"], color="#c44e52",
                          alpha=0.2)
        axis.set_title(group, fontsize=9)
        axis.set_xlabel(f"{frame.attrs.get('index', 'index')} (z)")
    axes[0, 0].set_ylabel("gain (points)")
    figure.tight_layout()
    return figure


def power_figure(curve: pd.DataFrame, target: float = 0.8):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.4))
    axis.errorbar(curve["slope"], curve["power"],
                  yerr=[curve["power"] - curve["power_low"], curve["power_high"] - curve["power"]],
                  fmt="o-", capsize=3)
    axis.axhline(target, color="grey", linestyle="--", linewidth=0.8)
    axis.set(xlabel="true slope (gain points per SD of the index)", ylabel="power",
             ylim=(0, 1.02))
    figure.tight_layout()
    return figure


# --- tasks, languages and set-up (chapters 2 and 4) ------------------------------------------------

def task_table(role: str) -> pd.DataFrame:
    """The registry's tasks of one role: format, XTREME-R group, metric, languages, data source."""
    from stilts_core.tasks.registry import TASKS

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
    from stilts_core.tasks.registry import get_benchmark

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

    from stilts_core.tasks.registry import get_benchmark

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


TRAINING_FIELDS = ("learning_rate", "batch_size", "per_device_batch_size", "epochs", "max_length",
                   "doc_stride", "warmup_ratio", "weight_decay", "max_grad_norm", "eval_steps",
                   "early_stopping_patience", "max_steps")


def hyperparameter_table(config) -> pd.DataFrame:
    """The effective training settings of every phase-(ii) and phase-(iii) run a grid config
    plans (the task's published defaults with the config's overrides), one row per task."""
    from stilts_core.grid.config import plan

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
    from stilts_core.evaluation.retrieval import RepresentationChoice
    from stilts_core.tasks.registry import get_task

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


# --- gains at a glance (chapter 5) -----------------------------------------------------------------

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


# --- claims check (chapter 8) ---------------------------------------------------------------------

STATUS_COLOURS = {"supported": "#1a7f37", "contradicted": "#cf222e",
                  "not yet run at full scale": "#6e7781"}


def claims_html(checks: pd.DataFrame) -> str:
    """The claims check as an HTML table narrow enough for a book page: one row per checked
    quantity with a coloured status, and under it the criterion and the evidence."""
    head = ("<tr><th>claim</th><th>quantity</th><th>published</th><th>computed</th>"
            "<th>status</th></tr>")
    body = []
    for row in checks.itertuples():
        colour = STATUS_COLOURS[row.status]
        body.append(
            f"<tr><td><strong>{row.claim_id}</strong><br><small>{row.kind}</small></td>"
            f"<td>{html.escape(row.quantity)}</td><td>{html.escape(row.published)}</td>"
            f"<td>{html.escape(row.computed) or '&mdash;'}</td>"
            f'<td><span style="color:{colour};font-weight:bold">{html.escape(row.status)}'
            f"</span></td></tr>"
            f'<tr><td></td><td colspan="4" style="font-size:0.85em;color:#57606a">'
            f"<em>Criterion:</em> {html.escape(row.criterion)}. "
            f"<em>Evidence:</em> {html.escape(row.evidence)}.</td></tr>")
    return (f'<table class="table" style="width:100%;font-size:0.9em">{head}{"".join(body)}'
            "</table>")


# --- published reference figures (chapter 9) ------------------------------------------------------

def published_table(name: str) -> pd.DataFrame:
    """A committed copy under ``data/published/`` (sources in its README)."""
    from stilts_core.paths import data_dir

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


def wals_coding_table() -> pd.DataFrame:
    """The numeric coding of each WALS feature (``stilts_core.analysis.morphology.WALS_FEATURES``)."""
    from stilts_core.analysis.morphology import WALS_FEATURES

    return pd.DataFrame([{"feature": f.id, "name": f.name, "coding": f.reading,
                          "WALS value -> score": "; ".join(f"{k}: {'off the scale' if v is None else v}"
                                                           for k, v in f.coding.items()),
                          "in wals_synthesis": f.in_composite}
                         for f in WALS_FEATURES.values()]).set_index("feature")


def phase_table() -> pd.DataFrame:
    """The phase registry (``stilts_core.runs.execution.PHASES``): notebook and what each phase does."""
    from stilts_core.runs.execution import PHASES

    return pd.DataFrame([{"phase": p.name, "notebook": f"notebooks/{p.notebook}",
                          "what it does": p.description} for p in PHASES.values()]).set_index("phase")


def leave_one_out_figure(table: pd.DataFrame, factor: str = "language"):
    """Each leave-one-out estimate with a 95% Wald interval; the line is the full fit."""
    import matplotlib.pyplot as plt

    ordered = table.sort_values("estimate")
    figure, axis = plt.subplots(figsize=(6.5, max(3.0, 0.2 * len(ordered) + 1)))
    axis.errorbar(ordered["estimate"], range(len(ordered)), xerr=1.96 * ordered["se"], fmt="o",
                  markersize=3, color="#444", ecolor="#bbb")
    axis.axvline(table.attrs["full_estimate"], color="#1f6feb", label="all languages")
    axis.axvline(0, color="black", linewidth=0.6)
    axis.set_yticks(range(len(ordered)), [f"without {level}" for level in ordered[factor]],
                    fontsize=7)
    axis.set_xlabel("slope of the index (gain points per SD)")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure
