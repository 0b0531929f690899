"""Fitting the mixed model: REML or ML on cell means (:mod:`stilts_core.analysis.crossed_reml`),
with the optimiser, convergence, singular and dropped components reported; the slopes per task
group derived from the fixed effects; the formula's morphology terms."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from stilts_core.analysis import crossed_reml
from stilts_core.analysis.crossed_reml import Component
from stilts_core.analysis.statistics.frame import (
    AVERAGE_SLOPE,
    CELL,
    CELL_COMPONENT,
    MAIN_FORMULA,
    MORPH,
    OPTIMISERS,
    RANDOM_EFFECTS,
    RANDOM_INTERCEPTS,
    SINGULAR_SHARE,
    AnalysisError,
)


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
