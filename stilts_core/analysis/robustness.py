"""Intervals and checks that do not lean on normal, equal residuals.

The Wald and parametric-bootstrap intervals of the mixed model (:mod:`~stilts_core.analysis.statistics`)
both assume its normal residuals with one variance. Two checks that do not:

- a **language case bootstrap**: languages resampled with replacement, each with all its rows
  (a language drawn twice becomes two languages, with their own crossings and cells), the model
  refitted, and the estimate -/+ 1.96 times the refits' SD for the morphology terms and slopes.
  The language is the unit the slopes are about, and the resampling assumes nothing about the
  residuals' shape. The
  mean gains get the same from :func:`~stilts_core.analysis.estimates.language_interval`.
- a **residual variance per level of a factor** (by default the intermediate task), nlme's
  ``varIdent``, compared with the single residual variance by a likelihood-ratio test and AIC.

:func:`null_gains` draws null data with heavy-tailed and unequal residuals, for the calibration
benchmark (``benchmarks/robust_calibration.py``) and its small version in the tests.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from stilts_core.analysis import statistics as st
from stilts_core.analysis.estimates import language_interval

# a resample whose design the model cannot fit (too few distinct languages, a covariate or a
# task group lost) is drawn again, at most this many times per replicate
MAX_REDRAWS = 100
RESIDUAL_FACTOR = "intermediate_task"
APART_ESTIMATE = "estimate, a residual variance per {factor}"


# --- the language case bootstrap --------------------------------------------------------------------

def resample_languages(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """As many languages as ``frame`` has, drawn with replacement, each with all its rows; the
    ``j``-th draw of language ``xx`` is the level ``xx#j``, so a language drawn twice is two
    levels of the language factor and of every crossing with it. The index keeps the
    standardisation of ``frame`` (its ``morph`` column is carried over, not recomputed)."""
    rows = frame.groupby("language", sort=True).indices
    languages = list(rows)
    drawn = rng.integers(0, len(languages), len(languages))
    positions = np.concatenate([rows[languages[k]] for k in drawn])
    labels = np.concatenate([np.repeat(f"{languages[k]}#{j}", len(rows[languages[k]]))
                             for j, k in enumerate(drawn)])
    return frame.iloc[positions].assign(language=labels).reset_index(drop=True)


def _estimates(params: pd.DataFrame, slopes: pd.DataFrame | None,
               column: str = "estimate") -> pd.Series:
    """``column`` (the estimate, or its standard error) of every fixed effect, then of each
    slope (``slope: <group>``) where the formula has them."""
    slopes = (pd.Series(dtype=float) if slopes is None
              else slopes[column].rename(lambda name: f"slope: {name}"))
    return pd.concat([params[column], slopes])


def _case_chunk(args) -> list[tuple[np.ndarray, np.ndarray, int, bool]]:
    frame, formula, reml, theta, names, seeds = args
    draws = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for redrawn in range(MAX_REDRAWS + 1):
            try:
                _, report = st.fit(resample_languages(frame, rng), formula, reml=reml,
                                   optimisers=st.OPTIMISERS[:2], start=theta)
            except st.AnalysisError:
                continue
            estimates = _estimates(report.params, report.slopes)
            if list(estimates.index) == names:
                errors = _estimates(report.params, report.slopes, "std_error")
                draws.append((estimates.to_numpy(), errors.to_numpy(), redrawn,
                              report.converged))
                break
        else:
            raise st.AnalysisError(
                f"{MAX_REDRAWS} language resamples in a row could not be fitted with {formula!r} "
                f"({frame['language'].nunique()} languages): too few languages, or languages too "
                "alike, for a case bootstrap; read the Wald and parametric-bootstrap intervals")
    return draws


def case_bootstrap(result, frame: pd.DataFrame, formula: str = st.MAIN_FORMULA,
                   reps: int = 200, n_jobs: int = 1, seed: int = 0, reml: bool = True,
                   level: float = 0.95) -> pd.DataFrame:
    """Intervals of every fixed effect and slope from ``reps`` refits to language resamples
    (:func:`resample_languages`), beside the estimate of the fit ``result``: the estimate -/+
    the normal quantile times the refits' SD (``case_low``, ``case_high``). Beside it, not used
    (Methods, the robust calibration, gives each one's coverage): the bootstrap-t (each refit's
    estimate studentised by its own Wald SE, Davison & Hinkley 1997, sec. 5.2.1) and the
    refits' percentiles. Each replicate has its own seed, so the intervals do not depend on
    ``n_jobs``; a resample the model cannot fit is drawn again (``redrawn`` counts them;
    ``not_converged`` the refits whose optimiser did not report convergence). How many
    replicates are done is logged."""
    if result.residual_variances:
        raise st.AnalysisError("the case bootstrap refits the model with one residual variance; "
                               "give it that fit (fit without residual_by)")
    if frame["language"].nunique() < st.MIN_LANGUAGES:
        raise st.AnalysisError(f"a language case bootstrap needs at least {st.MIN_LANGUAGES} "
                               f"languages; the data have {frame['language'].nunique()}")
    slopes = st.slopes(result, frame) if st.morph_terms(formula) else None
    params = pd.DataFrame({"estimate": result.fe_params, "std_error": result.bse_fe})
    point = _estimates(params, slopes)
    point_se = _estimates(params, slopes, "std_error")
    seeds = np.random.SeedSequence(seed).generate_state(reps).tolist()
    draws = st.in_chunks(_case_chunk,
                         lambda chunk: (frame, formula, reml, result.theta, list(point.index),
                                        chunk),
                         seeds, n_jobs, "language case bootstrap replicates")
    values = pd.DataFrame([d[0] for d in draws], columns=point.index)
    studentised = (values - point) / pd.DataFrame([d[1] for d in draws], columns=point.index)
    tail = (1 - level) / 2
    half = stats.norm.ppf(1 - tail) * values.std()
    return pd.DataFrame({"estimate": point, "std_error": point_se,
                         "case_low": point - half, "case_high": point + half,
                         "case_sd": values.std(),
                         "bootstrap_t_low": point - studentised.quantile(1 - tail) * point_se,
                         "bootstrap_t_high": point - studentised.quantile(tail) * point_se,
                         "percentile_low": values.quantile(tail),
                         "percentile_high": values.quantile(1 - tail), "reps": len(values),
                         "redrawn": sum(d[2] for d in draws),
                         "not_converged": sum(not d[3] for d in draws)})


def slope_intervals(report: st.FitReport, parametric: pd.DataFrame | None,
                    case: pd.DataFrame) -> pd.DataFrame:
    """The slopes' 95% intervals by each method, long: one row per slope and method (Wald, the
    parametric bootstrap of :func:`~stilts_core.analysis.statistics.parametric_bootstrap`
    unless it was withheld (``None``: :func:`parametric_withheld`), the language case bootstrap
    of :func:`case_bootstrap`), with the interval's width."""
    slopes = report.slopes
    names = [f"slope: {name}" for name in slopes.index]
    methods = {"Wald": (slopes["wald_low"].to_numpy(), slopes["wald_high"].to_numpy())}
    if parametric is not None:
        methods["parametric bootstrap"] = (parametric.loc[names, "bootstrap_low"].to_numpy(),
                                           parametric.loc[names, "bootstrap_high"].to_numpy())
    methods["language case bootstrap"] = (case.loc[names, "case_low"].to_numpy(),
                                          case.loc[names, "case_high"].to_numpy())
    table = pd.concat([pd.DataFrame({"slope": slopes.index, "method": method,
                                     "estimate": slopes["estimate"].to_numpy(),
                                     "low": low, "high": high})
                       for method, (low, high) in methods.items()], ignore_index=True)
    return table.assign(width=table["high"] - table["low"])


