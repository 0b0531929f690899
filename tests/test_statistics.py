"""Mixed-effects analysis: schema validation of the analysis data, parameter recovery and
interval coverage on data from the full generating model, agreement with statsmodels MixedLM, the
calibration of the main test on null data, formula validation, bootstrap, power and export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import threadpoolctl

from stilts_core.analysis import statistics as st
from stilts_core.tasks.registry import intermediate_choices

INDEX = "mattr_over_english"
# every component of the generating structure the analysis fits, none near zero
VARIANCES = {"language": 1.0, "target_task": 1.0, "intermediate_task": 0.5,
             "language:target_task": 0.5, "language:intermediate_task": 0.3,
             "target_task:intermediate_task": 0.3, "cell": 0.3, "residual": 1.0}
FIXED = {"log_pretraining_size": 0.5, "latin_script": 0.3}


@pytest.fixture(scope="module")
def covariates(languages, indices_wide) -> pd.DataFrame:
    return st.simulation_covariates(languages, indices_wide, INDEX).iloc[:24]


@pytest.fixture(scope="module")
def design(covariates) -> st.Design:
    """24 real languages x 4 target tasks (one per XTREME-R group) x 3 intermediate x 2 seeds."""
    return st.Design(tasks={t: tuple(covariates.index) for t in ("xnli", "udpos", "xquad",
                                                                   "tatoeba")},
                     intermediate_tasks=("mnli", "squad", "multi"), seeds=(1, 2))


@pytest.fixture(scope="module")
def results(design, covariates) -> pd.DataFrame:
    return st.simulated_results(design, covariates, slope=1.0, variances=VARIANCES, seed=3)


# --- the analysis data ----------------------------------------------------------------------------

def test_gains_are_paired_per_seed_with_their_task_group(results, design):
    gains = st.gains_table(results)
    assert len(gains) == 24 * 4 * 3 * 2
    assert set(gains["task_group"]) == {"classification", "structured_prediction", "qa",
                                        "retrieval"}
    assert np.allclose(gains["gain"], gains["value"] - gains["value_baseline"])


def test_retrieval_after_target_fine_tuning_is_not_a_stilts_gain(results):
    """An encoder PAN-X fine-tuning left is aligned too (``fine_tuned_on``); its Tatoeba rows
    pair STILTs with baseline after fine-tuning, which is not the phase-(ii) encoder's gain."""
    import json

    tatoeba = results[results["target_task"] == "tatoeba"]
    after = tatoeba.assign(settings=tatoeba["settings"].map(
        lambda text: json.dumps({**json.loads(text or "{}"), "fine_tuned_on": "panx"})),
        run_id=tatoeba["run_id"] + "-after-panx", value=tatoeba["value"] - 30)
    gains = st.gains_table(pd.concat([results, after]))
    assert len(gains) == 24 * 4 * 3 * 2


def test_a_missing_baseline_is_an_error_that_names_the_cell(results):
    dropped = results[~((results["intermediate_task"] == "none") & (results["language"] == "fi")
                        & (results["target_task"] == "xnli") & (results["seed"] == 2))]
    with pytest.raises(st.AnalysisError, match="without a direct fine-tuning baseline") as error:
        st.gains_table(dropped)
    assert "fi" in str(error.value) and "xnli" in str(error.value)


def test_a_duplicated_cell_is_an_error(results):
    from stilts_core.runs.results import ResultsError

    twice = pd.concat([results, results.head(1).assign(run_id="another-run", value=1.0)])
    with pytest.raises(ResultsError, match="(?s)give one cell different values.*another-run"):
        st.gains_table(twice)


def test_english_is_set_aside_and_languages_without_the_index_are_named(results, languages,
                                                                       indices_wide):
    english = results[results["language"] == "fi"].assign(language="en")
    gains = st.gains_table(pd.concat([results, english]))
    frame = st.analysis_frame(gains, indices_wide, languages, INDEX)
    assert "en" not in set(frame["language"])
    assert set(frame.attrs["english"]["language"]) == {"en"}
    with pytest.raises(st.AnalysisError, match="'wals_synthesis' has no value for .*language"):
        st.analysis_frame(gains, indices_wide, languages, "wals_synthesis")
    kept = st.analysis_frame(gains, indices_wide, languages, "wals_synthesis", missing="exclude")
    assert kept.attrs["excluded_languages"]
    assert not set(kept["language"]) & set(kept.attrs["excluded_languages"])


