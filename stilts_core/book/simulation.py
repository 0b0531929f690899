"""The simulated result set the book analyses when no result set is a finding: the generating
model of the power analysis (:func:`~stilts_core.analysis.statistics.simulated_results`) over the
real languages and the real index, with its truth written beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from stilts_core.analysis.statistics import (
    PLAUSIBLE_VARIANCES,
    simulated_results,
    simulation_covariates,
    xtreme_r_design,
)
from stilts_core.paths import atomic_output, atomic_write_text

# the stated truth of the book's simulation
BOOK_SIMULATION = {"index": "mattr_over_english", "slope": 1.0, "seed": 0,
                   "variances": PLAUSIBLE_VARIANCES}


def write_simulation(path, languages: pd.DataFrame, indices_wide: pd.DataFrame,
                     index: str, slope: float, variances: dict[str, float],
                     seed: int = 0) -> pd.DataFrame:
    """Write :func:`simulated_results` on the full XTREME-R design to ``path`` (parquet), and
    its truth beside it (``<path>.truth.json``), both atomically."""
    path = Path(path)
    covariates = simulation_covariates(languages, indices_wide, index)
    table = simulated_results(xtreme_r_design(list(covariates.index)), covariates, slope,
                              variances, seed)
    with atomic_output(path) as staging:
        table.to_parquet(staging, index=False)
    truth = {"index": index, "slope": slope, "variances": variances, "seed": seed,
             "other_fixed_effects": 0.0, "design": "xtreme_r_design: every XTREME-R target task "
             "with its own languages that have the index, 10 intermediate settings, 3 seeds"}
    atomic_write_text(truth_path(path), json.dumps(truth, indent=1) + "\n")
    return table


def truth_path(path) -> Path:
    """Where a simulated result set's truth is kept: beside it, ``<path>.truth.json``."""
    path = Path(path)
    return path.with_name(path.name + ".truth.json")


def read_truth(path) -> dict | None:
    """The truth written beside a simulated result set, or ``None`` for any other set."""
    written = truth_path(path)
    return json.loads(written.read_text(encoding="utf-8")) if written.exists() else None
