"""Morphology beyond tokenisation and size: how the indices, tokenizer fertility, pretraining size,
script and family go together over the analysed languages, and whether an index explains the
gains beyond fertility (and fertility beyond the index).

A corpus index and subword fertility both grow with how many forms a language packs into a word,
and both correlate with pretraining size and script; a slope on one may be the other's. The
correlation table and the variance inflation factors show how entangled they are; the nested
likelihood-ratio tests (a declared secondary analysis with its own Holm family, the pre-registered
test untouched) ask what each adds to a model that has the other.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy import stats

from stilts_core.analysis import statistics as st

FERTILITY = "subword_fertility"
# the standardised fertility column of a fertility frame, as the formulas name it
FERTILITY_TERM = "fertility"
LANGUAGE_COVARIATES = ("log_pretraining_size", "latin_script", "indo_european")
# the two orders of the nested test: (name, the terms it adds, the terms the reduced model keeps)
ORDERS = (("index beyond fertility", "index", "fertility"),
          ("fertility beyond index", "fertility", "index"))


# --- the languages' table -------------------------------------------------------------------------

def language_table(frame: pd.DataFrame, indices_wide: pd.DataFrame, languages: pd.DataFrame,
                   indices: list[str]) -> pd.DataFrame:
    """One row per language of the analysis ``frame``: the raw value of each index and of
    subword fertility (empty where a language has none), the language covariates and the WALS
    family. Each language counts once, as it does in the slope's standard error."""
    unknown = sorted(set(indices) - set(indices_wide.columns))
    if unknown:
        raise st.AnalysisError(f"no index {unknown} in the morphology table; one of "
                               f"{sorted(indices_wide.columns)}")
    analysed = sorted(frame["language"].unique())
    values = indices_wide.reindex(analysed)[list(dict.fromkeys([*indices, FERTILITY]))]
    covariates = st.language_covariates(languages).loc[analysed, list(LANGUAGE_COVARIATES)]
    family = languages.set_index("iso639_1")["family"].loc[analysed]
    return values.join(covariates).assign(family=family).rename_axis("language")


def correlations(table: pd.DataFrame) -> pd.DataFrame:
    """Pearson and Spearman correlation of every pair of numeric columns over the languages
    that have both (long: one row per pair, with their number); for the 0/1 covariates Pearson
    is the point-biserial correlation."""
    numeric = [c for c in table.columns if c != "family"]
    rows = []
    for position, first in enumerate(numeric):
        for second in numeric[position + 1:]:
            pair = table[[first, second]].dropna().astype(float)
            constant = pair.nunique().min() < 2
            rows.append({"first": first, "second": second, "n_languages": len(pair),
                         "pearson": np.nan if constant else stats.pearsonr(*pair.T.values)[0],
                         "spearman": np.nan if constant else stats.spearmanr(*pair.T.values)[0]})
    return pd.DataFrame(rows)


def family_association(table: pd.DataFrame) -> pd.DataFrame:
    """How much of each numeric column's variance over languages lies between WALS families:
    eta squared (the correlation ratio squared, on the scale of r squared) and epsilon squared,
    the same less what ``k`` families explain by chance among ``n`` languages. With many
    one-language families eta squared is large by construction ((k - 1) / (n - 1) expected under
    no association), so epsilon squared is the one to read."""
    rows = []
    # indo_european is a function of the family (eta squared 1 by construction)
    for column in (c for c in table.columns if c not in ("family", "indo_european")):
        part = table[[column, "family"]].dropna()
        n, k = len(part), part["family"].nunique()
        total = float(((part[column] - part[column].mean()) ** 2).sum())
        means = part.groupby("family")[column].transform("mean")
        within = float(((part[column] - means) ** 2).sum())
        between = total - within
        rows.append({"variable": column, "n_languages": n, "n_families": k,
                     "eta_squared": between / total if total > 0 else np.nan,
                     "epsilon_squared": ((between - (k - 1) * within / (n - k)) / total
                                         if total > 0 and n > k else np.nan)})
    return pd.DataFrame(rows)


def language_level_design(frame: pd.DataFrame, formula: str) -> pd.DataFrame:
    """The formula's fixed-effect columns that are constant within each language (the index,
    fertility, the covariates; not the intercept), one row per language."""
    import patsy

    design = patsy.dmatrix(formula.split("~", 1)[1], frame, return_type="dataframe")
    design = design.drop(columns="Intercept", errors="ignore")
    by_language = design.groupby(frame["language"].to_numpy())
    level = [c for c in design.columns if (by_language[c].nunique() <= 1).all()]
    return by_language[level].first()


def language_level_vif(frame: pd.DataFrame, formula: str) -> pd.DataFrame:
    """Variance inflation factors of the formula's language-level fixed effects
    (:func:`language_level_design`), on one row per language: the terms are language-level, so
    the gains' rows would only repeat each language. Columns that vary within a language (the
    task-group deviations of the slope) are not in it."""
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    rows = language_level_design(frame, formula)
    if rows.shape[1] < 2:
        raise st.AnalysisError(f"formula {formula!r} has {rows.shape[1]} language-level fixed "
                               "effect(s); a VIF needs two or more")
    exog = np.column_stack([np.ones(len(rows)), rows.to_numpy(dtype=float)])
    return pd.DataFrame({"term": list(rows.columns),
                         "vif": [variance_inflation_factor(exog, i + 1)
                                 for i in range(rows.shape[1])],
                         "n_languages": len(rows)})


# --- the nested tests -----------------------------------------------------------------------------

