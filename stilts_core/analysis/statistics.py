"""Mixed-effects models relating STILTs gains to the morphological complexity of the language.

The analysis data are paired gains (STILTs minus direct target fine-tuning, same model, task,
language and seed; retrieval: phase-(ii) encoder minus the base encoder) joined with one
morphological index and the language covariates. The main model

    gain ~ morph + morph:C(task_group, Sum) + log_pretraining_size + latin_script + indo_european
           + (1 | language) + (1 | target_task) + (1 | intermediate_task)
           + (1 | language:target_task) + (1 | language:intermediate_task)
           + (1 | target_task:intermediate_task) + (1 | language:target_task:intermediate_task)

has a random intercept for every crossing of the design that the fixed effects are tested
against, and a cell component (the seeds of one cell are replicates, not independent gains).
Sum coding makes ``morph`` the average of the four task groups' slopes; each group's slope is a
derived quantity (:func:`slopes`). The model is fitted on cell means with the exact likelihood of
all rows (:mod:`stilts_core.analysis.crossed_reml`): REML for estimates, ML for likelihood-ratio tests and
AIC. Every fit reports its optimiser, convergence, warnings, any variance at zero and any
component the design cannot separate.
"""

from __future__ import annotations

import ast
import json
import math
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import threadpoolctl
from scipy import stats

from stilts_core.analysis import crossed_reml
from stilts_core.analysis.crossed_reml import Component
from stilts_core.paths import atomic_write_text
from stilts_core.runs.processes import die_with_parent
from stilts_core.runs.results import (
    NO_INTERMEDIATE,
    headline_scores,
    make_frame,
    paired_gains,
    setting,
    validate,
)
from stilts_core.tasks.benchmarks import get_benchmark
from stilts_core.tasks.declared.intermediate import MULTI, PHANG_INTERMEDIATE
from stilts_core.tasks.metrics import get_metric
from stilts_core.tasks.registry import get_task
from stilts_core.tasks.spec import TASK_GROUPS

MAIN_FORMULA = ("gain ~ morph + morph:C(task_group, Sum) + log_pretraining_size + latin_script "
                "+ indo_european")
MORPH = "morph"
# the average slope over task groups, and each group's, as rows of :func:`slopes`
AVERAGE_SLOPE = "average"
# Random intercepts: every factor of the design and every two-way crossing of them. The
# language-level terms (morph and the covariates) are tested against the language component,
# morph:task_group against language x target task; leaving either out puts its variation in the
# residual and makes those terms look far more precise than they are.
RANDOM_EFFECTS = (
    Component("language", ("language",)),
    Component("target_task", ("target_task",)),
    Component("intermediate_task", ("intermediate_task",)),
    Component("language:target_task", ("language", "target_task")),
    Component("language:intermediate_task", ("language", "intermediate_task")),
    Component("target_task:intermediate_task", ("target_task", "intermediate_task")),
)
RANDOM_INTERCEPTS = tuple(component.name for component in RANDOM_EFFECTS)
# one cell: the seeds of it are replicates; its own component is the three-way crossing
CELL = ("model", "language", "target_task", "intermediate_task")
CELL_COMPONENT = "cell"
OPTIMISERS = tuple(crossed_reml.OPTIMISERS)
# a variance component below this share of the residual variance counts as zero (singular fit)
SINGULAR_SHARE = 1e-6


class AnalysisError(ValueError):
    """The analysis data break the schema; the message names the offending rows or languages."""


# --- the analysis data ----------------------------------------------------------------------------

def gains_table(results: pd.DataFrame, split: str = "test",
                protocol: str = "encoder") -> pd.DataFrame:
    """Paired gains on each task's headline score, one row per model x intermediate task x
    target task x language x seed, with the task group. A STILTs cell without its baseline is an
    error naming the rows, never a silent drop; a cell given twice, a missing or an impossible
    score is refused by the schema (:func:`~stilts_core.runs.results.validate`) first. Retrieval
    by an encoder that target fine-tuning left (``fine_tuned_on``) is not a STILTs gain of the
    phase-(ii) encoder and is left out (the results chapter shows what fine-tuning changed)."""
    results = validate(results, "the results analysed")
    _one_kind_of_evidence(results)
    scores = headline_scores(results, split)
    if scores.empty:
        raise AnalysisError(f"the results have no headline scores on the {split!r} split")
    scores = scores[setting(scores, "protocol").isin([None, protocol])]
    cell = ["model", "intermediate_task", "target_task", "language", "seed", "settings"]
    gains = paired_gains(scores)
    stilts = scores[scores["intermediate_task"] != NO_INTERMEDIATE]
    unpaired = stilts.merge(gains[cell], on=cell, how="left", indicator=True)
    unpaired = unpaired[unpaired["_merge"] == "left_only"]
    if not unpaired.empty:
        raise AnalysisError("STILTs cells without a direct fine-tuning baseline (same model, "
                            "target task, language and seed):\n"
                            + unpaired[[*cell, "run_id"]].to_string(index=False))
    gains["task_group"] = gains["target_task"].map(task_group)
    return gains.reset_index(drop=True)


