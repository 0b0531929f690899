"""Intervals and checks that do not assume normal, equal residuals: the likelihood with a
residual variance per intermediate task against the dense multivariate normal of all rows, the
analytic gradient against differences, the residual-variance comparison, the language case
bootstrap, and a small version of the calibration benchmark (``benchmarks/robust_calibration.py``)
in which a deliberately wrong bootstrap is caught."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import patsy
import pytest
from scipy import stats

from stilts_core.analysis import crossed_reml
from stilts_core.analysis import robustness as rb
from stilts_core.analysis import statistics as st
from stilts_core.analysis.morphology import read_indices, wide_view
from stilts_core.tasks.languages import read_languages_table

FORMULA = "gain ~ morph + log_pretraining_size"
NOISY = "sst2"


@pytest.fixture(scope="module")
def covariates() -> pd.DataFrame:
    return st.simulation_covariates(read_languages_table(), wide_view(read_indices()),
                                    "mattr_over_english")


@pytest.fixture(scope="module")
def small(covariates) -> pd.DataFrame:
    """6 languages x 2 target tasks x 3 intermediate tasks x 3 seeds, one task 3x as noisy."""
    design = st.Design(tasks={t: tuple(covariates.index[:6]) for t in ("xnli", "tatoeba")},
                       intermediate_tasks=("mnli", NOISY, "multi"), seeds=(1, 2, 3))
    return rb.null_gains(design, covariates, st.PLAUSIBLE_VARIANCES, np.random.default_rng(1),
                         noisy=NOISY, noise_ratio=3.0)


def dense_loglike(frame: pd.DataFrame, formula: str, beta: np.ndarray,
                  variances: dict[str, float], residual: np.ndarray, reml: bool) -> float:
    """The log-likelihood of all rows from their dense covariance matrix, by brute force."""
    y, x = patsy.dmatrices(formula, frame, return_type="dataframe")
    y, x = y.to_numpy()[:, 0], x.to_numpy()
    covariance = np.diag(residual)
    for name, factors in [*((c.name, c.factors) for c in st.RANDOM_EFFECTS), ("cell", st.CELL)]:
        codes = frame.groupby(list(factors)).ngroup().to_numpy()
        covariance += variances.get(name, 0.0) * (codes[:, None] == codes[None, :])
    loglike = stats.multivariate_normal(x @ beta, covariance).logpdf(y)
    if reml:  # the restricted likelihood: the fixed effects integrated out
        xtvx = x.T @ np.linalg.solve(covariance, x)
        loglike += 0.5 * x.shape[1] * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(xtvx)[1]
    return float(loglike)


# --- the likelihood with a residual variance per level --------------------------------------------

@pytest.mark.parametrize("residual_by", [None, "intermediate_task"])
@pytest.mark.parametrize("reml", [True, False])
def test_fitted_likelihood_is_the_dense_multivariate_normal_one(small, reml, residual_by):
    fitted, report = st.fit(small, FORMULA, reml=reml, residual_by=residual_by)
    residual = (small["intermediate_task"].map(report.residual_variances).to_numpy()
                if residual_by else np.full(len(small), report.variance_components["residual"]))
    assert report.converged
    assert fitted.llf == pytest.approx(
        dense_loglike(small, FORMULA, fitted.fe_params.to_numpy(), report.variance_components,
                      residual, reml), abs=1e-8)
    if residual_by:
        assert set(report.residual_variances) == {"mnli", "multi", NOISY}
        assert report.residual_variances["mnli"] == report.variance_components["residual"]


def problem_of(frame: pd.DataFrame, residual_by: str | None):
    y, x = patsy.dmatrices(FORMULA, frame, return_type="dataframe")
    problem, *_ = crossed_reml.build_problem(frame, y.to_numpy()[:, 0], x.to_numpy(),
                                             list(x.columns), list(st.RANDOM_EFFECTS), st.CELL,
                                             residual_by)
    return problem


@pytest.mark.parametrize("reml", [True, False])
def test_likelihood_away_from_the_optimum_is_the_dense_one(small, reml):
    """At any parameters, not only where the optimiser stops, and on the sparse path too."""
    problem = problem_of(small, "intermediate_task")
    theta = np.random.default_rng(2).uniform(0.2, 1.5, problem.n_theta)
    for path in (problem, dataclasses.replace(problem, z_dense=None)):
        solution = crossed_reml.solve(path, theta, reml)
        k = len(problem.components)
        variances = {c.name: solution.sigma2 * t**2
                     for c, t in zip(problem.components, theta, strict=False)}
        variances["cell"] = solution.sigma2 * theta[k] ** 2
        ratios = dict(zip(problem.residual_levels, problem.residual_ratios(theta), strict=True))
        residual = solution.sigma2 * small["intermediate_task"].map(ratios).to_numpy()
        assert -solution.deviance / 2 == pytest.approx(
            dense_loglike(small, FORMULA, solution.beta, variances, residual, reml), abs=1e-8)


@pytest.mark.parametrize("residual_by", [None, "intermediate_task"])
@pytest.mark.parametrize("reml", [True, False])
def test_analytic_gradient_matches_differences(small, reml, residual_by):
    problem = problem_of(small, residual_by)
    squares = np.random.default_rng(3).uniform(0.05, 1.5, problem.n_theta)
    step = 1e-6
    for path in (problem, dataclasses.replace(problem, z_dense=None)):
        def deviance(values, path=path):
            return crossed_reml.solve(path, np.sqrt(values), reml).deviance

        found = crossed_reml.gradient(path, np.sqrt(squares), reml,
                                      crossed_reml.solve(path, np.sqrt(squares), reml))
        differences = [(deviance(squares + step * e) - deviance(squares - step * e)) / (2 * step)
                       for e in np.eye(len(squares))]
        assert np.allclose(found, differences, rtol=1e-5, atol=1e-5)


def test_lbfgs_leaves_zero_where_the_optimum_is_inside(small):
    """In the SDs the deviance is flat at 0, so L-BFGS-B on the SDs stops with components stuck
    at 0, 1.2 log-likelihood units under the optimum on these data, and reports convergence; on
    the squares it reaches the derivative-free optimisers' optimum."""
    lbfgs = st.fit(small, "gain ~ morph", optimisers=("lbfgs",))[0]
    nelder_mead = st.fit(small, "gain ~ morph", optimisers=("nm",))[0]
    assert lbfgs.converged and lbfgs.llf >= nelder_mead.llf - 1e-6


