"""Morphology beyond tokenisation and size: the languages' correlation table, family association
and VIFs against independent computations, the fertility frame's exclusions, and the nested
likelihood-ratio tests of index and fertility, whose level is checked on null data with the
real languages' correlated index and fertility values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from stilts_core.analysis import collinearity as co
from stilts_core.analysis import statistics as st

INDEX = "mattr_over_english"
VARIANCES = st.PLAUSIBLE_VARIANCES

pytestmark = pytest.mark.usefixtures("one_blas_thread")



@pytest.fixture(scope="module")
def covariates(languages, indices_wide) -> pd.DataFrame:
    """24 real languages with the index and fertility, both standardised over them (their
    correlation is the real one, about 0.88)."""
    base = st.simulation_covariates(languages, indices_wide, INDEX)
    fertility = indices_wide[co.FERTILITY].reindex(base.index).dropna()
    base = base.loc[fertility.index].iloc[:24]
    fertility = fertility.loc[base.index]
    return base.assign(fertility=(fertility - fertility.mean()) / fertility.std())


@pytest.fixture(scope="module")
def design(covariates) -> st.Design:
    """24 languages x 2 target tasks (two task groups) x 3 intermediate tasks x 2 seeds."""
    return st.Design(tasks={t: tuple(covariates.index) for t in ("xnli", "tatoeba")},
                     intermediate_tasks=("mnli", "squad", "multi"), seeds=(1, 2))


@pytest.fixture(scope="module")
def gains(design, covariates) -> pd.DataFrame:
    results = st.simulated_results(design, covariates, 1.0, VARIANCES, seed=5)
    return st.gains_table(results)


# --- the languages' table -------------------------------------------------------------------------

def test_correlations_are_pairwise_over_the_languages_that_have_both():
    table = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0, 5.0], "b": [2.0, 1.0, 4.0, 3.0, np.nan],
                          "c": [1.0, 1.0, 1.0, 1.0, 1.0], "family": list("xxyyz")})
    pairs = co.correlations(table).set_index(["first", "second"])
    assert pairs.loc[("a", "b"), "n_languages"] == 4
    assert pairs.loc[("a", "b"), "pearson"] == pytest.approx(np.corrcoef([1, 2, 3, 4],
                                                                         [2, 1, 4, 3])[0, 1])
    assert pairs.loc[("a", "b"), "spearman"] == pytest.approx(0.6)
    assert np.isnan(pairs.loc[("a", "c"), "pearson"])  # a constant has no correlation
    assert "family" not in set(pairs.index.get_level_values(0))


def test_family_association_is_the_r_squared_of_a_one_way_anova():
    rng = np.random.default_rng(0)
    families = np.repeat(["a", "b", "c", "d", "e"], [8, 6, 4, 1, 1])
    table = pd.DataFrame({"x": rng.normal(size=20) + (families == "a"), "family": families})
    row = co.family_association(table).iloc[0]
    anova = smf.ols("x ~ C(family)", table).fit()
    assert row["eta_squared"] == pytest.approx(anova.rsquared)
    assert row["epsilon_squared"] == pytest.approx(anova.rsquared_adj)
    assert (row["n_languages"], row["n_families"]) == (20, 5)


def test_the_language_table_has_one_row_per_analysed_language(gains, languages, indices_wide):
    frame = st.analysis_frame(gains, indices_wide, languages, INDEX)
    table = co.language_table(frame, indices_wide, languages, [INDEX, "wals_synthesis"])
    assert list(table.index) == sorted(frame["language"].unique())
    assert list(table.columns) == [INDEX, "wals_synthesis", co.FERTILITY,
                                   *co.LANGUAGE_COVARIATES, "family"]
    assert table["wals_synthesis"].isna().any()  # kept, and pairs use the languages that have it
    with pytest.raises(st.AnalysisError, match="no index"):
        co.language_table(frame, indices_wide, languages, ["no_such_index"])


def simulated(design, covariates, seed: int, slope: float = 0.0,
              fertility: float = 0.0) -> pd.DataFrame:
    return st.simulate_gains(design, covariates, slope, VARIANCES, np.random.default_rng(seed),
                             fixed={"fertility": fertility})


def test_vif_is_computed_on_one_row_per_language(design, covariates):
    frame = simulated(design, covariates, 0)
    table = co.language_level_vif(frame, co.nested_formulas(st.MAIN_FORMULA)["both"])
    assert list(table["term"]) == ["morph", *co.LANGUAGE_COVARIATES, "fertility"]  # no task-group column
    assert (table["n_languages"] == 24).all()
    per_language = frame.groupby("language")[["morph", *co.LANGUAGE_COVARIATES, "fertility"]].first()
    others = " + ".join([*co.LANGUAGE_COVARIATES, "fertility"])
    r_squared = smf.ols(f"morph ~ {others}", per_language).fit().rsquared
    assert table.set_index("term").loc["morph", "vif"] == pytest.approx(1 / (1 - r_squared))
    assert table.set_index("term").loc["morph", "vif"] > 3  # the real index and fertility, r ~ 0.88


# --- the nested tests -----------------------------------------------------------------------------

def test_fertility_enters_the_way_the_index_does():
    assert co.fertility_terms(st.MAIN_FORMULA) == ["fertility", "fertility:C(task_group, Sum)"]
    alignment = "gain ~ morph + log_pretraining_size + latin_script + indo_european"
    formulas = co.nested_formulas(alignment)
    assert formulas == {
        "fertility": "gain ~ log_pretraining_size + latin_script + indo_european + fertility",
        "index": alignment,
        "both": f"{alignment} + fertility"}
    # morph_raw is another variable: only the index's own terms are mirrored
    assert co.fertility_terms("gain ~ morph + I(morph ** 2) + morph_raw") == [
        "fertility", "I(fertility ** 2)"]


def test_the_fertility_frame_lists_languages_without_fertility(gains, languages, indices_wide):
    lacking = indices_wide.copy()
    dropped = sorted(gains["language"].unique())[:2]
    lacking.loc[dropped, co.FERTILITY] = np.nan
    frame = co.fertility_frame(gains, lacking, languages, INDEX)
    assert frame.attrs["lacking_fertility"] == dropped
    assert set(dropped) <= set(frame.attrs["excluded_languages"])
    assert not set(dropped) & set(frame["language"])
    per_language = frame.groupby("language")[["fertility", "morph"]].first()
    assert per_language.mean().to_numpy() == pytest.approx([0, 0], abs=1e-12)
    assert per_language.std().to_numpy() == pytest.approx([1, 1])
    with pytest.raises(st.AnalysisError, match="fertility itself"):
        co.fertility_frame(gains, indices_wide, languages, co.FERTILITY)


def test_both_orders_count_the_added_columns_and_find_a_true_index_effect(design, covariates):
    tests = co.nested_tests(simulated(design, covariates, 1, slope=1.5)).set_index("test")
    assert list(tests["df"]) == [2, 2]  # the average slope and one group deviation, each way
    assert tests.loc["index beyond fertility", "p_value"] < 0.01
    # 24 languages less the intercept, the index, fertility and the three covariates
    assert list(tests["df_languages"]) == [18, 18]
    assert (tests["p_value_f"] >= tests["p_value"]).all()  # F(df, 18) has the heavier tail
    assert tests["converged"].all()
    with pytest.raises(st.AnalysisError, match="no 'fertility' column"):
        co.nested_tests(simulated(design, covariates, 1).drop(columns="fertility"))


def test_the_family_is_holm_adjusted_over_every_index_and_order(gains, languages, indices_wide):
    table = co.fertility_family(gains, indices_wide, languages, [INDEX, "word_entropy_over_english"])
    assert len(table) == 4
    assert table["p_holm"].to_numpy() == pytest.approx(st.holm(table["p_value"]).to_numpy())
    # the F reference is the one reported and adjusted; chi-square beside it, never smaller
    assert (table["p_value"] >= table["p_value_chi2"]).all()
    assert set(table.attrs["excluded_languages"]) == {INDEX, "word_entropy_over_english"}


def p_values(arguments) -> list[float]:
    design, covariates, seed, slope, fertility = arguments
    tests = co.nested_tests(simulated(design, covariates, seed, slope, fertility))
    return tests.set_index("test")["p_value_f"].tolist()  # the reference the book reports


def rejection_rates(design, covariates, sets: int, slope: float, fertility: float,
                    seed: int, on_both_cores) -> pd.Series:
    states = np.random.SeedSequence(seed).generate_state(sets).tolist()
    jobs = [(design, covariates, state, slope, fertility) for state in states]
    p = on_both_cores(p_values, jobs)
    return pd.Series((np.array(p) < 0.05).mean(axis=0), index=[name for name, *_ in co.ORDERS])


def test_each_order_holds_its_level_on_null_data_and_rejects_a_real_effect(design, covariates,
                                                                          on_both_cores):
    """Null for the index (the gain follows fertility, 2 points per SD, not the index) and null
    for fertility (it follows the index), with the real index-fertility correlation of about
    0.88. 40 sets each: a calibrated test rejects in 2 (sd 1.4); 0.15 fails a test that rejects
    three times too often. The other order, whose effect is real, rejects in about half of
    them (F with 18 between-language df; a test without power would reject in 2)."""
    index_null = rejection_rates(design, covariates, 40, slope=0.0, fertility=2.0, seed=7,
                                 on_both_cores=on_both_cores)
    fertility_null = rejection_rates(design, covariates, 40, slope=2.0, fertility=0.0, seed=8,
                                     on_both_cores=on_both_cores)
    assert index_null["index beyond fertility"] <= 0.15, index_null
    assert fertility_null["fertility beyond index"] <= 0.15, fertility_null
    assert index_null["fertility beyond index"] >= 0.3, index_null
    assert fertility_null["index beyond fertility"] >= 0.3, fertility_null
