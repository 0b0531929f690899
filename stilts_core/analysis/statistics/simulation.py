"""Simulated result sets from the structure the analysis fits: designs (the full XTREME-R grid,
or a set's own), the random parts, the plausible variance components and the simulated gains."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stilts_core.analysis.statistics.frame import (
    CELL,
    CELL_COMPONENT,
    RANDOM_EFFECTS,
    RANDOM_INTERCEPTS,
    AnalysisError,
    language_covariates,
    task_group,
)
from stilts_core.runs.results import (
    NO_INTERMEDIATE,
    make_frame,
)
from stilts_core.tasks.benchmarks import get_benchmark
from stilts_core.tasks.declared.intermediate import MULTI, PHANG_INTERMEDIATE
from stilts_core.tasks.metrics import get_metric
from stilts_core.tasks.registry import get_task


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