def test_the_index_is_standardised_over_languages_not_rows(results, languages, indices_wide):
    frame = st.analysis_frame(st.gains_table(results), indices_wide, languages, INDEX)
    per_language = frame.groupby("language")["morph"].first()
    assert per_language.mean() == pytest.approx(0, abs=1e-12)
    assert per_language.std() == pytest.approx(1)
    raw = frame.groupby("language")["morph_raw"].first()
    assert (raw == indices_wide.loc[raw.index, INDEX]).all()


def test_unknown_language_is_an_error(results, languages, indices_wide):
    gains = st.gains_table(results).assign(language="xx")
    with pytest.raises(st.AnalysisError, match=r"\['xx'\] are not in data/languages.csv"):
        st.analysis_frame(gains, indices_wide, languages, INDEX)


GROUPS = ["classification", "qa", "retrieval", "structured_prediction"]


# --- formulas -------------------------------------------------------------------------------------

def test_morphology_terms_come_from_the_models_terms():
    assert st.morph_terms(st.MAIN_FORMULA) == ["morph", "morph:C(task_group, Sum)"]
    assert st.without_morph(st.MAIN_FORMULA) == (
        "gain ~ log_pretraining_size + latin_script + indo_european")
    # patsy expands the product; the interaction and a transformed index are morphology terms
    assert st.morph_terms("gain ~ morph*task_group + I(morph**2)") == [
        "morph", "morph:task_group", "I(morph ** 2)"]
    assert st.without_morph("gain ~ morph*task_group + I(morph**2)") == "gain ~ task_group"


def test_the_test_of_a_product_formula_has_its_degrees_of_freedom(results, languages,
                                                                  indices_wide):
    frame = st.analysis_frame(st.gains_table(results), indices_wide, languages, INDEX)
    assert st.validate_formula(frame, "gain ~ morph*task_group") == 4
    assert st.validate_formula(frame, "gain ~ morph + I(morph**2) + latin_script") == 2


def test_a_formula_without_the_index_or_with_a_0_df_test_is_refused(results, languages,
                                                                   indices_wide):
    frame = st.analysis_frame(st.gains_table(results), indices_wide, languages, INDEX)
    with pytest.raises(st.AnalysisError, match=r"(?s)'gain ~ latin_script'.*no term in 'morph'"
                                               r".*allowed"):
        st.likelihood_ratio_test(frame, "gain ~ latin_script")
    # morph is constant within a language: beside language fixed effects it adds nothing
    with pytest.raises(st.AnalysisError, match=r"(?s)'gain ~ C\(language\) \+ morph'.*rank"):
        st.likelihood_ratio_test(frame, "gain ~ C(language) + morph")
    with pytest.raises(st.AnalysisError, match="no_such_column"):
        st.fit(frame, "gain ~ morph + no_such_column")


def test_lme4_formula_has_every_component_and_rs_sum_coding():
    assert st.lme4_formula(st.MAIN_FORMULA) == (
        "gain ~ morph + morph:C(factor(task_group), contr.sum) + log_pretraining_size "
        "+ latin_script + indo_european + (1 | language) + (1 | target_task) "
        "+ (1 | intermediate_task) + (1 | language:target_task) + (1 | language:intermediate_task)"
        " + (1 | target_task:intermediate_task) + (1 | language:target_task:intermediate_task)")


# --- the fitter against statsmodels MixedLM --------------------------------------------------------