def fertility_terms(formula: str) -> list[str]:
    """The formula's morphology terms with fertility in place of the index
    (``morph:C(task_group, Sum)`` -> ``fertility:C(task_group, Sum)``): fertility enters the
    way the index does, so each order of the test adds the same number of columns."""
    return [re.sub(rf"\b{st.MORPH}\b", FERTILITY_TERM, term) for term in st.morph_terms(formula)]


def nested_formulas(formula: str) -> dict[str, str]:
    """The three models of the nested tests: covariates + fertility, covariates + index (the
    formula itself), and covariates + both."""
    added = " + ".join(fertility_terms(formula))
    return {"fertility": f"{st.without_morph(formula)} + {added}", "index": formula,
            "both": f"{formula} + {added}"}


def fertility_frame(gains: pd.DataFrame, indices_wide: pd.DataFrame, languages: pd.DataFrame,
                    index: str, only_languages: list[str] | None = None) -> pd.DataFrame:
    """The analysis frame of ``index`` (:func:`~stilts_core.analysis.statistics.analysis_frame`) on
    the languages that have both the index and subword fertility, with ``fertility``
    standardised over them as the index is; ``attrs['excluded_languages']`` names the languages
    (with their rows) left out for lacking either, ``attrs['lacking_fertility']`` those that lack
    fertility."""
    if index == FERTILITY:
        raise st.AnalysisError(f"index {index!r} is fertility itself: the nested tests set an "
                               "index against fertility; choose a morphological index")
    if FERTILITY not in indices_wide.columns:
        raise st.AnalysisError(f"the morphology table has no {FERTILITY!r}; rebuild it with "
                               "`stilts morphology build --tokenizer NAME`")
    first = st.analysis_frame(gains, indices_wide, languages, index, missing="exclude",
                              only_languages=only_languages)
    fertility = indices_wide[FERTILITY]
    lacking = sorted(set(first["language"]) - set(fertility.dropna().index))
    kept = sorted(set(first["language"]) - set(lacking))
    frame = st.analysis_frame(gains, indices_wide, languages, index, only_languages=kept)
    values = fertility.loc[kept]
    frame[FERTILITY_TERM] = frame["language"].map((values - values.mean()) / values.std())
    counts = first[first["language"].isin(lacking)]["language"].value_counts().to_dict()
    frame.attrs.update(excluded_languages={**first.attrs["excluded_languages"], **counts},
                       lacking_fertility=lacking)
    return frame


def nested_tests(frame: pd.DataFrame, formula: str = st.MAIN_FORMULA) -> pd.DataFrame:
    """Both orders of the nested likelihood-ratio test on the same rows (ML fits; the reduced
    fits start at the full fit's variance parameters): does the index add to covariates +
    fertility, and does fertility add to covariates + index. df is the difference in fixed-effect
    columns. Beside the chi-square p value, ``p_value_f`` refers the statistic over df to
    F(df, languages - language-level columns - 1), the between-within denominator: the added
    terms are language-level, judged against a few dozen languages. ``frame`` is a
    :func:`fertility_frame`."""
    if FERTILITY_TERM not in frame.columns:
        raise st.AnalysisError(f"the frame has no {FERTILITY_TERM!r} column; make it with "
                               "collinearity.fertility_frame")
    st.validate_formula(frame, formula)
    formulas = nested_formulas(formula)
    full, full_report = st.fit(frame, formulas["both"], reml=False)
    languages = frame["language"].nunique()
    denominator = languages - language_level_design(frame, formulas["both"]).shape[1] - 1
    if denominator < 1:
        raise st.AnalysisError(f"{languages} languages leave no degrees of freedom beside the "
                               f"language-level terms of {formulas['both']!r}; add languages")
    rows = []
    for name, added, kept in ORDERS:
        reduced, reduced_report = st.fit(frame, formulas[kept], reml=False, start=full.theta)
        statistic = max(0.0, 2 * (full.llf - reduced.llf))
        df = len(full_report.params) - len(reduced_report.params)
        rows.append({"test": name, "adds": added, "to": formulas[kept], "statistic": statistic,
                     "df": df, "p_value": float(stats.chi2.sf(statistic, df)),
                     "df_languages": denominator,
                     "p_value_f": float(stats.f.sf(statistic / df, df, denominator)),
                     "n_languages": languages, "n_obs": len(frame),
                     "converged": full_report.converged and reduced_report.converged})
    return pd.DataFrame(rows)


def fertility_family(gains: pd.DataFrame, indices_wide: pd.DataFrame, languages: pd.DataFrame,
                     indices: list[str], formula: str = st.MAIN_FORMULA,
                     only_languages: list[str] | None = None) -> pd.DataFrame:
    """The declared secondary family: both orders of :func:`nested_tests` for each index, each
    on the languages that have that index and fertility, with the F reference's p value
    (``p_value``; the chi-square reference, ``p_value_chi2``, is liberal at a few dozen
    languages: Methods, the fertility calibration) Holm-adjusted over every test of the family
    (2 x the indices). ``attrs['excluded_languages']`` holds each index's excluded languages."""
    if not indices:
        raise st.AnalysisError("no index to set against fertility; give at least one")
    tables, excluded = [], {}
    for index in indices:
        frame = fertility_frame(gains, indices_wide, languages, index, only_languages)
        tables.append(nested_tests(frame, formula).assign(index=index))
        excluded[index] = frame.attrs["excluded_languages"]
    table = pd.concat(tables, ignore_index=True).rename(
        columns={"p_value": "p_value_chi2", "p_value_f": "p_value"})
    table["p_holm"] = st.holm(table["p_value"])
    table.attrs["excluded_languages"] = excluded
    return table[["index", "test", "adds", "to", "statistic", "df", "df_languages", "p_value",
                  "p_holm", "p_value_chi2", "n_languages", "n_obs", "converged"]]