def test_the_residual_variance_can_differ_only_by_a_factor_of_the_cell(small):
    with pytest.raises(st.AnalysisError, match="constant within a cell"):
        st.fit(small, FORMULA, residual_by="morph")
    with pytest.raises(st.AnalysisError, match="one level of it"):
        st.fit(small[small["target_task"] == "xnli"], FORMULA, residual_by="target_task")


def test_the_bootstraps_refuse_a_heteroscedastic_fit(small):
    fitted, _ = st.fit(small, FORMULA, residual_by="intermediate_task")
    with pytest.raises(st.AnalysisError, match="one residual variance"):
        st.parametric_bootstrap(fitted, small, FORMULA, reps=2)
    with pytest.raises(st.AnalysisError, match="one residual variance"):
        rb.case_bootstrap(fitted, small, FORMULA, reps=2)


def test_a_noisier_task_is_found_and_its_ratio_recovered(covariates):
    design = st.Design(tasks={t: tuple(covariates.index[:16]) for t in ("xnli", "tatoeba")},
                       intermediate_tasks=("mnli", NOISY, "multi"), seeds=(1, 2, 3))
    noisy = rb.null_gains(design, covariates, st.PLAUSIBLE_VARIANCES, np.random.default_rng(4),
                          noisy=NOISY, noise_ratio=3.0)
    check = rb.residual_variance_check(noisy, FORMULA)
    sd = check["residual_sd"].set_index("intermediate_task")["residual_sd"]
    assert check["better"] and check["p_value"] < 1e-6 and check["df"] == 2
    assert sd[NOISY] / sd["mnli"] == pytest.approx(3.0, rel=0.25)
    assert "fits better" in rb.verdict(check)
    assert check["spread"]["p_value"] < 1e-6 and check["spread"]["cells"] == 16 * 2 * 3
    equal = rb.null_gains(design, covariates, st.PLAUSIBLE_VARIANCES, np.random.default_rng(4))
    check = rb.residual_variance_check(equal, FORMULA)
    assert not check["better"] and check["spread"]["p_value"] > 0.001
    assert "fits better**" not in rb.verdict(check)
    assert list(check["models"]["parameters"]) == [3 + 7 + 1, 3 + 7 + 2 + 1]
    assert list(check["slopes"].columns) == ["estimate", "wald_low", "wald_high",
                                             "estimate, a residual variance per intermediate_task"]