def parametric_withheld(check: dict) -> str | None:
    """Why the page withholds the parametric bootstrap, or None where it shows it: it simulates
    one normal residual variance, and where :func:`residual_variance_check` finds the residual
    variances unequal (``better``), its interval covers the truth too rarely (Methods, the
    robust calibration)."""
    if not check["better"]:
        return None
    return (f"**The parametric bootstrap is withheld**: it simulates gains with one residual "
            f"variance, and the residual check below finds a residual variance per "
            f"{check['factor']} fits better. On null data like that its interval covers the "
            "truth too rarely (Methods); the Wald interval and the language case bootstrap, "
            "which keep their level there, are below.")


# --- the mean gains -------------------------------------------------------------------------------

def mean_gain_intervals(frame: pd.DataFrame) -> pd.DataFrame:
    """Per target task and intermediate task of an analysis frame: the gain averaged over seeds
    within each language, then :func:`~stilts_core.analysis.estimates.language_interval` (the
    t-interval over languages and the language case-bootstrap interval)."""
    records = [{"target_task": task, "intermediate_task": intermediate,
                **language_interval(rows.groupby("language")["gain"].mean())}
               for (task, intermediate), rows in frame.groupby(["target_task", "intermediate_task"])]
    return pd.DataFrame(records)


# --- a residual variance per level of a factor -------------------------------------------------------

