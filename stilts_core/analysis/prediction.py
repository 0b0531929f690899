"""Predictive check: does the morphological index predict the gains of languages the model has
not seen better than the covariates alone?

Each language (or each WALS family) is held out in turn; the morphology model and the
covariates-only model (the same formula without its morphology terms) are refitted without it,
and its gains are predicted from the fixed effects plus the conditional random intercepts of the
factors it shares with the training languages (target task, intermediate task and their
crossing). Its own intercepts (language, language x task, the cell) are unknown, so 0. The
prediction error is measured on cell means (a cell's seeds are replicates), pooled over the
held-out units, and the two models are compared with a paired bootstrap over held-out units.
An index whose p value is small but which does not predict held-out languages better does not
explain the gains.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stilts_core.analysis import crossed_reml
from stilts_core.analysis import statistics as st

HOLD_OUTS = ("language", "family")
MODELS = ("morphology", "covariates")
# a held-out cell: the seeds of one cell are replicates of one gain
CELL_COLUMNS = ["language", "target_task", "intermediate_task", "task_group"]
# metric -> (the per-unit sum of errors it pools, the transformation of the pooled mean)
METRICS = {"rmse": ("squared", np.sqrt), "mae": ("absolute", np.asarray)}


def units_of(frame: pd.DataFrame, languages: pd.DataFrame, hold_out: str) -> pd.Series:
    """The held-out unit of each row: its language, or its language's WALS family."""
    if hold_out not in HOLD_OUTS:
        raise st.AnalysisError(f"a hold-out is one of {HOLD_OUTS}, not {hold_out!r}")
    families = frame["language"].map(languages.set_index("iso639_1")["family"])
    return {"language": frame["language"], "family": families}[hold_out].rename("unit")


def held_out_predictions(frame: pd.DataFrame, languages: pd.DataFrame,
                         formula: str = st.MAIN_FORMULA, hold_outs: tuple[str, ...] = HOLD_OUTS,
                         refit: bool = True) -> pd.DataFrame:
    """Each held-out cell's observed mean gain and both models' predictions, for each kind of
    unit in ``hold_outs`` (long: one row per hold-out, unit, cell and model). ``refit``: each
    fold refits the variance components too; ``False`` keeps the full fit's variance components
    and re-estimates only the fixed effects and the conditional intercepts without the held-out
    rows (one solve per fold, no optimisation: the held-out gains then reach the predictions
    only through the variance components). The index keeps the full
    frame's standardisation (a covariate, not an outcome); a term constant over the training
    languages (``indo_european`` when Indo-European is held out) is left out of that fold's fit,
    so its effect on the held-out languages counts as 0."""
    st.validate_formula(frame, formula)
    frame = frame.copy()
    frame.attrs = {}  # an analysis frame's attrs hold data frames, which concat cannot compare
    folds = {hold_out: units_of(frame, languages, hold_out) for hold_out in hold_outs}
    formulas = {"morphology": formula, "covariates": st.without_morph(formula)}
    # the full fits lend their variance components to every fold unless the folds refit them
    full = {name: None if refit else st.fit(frame, f)[0] for name, f in formulas.items()}
    tables = []
    for hold_out, units in folds.items():
        for unit in sorted(units.unique()):
            train, test = frame[units != unit], frame[units == unit]
            observed = test.groupby(CELL_COLUMNS, observed=True)["gain"].mean().rename("observed")
            for name, f in formulas.items():
                predicted = test.assign(predicted=_predict(train, test, f, full[name], refit))
                cells = predicted.groupby(CELL_COLUMNS, observed=True)["predicted"].mean()
                tables.append(pd.concat([observed, cells], axis=1).reset_index()
                              .assign(hold_out=hold_out, unit=unit, model=name))
    table = pd.concat(tables, ignore_index=True)
    table["error"] = table["predicted"] - table["observed"]
    table.attrs.update(refit=refit, formula=formula)
    return table[["hold_out", "unit", *CELL_COLUMNS, "model", "observed", "predicted", "error"]]


