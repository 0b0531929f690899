"""Tests of the morphology terms: the pre-registered likelihood-ratio test, leave-one-out
refits, Holm's adjustment and the comparison of indices on their common languages."""

from __future__ import annotations

import pandas as pd
from scipy import stats

from stilts_core.analysis.crossed_reml import Component
from stilts_core.analysis.statistics.fit import fit, validate_formula, without_morph
from stilts_core.analysis.statistics.frame import (
    AVERAGE_SLOPE,
    MAIN_FORMULA,
    RANDOM_EFFECTS,
    AnalysisError,
    analysis_frame,
)
from stilts_core.analysis.statistics.parallel import in_chunks


def likelihood_ratio_test(frame: pd.DataFrame, formula: str = MAIN_FORMULA,
                          random_effects: tuple[Component, ...] = RANDOM_EFFECTS,
                          residual_by: str | None = None) -> dict:
    """ML fits with and without every morphology term: chi-square statistic, df and p value.
    The null fit starts at the full fit's variance parameters."""
    df = validate_formula(frame, formula)
    full, full_report = fit(frame, formula, reml=False, random_effects=random_effects,
                            residual_by=residual_by)
    reduced, reduced_report = fit(frame, without_morph(formula), reml=False, start=full.theta,
                                  random_effects=random_effects, residual_by=residual_by)
    statistic = max(0.0, 2 * (full.llf - reduced.llf))
    return {"statistic": statistic, "df": df, "p_value": float(stats.chi2.sf(statistic, df)),
            "aic": full_report.aic, "reports": (full_report, reduced_report)}


def leave_one_out(frame: pd.DataFrame, formula: str = MAIN_FORMULA, factor: str = "language",
                  term: str = AVERAGE_SLOPE, reml: bool = True, n_jobs: int = 1) -> pd.DataFrame:
    """The slope ``term`` (a row of :func:`slopes`: the average over task groups, or one group)
    with each level of ``factor`` left out in turn, beside the full fit: whether one language
    (or task) carries the slope. The index keeps the standardisation of the full frame, so the
    estimates are on one scale. The refits run in ``n_jobs`` processes."""
    result, report = fit(frame, formula, reml=reml)
    full = report.slopes.loc[term, "estimate"]
    levels = sorted(frame[factor].unique())
    rows = in_chunks(_leave_out_chunk,
                     lambda chunk: (frame, formula, factor, term, reml, result.theta, chunk),
                     levels, n_jobs, f"leaving out each {factor}")
    table = pd.DataFrame(rows).sort_values(factor, ignore_index=True)  # not completion order
    table["shift"] = table["estimate"] - float(full)
    table.attrs["full_estimate"] = float(full)
    return table.sort_values("shift", key=abs, ascending=False, kind="stable", ignore_index=True)


def _leave_out_chunk(args) -> list[dict]:
    frame, formula, factor, term, reml, theta, levels = args
    rows = []
    for level in levels:  # each refit starts from the full fit's estimates, as lme4's refit does
        _, report = fit(frame[frame[factor] != level], formula, reml=reml, start=theta)
        slope = report.slopes.loc[term]
        rows.append({factor: level, "estimate": float(slope["estimate"]),
                     "se": float(slope["std_error"]), "converged": report.converged})
    return rows


def holm(p_values: pd.Series) -> pd.Series:
    """Holm's step-down adjustment (family-wise error over the indices compared)."""
    from statsmodels.stats.multitest import multipletests

    return pd.Series(multipletests(p_values.to_numpy(), method="holm")[1], index=p_values.index)


def compare_indices(gains: pd.DataFrame, indices_wide: pd.DataFrame, languages: pd.DataFrame,
                    indices: list[str], formula: str = MAIN_FORMULA,
                    only_languages: list[str] | None = None) -> pd.DataFrame:
    """The main model with each index in turn, on the languages that have *all* of them (AIC
    is only comparable on the same rows): the REML average slope over task groups with its Wald
    interval, the ML likelihood-ratio test of the morphology terms, AIC, and Holm-adjusted p
    values."""
    frame_languages = set(gains["language"]) - {"en"}
    if only_languages is not None:
        frame_languages &= set(only_languages)
    common = sorted(lang for lang in frame_languages
                    if all(pd.notna(indices_wide.get(i, pd.Series(dtype=float)).get(lang))
                           for i in indices))
    unknown = [i for i in indices if i not in indices_wide.columns]
    if unknown:
        raise AnalysisError(f"no index {unknown} in the morphology table; one of "
                            f"{sorted(indices_wide.columns)}")
    if len(common) < 3:
        raise AnalysisError(f"only {len(common)} language(s) have all of {indices}; compare "
                            "fewer indices or more languages")
    rows = []
    for index in indices:
        frame = analysis_frame(gains, indices_wide, languages, index, only_languages=common)
        _, report = fit(frame, formula, reml=True)
        test = likelihood_ratio_test(frame, formula)
        slope = report.slopes.loc[AVERAGE_SLOPE]
        rows.append({"index": index, "average_slope": slope["estimate"],
                     "wald_low": slope["wald_low"], "wald_high": slope["wald_high"],
                     "lrt_statistic": test["statistic"], "lrt_df": test["df"],
                     "p_value": test["p_value"], "aic": test["aic"],
                     "converged": report.converged, "singular": ", ".join(report.singular),
                     "n_languages": len(common), "n_obs": report.n_obs})
    table = pd.DataFrame(rows).set_index("index")
    table["p_holm"] = holm(table["p_value"])
    table["delta_aic"] = table["aic"] - table["aic"].min()
    table.attrs["languages"] = common
    return table.reset_index()