@pytest.mark.parametrize("reml", [True, False])
def test_cell_means_fit_matches_statsmodels_mixedlm_on_all_rows(covariates, reml):
    import warnings

    import statsmodels.formula.api as smf

    small = st.Design(tasks={t: tuple(covariates.index[:8]) for t in ("xnli", "udpos", "xquad")},
                      intermediate_tasks=("mnli", "squad", "multi"), seeds=(1, 2))
    frame = st.simulate_gains(small, covariates, 1.0, {k: 1.0 for k in VARIANCES},
                              np.random.default_rng(3))
    formula = "gain ~ morph + log_pretraining_size"
    ours, report = st.fit(frame, formula, reml=reml)
    components = {c.name: "0 + " + ":".join(f"C({f})" for f in c.factors)
                  for c in st.RANDOM_EFFECTS}
    components["cell"] = "0 + C(language):C(target_task):C(intermediate_task)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = smf.mixedlm(formula, frame.assign(all_rows=1), groups="all_rows",
                                re_formula="0", vc_formula=components).fit(reml=reml,
                                                                           method=["lbfgs"])
    assert report.converged
    # the same likelihood: ours is at least as high (up to optimiser tolerance)
    assert ours.llf >= reference.llf - 1e-5 and ours.llf == pytest.approx(reference.llf, abs=1e-3)
    assert np.allclose(ours.fe_params, reference.fe_params, atol=1e-3)
    assert np.allclose(ours.bse_fe, reference.bse_fe, rtol=1e-2)
    theirs = dict(zip(reference.model.exog_vc.names, reference.vcomp, strict=True))
    for name, value in theirs.items():
        assert report.variance_components[name] == pytest.approx(value, abs=2e-3 + 2e-2 * value)
    assert report.variance_components["residual"] == pytest.approx(reference.scale, rel=1e-2)


# --- recovery and coverage on data from the full generating model -----------------------------------

def test_parameters_are_recovered(covariates):
    design = st.Design(tasks={t: tuple(covariates.index) for t in ("xnli", "udpos", "xquad",
                                                                     "tatoeba", "panx")},
                       intermediate_tasks=("mnli", "squad", "multi", "qqp", "sst2"),
                       seeds=(1, 2, 3))
    frame = st.simulate_gains(design, covariates, 1.0, VARIANCES, np.random.default_rng(7),
                              fixed=FIXED)
    _, report = st.fit(frame)
    assert report.converged and not report.singular and not report.dropped_components
    params, slopes = report.params, report.slopes
    for term, truth in FIXED.items():
        assert abs(params.loc[term, "estimate"] - truth) < 3 * params.loc[term, "std_error"], term
    # the average slope and every group's: the truth is 1.0 in each group
    assert list(slopes.index) == [st.AVERAGE_SLOPE, *GROUPS]
    assert (abs(slopes["estimate"] - 1.0) < 3 * slopes["std_error"]).all(), slopes
    assert slopes.loc[st.AVERAGE_SLOPE, "estimate"] == pytest.approx(
        params.loc["morph", "estimate"])
    assert slopes.loc[st.AVERAGE_SLOPE, "estimate"] == pytest.approx(
        slopes.loc[GROUPS, "estimate"].mean())
    components = report.variance_components
    assert components["residual"] == pytest.approx(1.0, rel=0.1)
    assert components["cell"] == pytest.approx(0.3, rel=0.5)
    assert components["language:target_task"] == pytest.approx(0.5, rel=0.5)
    assert components["language:intermediate_task"] == pytest.approx(0.3, rel=0.5)


def wald_hits(arguments) -> list[bool]:
    """Whether each fixed effect's and two slopes' Wald intervals hold the truth, in one set."""
    design, covariates, seed = arguments
    frame = st.simulate_gains(design, covariates, 1.0, VARIANCES, np.random.default_rng(100 + seed),
                              fixed=FIXED)
    report = st.fit(frame)[1]
    params, slopes = report.params, report.slopes
    return ([params.loc[t, "wald_low"] <= v <= params.loc[t, "wald_high"] for t, v in FIXED.items()]
            + [slopes.loc[g, "wald_low"] <= 1.0 <= slopes.loc[g, "wald_high"]
               for g in (st.AVERAGE_SLOPE, "classification")])


def test_wald_intervals_cover_the_truth_at_close_to_the_nominal_rate(design, covariates,
                                                                    on_both_cores):
    hits = on_both_cores(wald_hits, [(design, covariates, seed) for seed in range(100)])
    coverage = np.mean(hits, axis=0)
    # Nominal 0.95. Wald z intervals for language-level terms with 24 languages run a little
    # below it (a t with ~19 df would give 0.935 for the z interval); 100 draws have sd ~0.025,
    # so 0.855 is three sd under 0.935: a real miscalibration fails, chance does not.
    assert (coverage >= 0.855).all(), coverage