def _predict(train: pd.DataFrame, test: pd.DataFrame, formula: str, full, refit: bool) -> np.ndarray:
    import patsy

    formula, y, x = estimable_design(formula, train)
    # a refit starts from the default, not the full fit's estimates: those saw the held-out rows
    source = st.fit(train, formula, reml=True)[0] if refit else full
    theta = dict(zip(_theta_names(source.components, source.has_cell), source.theta, strict=True))
    problem, _, cells, _ = crossed_reml.build_problem(
        train, y.to_numpy()[:, 0], x.to_numpy(), list(x.columns), list(st.RANDOM_EFFECTS), st.CELL)
    vector = np.array([theta[name] for name in _theta_names(problem.components, problem.has_cell)])
    solution = crossed_reml.solve(problem, vector, reml=True)
    effects = crossed_reml.conditional_effects(problem, solution, vector)[0]
    (design,) = patsy.build_design_matrices([x.design_info], test, return_type="dataframe")
    predicted = design.to_numpy() @ solution.beta
    blocks = np.split(effects, np.cumsum(problem.sizes)[:-1])
    for component, block in zip(problem.components, blocks, strict=True):
        if "language" in component.factors:  # the held-out language's own: unknown, so 0
            continue
        factors = list(component.factors)
        codes = cells.groupby(factors, sort=True, observed=True).ngroup().to_numpy()
        known = pd.Series(block[codes], index=pd.MultiIndex.from_frame(cells[factors]))
        known = known[~known.index.duplicated()]
        matched = known.reindex(pd.MultiIndex.from_frame(test[factors]))
        predicted = predicted + matched.fillna(0.0).to_numpy()
    return predicted


def _theta_names(components, has_cell: bool) -> list[str]:
    return [c.name for c in components] + ([st.CELL_COMPONENT] if has_cell else [])


def estimable_design(formula: str, train: pd.DataFrame):
    """The formula less every term whose columns are constant over ``train`` (such a term is
    aliased with the intercept, so the training rows say nothing about it), with its response
    and design matrices on ``train``."""
    import patsy

    y, x = patsy.dmatrices(formula, train, return_type="dataframe", NA_action="raise")
    constant = {name for name, columns in x.design_info.term_name_slices.items()
                if name != "Intercept" and (x.iloc[:, columns].nunique() <= 1).all()}
    if not constant:
        return formula, y, x
    description = patsy.ModelDesc.from_formula(formula)
    kept = [term for term in description.rhs_termlist if term.name() not in constant]
    reduced = patsy.ModelDesc(description.lhs_termlist, kept).describe()
    return (reduced, *patsy.dmatrices(reduced, train, return_type="dataframe", NA_action="raise"))


# --- the error --------------------------------------------------------------------------------------

def unit_errors(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per hold-out, held-out unit and model: cells, root mean squared and mean absolute error."""
    grouped = predictions.assign(squared=predictions["error"] ** 2,
                                 absolute=predictions["error"].abs())
    table = grouped.groupby(["hold_out", "unit", "model"], observed=True).agg(
        n_cells=("error", "size"), squared=("squared", "sum"), absolute=("absolute", "sum"))
    return table.assign(rmse=np.sqrt(table["squared"] / table["n_cells"]),
                        mae=table["absolute"] / table["n_cells"]).reset_index()


def prediction_error(predictions: pd.DataFrame, reps: int = 2000, seed: int = 0,
                     level: float = 0.95) -> pd.DataFrame:
    """Per hold-out and metric (RMSE, MAE over every held-out cell): each model's error, the
    difference morphology - covariates (negative: the index predicts better) and its
    percentile interval from ``reps`` paired bootstrap resamples of the held-out units (each
    with all its cells, both models' errors together)."""
    errors = unit_errors(predictions)
    rows = []
    rng = np.random.default_rng(seed)
    for hold_out, part in errors.groupby("hold_out", sort=False):
        wide = part.pivot(index="unit", columns="model", values=["squared", "absolute", "n_cells"])
        cells = wide["n_cells"][MODELS[0]].to_numpy(dtype=float)
        draws = rng.integers(0, len(cells), size=(reps, len(cells)))
        for metric, (column, finish) in METRICS.items():
            sums = {m: wide[column][m].to_numpy(dtype=float) for m in MODELS}
            point = {m: float(finish(sums[m].sum() / cells.sum())) for m in MODELS}
            boot = (finish(sums[MODELS[0]][draws].sum(1) / cells[draws].sum(1))
                    - finish(sums[MODELS[1]][draws].sum(1) / cells[draws].sum(1)))
            tail = (1 - level) / 2
            rows.append({"hold_out": hold_out, "metric": metric, **point,
                         "difference": point[MODELS[0]] - point[MODELS[1]],
                         "difference_low": float(np.quantile(boot, tail)),
                         "difference_high": float(np.quantile(boot, 1 - tail)),
                         "n_units": len(cells), "n_cells": int(cells.sum()), "reps": reps})
    return pd.DataFrame(rows)
