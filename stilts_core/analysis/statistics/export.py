"""The analysis data and both fits written for a cross-check in R (lme4)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from stilts_core.analysis.statistics.fit import fit, lme4_formula, validate_formula
from stilts_core.analysis.statistics.frame import MAIN_FORMULA
from stilts_core.analysis.statistics.inference import likelihood_ratio_test
from stilts_core.paths import atomic_write_text

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
