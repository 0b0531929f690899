"""Alignment as a route to transfer: the points (seeds averaged within a language and intermediate
task, English left out, the retrieval layer), the within-language-and-task estimate checked
against statsmodels and the published rmcorr example, clear notes where it is not identified,
and its calibration by simulation with a known truth: language- and task-level confounding that
fools a pooled correlation, and a true slope recovered."""

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from stilts_core.analysis import alignment_transfer as at
from stilts_core.analysis import statistics as st
from stilts_core.analysis.morphology import read_indices, wide_view
from stilts_core.book.chapters import results as chapter
from stilts_core.runs.results import make_frame
from stilts_core.tasks.languages import read_languages_table

matplotlib.use("Agg")

RETRIEVAL = {"layer": -1, "pooling": "mean", "protocol": "encoder"}


def row(intermediate, language, seed, value, target="xnli", metric="accuracy", **settings):
    return {"model": "m", "intermediate_task": intermediate, "target_task": target,
            "language": language, "seed": seed, "split": "test", "metric": metric, "value": value,
            "provenance": "smoke run", "run_id": f"r-{intermediate}-{seed}",
            "settings": json.dumps(settings, sort_keys=True)}


# Per intermediate task and language: (alignment gain, transfer gain) of seed 1; seed 2 adds 2 to
# the alignment gain and 1 to the transfer gain, so a cell's means are these plus 1 and 0.5.
GAINS = {"mnli": {"de": (3, 2), "fi": (1, 0), "sw": (5, 4), "en": (0, 30)},
         "sst2": {"de": (-4, -1), "fi": (2, 1), "sw": (0, 0), "en": (0, -30)}}


@pytest.fixture(scope="module")
def table():
    """Tatoeba at the retrieval layer against the unseeded pretrained encoder and XNLI transfer
    for :data:`GAINS` (seeds 1 and 2; XNLI also seed 3, which Tatoeba lacks), with gains that
    must not count: dual-encoder Tatoeba scores and Tatoeba scores after target fine-tuning."""
    rows = [row("none", language, seed, 50.0 + seed) for language in ("de", "fi", "sw", "en")
            for seed in (1, 2, 3)]
    for intermediate, by_language in GAINS.items():
        for language, (alignment, transfer) in by_language.items():
            rows += [row(intermediate, language, seed, 50.0 + seed + transfer + (seed - 1))
                     for seed in (1, 2, 3)]
            for seed in (1, 2):
                tatoeba = 40.0 + alignment + 2 * (seed - 1)
                rows += [row(intermediate, language, seed, tatoeba, "tatoeba", **RETRIEVAL),
                         row(intermediate, language, seed, 99.0, "tatoeba",
                             **{**RETRIEVAL, "protocol": "dual_encoder"}),
                         row(intermediate, language, seed, 0.0, "tatoeba", fine_tuned_on="xnli",
                             **RETRIEVAL)]
    for language in ("de", "fi", "sw", "en"):
        rows += [row("none", language, None, 40.0, "tatoeba", **RETRIEVAL),
                 row("none", language, None, 40.0, "tatoeba", fine_tuned_on="xnli", **RETRIEVAL),
                 row("none", language, None, 10.0, "tatoeba",
                     **{**RETRIEVAL, "protocol": "dual_encoder"})]
    return make_frame(rows)


def test_points_average_the_seeds_both_gains_share_and_leave_english_out(table):
    pairs = at.gain_pairs(table).set_index(["intermediate_task", "language"])
    assert list(at.gain_pairs(table).columns) == [
        "provenance", "model", "target_task", "intermediate_task", "language", "alignment_gain",
        "transfer_gain", "n_seeds"]
    assert "en" not in pairs.index.get_level_values("language") and len(pairs) == 6
    for (intermediate, language), point in pairs.iterrows():
        alignment, transfer = GAINS[intermediate][language]
        assert point["alignment_gain"] == pytest.approx(alignment + 1)  # seeds 1 and 2, not 3
        assert point["transfer_gain"] == pytest.approx(transfer + 0.5)
        assert point["n_seeds"] == 2 and point["target_task"] == "xnli"


def test_two_settings_of_one_alignment_score_are_refused(table):
    layer_three = {**RETRIEVAL, "layer": 3}
    extra = make_frame([row("mnli", "de", 1, 41.0, "tatoeba", **layer_three),
                        row("none", "de", None, 40.0, "tatoeba", **layer_three)])
    with pytest.raises(ValueError, match="several tatoeba retrieval gains"):
        at.gain_pairs(pd.concat([table, extra], ignore_index=True))