def test_likelihood_ratio_test_counts_the_morphology_terms(design, covariates):
    strong = st.simulate_gains(design, covariates, 1.0, VARIANCES, np.random.default_rng(1))
    test = st.likelihood_ratio_test(strong)
    assert test["df"] == 4  # the average slope and three sum-coded group deviations
    assert test["p_value"] < 0.01
    assert all(not report.reml for report in test["reports"])


def rejects(arguments) -> bool:
    """Whether the likelihood-ratio test with these random effects rejects at 5% on a set."""
    frame, random_effects = arguments
    return st.likelihood_ratio_test(frame, random_effects=random_effects)["p_value"] < 0.05


def test_the_main_test_holds_its_level_where_the_old_model_did_not(design, covariates,
                                                                   on_both_cores):
    """Null data (no morphology effect) in which a language's gain varies by target task (SD
    1.0): the old model (language, target task and intermediate task intercepts only) rejects
    in about half of the sets; the model with every crossing close to 5%."""
    null = dict(VARIANCES, **{"language:target_task": 1.0})
    states = np.random.SeedSequence(21).generate_state(60)
    frames = [st.simulate_gains(design, covariates, 0.0, null, np.random.default_rng(state))
              for state in states]
    new = np.mean(on_both_cores(rejects, [(f, st.RANDOM_EFFECTS) for f in frames]))
    old = np.mean(on_both_cores(rejects, [(f, st.RANDOM_EFFECTS[:3]) for f in frames[:30]]))
    assert new < 0.15, new
    assert old > 0.3, old


def test_a_variance_at_zero_is_reported_as_singular(design, covariates):
    frame = st.simulate_gains(design, covariates, 1.0, dict(VARIANCES, intermediate_task=0.0),
                              np.random.default_rng(5))
    _, report = st.fit(frame)
    assert "intermediate_task" in report.singular
    assert "intermediate_task" in report.variance_components  # reported, not dropped
    assert any("boundary" in message for message in report.warnings)
    assert "intermediate_task" in report.summary()["singular_components"]


def test_a_component_the_design_cannot_separate_is_dropped_by_rule(covariates):
    # each language in one target task only: language x target task is the language grouping,
    # and language x intermediate task has one level per cell
    design = st.Design(tasks={"xnli": tuple(covariates.index[:12]),
                              "udpos": tuple(covariates.index[12:])},
                       intermediate_tasks=("mnli", "squad", "multi"), seeds=(1, 2))
    frame = st.simulate_gains(design, covariates, 1.0, VARIANCES, np.random.default_rng(6))
    _, report = st.fit(frame, "gain ~ morph")
    assert report.dropped_components == {
        "language:target_task": "the same grouping as an earlier component",
        "language:intermediate_task": "one level per cell: the same as the cell component"}
    assert any("language:target_task dropped" in message for message in report.warnings)


def test_a_failing_optimiser_is_recorded_and_the_next_one_used(design, covariates):
    frame = st.simulate_gains(design, covariates, 1.0, VARIANCES, np.random.default_rng(2))
    _, report = st.fit(frame, optimisers=("no-such-method", "lbfgs"))
    assert report.optimiser == "lbfgs"
    assert report.attempts[0]["optimiser"] == "no-such-method" and "error" in report.attempts[0]
    with pytest.raises(st.AnalysisError, match="every optimiser failed"):
        st.fit(frame, optimisers=("no-such-method",))


def test_bootstrap_is_the_same_in_parallel_and_brackets_the_estimate(design, covariates, caplog):
    frame = st.simulate_gains(design, covariates, 1.0, VARIANCES, np.random.default_rng(4))
    result, _ = st.fit(frame)
    caplog.set_level("INFO", logger="stilts_core")
    serial = st.parametric_bootstrap(result, frame, reps=6, n_jobs=1, seed=11)
    progress = [record.getMessage() for record in caplog.records]
    parallel = st.parametric_bootstrap(result, frame, reps=6, n_jobs=2, seed=11)
    assert progress[-1] == "[stats] bootstrap replicates: 6/6" and len(progress) > 1
    assert list(serial.index) == [
        "morph", *(f"morph:C(task_group, Sum)[S.{g}]" for g in GROUPS[:3]),
        *(f"slope: {name}" for name in (st.AVERAGE_SLOPE, *GROUPS))]
    assert (serial["reps"] == 6).all()
    # the same replicate seeds, split over workers: the same draws up to order
    assert np.allclose(np.sort(serial["bootstrap_sd"]), np.sort(parallel["bootstrap_sd"]))
    assert (serial["bootstrap_low"] < serial["bootstrap_high"]).all()