def test_the_verdict_needs_the_rank_test_too():
    """Heavy tails alone make the likelihood ratio of the residual variances reject: a verdict
    on it alone would find unequal variances where there are none."""
    models = pd.DataFrame({"aic": [100.0, 90.0]})
    check = {"factor": "intermediate_task", "models": models, "statistic": 14.0, "df": 2,
             "p_value": 0.001, "spread": {"p_value": 0.4, "cells": 60}, "better": False}
    assert "does not confirm it" in rb.verdict(check)
    check.update(spread={"p_value": 0.001, "cells": 60}, better=True)
    assert "fits better**" in rb.verdict(check)


def test_the_rank_test_of_the_spread_keeps_its_level_under_heavy_tails(covariates):
    """No fit is needed, so a few hundred null sets with t(3) residuals and equal variances."""
    design = st.Design(tasks={t: tuple(covariates.index[:8]) for t in ("xnli", "tatoeba")},
                       intermediate_tasks=("mnli", NOISY, "multi"), seeds=(1, 2, 3))
    p_values = [rb.spread_test(rb.null_gains(design, covariates, st.PLAUSIBLE_VARIANCES,
                                             np.random.default_rng(s), residual_df=3.0))["p_value"]
                for s in np.random.SeedSequence(5).generate_state(400)]
    rate = np.mean(np.array(p_values) < 0.05)
    assert 0.02 <= rate <= 0.085, rate  # 5% nominal; 400 sets have an SD of 0.011


# --- the language case bootstrap --------------------------------------------------------------------

