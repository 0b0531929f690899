"""Chapter "Morphology and gains" (``06_mixed_effects``):
the mixed-effects fit, its diagnostics and effects.
"""

from __future__ import annotations

import pandas as pd


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


def correlation_matrix(pairs: pd.DataFrame) -> pd.DataFrame:
    """The long correlation table of :func:`stilts_core.analysis.collinearity.correlations` as
    one matrix for reading: Pearson below the diagonal, Spearman above it."""
    names = list(dict.fromkeys([*pairs["first"], *pairs["second"]]))
    matrix = pd.DataFrame(float("nan"), index=names, columns=names)
    for name in names:
        matrix.loc[name, name] = 1.0
    for row in pairs.itertuples():
        matrix.loc[row.second, row.first] = row.pearson
        matrix.loc[row.first, row.second] = row.spearman
    return matrix.round(2)


def prediction_figure(errors: pd.DataFrame, summary: pd.DataFrame):
    """Per held-out unit, the RMSE of the morphology model minus that of the covariates-only
    model (left of 0: the index predicts that unit better), one panel per hold-out, with the
    pooled difference and its paired bootstrap interval as a band."""
    import matplotlib.pyplot as plt

    wide = errors.pivot_table(index=["hold_out", "unit"], columns="model", values="rmse")
    difference = (wide["morphology"] - wide["covariates"]).rename("difference").reset_index()
    hold_outs = list(dict.fromkeys(summary["hold_out"]))
    heights = [max(1.6, 0.14 * (difference["hold_out"] == h).sum()) for h in hold_outs]
    figure, axes = plt.subplots(len(hold_outs), 1, figsize=(6, sum(heights) + 1),
                                gridspec_kw={"height_ratios": heights}, squeeze=False)
    pooled = summary[summary["metric"] == "rmse"].set_index("hold_out")
    for axis, hold_out in zip(axes[:, 0], hold_outs, strict=True):
        part = difference[difference["hold_out"] == hold_out].sort_values("difference")
        axis.scatter(part["difference"], range(len(part)), s=10, color="#4c72b0")
        axis.set_yticks(range(len(part)), part["unit"], fontsize=6)
        axis.axvline(0, color="grey", linewidth=0.8)
        row = pooled.loc[hold_out]
        axis.axvspan(row["difference_low"], row["difference_high"], color="#c44e52", alpha=0.2)
        axis.axvline(row["difference"], color="#c44e52", linewidth=1)
        axis.set_title(f"leave one {hold_out} out: pooled difference {row['difference']:+.3f} "
                       f"({row['difference_low']:+.3f} to {row['difference_high']:+.3f})",
                       fontsize=9)
    axes[-1, 0].set_xlabel("RMSE morphology model - RMSE covariates-only model (gain points)")
    figure.tight_layout()
    return figure


def prediction_verdict(summary: pd.DataFrame) -> str:
    """One sentence per hold-out from :func:`~stilts_core.analysis.prediction.prediction_error`'s
    RMSE row: does the index predict held-out units better, worse, or not detectably either."""
    sentences = []
    for row in summary[summary["metric"] == "rmse"].itertuples():
        verdict = ("predicts better than" if row.difference_high < 0 else
                   "predicts worse than" if row.difference_low > 0 else
                   "does not predict detectably better or worse than")
        sentences.append(
            f"Leaving one {row.hold_out} out ({row.n_units} units, {row.n_cells} cells), the "
            f"morphology model {verdict} the covariates alone: RMSE {row.morphology:.3f} "
            f"against {row.covariates:.3f}, difference {row.difference:+.3f} (95% interval "
            f"{row.difference_low:+.3f} to {row.difference_high:+.3f}).")
    return " ".join(sentences)


def gain_index_figure(points: pd.DataFrame):
    """Each language's mean gain against each index, one panel per index, with the ordinary
    least-squares line over languages and its 95% band (descriptive; the tests are the mixed
    model's)."""
    import seaborn as sns

    grid = sns.lmplot(data=points, x="value", y="gain", col="index", col_wrap=3, height=3.0,
                      aspect=1.1, facet_kws={"sharex": False}, scatter_kws={"s": 18},
                      line_kws={"color": "#0b6e99"})
    for axis, (_, rows) in zip(grid.axes.flat, points.groupby("index", sort=False), strict=False):
        axis.axhline(0.0, color="grey", linewidth=0.6, linestyle=":")
        for row in rows.itertuples():
            axis.annotate(row.language, (row.value, row.gain), xytext=(2, 2),
                          textcoords="offset points", fontsize=6)
    grid.set_titles("{col_name}")
    grid.set_axis_labels("index (raw value)", "mean gain (points)")
    return grid.figure