def residual_variance_check(frame: pd.DataFrame, formula: str = st.MAIN_FORMULA,
                            factor: str = RESIDUAL_FACTOR, alpha: float = 0.05) -> dict:
    """The model with one residual variance against the same model with one per level of
    ``factor`` (REML: the fixed effects are the same, so their restricted likelihoods compare).
    The null ratios (all 1) lie inside the parameter space, so the likelihood-ratio statistic is
    referred to chi-square with (levels - 1) df, no boundary mixture; but under heavy-tailed
    residuals that reference is far too liberal (a variance test reads heavy tails as unequal
    variances; the calibration benchmark measures by how much), so :func:`spread_test`, which
    assumes nothing about the tails, has to agree.

    Returns ``models`` (log-likelihood, parameters, AIC), ``residual_sd`` per level (the
    heteroscedastic fit's, beside the within-cell SD of the gains), the likelihood-ratio test
    (``statistic``, ``df``, ``p_value``), the rank test (``spread``), ``better`` (both tests
    reject at ``alpha`` and the heteroscedastic AIC is lower) and ``slopes``: the single-variance
    model's with their Wald intervals, and beside them the estimates under the separate variances
    without an interval (under heavy-tailed residuals their Wald interval covers too rarely:
    Methods, the robust calibration)."""
    equal, equal_report = st.fit(frame, formula, reml=True)
    apart, apart_report = st.fit(frame, formula, reml=True, start=equal.theta, residual_by=factor)
    levels = apart_report.residual_variances
    statistic = max(0.0, 2 * (apart.llf - equal.llf))
    df = len(levels) - 1
    p_value = float(stats.chi2.sf(statistic, df))
    names = {"one residual variance": (equal, equal_report),
             f"a residual variance per {factor}": (apart, apart_report)}
    models = pd.DataFrame([{"model": name, "loglike_reml": fitted.llf,
                            "parameters": len(fitted.fe_params) + len(fitted.theta) + 1,
                            "aic": fitted.aic, "converged": report.converged}
                           for name, (fitted, report) in names.items()])
    models["delta_aic"] = models["aic"] - models["aic"].min()
    within = frame.groupby(list(st.CELL))["gain"].var().groupby(level=factor).mean()
    residual_sd = pd.DataFrame({factor: list(levels),
                                "residual_sd": [math.sqrt(v) for v in levels.values()],
                                "within_cell_sd": [math.sqrt(within[k]) for k in levels]})
    spread = spread_test(frame, factor)
    better = bool(p_value < alpha and spread["p_value"] < alpha and apart.aic < equal.aic)
    slopes = None
    if equal_report.slopes is not None:
        slopes = equal_report.slopes[["estimate", "wald_low", "wald_high"]].join(
            apart_report.slopes["estimate"].rename(APART_ESTIMATE.format(factor=factor)))
    return {"models": models, "residual_sd": residual_sd, "statistic": statistic, "df": df,
            "p_value": p_value, "spread": spread, "better": better, "factor": factor,
            "slopes": slopes,
            "reports": (equal_report, apart_report)}


def spread_test(frame: pd.DataFrame, factor: str = RESIDUAL_FACTOR) -> dict:
    """Kruskal-Wallis test of the cells' seed-to-seed SD across the levels of ``factor``. Every
    fixed effect and random intercept is constant within a cell, so a cell's SD depends on its
    residuals only, and the cells' residuals are independent: under equal residual distributions
    the SDs of cells with as many seeds are exchangeable across levels, whatever the tails, and
    the rank test keeps its level (cells with one seed have no SD and are left out)."""
    spread = frame.groupby(list(st.CELL))["gain"].std().dropna()
    groups = [values.to_numpy() for _, values in spread.groupby(level=factor)]
    if len(groups) < 2:
        raise st.AnalysisError(f"the spread of the seeds can be compared across levels of "
                               f"{factor!r} only where two levels have cells with two seeds or more")
    statistic, p_value = stats.kruskal(*groups)
    return {"statistic": float(statistic), "df": len(groups) - 1, "p_value": float(p_value),
            "cells": len(spread)}


