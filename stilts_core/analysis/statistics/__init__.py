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

The package's rooms, in the order the analysis uses them: ``frame`` (the analysis data and the
model's declared pieces), ``fit``, ``parallel`` (replicates over processes), ``inference`` (the
tests), ``simulation`` (designs and simulated gains), ``bootstrap``, ``power``, ``export``. Every
public name is importable from the package itself, as ``statistics.fit`` and the rest.
"""

from __future__ import annotations

from stilts_core.analysis.statistics.bootstrap import (
    morph_columns,
    parametric_bootstrap,
)
from stilts_core.analysis.statistics.export import (
    ANALYSIS_COLUMNS,
    export_analysis,
)
from stilts_core.analysis.statistics.fit import (
    R_SPELLINGS,
    FitReport,
    fit,
    lme4_formula,
    morph_terms,
    slopes,
    validate_formula,
    without_morph,
)
from stilts_core.analysis.statistics.frame import (
    AVERAGE_SLOPE,
    CELL,
    CELL_COMPONENT,
    MAIN_FORMULA,
    MIN_LANGUAGES,
    MORPH,
    OPTIMISERS,
    RANDOM_EFFECTS,
    RANDOM_INTERCEPTS,
    SINGULAR_SHARE,
    AnalysisError,
    analysis_frame,
    gains_table,
    language_covariates,
    task_group,
)
from stilts_core.analysis.statistics.inference import (
    compare_indices,
    holm,
    leave_one_out,
    likelihood_ratio_test,
)
from stilts_core.analysis.statistics.parallel import (
    in_chunks,
)
from stilts_core.analysis.statistics.power import (
    TESTS,
    detectable_slope,
    power_curve,
    wilson,
)
from stilts_core.analysis.statistics.simulation import (
    DESIGN_INTERMEDIATE,
    PLAUSIBLE_VARIANCES,
    Design,
    design_frame,
    observed_design,
    random_part,
    random_parts,
    simulate_gains,
    simulated_results,
    simulation_covariates,
    variances_of,
    xtreme_r_design,
)

__all__ = [
    "ANALYSIS_COLUMNS",
    "analysis_frame",
    "AnalysisError",
    "AVERAGE_SLOPE",
    "CELL",
    "CELL_COMPONENT",
    "compare_indices",
    "Design",
    "design_frame",
    "DESIGN_INTERMEDIATE",
    "detectable_slope",
    "export_analysis",
    "fit",
    "FitReport",
    "gains_table",
    "holm",
    "in_chunks",
    "language_covariates",
    "leave_one_out",
    "likelihood_ratio_test",
    "lme4_formula",
    "MAIN_FORMULA",
    "MIN_LANGUAGES",
    "MORPH",
    "morph_columns",
    "morph_terms",
    "observed_design",
    "OPTIMISERS",
    "parametric_bootstrap",
    "PLAUSIBLE_VARIANCES",
    "power_curve",
    "R_SPELLINGS",
    "RANDOM_EFFECTS",
    "RANDOM_INTERCEPTS",
    "random_part",
    "random_parts",
    "simulate_gains",
    "simulated_results",
    "simulation_covariates",
    "SINGULAR_SHARE",
    "slopes",
    "task_group",
    "TESTS",
    "validate_formula",
    "variances_of",
    "wilson",
    "without_morph",
    "xtreme_r_design",
]