def test_simulation_draws_every_component(design, covariates):
    """Each component's spread shows in the simulated gains: with only language x target task
    switched on, gains are equal within a language-task pair and differ between pairs."""
    only = {name: 0.0 for name in VARIANCES} | {"language:target_task": 4.0}
    frame = st.simulate_gains(design, covariates, 0.0, only, np.random.default_rng(8))
    spread = frame.groupby(["language", "target_task"])["gain"]
    assert (spread.std() < 1e-12).all()
    assert spread.mean().std() == pytest.approx(2.0, rel=0.2)
    with pytest.raises(st.AnalysisError, match="variances must give exactly"):
        st.simulate_gains(design, covariates, 0.0, {"language": 1.0}, np.random.default_rng(8))


def test_compare_indices_fits_each_on_the_common_languages(results, languages, indices_wide):
    gains = st.gains_table(results)
    table = st.compare_indices(gains, indices_wide, languages, [INDEX, "mean_word_length"])
    common = table.attrs["languages"]
    assert set(common) <= set(gains["language"])
    assert (table["n_languages"] == len(common)).all()
    assert (table["p_holm"] >= table["p_value"]).all()
    assert table["delta_aic"].min() == 0
    assert (table["wald_low"] < table["average_slope"]).all()


def test_leave_one_out_finds_the_language_that_carries_the_slope(results, languages,
                                                                indices_wide):
    frame = st.analysis_frame(st.gains_table(results), indices_wide, languages, INDEX)
    top = frame.groupby("language")["morph"].first().idxmax()
    # the most complex language gains 15 points more everywhere: it alone steepens the slope
    leveraged = frame.assign(gain=frame["gain"] + 15 * (frame["language"] == top))
    table = st.leave_one_out(leveraged)
    assert sorted(table["language"]) == sorted(frame["language"].unique())
    assert table.loc[0, "language"] == top  # sorted by the size of the shift
    assert table.loc[0, "shift"] < 0 and table["converged"].all()
    assert table.attrs["full_estimate"] == pytest.approx(
        st.fit(leveraged)[1].slopes.loc[st.AVERAGE_SLOPE, "estimate"])
    others = table.iloc[1:]
    assert others["shift"].abs().max() < abs(table.loc[0, "shift"])


# --- power ----------------------------------------------------------------------------------------

def test_detectable_slope_interpolates_between_simulated_slopes():
    curve = pd.DataFrame({"slope": [0.0, 0.5, 1.0], "power": [0.05, 0.6, 1.0]})
    assert st.detectable_slope(curve) == pytest.approx(0.5 + 0.5 * (0.8 - 0.6) / 0.4)
    assert st.detectable_slope(curve.assign(power=[0.0, 0.1, 0.2])) is None


def test_power_rises_with_the_true_slope(design, covariates):
    curve = st.power_curve(design, covariates, [0.0, 3.0], VARIANCES, reps=4, test="wald",
                           n_jobs=2, seed=0)
    power = dict(zip(curve["slope"], curve["power"], strict=True))
    assert power[3.0] == 1.0
    assert power[0.0] <= 0.5
    assert (curve["power_low"] <= curve["power"]).all()
    with pytest.raises(st.AnalysisError, match="test must be one of"):
        st.power_curve(design, covariates, [0.0], VARIANCES, reps=1, test="score")


def test_the_xtreme_r_design_uses_each_tasks_own_languages():
    design = st.xtreme_r_design(["fi", "tr", "de"])
    assert design.tasks["xnli"] == ("de", "tr")
    assert "xcopa" in design.tasks and design.tasks["xcopa"] == ("tr",)
    assert design.seeds == (1, 2, 3)
    assert set(design.intermediate_tasks) <= set(intermediate_choices())
    assert len(design.intermediate_tasks) == 10  # Phang et al.'s nine and the mixture


# --- export ---------------------------------------------------------------------------------------

