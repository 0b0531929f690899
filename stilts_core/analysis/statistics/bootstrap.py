"""The parametric bootstrap of the morphology terms and slopes from the full fitted model."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from stilts_core.analysis.statistics.fit import fit, morph_terms, slopes
from stilts_core.analysis.statistics.frame import MAIN_FORMULA, OPTIMISERS, AnalysisError
from stilts_core.analysis.statistics.parallel import in_chunks
from stilts_core.analysis.statistics.simulation import random_part, variances_of


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
                         reml: bool = True, level: float = 0.95) -> pd.DataFrame:
    """Intervals for the morphology terms and the derived slopes (the average over task groups
    and each group's) from ``reps`` refits to responses simulated from the full fitted model
    (every variance component, the cell and the residual): the estimate -/+ the normal quantile
    times the replicates' SD (``bootstrap_low``, ``bootstrap_high``), and beside it the
    replicates' percentiles. The SD settles with far fewer replicates than the 2.5th and 97.5th
    percentiles do, and the percentile interval of a few dozen replicates is too narrow (Methods,
    the robust calibration). ``n_jobs`` worker processes share the replicates; how many are done
    is logged."""
    if result.residual_variances:
        raise AnalysisError("the parametric bootstrap simulates one residual variance; give it "
                            "the homoscedastic fit (fit without residual_by)")
    seeds = np.random.SeedSequence(seed).generate_state(reps).tolist()
    fixed_part = result.model.exog @ result.fe_params.to_numpy()
    fitted = (frame, formula, reml, fixed_part, variances_of(result), result.theta)
    draws = in_chunks(_bootstrap_chunk, lambda chunk: (*fitted, chunk), seeds, n_jobs,
                      "bootstrap replicates")
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
