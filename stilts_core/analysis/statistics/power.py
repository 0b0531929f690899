"""Power by simulation: the share of simulated sets in which a test rejects, with Wilson
intervals, and the slope a design detects."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stilts_core.analysis.statistics.fit import fit
from stilts_core.analysis.statistics.frame import AVERAGE_SLOPE, MAIN_FORMULA, OPTIMISERS, AnalysisError
from stilts_core.analysis.statistics.inference import likelihood_ratio_test
from stilts_core.analysis.statistics.parallel import in_chunks
from stilts_core.analysis.statistics.simulation import Design, simulate_gains


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
                seed: int = 0) -> pd.DataFrame:
    """For each true slope (gain points per standard deviation of the index, the same in every
    task group), the share of ``reps`` simulated result sets in which the test rejects at
    ``alpha``, with a Wilson 95% interval. ``test``: ``lrt`` (the main test of every
    morphology term) or ``wald`` (the average slope); how many sets are done is
    logged."""
    if test not in TESTS:
        raise AnalysisError(f"test must be one of {sorted(TESTS)}, not {test!r}")
    seeds = np.random.SeedSequence(seed).generate_state(len(slopes) * reps).tolist()
    jobs = [(slope, seeds[k * reps + r]) for k, slope in enumerate(slopes) for r in range(reps)]
    setting = (design, covariates, variances, formula, alpha, test)
    outcomes = in_chunks(_power_chunk, lambda chunk: (*setting, chunk), jobs, n_jobs,
                         "simulated result sets")
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