def test_a_language_drawn_twice_is_two_languages_with_the_original_index(small):
    resample = rb.resample_languages(small, np.random.default_rng(0))
    drawn = resample["language"].str.split("#").str[0]
    assert resample["language"].nunique() == small["language"].nunique()
    assert drawn.nunique() < small["language"].nunique()  # this seed draws one language twice
    per_level = resample.groupby("language").size()
    assert (per_level == len(small) // small["language"].nunique()).all()
    original = small.groupby("language")["morph"].first()
    assert np.allclose(resample["morph"], drawn.map(original))
    # its crossings are its own: twice the language x target task levels of that language
    twice = drawn.value_counts().idxmax()
    assert resample[drawn == twice].groupby(["language", "target_task"]).ngroups == 4


def test_case_bootstrap_is_the_same_in_parallel_and_refuses_too_few_languages(small):
    fitted, report = st.fit(small, "gain ~ morph")
    serial = rb.case_bootstrap(fitted, small, "gain ~ morph", reps=6, n_jobs=1, seed=5)
    parallel = rb.case_bootstrap(fitted, small, "gain ~ morph", reps=6, n_jobs=2, seed=5)
    assert list(serial.index) == ["Intercept", "morph", "slope: average", "slope: classification",
                                  "slope: retrieval"]
    assert np.allclose(serial["case_sd"], parallel["case_sd"])
    assert serial.loc["morph", "estimate"] == pytest.approx(report.params.loc["morph", "estimate"])
    assert (serial["case_low"] <= serial["case_high"]).all() and (serial["reps"] == 6).all()
    assert serial.loc["morph", "std_error"] == pytest.approx(report.params.loc["morph", "std_error"])
    two = small[small["language"].isin(small["language"].unique()[:2])]
    with pytest.raises(st.AnalysisError, match="at least 3"):
        rb.case_bootstrap(fitted, two, "gain ~ morph", reps=2)


def test_slope_intervals_sets_the_three_methods_side_by_side(covariates):
    design = st.Design(tasks={t: tuple(covariates.index[:10]) for t in ("xnli", "tatoeba")},
                       intermediate_tasks=("mnli", "multi"), seeds=(1, 2))
    frame = rb.null_gains(design, covariates, st.PLAUSIBLE_VARIANCES, np.random.default_rng(6))
    formula = "gain ~ morph + morph:C(task_group, Sum)"
    fitted, report = st.fit(frame, formula)
    table = rb.slope_intervals(report, st.parametric_bootstrap(fitted, frame, formula, reps=4),
                               rb.case_bootstrap(fitted, frame, formula, reps=4))
    assert len(table) == 3 * 3  # average, classification, retrieval x three methods
    assert set(table["method"]) == {"Wald", "parametric bootstrap", "language case bootstrap"}
    assert (table["width"] >= 0).all()
    wald = table[table["method"] == "Wald"].set_index("slope")
    assert np.allclose(wald["low"], report.slopes["wald_low"])


def test_mean_gain_intervals_are_language_intervals_of_seed_means(small):
    table = rb.mean_gain_intervals(small)
    assert len(table) == 2 * 3 and (table["languages"] == 6).all()
    row = table.iloc[0]
    rows = small[(small["target_task"] == row["target_task"])
                 & (small["intermediate_task"] == row["intermediate_task"])]
    means = rows.groupby("language")["gain"].mean()
    half = stats.t.ppf(0.975, 5) * means.std() / np.sqrt(6)
    assert row["estimate"] == pytest.approx(means.mean())
    assert row["high"] - row["low"] == pytest.approx(2 * half)


def test_null_gains_draw_t_residuals_with_one_noisier_task(covariates):
    design = st.Design(tasks={"xnli": tuple(covariates.index[:20])},
                       intermediate_tasks=("mnli", NOISY), seeds=tuple(range(1, 41)))
    only_residual = {name: 0.0 for name in st.PLAUSIBLE_VARIANCES} | {"residual": 1.0}
    frame = rb.null_gains(design, covariates, only_residual, np.random.default_rng(7),
                          residual_df=3.0, noisy=NOISY, noise_ratio=3.0)
    spread = frame.groupby("intermediate_task")["gain"]
    assert spread.std()[NOISY] / spread.std()["mnli"] == pytest.approx(3.0, rel=0.3)
    assert stats.kurtosis(frame.loc[frame["intermediate_task"] == "mnli", "gain"]) > 2
    assert (frame["true_mean"] == 0).all()
    with pytest.raises(st.AnalysisError, match="must exceed 2"):
        rb.null_gains(design, covariates, only_residual, np.random.default_rng(7), residual_df=2)


def test_the_book_declares_the_case_bootstrap_replicates_and_passes_them_to_the_page():
    from stilts_core.analysis.result_sets import ResultSet, load_book_config
    from stilts_core.book.build import CHAPTERS, Build

    config = load_book_config()
    real = next(spec for spec in config.result_sets if spec.name == "e5_study_v2")
    assert 0 < real.analysis.case_bootstrap_reps < config.plan.case_bootstrap_reps
    assert config.simulation.analysis.case_bootstrap_reps < config.plan.case_bootstrap_reps
    found = ResultSet(name="e5", path="e5.parquet", provenance="reduced-scale real run",
                      description="e5", models=("m",), task_groups=frozenset({"retrieval"}),
                      analysis=real.analysis)
    page = next(c for c in CHAPTERS if c.page == "mixed_effects")
    parameters = page.parameters(Build(config, (found,), (), None), found, config.plan.outcomes[0])
    assert parameters["case_bootstrap_reps"] == real.analysis.case_bootstrap_reps
    assert parameters["planned_case_bootstrap_reps"] == config.plan.case_bootstrap_reps


# --- a small calibration, with a deliberately wrong bootstrap -----------------------------------------

def resample_rows(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The wrong unit: rows resampled, as if the gains of one language were independent."""
    return frame.iloc[rng.integers(0, len(frame), len(frame))].reset_index(drop=True)


@pytest.fixture(scope="module")
def heavy_null(covariates) -> list[pd.DataFrame]:
    """Null sets with t(3) residuals and one intermediate task 3x as noisy: 12 languages x 2
    target tasks x 2 intermediate tasks x 2 seeds."""
    design = st.Design(tasks={t: tuple(covariates.index[:12]) for t in ("xnli", "tatoeba")},
                       intermediate_tasks=("mnli", NOISY), seeds=(1, 2))
    return [rb.null_gains(design, covariates, st.PLAUSIBLE_VARIANCES, np.random.default_rng(s),
                          residual_df=3.0, noisy=NOISY, noise_ratio=3.0)
            for s in np.random.SeedSequence(31).generate_state(30)]


def spreads(arguments) -> tuple[float, float]:
    """The language and the row bootstrap's SD of the slope, each over the Wald SE."""
    frame, reps, seed = arguments
    fitted, report = st.fit(frame, "gain ~ morph")
    se = report.params.loc["morph", "std_error"]
    case = rb.case_bootstrap(fitted, frame, "gain ~ morph", reps=reps, seed=seed)
    rng = np.random.default_rng(seed)
    rows = [st.fit(resample_rows(frame, rng), "gain ~ morph", optimisers=st.OPTIMISERS[:2],
                   start=fitted.theta)[1].params.loc["morph", "estimate"] for _ in range(reps)]
    return case.loc["morph", "case_sd"] / se, float(np.std(rows, ddof=1)) / se


def test_the_row_bootstrap_is_caught_and_the_language_bootstrap_is_not(heavy_null, on_both_cores):
    """Against the model's standard error, the language case bootstrap's spread of the slope is
    about right; resampling rows, as if a language's gains were independent, leaves out the
    variation between languages, which carries the slope, and its spread is far too small."""
    ratios = np.array(on_both_cores(spreads, [(f, 20, k) for k, f in enumerate(heavy_null[:3])]))
    case, rows = ratios.mean(axis=0)
    assert 0.6 <= case <= 1.5, ratios
    assert rows <= 0.5, ratios


def rejections(frame: pd.DataFrame) -> tuple[bool, bool, bool, bool]:
    """At 5%: the pre-registered likelihood-ratio test, the Wald test of the slope, the test under
    a residual variance per intermediate task, and the test of that residual model."""
    fitted = st.fit(frame, "gain ~ morph")[1].params.loc["morph", "p_value"]
    return (st.likelihood_ratio_test(frame, "gain ~ morph")["p_value"] < 0.05, fitted < 0.05,
            st.likelihood_ratio_test(frame, "gain ~ morph",
                                     residual_by="intermediate_task")["p_value"] < 0.05,
            rb.residual_variance_check(frame, "gain ~ morph")["p_value"] < 0.05)


def test_small_calibration_of_the_tests_on_heavy_tailed_unequal_residuals(heavy_null,
                                                                         on_both_cores):
    """30 null sets: each test of the slope rejects in few (5% nominal; 8 or more of 30 is
    under a 1% chance at a true 8%), and the residual model's test finds the noisy task."""
    outcomes = np.array(on_both_cores(rejections, heavy_null, chunksize=4))
    lrt, wald, lrt_apart, residual_model = outcomes.mean(axis=0)
    assert max(lrt, wald, lrt_apart) < 0.25, (lrt, wald, lrt_apart)
    assert residual_model >= 0.9, residual_model


def test_the_case_interval_is_the_refits_sd_and_the_bootstrap_t_is_beside_it(small):
    """Rebuilt by hand from the refits on the same language resamples (the same seeds): the
    interval is the estimate -/+ 1.96 SD of the refits' estimates; the bootstrap-t beside it
    studentises each refit by its own Wald SE and scales the quantiles by the data's SE."""
    fitted, report = st.fit(small, "gain ~ morph")
    case = rb.case_bootstrap(fitted, small, "gain ~ morph", reps=8, seed=3)
    refits = [st.fit(rb.resample_languages(small, np.random.default_rng(seed)), "gain ~ morph",
                     optimisers=st.OPTIMISERS[:2], start=fitted.theta)[1].params.loc["morph"]
              for seed in np.random.SeedSequence(3).generate_state(8).tolist()]
    estimate, se = report.params.loc["morph", ["estimate", "std_error"]]
    spread = np.std([refit["estimate"] for refit in refits], ddof=1)
    assert case.loc["morph", "case_low"] == pytest.approx(estimate - 1.959964 * spread, rel=1e-4)
    assert case.loc["morph", "case_high"] == pytest.approx(estimate + 1.959964 * spread, rel=1e-4)
    studentised = [(refit["estimate"] - estimate) / refit["std_error"] for refit in refits]
    upper, lower = np.quantile(studentised, [0.975, 0.025])
    assert case.loc["morph", "bootstrap_t_low"] == pytest.approx(estimate - upper * se, rel=1e-4)
    assert case.loc["morph", "bootstrap_t_high"] == pytest.approx(estimate - lower * se, rel=1e-4)


def test_the_parametric_bootstrap_is_withheld_where_the_residual_variances_differ(small):
    fitted, report = st.fit(small, "gain ~ morph")
    case = rb.case_bootstrap(fitted, small, "gain ~ morph", reps=4, seed=1)
    table = rb.slope_intervals(report, None, case)
    assert set(table["method"]) == {"Wald", "language case bootstrap"}
    check = {"better": True, "factor": "intermediate_task"}
    assert "withheld" in rb.parametric_withheld(check)
    assert rb.parametric_withheld({**check, "better": False}) is None