def _one_kind_of_evidence(results: pd.DataFrame) -> None:
    """The models are never fitted across provenance classes, nor across models (the book fits
    one model at a time): refuse a table that mixes either, naming what it holds."""
    for column, fix in (("provenance", "analyse each result set apart"),
                        ("model", "select one model (the book fits one model at a time)")):
        values = sorted(set(results[column]))
        if len(values) > 1:
            raise AnalysisError(f"the results mix {column} values {values}; {fix}")


def task_group(task: str) -> str:
    """XTREME-R's category of a task (classification, structured prediction, QA, retrieval);
    a task outside XTREME-R (PAWS-X, BUCC) by the group of its format."""
    for group, tasks in get_benchmark("xtreme-r").groups.items():
        if task in tasks:
            return group
    return TASK_GROUPS[get_task(task).format]


def language_covariates(languages: pd.DataFrame) -> pd.DataFrame:
    """Per language: log10(1 + CC-100 tokens in millions) (0 for a language XLM-R was not
    pretrained on), whether the script is Latin and whether the language is Indo-European."""
    table = languages.set_index("iso639_1")
    return pd.DataFrame({
        "log_pretraining_size": np.log10(1 + table["cc100_tokens_m"].fillna(0).astype(float)),
        "latin_script": table["latin_script"].astype(bool).astype(int),
        "indo_european": (table["family"] == "Indo-European").astype(int),
    })


# Fewer languages leave no residual language variation to tell the morphology slope from the
# per-language intercepts.
MIN_LANGUAGES = 3


def analysis_frame(gains: pd.DataFrame, indices_wide: pd.DataFrame, languages: pd.DataFrame,
                   index: str, missing: str = "error",
                   only_languages: list[str] | None = None) -> pd.DataFrame:
    """Gains joined with one morphological index (standardised over the languages analysed,
    each language counted once) and the language covariates; English is excluded (its rows
    are in ``attrs['english']``). A language without the index is an error unless
    ``missing='exclude'``, which drops it and lists it in ``attrs['excluded_languages']``."""
    if index not in indices_wide.columns:
        raise AnalysisError(f"no index {index!r} in the morphology table; one of "
                            f"{sorted(indices_wide.columns)}")
    if missing not in ("error", "exclude"):
        raise AnalysisError(f"missing must be 'error' or 'exclude', not {missing!r}")
    covariates = language_covariates(languages)
    unknown = sorted(set(gains["language"]) - set(covariates.index))
    if unknown:
        raise AnalysisError(f"languages {unknown} are not in data/languages.csv "
                            f"({(gains['language'].isin(unknown)).sum()} rows)")
    frame = gains[gains["language"] != "en"]
    if only_languages is not None:
        frame = frame[frame["language"].isin(only_languages)]
    values = indices_wide[index]
    lacking = sorted(set(frame["language"]) - set(values.dropna().index))
    excluded = {}
    if lacking:
        counts = frame[frame["language"].isin(lacking)]["language"].value_counts().to_dict()
        if missing == "error":
            raise AnalysisError(
                f"index {index!r} has no value for {len(lacking)} language(s) with gains "
                f"(rows per language: {counts}); see the notes in data/morphology/indices.csv. "
                "Pass missing='exclude' to drop them (they are then listed), or choose other "
                "languages or another index.")
        excluded = counts
        frame = frame[~frame["language"].isin(lacking)]
    if frame.empty:
        raise AnalysisError("no non-English rows with the index are left to analyse")
    per_language = values.loc[sorted(frame["language"].unique())]
    if len(per_language) < MIN_LANGUAGES or per_language.std() == 0:
        raise AnalysisError(
            f"index {index!r}: the gains cover {len(per_language)} non-English language(s) "
            f"({', '.join(per_language.index)}) with {per_language.nunique()} distinct value(s) "
            f"of the index; a slope on the index beside a random intercept per language needs "
            f"at least {MIN_LANGUAGES} languages that differ in it. Add languages to the results "
            "or analyse the per-language gains descriptively")
    standardised = (per_language - per_language.mean()) / per_language.std()
    frame = frame.join(covariates, on="language").assign(
        morph=frame["language"].map(standardised), morph_raw=frame["language"].map(values),
        index=index)
    frame = frame.reset_index(drop=True)
    frame.attrs.update(english=gains[gains["language"] == "en"].reset_index(drop=True),
                       excluded_languages=excluded, index=index,
                       index_mean=float(per_language.mean()), index_sd=float(per_language.std()))
    return frame


# --- fitting --------------------------------------------------------------------------------------

