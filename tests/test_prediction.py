"""Predictive check: a held-out language's own gains never reach its predictions, the shared
task intercepts do, a term the training languages cannot inform is left out, and on data with a
known truth a real slope makes the morphology model predict held-out languages better while a
null slope does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stilts_core.analysis import prediction as pr
from stilts_core.analysis import statistics as st
from stilts_core.analysis.morphology import read_indices, wide_view

INDEX = "mattr_over_english"
# languages differ little beyond their index; the task pairs differ a lot
VARIANCES = {"language": 0.25, "target_task": 1.0, "intermediate_task": 0.5,
             "language:target_task": 0.1, "language:intermediate_task": 0.1,
             "target_task:intermediate_task": 1.0, "cell": 0.1, "residual": 0.5}

pytestmark = pytest.mark.usefixtures("one_blas_thread")



@pytest.fixture(scope="module")
def covariates(languages) -> pd.DataFrame:
    return st.simulation_covariates(languages, wide_view(read_indices()), INDEX).iloc[:20]


@pytest.fixture(scope="module")
def design(covariates) -> st.Design:
    """20 real languages x 2 target tasks (two task groups) x 3 intermediate tasks x 2 seeds."""
    return st.Design(tasks={t: tuple(covariates.index) for t in ("xnli", "tatoeba")},
                     intermediate_tasks=("mnli", "squad", "multi"), seeds=(1, 2))


def simulated(design, covariates, slope: float, seed: int, variances=VARIANCES) -> pd.DataFrame:
    return st.simulate_gains(design, covariates, slope, variances, np.random.default_rng(seed))


def test_a_held_out_languages_own_gains_never_reach_its_predictions(design, covariates,
                                                                    languages):
    frame = simulated(design, covariates, 1.0, 0)
    frame = frame[frame["language"].isin(covariates.index[:6])]  # 6 folds of refits suffice
    held = frame["language"].iloc[0]
    shifted = frame.assign(gain=frame["gain"] + 25.0 * (frame["language"] == held))
    before, after = (pr.held_out_predictions(f, languages, hold_outs=("language",))
                     for f in (frame, shifted))
    mine = after["unit"] == held
    assert np.allclose(after.loc[mine, "observed"], before.loc[mine, "observed"] + 25.0)
    assert np.allclose(after.loc[mine, "predicted"], before.loc[mine, "predicted"], atol=1e-6)
    # the other folds train on the shifted language, so theirs move
    assert not np.allclose(after.loc[~mine, "predicted"], before.loc[~mine, "predicted"])
    assert set(after["model"]) == set(pr.MODELS) and after.attrs["refit"]
    assert len(after) == 2 * frame.groupby(pr.CELL_COLUMNS).ngroups  # every cell, both models


def test_the_task_pairs_intercepts_are_predicted_for_an_unseen_language(covariates, languages):
    """The gains differ mostly by target task x intermediate task (SD 4 over 12 pairs): a
    prediction from the fixed effects alone misses by about the spread of the cells, one with
    the pairs' conditional intercepts by far less."""
    design = st.Design(tasks={t: tuple(covariates.index[:8]) for t in ("xnli", "tatoeba", "panx")},
                       intermediate_tasks=("mnli", "squad", "multi", "sst2"), seeds=(1, 2))
    variances = dict(VARIANCES, **{"target_task:intermediate_task": 16.0, "target_task": 0.0,
                                   "intermediate_task": 0.0})
    frame = simulated(design, covariates, 0.0, 1, variances)
    predictions = pr.held_out_predictions(frame, languages, hold_outs=("language",), refit=False)
    rmse = pr.prediction_error(predictions).set_index("metric").loc["rmse", "covariates"]
    spread = frame.groupby(pr.CELL_COLUMNS)["gain"].mean().std()
    assert spread > 2
    assert rmse < 0.4 * spread, (rmse, spread)


def test_a_term_the_training_languages_cannot_inform_is_left_out(design, covariates, languages):
    frame = simulated(design, covariates, 1.0, 2)
    families = frame["language"].map(languages.set_index("iso639_1")["family"])
    without = frame[families != "Indo-European"]
    assert without["indo_european"].nunique() == 1
    reduced = pr.estimable_design(st.MAIN_FORMULA, without)[0]
    assert "indo_european" not in reduced and "log_pretraining_size" in reduced
    assert pr.estimable_design(st.MAIN_FORMULA, frame)[0] == st.MAIN_FORMULA
    predictions = pr.held_out_predictions(frame, languages, hold_outs=("family",), refit=False)
    assert set(predictions["unit"]) == set(families)
    assert predictions["predicted"].notna().all()


def test_an_unknown_hold_out_is_refused(design, covariates, languages):
    with pytest.raises(st.AnalysisError, match="a hold-out is one of"):
        pr.held_out_predictions(simulated(design, covariates, 1.0, 3), languages,
                                hold_outs=("genus",))


def test_the_error_is_pooled_over_cells_and_the_difference_paired_over_units():
    predictions = pd.DataFrame({
        "hold_out": "language", "unit": ["a", "a", "b", "a", "a", "b"],
        "model": ["morphology"] * 3 + ["covariates"] * 3,
        "error": [1.0, -1.0, 2.0, 1.0, -1.0, 2.0]})
    row = pr.prediction_error(predictions, reps=200).iloc[0]
    assert row["metric"] == "rmse" and row["n_units"] == 2 and row["n_cells"] == 3
    assert row["morphology"] == pytest.approx(np.sqrt(6 / 3))
    # the same errors under both models: every paired resample differs by exactly 0
    assert (row["difference"], row["difference_low"], row["difference_high"]) == (0, 0, 0)
    mae = pr.prediction_error(predictions.assign(error=predictions["error"] * [1, 1, 1, 2, 2, 2]),
                              reps=200).iloc[1]
    assert mae["metric"] == "mae"
    assert mae["difference"] == pytest.approx(4 / 3 - 8 / 3)
    assert mae["difference_low"] <= mae["difference"] <= mae["difference_high"] < 0


def test_keeping_the_full_fits_variances_predicts_as_refitting_them_does(design, covariates,
                                                                        languages):
    frame = simulated(design, covariates, 1.0, 4)
    frame = frame[frame["language"].isin(covariates.index[:6])]
    refitted, kept = (pr.held_out_predictions(frame, languages, hold_outs=("language",),
                                              refit=refit) for refit in (True, False))
    assert not kept.attrs["refit"]
    gap = (refitted["predicted"] - kept["predicted"]).abs()
    assert 0 < gap.max() < 0.1 * refitted["error"].abs().mean(), gap.max()


@pytest.mark.parametrize("slope,better", [(2.0, True), (0.0, False)])
def test_a_true_slope_predicts_held_out_languages_better_and_a_null_does_not(
        design, covariates, languages, slope, better):
    """Two simulated sets each; language intercepts (SD 0.5) are small beside a slope of 2
    per SD. With the slope, every set's paired bootstrap interval of the RMSE difference
    (morphology - covariates) lies below 0; without it, no set's does."""
    highs = []
    for seed in range(10, 12):
        predictions = pr.held_out_predictions(simulated(design, covariates, slope, seed), languages,
                                              hold_outs=("language",), refit=False)
        rmse = pr.prediction_error(predictions).set_index("metric").loc["rmse"]
        highs.append(rmse["difference_high"])
    assert [high < 0 for high in highs] == [better] * 2, highs