def morphology_tests(frame: pd.DataFrame, formula: str, pre_registered: dict,
                     factor: str = RESIDUAL_FACTOR) -> pd.DataFrame:
    """The likelihood-ratio test of the morphology terms under one residual variance (the
    pre-registered test, as :func:`~stilts_core.analysis.statistics.likelihood_ratio_test`
    returned it) and under a residual variance per level of ``factor``, one row each."""
    apart = st.likelihood_ratio_test(frame, formula, residual_by=factor)
    rows = {"one residual variance (pre-registered)": pre_registered,
            f"a residual variance per {factor}": apart}
    return pd.DataFrame([{"model": name, "statistic": test["statistic"], "df": test["df"],
                          "p_value": test["p_value"]} for name, test in rows.items()])


def verdict(check: dict, alpha: float = 0.05) -> str:
    """What the comparison says, in a sentence or two for the page."""
    factor, spread = check["factor"], check["spread"]
    delta = check["models"]["aic"].iloc[1] - check["models"]["aic"].iloc[0]
    tests = (f"likelihood ratio {check['statistic']:.2f} on {check['df']} df, p = "
             f"{check['p_value']:.3g}; AIC {delta:+.1f} for the separate variances; rank test of "
             f"the seeds' spread over {spread['cells']} cells, p = {spread['p_value']:.3g}")
    if check["better"]:
        return (f"**A residual variance per {factor} fits better** ({tests}). Its test of the "
                "morphology terms and its slope estimates are below, beside the pre-registered "
                "model's, which stays the primary test and gives the intervals: with heavy-tailed "
                "residuals the separate variances' own Wald interval covers the truth too rarely "
                "(Methods). Where the two models' slopes differ, read the language case "
                "bootstrap, which assumes no residual model.")
    if check["p_value"] < alpha:
        return (f"The likelihood prefers a residual variance per {factor}, but the rank test of "
                f"the seeds' spread does not confirm it at α = {alpha} ({tests}): heavy-tailed "
                "residuals alone make the likelihood ratio reject (Methods), so the single "
                "residual variance stands. The slopes under both are below.")
    return (f"A residual variance per {factor} does **not** fit better at α = {alpha} ({tests}); "
            "the single residual variance of the pre-registered model stands.")


# --- null data with heavy-tailed and unequal residuals ------------------------------------------------

def null_gains(design: st.Design, covariates: pd.DataFrame, variances: dict[str, float],
               rng: np.random.Generator, residual_df: float | None = None,
               noisy: str | None = None, noise_ratio: float = 1.0) -> pd.DataFrame:
    """Gains with no fixed effect, drawn from the structure the analysis fits, except that the
    seed-level residual is Student t with ``residual_df`` degrees of freedom (scaled to the
    ``residual`` variance; ``None``: normal) and its SD is ``noise_ratio`` times larger for the
    intermediate task ``noisy``. Column ``true_mean`` holds each target x intermediate task's
    mean gain over the population of languages (its task-level random intercepts), the truth of
    :func:`mean_gain_intervals`; every slope's truth is 0."""
    if residual_df is not None and residual_df <= 2:
        raise st.AnalysisError(f"residual_df must exceed 2 (a finite variance), not {residual_df}")
    frame = st.design_frame(design, covariates)
    parts = st.random_parts(frame, variances, rng)
    noise = parts.pop("residual")
    if residual_df is not None:
        scale = math.sqrt(variances["residual"] * (residual_df - 2) / residual_df)
        noise = scale * rng.standard_t(residual_df, len(frame))
    noise = noise * np.where(frame["intermediate_task"] == noisy, noise_ratio, 1.0)
    task_level = ("target_task", "intermediate_task", "target_task:intermediate_task")
    frame["true_mean"] = sum(parts[name] for name in task_level)
    frame["gain"] = sum(parts.values()) + noise
    return frame