@dataclass
class FitReport:
    """What a reader needs to trust (or distrust) one fit."""

    formula: str
    reml: bool
    optimiser: str | None
    converged: bool
    singular: list[str]
    warnings: list[str]
    loglike: float
    aic: float | None
    n_obs: int
    n_groups: dict[str, int]
    params: pd.DataFrame
    variance_components: dict[str, float]
    attempts: list[dict] = field(default_factory=list)
    dropped_components: dict[str, str] = field(default_factory=dict)
    slopes: pd.DataFrame | None = None
    # per level of the factor the residual variance differs by (empty: one residual variance)
    residual_variances: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-ready: the numbers and the diagnostics, for ``stilts stats export``."""
        return {
            "formula": self.formula,
            "lme4_formula": lme4_formula(self.formula, self.dropped_components),
            "reml": self.reml, "optimiser": self.optimiser, "converged": self.converged,
            "singular_components": self.singular, "dropped_components": self.dropped_components,
            "warnings": self.warnings, "loglike": self.loglike, "aic": self.aic,
            "n_obs": self.n_obs, "n_groups": self.n_groups,
            "fixed_effects": self.params.reset_index(names="term").to_dict("records"),
            "slopes": (None if self.slopes is None
                       else self.slopes.reset_index(names="task_group").to_dict("records")),
            "variance_components": self.variance_components,
            "residual_variances": self.residual_variances,
        }


# statsmodels/patsy spellings -> R's, for the lme4 formula
R_SPELLINGS = (
    (r"C\((\w+),\s*Sum\)", r"C(factor(\1), contr.sum)"),
    (r"\*\*", "^"),
)


def lme4_formula(formula: str, dropped: Iterable[str] = ()) -> str:
    """The same model in R's lme4 syntax (for ``lmer(..., REML = TRUE)``): the fixed part with
    R's spelling of sum coding, every random intercept and the cell component, less the
    components a fit ``dropped`` (e.g. ``FitReport.dropped_components``: lme4 would otherwise
    fit a grouping twice or one with a single level)."""
    import re

    for pattern, replacement in R_SPELLINGS:
        formula = re.sub(pattern, replacement, formula)
    dropped = set(dropped)
    grouping = [*(name for name in RANDOM_INTERCEPTS if name not in dropped), ":".join(CELL[1:])]
    return formula + "".join(f" + (1 | {name})" for name in grouping)


def _design_matrices(frame: pd.DataFrame, formula: str):
    import patsy

    if "~" not in formula:
        raise AnalysisError(f"formula {formula!r} has no '~': write 'gain ~ terms'")
    try:
        y, x = patsy.dmatrices(formula, frame, return_type="dataframe", NA_action="raise")
    except patsy.PatsyError as error:
        raise AnalysisError(f"formula {formula!r} cannot be built from the analysis data "
                            f"(columns: {sorted(frame.columns)}): {error}") from error
    if y.shape[1] != 1:
        raise AnalysisError(f"formula {formula!r} must have one numeric response, e.g. gain")
    rank = np.linalg.matrix_rank(x.to_numpy())
    if rank < x.shape[1]:
        raise AnalysisError(f"formula {formula!r} gives {x.shape[1]} fixed-effect columns of rank "
                            f"{rank} on these data ({list(x.columns)}): drop aliased terms")
    return y, x


def fit(frame: pd.DataFrame, formula: str = MAIN_FORMULA, reml: bool = True,
        optimisers: tuple[str, ...] = OPTIMISERS, start: np.ndarray | None = None,
        random_effects: tuple[Component, ...] = RANDOM_EFFECTS, residual_by: str | None = None):
    """Fit with each optimiser in turn until one converges; returns the fitted model
    (:class:`stilts_core.analysis.crossed_reml.CrossedFit`) and a :class:`FitReport`. A variance at zero
    is kept and reported as a singular fit (a boundary estimate, not an error); a component the
    design cannot separate from another is dropped by the rule of :func:`crossed_reml.build_problem`
    and reported. If no optimiser converges, the attempt with the highest likelihood is kept and
    the report says it did not converge. ``random_effects`` other than the default serve to
    show what a poorer model gets wrong (the calibration benchmark and its test).
    ``residual_by`` (a factor of the cell, e.g. ``intermediate_task``) gives each of its levels
    its own residual variance (:mod:`stilts_core.analysis.robustness` compares the two)."""
    y, x = _design_matrices(frame, formula)
    levels = {name: frame[name].nunique() for name in ("language", "intermediate_task")}
    if min(levels.values()) < 2:  # one target task is fine: its components drop by rule
        raise AnalysisError(f"crossed random intercepts need at least two levels each of "
                            f"language and intermediate task; the data have {levels}")
    try:
        problem, cell_codes, cells, dropped = crossed_reml.build_problem(
            frame, y.to_numpy()[:, 0], x.to_numpy(), list(x.columns), list(random_effects), CELL,
            residual_by)
    except crossed_reml.DesignError as error:
        raise AnalysisError(f"formula {formula!r}: {error}") from error
    attempts, fits = [], []
    for optimiser in optimisers:
        try:
            outcome = crossed_reml.optimise(problem, reml, optimiser, start)
        except (KeyError, np.linalg.LinAlgError, ValueError) as error:
            attempts.append({"optimiser": optimiser, "error": repr(error)})
            continue
        attempts.append({"optimiser": optimiser, "converged": bool(outcome.success),
                         "message": str(outcome.message), "evaluations": int(outcome.nfev)})
        fits.append((bool(outcome.success), -outcome.fun, optimiser, outcome))
        if outcome.success:
            break
    if not fits:
        raise AnalysisError(f"every optimiser failed for {formula!r}: {attempts}")
    converged, _, optimiser, outcome = max(fits, key=lambda f: (f[0], f[1]))
    result = _result(problem, np.abs(outcome.x), reml, frame, y, x, cell_codes, cells, dropped,
                     formula, outcome)
    return result, _report(result, formula, optimiser, attempts, frame)


def _result(problem, theta, reml, frame, y, x, cell_codes, cells, dropped, formula, outcome):
    solution = crossed_reml.solve(problem, theta, reml)
    names = list(x.columns)
    effects, variances, cell_effects = crossed_reml.conditional_effects(problem, solution, theta)
    labels = [f"{c.name}[C({c.name})[{':'.join(map(str, np.atleast_1d(level)))}]]"
              for c in problem.components
              for level in cells.groupby(list(c.factors), sort=True, observed=True).groups]
    linear = problem.z @ effects + cell_effects
    fitted = x.to_numpy() @ solution.beta + linear[cell_codes]
    components = {c.name: float(solution.sigma2 * t**2)
                  for c, t in zip(problem.components, theta, strict=False)}
    by_level = dict(zip(problem.residual_levels,
                        (solution.sigma2 * problem.residual_ratios(theta)).tolist(), strict=True))
    if problem.has_cell:
        components[CELL_COMPONENT] = float(solution.sigma2 * theta[len(problem.components)] ** 2)
    components["residual"] = float(solution.sigma2)
    main = [i for i, label in enumerate(labels) if ":" not in label.split("[")[0]]
    model = crossed_reml.DesignModel(formula=formula, exog=x.to_numpy(), exog_names=names,
                                     data=_ModelData(x.design_info))
    return crossed_reml.CrossedFit(
        fe_params=pd.Series(solution.beta, index=names),
        covariance=pd.DataFrame(solution.sigma2 * np.linalg.inv(solution.xtvx), index=names,
                                columns=names),
        llf=-solution.deviance / 2, reml=reml, theta=theta, sigma2=solution.sigma2,
        variance_components=components, components=problem.components,
        has_cell=problem.has_cell,
        fittedvalues=pd.Series(fitted, index=frame.index),
        resid=pd.Series(y.to_numpy()[:, 0] - fitted, index=frame.index),
        # the main factors' intercepts, for the caterpillar plot; the crossings' are in
        # ``all_random_effects``
        random_effects={"all": pd.Series(effects[main], index=[labels[i] for i in main])},
        random_effects_cov={"all": pd.DataFrame(np.diag(variances[main]),
                                                index=[labels[i] for i in main],
                                                columns=[labels[i] for i in main])},
        model=model, nobs=len(frame), converged=bool(outcome.success),
        message=str(outcome.message), dropped=dropped,
        residual_variances=by_level if len(by_level) > 1 else {})


@dataclass
class _ModelData:
    model_spec: object


def _report(result, formula, optimiser, attempts, frame) -> FitReport:
    estimate, se = result.fe_params, result.bse_fe
    params = _wald(estimate, se)
    singular = [name for name, value in result.variance_components.items()
                if name != "residual" and value < SINGULAR_SHARE * result.sigma2]
    messages = [] if result.converged else [f"ConvergenceWarning: {result.message}"]
    if singular:
        messages.append(f"boundary: variance component(s) {', '.join(singular)} estimated at "
                        "zero (a singular fit; the component stays in the model)")
    messages += [f"component {name} dropped: {why}" for name, why in result.dropped.items()]
    n_groups = {c.name: int(frame.groupby(list(c.factors), observed=True).ngroups)
                for c in result.components}
    return FitReport(
        formula=formula, reml=result.reml, optimiser=optimiser, converged=result.converged,
        singular=singular, warnings=messages, loglike=float(result.llf),
        aic=None if result.reml else float(result.aic), n_obs=int(result.nobs),
        n_groups=n_groups, params=params, variance_components=result.variance_components,
        attempts=attempts, dropped_components=dict(result.dropped),
        slopes=slopes(result, frame) if morph_terms(formula) else None,
        residual_variances=result.residual_variances)


def _wald(estimate: pd.Series, se: pd.Series) -> pd.DataFrame:
    z = estimate / se
    return pd.DataFrame({"estimate": estimate, "std_error": se, "z": z,
                         "p_value": 2 * stats.norm.sf(np.abs(z)),
                         "wald_low": estimate - 1.959964 * se,
                         "wald_high": estimate + 1.959964 * se})


def slopes(result, frame: pd.DataFrame) -> pd.DataFrame:
    """The slope of the gain on the index in each task group, and their unweighted average
    (row ``average``), as linear combinations of the fixed effects with Wald intervals: the
    change in predicted gain from half an SD below to half an SD above the index mean, the other
    terms held fixed (for a formula linear in ``morph``, exactly its slope)."""
    from patsy import build_design_matrices

    groups = sorted(frame["task_group"].unique())
    template = frame.iloc[[0] * 2 * len(groups)].reset_index(drop=True)
    template["task_group"] = [g for g in groups for _ in (0, 1)]
    template[MORPH] = [0.5, -0.5] * len(groups)
    (design,) = build_design_matrices([result.model.data.model_spec], template,
                                      return_type="dataframe")
    rows = design[list(result.fe_params.index)].to_numpy()
    combinations = rows[0::2] - rows[1::2]
    combinations = np.vstack([combinations.mean(axis=0), combinations])
    covariance = result.cov_params().to_numpy()
    estimate = pd.Series(combinations @ result.fe_params.to_numpy(),
                         index=[AVERAGE_SLOPE, *groups])
    se = pd.Series(np.sqrt(np.einsum("ij,jk,ik->i", combinations, covariance, combinations)),
                   index=estimate.index)
    return _wald(estimate, se)


def morph_terms(formula: str) -> list[str]:
    """The model terms (patsy's expansion of the formula, e.g. ``morph*task_group`` into
    ``morph``, ``task_group`` and ``morph:task_group``) that read the index anywhere, including
    inside a transformation such as ``I(morph**2)``."""
    from patsy import ModelDesc

    terms = ModelDesc.from_formula(formula).rhs_termlist
    return [term.name() for term in terms
            if any(MORPH in _factor_variables(factor) for factor in term.factors)]


def _factor_variables(factor) -> set[str]:
    tree = ast.parse(factor.code, mode="eval")
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def without_morph(formula: str) -> str:
    """The formula with every morphology term removed (the null model of the test)."""
    from patsy import ModelDesc

    description = ModelDesc.from_formula(formula)
    dropped = set(morph_terms(formula))
    kept = [term for term in description.rhs_termlist if term.name() not in dropped]
    return ModelDesc(description.lhs_termlist, kept).describe()


def validate_formula(frame: pd.DataFrame, formula: str) -> int:
    """The degrees of freedom of the test of the morphology terms; an :class:`AnalysisError`
    naming the formula when the test would not contain the index or would have 0 df."""
    allowed = ("terms in the index (morph, morph:C(task_group, Sum), I(morph**2), ...) beside "
               f"terms without it; the main model is {MAIN_FORMULA!r}")
    terms = morph_terms(formula)
    if not terms:
        raise AnalysisError(f"formula {formula!r} has no term in {MORPH!r}, so there is nothing "
                            f"to test; allowed: {allowed}")
    reduced = without_morph(formula)
    full_columns = _design_matrices(frame, formula)[1].shape[1]
    reduced_columns = _design_matrices(frame, reduced)[1].shape[1]
    if full_columns <= reduced_columns:
        raise AnalysisError(f"formula {formula!r}: without its morphology terms {terms} the model "
                            f"({reduced!r}) has as many fixed effects, so the test has 0 df; "
                            f"allowed: {allowed}")
    return full_columns - reduced_columns


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
                  term: str = AVERAGE_SLOPE, reml: bool = True, n_jobs: int = 1,
                  log=None) -> pd.DataFrame:
    """The slope ``term`` (a row of :func:`slopes`: the average over task groups, or one group)
    with each level of ``factor`` left out in turn, beside the full fit: whether one language
    (or task) carries the slope. The index keeps the standardisation of the full frame, so the
    estimates are on one scale. The refits run in ``n_jobs`` processes."""
    result, report = fit(frame, formula, reml=reml)
    full = report.slopes.loc[term, "estimate"]
    levels = sorted(frame[factor].unique())
    rows = in_chunks(_leave_out_chunk,
                     lambda chunk: (frame, formula, factor, term, reml, result.theta, chunk),
                     levels, n_jobs, f"leaving out each {factor}", log)
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


# --- parametric bootstrap -------------------------------------------------------------------------

def in_chunks(function, arguments, items: list, n_jobs: int, what: str, log) -> list:
    """``function(arguments(chunk))`` over small chunks of ``items`` in ``n_jobs`` processes,
    telling ``log`` how many items are done; every item's outputs, in completion order (each
    item carries its own seed, so the results do not depend on the order)."""
    workers = max(n_jobs, 1)
    size = max(1, math.ceil(len(items) / (4 * workers)))
    chunks = [items[start:start + size] for start in range(0, len(items), size)]
    outputs = []

    def record(part: list) -> None:
        outputs.extend(part)
        if log:
            log(f"[stats] {what}: {len(outputs)}/{len(items)}")

    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, initializer=_worker_start,
                                 initargs=(os.getpid(),)) as pool:
            for future in as_completed([pool.submit(function, arguments(c)) for c in chunks]):
                record(future.result())
    else:
        for chunk in chunks:
            record(function(arguments(chunk)))
    return outputs


def _worker_start(parent: int) -> None:
    """A worker ends with the process that started it (a notebook kernel, also one killed or
    shut down), so no worker outlives its build, and computes with one BLAS thread."""
    die_with_parent(parent)
    _one_blas_thread()


def _one_blas_thread() -> None:
    """A worker process inherits its parent's BLAS thread pool: ``n_jobs`` workers with one BLAS
    thread per core each oversubscribe the cores, and OpenBLAS threads that spin while they wait
    made a 10-replicate bootstrap take 181 s instead of 6 s on two cores. The refits are small
    sparse solves, so one thread per worker loses nothing."""
    threadpoolctl.threadpool_limits(1)


def random_part(frame: pd.DataFrame, variances: dict[str, float],
                rng: np.random.Generator) -> np.ndarray:
    """One draw of every random intercept (each crossing, the cell) and the seed-level residual
    for the rows of ``frame``: the generating structure the analysis fits. ``variances`` names
    every component of :data:`RANDOM_INTERCEPTS`, ``cell`` and ``residual``."""
    draw = np.zeros(len(frame))
    for values in random_parts(frame, variances, rng).values():
        draw += values
    return draw


def random_parts(frame: pd.DataFrame, variances: dict[str, float],
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """:func:`random_part` component by component (name -> the rows' draws), for simulations
    whose truth depends on some of them (the robustness benchmark's mean gains)."""
    expected = {*RANDOM_INTERCEPTS, CELL_COMPONENT, "residual"}
    if set(variances) != expected:
        raise AnalysisError(f"variances must give exactly {sorted(expected)} (0 for a component "
                            f"left out), not {sorted(variances)}")
    parts = {}
    groupings = [*((c.name, c.factors) for c in RANDOM_EFFECTS), (CELL_COMPONENT, CELL)]
    for name, factors in groupings:
        codes = frame.groupby(list(factors), sort=True, observed=True).ngroup().to_numpy()
        parts[name] = rng.normal(0, math.sqrt(max(variances[name], 0)), codes.max() + 1)[codes]
    parts["residual"] = rng.normal(0, math.sqrt(max(variances["residual"], 0)), len(frame))
    return parts


def _bootstrap_chunk(args) -> list[tuple[np.ndarray, np.ndarray]]:
    frame, formula, reml, fixed_part, variances, theta, seeds = args
    draws = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        simulated = frame.assign(gain=fixed_part + random_part(frame, variances, rng))
        _, report = fit(simulated, formula, reml=reml, optimisers=OPTIMISERS[:2], start=theta)
        draws.append((report.params["estimate"].to_numpy(),
                      report.slopes["estimate"].to_numpy()))
    return draws


def morph_columns(result) -> list[str]:
    """The fixed-effect columns of a fit's morphology terms."""
    spec = result.model.data.model_spec
    terms = set(morph_terms(result.model.formula))
    return [column for name, columns in spec.term_name_slices.items() if name in terms
            for column in spec.column_names[columns]]


def parametric_bootstrap(result, frame: pd.DataFrame, formula: str = MAIN_FORMULA,
                         reps: int = 200, n_jobs: int = 1, seed: int = 0,
                         reml: bool = True, level: float = 0.95, log=None) -> pd.DataFrame:
    """Intervals for the morphology terms and the derived slopes (the average over task groups
    and each group's) from ``reps`` refits to responses simulated from the full fitted model
    (every variance component, the cell and the residual): the estimate -/+ the normal quantile
    times the replicates' SD (``bootstrap_low``, ``bootstrap_high``), and beside it the
    replicates' percentiles. The SD settles with far fewer replicates than the 2.5th and 97.5th
    percentiles do, and the percentile interval of a few dozen replicates is too narrow (Methods,
    the robust calibration). ``n_jobs`` worker processes share the replicates and ``log`` (e.g.
    ``print``) hears how many are done."""
    if result.residual_variances:
        raise AnalysisError("the parametric bootstrap simulates one residual variance; give it "
                            "the homoscedastic fit (fit without residual_by)")
    seeds = np.random.SeedSequence(seed).generate_state(reps).tolist()
    fixed_part = result.model.exog @ result.fe_params.to_numpy()
    fitted = (frame, formula, reml, fixed_part, variances_of(result), result.theta)
    draws = in_chunks(_bootstrap_chunk, lambda chunk: (*fitted, chunk), seeds, n_jobs,
                      "bootstrap replicates", log)
    estimates = slopes(result, frame)
    terms = morph_columns(result)
    params = pd.DataFrame([d[0] for d in draws], columns=result.fe_params.index)[terms]
    slope_draws = pd.DataFrame([d[1] for d in draws], columns=estimates.index)
    both = pd.concat([params, slope_draws.add_prefix("slope: ")], axis=1)
    point = pd.concat([result.fe_params[terms],
                       estimates["estimate"].rename(lambda name: f"slope: {name}")])
    tail = (1 - level) / 2
    half = stats.norm.ppf(1 - tail) * both.std()
    return pd.DataFrame({"estimate": point, "bootstrap_low": point - half,
                         "bootstrap_high": point + half, "bootstrap_sd": both.std(),
                         "percentile_low": both.quantile(tail),
                         "percentile_high": both.quantile(1 - tail), "reps": len(both)})


# --- simulation: power and parameter recovery -------------------------------------------------------

# The intermediate settings of the full design: Phang et al.'s nine tasks and their multi-task mix.
DESIGN_INTERMEDIATE = (*PHANG_INTERMEDIATE, MULTI)


@dataclass(frozen=True)
class Design:
    """Which cells a result set has: target tasks with their languages, intermediate tasks,
    seeds. :func:`xtreme_r_design` gives the full X-STILTs grid on XTREME-R."""

    tasks: dict[str, tuple[str, ...]]
    intermediate_tasks: tuple[str, ...]
    seeds: tuple[int, ...]


def xtreme_r_design(languages: list[str] | None = None, seeds: int = 3) -> Design:
    intermediate = DESIGN_INTERMEDIATE
    tasks = {task: tuple(lang for lang in langs if lang != "en"
                         and (languages is None or lang in languages))
             for task, langs in get_benchmark("xtreme-r").tasks.items()}
    return Design(tasks={t: langs for t, langs in tasks.items() if langs},
                  intermediate_tasks=intermediate, seeds=tuple(range(1, seeds + 1)))


def observed_design(frame: pd.DataFrame) -> Design:
    """The design of an analysis frame: each target task with the languages it has gains in,
    its intermediate tasks and seeds. Power is simulated for the design a set actually has."""
    tasks = {task: tuple(sorted(rows["language"].unique()))
             for task, rows in frame.groupby("target_task", sort=True)}
    return Design(tasks=tasks,
                  intermediate_tasks=tuple(sorted(frame["intermediate_task"].unique())),
                  seeds=tuple(sorted(int(s) for s in frame["seed"].unique())))


# Plausible variance components (gain points^2) where no fitted model is at hand; documented in
# Methods: language and task differences of a few points, languages gaining differently on
# different target tasks (language x target task) about as much as they differ overall, smaller
# language x intermediate and task x task crossings, cell (model run) noise and seed noise.
PLAUSIBLE_VARIANCES = {"language": 1.0, "target_task": 4.0, "intermediate_task": 2.0,
                       "language:target_task": 1.0, "language:intermediate_task": 0.25,
                       "target_task:intermediate_task": 1.0, "cell": 0.25, "residual": 1.0}


def simulate_gains(design: Design, covariates: pd.DataFrame, slope: float,
                   variances: dict[str, float], rng: np.random.Generator,
                   fixed: dict[str, float] | None = None) -> pd.DataFrame:
    """Gains drawn from the structure the analysis fits: the fixed effects (``slope`` for the
    standardised index, the same in every task group; ``fixed`` for the others, default 0), a
    random intercept per language, target task, intermediate task and each two-way crossing of
    them, a cell effect shared by a cell's seeds and seed-level noise (:func:`random_part`).
    ``covariates`` holds, per language, ``morph`` (standardised) and the language covariates."""
    fixed = {"Intercept": 0.0, **(fixed or {})}
    frame = design_frame(design, covariates)
    gain = fixed["Intercept"] + slope * frame["morph"]
    for name, value in fixed.items():
        if name != "Intercept":
            gain = gain + value * frame[name]
    frame["gain"] = gain + random_part(frame, variances, rng)
    return frame


def design_frame(design: Design, covariates: pd.DataFrame) -> pd.DataFrame:
    """One row per target task x language x intermediate task x seed of ``design``, with the
    language's covariates and the task group: a simulated set without its gains."""
    rows = [(t, lang, i, s) for t, langs in design.tasks.items() for lang in langs
            for i in design.intermediate_tasks for s in design.seeds]
    frame = pd.DataFrame(rows, columns=["target_task", "language", "intermediate_task", "seed"])
    frame = frame.join(covariates, on="language")
    frame["task_group"] = frame["target_task"].map(task_group)
    frame["model"] = "simulated"
    return frame


def _power_chunk(args) -> list[tuple[float, bool]]:
    design, covariates, variances, formula, alpha, test, jobs = args
    outcomes = []
    for slope, seed in jobs:
        frame = simulate_gains(design, covariates, slope, variances, np.random.default_rng(seed))
        p = TESTS[test](frame, formula)
        outcomes.append((slope, p < alpha))
    return outcomes


def _lrt_p(frame: pd.DataFrame, formula: str) -> float:
    return likelihood_ratio_test(frame, formula)["p_value"]


def _wald_p(frame: pd.DataFrame, formula: str) -> float:
    report = fit(frame, formula, reml=True, optimisers=OPTIMISERS[:2])[1]
    return float(report.slopes.loc[AVERAGE_SLOPE, "p_value"])


# the tests the power analysis can simulate: the pre-registered likelihood-ratio test of every
# morphology term, or the Wald test of the average slope over task groups
TESTS = {"lrt": _lrt_p, "wald": _wald_p}


def power_curve(design: Design, covariates: pd.DataFrame, slopes: list[float],
                variances: dict[str, float], reps: int = 100, formula: str = MAIN_FORMULA,
                alpha: float = 0.05, test: str = "lrt", n_jobs: int = 1,
                seed: int = 0, log=None) -> pd.DataFrame:
    """For each true slope (gain points per standard deviation of the index, the same in every
    task group), the share of ``reps`` simulated result sets in which the test rejects at
    ``alpha``, with a Wilson 95% interval. ``test``: ``lrt`` (the main test of every
    morphology term) or ``wald`` (the average slope); ``log`` (e.g. ``print``) hears how many
    sets are done."""
    if test not in TESTS:
        raise AnalysisError(f"test must be one of {sorted(TESTS)}, not {test!r}")
    seeds = np.random.SeedSequence(seed).generate_state(len(slopes) * reps).tolist()
    jobs = [(slope, seeds[k * reps + r]) for k, slope in enumerate(slopes) for r in range(reps)]
    setting = (design, covariates, variances, formula, alpha, test)
    outcomes = in_chunks(_power_chunk, lambda chunk: (*setting, chunk), jobs, n_jobs,
                         "simulated result sets", log)
    table = pd.DataFrame(outcomes, columns=["slope", "rejected"]).groupby("slope")["rejected"]
    curve = table.agg(["mean", "count"]).rename(columns={"mean": "power", "count": "reps"})
    low, high = wilson(curve["power"] * curve["reps"], curve["reps"])
    return curve.assign(power_low=low, power_high=high).reset_index()


def wilson(successes, n, level: float = 0.95):
    """Wilson score interval of a binomial proportion (statsmodels' ``proportion_confint``),
    arrays welcome. The bounds are clamped to hold the proportion, so that rounding at 0 or 1
    cannot put it outside."""
    from statsmodels.stats.proportion import proportion_confint

    proportion = np.asarray(successes) / np.asarray(n)
    low, high = proportion_confint(successes, n, alpha=1 - level, method="wilson")
    return np.minimum(low, proportion), np.maximum(high, proportion)


def detectable_slope(curve: pd.DataFrame, target: float = 0.8) -> float | None:
    """The smallest slope whose power reaches ``target``, linearly interpolated between the
    simulated slopes; None when no simulated slope reaches it."""
    ordered = curve.sort_values("slope")
    above = ordered[ordered["power"] >= target]
    if above.empty:
        return None
    first = above.index[0]
    position = ordered.index.get_loc(first)
    if position == 0:
        return float(ordered.loc[first, "slope"])
    before = ordered.iloc[position - 1]
    after = ordered.loc[first]
    share = (target - before["power"]) / (after["power"] - before["power"])
    return float(before["slope"] + share * (after["slope"] - before["slope"]))


def variances_of(fitted) -> dict[str, float]:
    """A fit's (:class:`FitReport` or fitted model) variance components in the form
    :func:`simulate_gains` takes (0 for a component the design could not separate)."""
    return {name: fitted.variance_components.get(name, 0.0)
            for name in (*RANDOM_INTERCEPTS, CELL_COMPONENT, "residual")}


def simulation_covariates(languages: pd.DataFrame, indices_wide: pd.DataFrame,
                          index: str) -> pd.DataFrame:
    """The real non-English XTREME-R languages that have ``index``, with the index
    standardised over them (``morph``) and the language covariates: the population the power
    analysis and the simulated result set draw on."""
    values = indices_wide[index].dropna().drop("en", errors="ignore")
    covariates = language_covariates(languages).loc[values.index]
    return covariates.assign(morph=(values - values.mean()) / values.std(), morph_raw=values)


def simulated_results(design: Design, covariates: pd.DataFrame, slope: float,
                      variances: dict[str, float], seed: int = 0,
                      baseline_mean: float = 60.0, baseline_sd: float = 10.0) -> pd.DataFrame:
    """A results table (the schema of ``stilts_core.runs.results``, provenance ``simulation``) whose
    paired gains follow :func:`simulate_gains`: direct fine-tuning scores drawn around
    ``baseline_mean`` and each STILTs score the baseline plus a simulated gain. It exercises the
    analysis end to end where no full-scale run exists; it is never a finding."""

    rng = np.random.default_rng(seed)
    gains = simulate_gains(design, covariates, slope, variances, rng)
    baseline = gains[["target_task", "language", "seed"]].drop_duplicates()
    baseline["baseline"] = rng.normal(baseline_mean, baseline_sd, len(baseline))
    gains = gains.merge(baseline, on=["target_task", "language", "seed"])
    cells = pd.concat([
        baseline.assign(intermediate_task=NO_INTERMEDIATE, value=baseline["baseline"]),
        gains.assign(value=gains["baseline"] + gains["gain"]),
    ], ignore_index=True)
    rows = []
    for task, part in cells.groupby("target_task"):
        for metric in get_metric(get_task(task).metric).headline:
            rows += [{"model": "simulated", "intermediate_task": r.intermediate_task,
                      "target_task": task, "language": r.language, "seed": int(r.seed),
                      "split": "test", "metric": metric, "value": float(r.value),
                      "provenance": "simulation", "run_id": f"simulation-{seed}",
                      "settings": "{}"} for r in part.itertuples()]
    return make_frame(rows)


# --- export for a cross-check in R ------------------------------------------------------------------

ANALYSIS_COLUMNS = ["model", "intermediate_task", "target_task", "task_group", "language", "seed",
                    "gain", "index", "morph", "morph_raw", "log_pretraining_size", "latin_script",
                    "indo_european", "value", "value_baseline", "settings"]


def export_analysis(frame: pd.DataFrame, output_dir, formula: str = MAIN_FORMULA) -> list:
    """Write the analysis data (CSV) and the REML and ML fits (JSON) so the same model can be
    refitted elsewhere, e.g. ``lme4::lmer(<lme4_formula>, data, REML = TRUE)`` in R."""
    output_dir = Path(output_dir)
    index = frame.attrs["index"]
    validate_formula(frame, formula)
    _, reml = fit(frame, formula, reml=True)
    test = likelihood_ratio_test(frame, formula)
    summary = {
        "index": index, "standardisation": {"mean": frame.attrs["index_mean"],
                                            "sd": frame.attrs["index_sd"]},
        "excluded_languages": frame.attrs["excluded_languages"],
        "reml_fit": reml.summary(), "ml_fit": test["reports"][0].summary(),
        "likelihood_ratio_test": {k: test[k] for k in ("statistic", "df", "p_value")},
        "lme4": {"formula": lme4_formula(formula, reml.dropped_components),
                 "call": f"lmer({lme4_formula(formula, reml.dropped_components)}, "
                         f"data = read.csv('analysis_{index}.csv'), "
                         "REML = TRUE)",
                 "note": "C(factor(task_group), contr.sum) is patsy's C(task_group, Sum): the "
                         "levels in alphabetical order, the last coded -1, so morph is the "
                         "average slope over task groups; (1 | language:target_task:"
                         "intermediate_task) is the cell component (the seeds of a cell are "
                         "replicates). With one model per data set this is the model fitted here."},
    }
    data_path = output_dir / f"analysis_{index}.csv"
    fit_path = output_dir / f"fit_{index}.json"
    atomic_write_text(data_path, frame[ANALYSIS_COLUMNS].to_csv(index=False, lineterminator="\n"))
    atomic_write_text(fit_path, json.dumps(summary, indent=1, default=float) + "\n")
    return [data_path, fit_path]
