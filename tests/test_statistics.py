"""Mixed-effects analysis: schema validation of the analysis data, parameter recovery and
interval coverage on simulated data with known effects, the tests, bootstrap, power and export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from stilts_core import statistics as st
from stilts_core.languages import read_languages_table
from stilts_core.morphology import read_indices, wide_view
from stilts_core.tasks import intermediate_choices

INDEX = "mattr_over_english"
VARIANCES = {"language": 1.0, "target_task": 1.0, "intermediate_task": 0.5, "residual": 1.0}
FIXED = {"log_pretraining_size": 0.5, "latin_script": 0.3}


@pytest.fixture(scope="module")
def languages() -> pd.DataFrame:
    return read_languages_table()


@pytest.fixture(scope="module")
def indices_wide() -> pd.DataFrame:
    return wide_view(read_indices())


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


def test_a_missing_baseline_is_an_error_that_names_the_cell(results):
    dropped = results[~((results["intermediate_task"] == "none") & (results["language"] == "fi")
                        & (results["target_task"] == "xnli") & (results["seed"] == 2))]
    with pytest.raises(st.AnalysisError, match="without a direct fine-tuning baseline") as error:
        st.gains_table(dropped)
    assert "fi" in str(error.value) and "xnli" in str(error.value)


def test_a_duplicated_cell_is_an_error(results):
    twice = pd.concat([results, results.head(1).assign(run_id="another-run", value=1.0)])
    with pytest.raises(st.AnalysisError, match="(?s)more than once.*another-run"):
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


def test_formula_helpers():
    assert st.morph_terms(st.MAIN_FORMULA) == ["morph", "morph:task_group"]
    assert st.without_morph(st.MAIN_FORMULA) == (
        "gain ~ log_pretraining_size + latin_script + indo_european")
    assert st.lme4_formula("gain ~ morph") == (
        "gain ~ morph + (1 | language) + (1 | target_task) + (1 | intermediate_task)")


# --- recovery and coverage on simulated data with known effects ------------------------------------

def test_parameters_are_recovered(covariates):
    design = st.Design(tasks={t: tuple(covariates.index) for t in ("xnli", "udpos", "xquad",
                                                                     "tatoeba", "panx")},
                       intermediate_tasks=("mnli", "squad", "multi", "qqp", "sst2"),
                       seeds=(1, 2, 3))
    frame = st.simulate_gains(design, covariates, 1.0, VARIANCES, np.random.default_rng(7),
                              fixed=FIXED)
    _, report = st.fit(frame)
    assert report.converged and not report.singular
    params = report.params
    for term, truth in {"morph": 1.0, **FIXED, "morph:task_group[T.qa]": 0.0}.items():
        assert abs(params.loc[term, "estimate"] - truth) < 3 * params.loc[term, "std_error"], term
    assert report.variance_components["residual"] == pytest.approx(1.0, rel=0.1)
    assert report.variance_components["language"] == pytest.approx(1.0, rel=0.6)


def test_wald_intervals_cover_the_truth_at_close_to_the_nominal_rate(design, covariates):
    hits = []
    for seed in range(100):
        frame = st.simulate_gains(design, covariates, 1.0, VARIANCES,
                                  np.random.default_rng(100 + seed), fixed=FIXED)
        params = st.fit(frame, optimisers=("lbfgs", "bfgs"))[1].params
        hits.append([params.loc[t, "wald_low"] <= v <= params.loc[t, "wald_high"]
                     for t, v in {"morph": 1.0, **FIXED}.items()])
    coverage = np.mean(hits, axis=0)
    # Nominal 0.95. Wald z intervals for language-level terms with 24 languages run a little
    # below it (a t with ~19 df would give 0.935 for the z interval); 100 draws have sd ~0.025,
    # so 0.855 is three sd under 0.935: a real miscalibration fails, chance does not.
    assert (coverage >= 0.855).all(), coverage


def test_likelihood_ratio_test_counts_the_morphology_terms(design, covariates):
    strong = st.simulate_gains(design, covariates, 1.0, VARIANCES, np.random.default_rng(1))
    test = st.likelihood_ratio_test(strong)
    assert test["df"] == 4  # morph and its interaction with three of four task groups
    assert test["p_value"] < 0.01
    assert all(not report.reml for report in test["reports"])


def test_a_variance_at_zero_is_reported_as_singular(design, covariates):
    frame = st.simulate_gains(design, covariates, 1.0, dict(VARIANCES, intermediate_task=0.0),
                              np.random.default_rng(5))
    _, report = st.fit(frame)
    assert report.singular == ["intermediate_task"]
    assert any("boundary" in message for message in report.warnings)
    assert report.summary()["singular_components"] == ["intermediate_task"]


def test_a_failing_optimiser_is_recorded_and_the_next_one_used(design, covariates):
    frame = st.simulate_gains(design, covariates, 1.0, VARIANCES, np.random.default_rng(2))
    _, report = st.fit(frame, optimisers=("no-such-method", "lbfgs"))
    assert report.optimiser == "lbfgs"
    assert report.attempts[0]["optimiser"] == "no-such-method" and "error" in report.attempts[0]
    with pytest.raises(st.AnalysisError, match="every optimiser failed"):
        st.fit(frame, optimisers=("no-such-method",))


def test_bootstrap_is_the_same_in_parallel_and_brackets_the_estimate(design, covariates):
    frame = st.simulate_gains(design, covariates, 1.0, VARIANCES, np.random.default_rng(4))
    result, _ = st.fit(frame)
    progress = []
    serial = st.parametric_bootstrap(result, frame, reps=6, n_jobs=1, seed=11,
                                     log=progress.append)
    parallel = st.parametric_bootstrap(result, frame, reps=6, n_jobs=2, seed=11)
    assert progress[-1] == "[stats] bootstrap replicates: 6/6" and len(progress) > 1
    assert list(serial.index) == ["morph", "morph:task_group[T.qa]", "morph:task_group[T.retrieval]",
                                  "morph:task_group[T.structured_prediction]"]
    assert (serial["reps"] == 6).all()
    # the same replicate seeds, split over workers: the same draws up to order
    assert np.allclose(np.sort(serial["bootstrap_sd"]), np.sort(parallel["bootstrap_sd"]))
    assert (serial["bootstrap_low"] < serial["bootstrap_high"]).all()


def test_compare_indices_fits_each_on_the_common_languages(results, languages, indices_wide):
    gains = st.gains_table(results)
    table = st.compare_indices(gains, indices_wide, languages, [INDEX, "mean_word_length"])
    common = table.attrs["languages"]
    assert set(common) <= set(gains["language"])
    assert (table["n_languages"] == len(common)).all()
    assert (table["p_holm"] >= table["p_value"]).all()
    assert table["delta_aic"].min() == 0


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
        st.fit(leveraged)[0].fe_params[st.MORPH])
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
    assert summary["lme4"]["formula"].endswith("(1 | intermediate_task)")
    assert summary["reml_fit"]["reml"] and not summary["ml_fit"]["reml"]
    assert summary["likelihood_ratio_test"]["df"] == 4
    terms = [row["term"] for row in summary["reml_fit"]["fixed_effects"]]
    assert terms[:2] == ["Intercept", "morph"]