def test_fine_tuning_pairs_take_the_change_at_the_retrieval_layer():
    """Retrieval at layer -1 is the top layer (2) of the alignment rows; the change there is
    the point's x, the other layers' changes are not; direct fine-tuning has no point."""
    rows = []
    for language, change in {"de": 3.0, "fi": -1.0, "en": 9.0}.items():
        for intermediate in ("none", "mnli"):
            rows += [row(intermediate, language, 1, 50.0 + (intermediate == "mnli") * 2)]
            for layer in (0, 1, 2):
                aligned = {"metric": "alignment_retrieval_accuracy", "target": "tatoeba",
                           "layer": layer, "pooling": "mean"}
                rows += [row(intermediate, language, 1, 40.0, **aligned),
                         row(intermediate, language, 1, 40.0 + (change if layer == 2 else 20.0),
                             fine_tuned_on="xnli", **aligned)]
        rows.append(row("none", language, None, 30.0, "tatoeba", **RETRIEVAL))
    tuned = at.fine_tuning_pairs(make_frame(rows)).set_index("language")
    assert list(tuned.index) == ["de", "fi"] and set(tuned["intermediate_task"]) == {"mnli"}
    assert tuned.loc["de", "alignment_change"] == 3.0 and tuned.loc["fi", "alignment_change"] == -1.0
    assert (tuned["transfer_gain"] == 2.0).all() and (tuned["target_task"] == "xnli").all()


def test_a_table_without_alignment_or_transfer_has_no_points_and_says_why(table):
    no_alignment = table[table["target_task"] != "tatoeba"]
    assert at.gain_pairs(no_alignment).empty and at.fine_tuning_pairs(no_alignment).empty
    assert "no alignment gain" in chapter.alignment_transfer_missing(no_alignment, at.ALIGNMENT_GAIN)
    no_transfer = table[table["target_task"] != "xnli"]
    assert at.gain_pairs(no_transfer).empty
    assert "no zero-shot transfer gain" in chapter.alignment_transfer_missing(no_transfer,
                                                                              at.ALIGNMENT_GAIN)
    assert "no alignment after target fine-tuning" in chapter.alignment_transfer_missing(
        table, at.ALIGNMENT_CHANGE)


# --- the estimate --------------------------------------------------------------------------------

def points_with_slope(seed=0, slope=0.5, **arguments):
    return at.simulate_points(np.random.default_rng(seed), slope=slope, **arguments)


def test_one_residual_variance_is_the_ols_fit_with_both_blocks_as_factors():
    points = points_with_slope(languages=12, intermediate_tasks=4, task_sd=2.0)
    found = at.within_association(points, variance_by=None, robust=False)
    ols = smf.ols("transfer_gain ~ C(language) + C(intermediate_task) + alignment_gain",
                  data=points).fit()
    low, high = ols.conf_int().loc["alignment_gain"]
    assert found["slope"] == pytest.approx(ols.params["alignment_gain"])
    assert (found["slope_low"], found["slope_high"]) == pytest.approx((low, high))
    assert found["p"] == pytest.approx(ols.pvalues["alignment_gain"])
    assert found["df"] == ols.df_resid == 12 * 4 - 12 - 3 - 1
    t = ols.tvalues["alignment_gain"]
    assert found["r"] == pytest.approx(t / np.sqrt(t * t + ols.df_resid))  # the partial correlation
    assert found["pooled_r"] == pytest.approx(stats.pearsonr(points["alignment_gain"],
                                                             points["transfer_gain"])[0])


def test_a_variance_per_task_is_weighted_least_squares_with_the_larger_of_two_errors():
    """Weights from the OLS fit's residuals per task; the slope's standard error the larger of
    the model-based one and HC2, both as statsmodels computes them for that weighted fit."""
    points = points_with_slope(seed=3, languages=12, intermediate_tasks=3, noisy_task_scale=3.0)
    formula = "transfer_gain ~ C(language) + C(intermediate_task) + alignment_gain"
    ols = smf.ols(formula, data=points).fit()
    share = 1 - ols.get_influence().hat_matrix_diag
    pooled = ols.ssr / ols.df_resid
    by_task = pd.DataFrame({"task": points["intermediate_task"], "square": ols.resid ** 2,
                            "share": share}).groupby("task").sum()
    variance = (by_task["square"] + 3 * pooled) / (by_task["share"] + 3)
    wls = smf.wls(formula, data=points,
                  weights=1 / points["intermediate_task"].map(variance)).fit()
    modelled, found = at.within_association(points, robust=False), at.within_association(points)
    assert found["df"] == wls.df_resid - 2  # one less per variance beyond the first
    assert found["slope"] == modelled["slope"] == pytest.approx(wls.params["alignment_gain"])

    def se(found):
        return (found["slope_high"] - found["slope"]) / stats.t.ppf(0.975, found["df"])

    model_se = wls.bse["alignment_gain"] * np.sqrt(wls.df_resid / found["df"])
    hc2 = wls.get_robustcov_results(cov_type="HC2").bse[list(wls.params.index).index(
        "alignment_gain")]
    assert se(modelled) == pytest.approx(model_se)
    assert se(found) == pytest.approx(max(model_se, hc2))
    widen = se(found) / model_se  # here HC2 is the larger; r's Fisher interval widens with it
    assert widen > 1.2
    assert np.arctanh(found["r_high"]) - np.arctanh(found["r"]) == pytest.approx(
        widen * 1.959964 / np.sqrt(found["df"] - 3))