def test_stats_export_writes_the_data_and_fits(results, tmp_path):
    from stilts_core.cli import main

    path = tmp_path / "results.parquet"
    results.to_parquet(path)
    assert main(["stats", "export", "--results", str(path), "--index", INDEX,
                 "--output", str(tmp_path / "out")]) == 0
    data = pd.read_csv(tmp_path / "out" / f"analysis_{INDEX}.csv")
    assert len(data) == 24 * 4 * 3 * 2 and {"gain", "morph", "language"} <= set(data.columns)
    summary = json.loads((tmp_path / "out" / f"fit_{INDEX}.json").read_text())
    assert summary["lme4"]["formula"] == st.lme4_formula(st.MAIN_FORMULA)
    assert "REML = TRUE" in summary["lme4"]["call"]
    assert summary["reml_fit"]["reml"] and not summary["ml_fit"]["reml"]
    assert summary["likelihood_ratio_test"]["df"] == 4
    terms = [row["term"] for row in summary["reml_fit"]["fixed_effects"]]
    assert terms[:2] == ["Intercept", "morph"]
    assert [row["task_group"] for row in summary["reml_fit"]["slopes"]] == [st.AVERAGE_SLOPE,
                                                                            *GROUPS]
    assert set(summary["reml_fit"]["variance_components"]) == {*st.RANDOM_INTERCEPTS, "cell",
                                                               "residual"}


def test_stats_export_refuses_a_formula_without_a_test(results, tmp_path, capsys):
    from stilts_core.cli import main

    path = tmp_path / "results.parquet"
    results.to_parquet(path)
    assert main(["stats", "export", "--results", str(path), "--index", INDEX,
                 "--formula", "gain ~ latin_script", "--output", str(tmp_path / "out")]) == 2
    assert "'gain ~ latin_script' has no term in 'morph'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_wilson_interval_holds_the_proportion_even_at_zero_and_one():
    """At 0 or 1 successes per trial the exact bound is the proportion itself; rounding must not
    put it on the wrong side (a power figure's error bars would be negative)."""
    n = np.arange(1, 501)
    for successes in (np.zeros_like(n), n):
        low, high = st.wilson(successes, n)
        p = successes / n
        assert (low <= p).all() and (high >= p).all()
        assert (low >= 0).all() and (high <= 1).all()
    low, high = st.wilson(np.array([8]), np.array([10]))
    assert low[0] == pytest.approx(0.4902, abs=1e-4) and high[0] == pytest.approx(0.9433, abs=1e-4)


def _blas_threads(_args) -> list[int]:
    import threadpoolctl

    return [pool["num_threads"] for pool in threadpoolctl.threadpool_info()
            if pool["user_api"] == "blas"]


def test_statistics_workers_run_one_blas_thread_each():
    """Workers that kept the parent's BLAS threads oversubscribed two cores thirtyfold."""
    counts = st.in_chunks(_blas_threads, lambda chunk: chunk, [0, 1], 2, "threads")
    assert counts and all(count == 1 for count in counts)


def test_stats_export_fits_with_one_blas_thread(tmp_path, monkeypatch):
    """Its BLAS threads spinning for cores a training run held made an 11 s export take 212 s."""
    from stilts_core.cli import main
    from stilts_core.paths import data_dir

    during = []

    def export(*args) -> list:
        during.append(_blas_threads(None))
        return []

    monkeypatch.setattr(st, "export_analysis", export)
    with threadpoolctl.threadpool_limits(4):  # as many as a larger machine gives by default
        assert main(["stats", "export", "--results", str(data_dir() / "real_results" / "e5_study_v2.parquet"),
                     "--index", "mattr_over_english", "--missing", "exclude",
                     "--output", str(tmp_path)]) == 0
        assert set(_blas_threads(None)) == {4}  # the caller's own setting, back afterwards
    assert during and set(during[0]) == {1}


def test_lme4_formula_leaves_out_the_components_a_fit_dropped():
    """One target task: lme4 must not be asked for a one-level grouping or one fitted twice."""
    dropped = {"target_task": "one level only", "language:target_task": "same grouping",
               "language:intermediate_task": "same as the cell",
               "target_task:intermediate_task": "same grouping"}
    assert st.lme4_formula("gain ~ morph", dropped) == (
        "gain ~ morph + (1 | language) + (1 | intermediate_task) "
        "+ (1 | language:target_task:intermediate_task)")