def test_the_fisher_interval_gives_the_published_rmcorr_example():
    """rmcorr's README, Bland and Altman's 1995 data: r = -0.5067697 on 38 df, 95% interval
    -0.7112297 to -0.223255."""
    low, high = at.fisher_interval(-0.5067697, 38)
    assert low == pytest.approx(-0.7112297, abs=1e-6) and high == pytest.approx(-0.223255, abs=1e-6)


def test_one_intermediate_task_per_language_is_not_identified_and_says_so():
    points = points_with_slope(intermediate_tasks=1)
    found = at.within_association(points)
    assert np.isnan(found["r"]) and np.isnan(found["slope"]) and np.isnan(found["p"])
    assert found["note"].startswith("not identified: every language has one intermediate task")
    assert np.isfinite(found["pooled_r"])
    few = at.within_association(points_with_slope(languages=3, intermediate_tasks=2))
    assert np.isnan(few["r"]) and few["note"].startswith("too few points")


def test_each_target_task_is_estimated_apart():
    pairs = pd.concat([points_with_slope(seed=2, slope=slope, languages=30).assign(
        provenance="simulation", model="m", target_task=task)
        for task, slope in (("panx", 0.0), ("xnli", 2.0))], ignore_index=True)
    found = at.associations(pairs).set_index("target_task")
    assert list(found.index) == ["panx", "xnli"] and (found["points"] == 90).all()
    assert found.loc["xnli", "slope_low"] > 1.0 and found.loc["panx", "slope_low"] < 0.0
    text = chapter.alignment_transfer_text(at.associations(pairs))
    assert f"r = {found.loc['xnli', 'r']:.2f} (95% interval {found.loc['xnli', 'r_low']:.2f}" in text
    shown = chapter.alignment_transfer_table(at.associations(pairs))
    assert list(shown["target_task"]) == ["panx", "xnli"]
    figures = chapter.alignment_transfer_figure(pairs, at.associations(pairs), at.ALIGNMENT_GAIN)
    assert len(figures) == 1 and len(figures[0].axes) == 2


# --- calibration: known truth ------------------------------------------------------------------

def rates(found: pd.DataFrame, setting: str) -> pd.Series:
    return found[found["setting"] == setting].set_index("method")["rejection_rate"]


def test_confounded_null_keeps_its_level_where_the_pooled_correlation_does_not():
    """No association within language and intermediate task, but language effects shared by
    both gains and task effects: the book's test rejects about 5%; the pooled correlation and
    blocking on language alone (which counts each task's shift once per language) do not."""
    found = at.calibration({"null": {"task_sd": 2.0}}, reps=250, seed=11, methods=(
        at.BOOK_METHOD, "within language, one residual variance (Bakdash and Marusich)",
        "pooled Pearson correlation"))
    rate = rates(found, "null")
    assert 0.02 <= rate[at.BOOK_METHOD] <= 0.10
    assert rate["pooled Pearson correlation"] > 0.5
    assert rate["within language, one residual variance (Bakdash and Marusich)"] > 0.3


def test_a_true_slope_is_recovered_with_its_interval():
    found = at.calibration({"slope": {"slope": 0.5, "task_sd": 2.0, "languages": 20}},
                           reps=200, seed=12, methods=(at.BOOK_METHOD,)).iloc[0]
    assert found["mean_slope"] == pytest.approx(0.5, abs=0.05)
    assert 0.88 <= found["coverage"] <= 0.99 and found["rejection_rate"] > 0.6


def test_the_mixed_models_simulated_results_give_the_slope_their_variances_imply():
    """The generating model of the statistics chapters (:func:`statistics.simulate_gains`) gives
    each language x intermediate task an effect shared by its gains on every target task; within
    language and intermediate task it is the only link between Tatoeba and XNLI, so the slope is
    var(language:intermediate_task) / (that + var(cell) + var(residual) / seeds)."""
    covariates = st.simulation_covariates(read_languages_table(), wide_view(read_indices()),
                                          "mattr_over_english").iloc[:30]
    languages = tuple(covariates.index)
    design = st.Design(tasks={"xnli": languages, "tatoeba": languages},
                       intermediate_tasks=("mnli", "sst2", "qqp", "squad", "cosmos_qa", "multi"),
                       seeds=(1, 2, 3))
    variances = st.PLAUSIBLE_VARIANCES | {"language:intermediate_task": 1.0}
    truth = 1.0 / (1.0 + variances["cell"] + variances["residual"] / 3)
    pairs = at.gain_pairs(st.simulated_results(design, covariates, 1.0, variances, seed=5))
    (found,) = at.associations(pairs).to_dict("records")
    assert found["points"] == 180 and (pairs["n_seeds"] == 3).all()
    assert found["slope_low"] <= truth <= found["slope_high"]
    assert found["slope"] == pytest.approx(truth, abs=0.2)
