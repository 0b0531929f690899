"""The analysis data: paired gains joined with one morphological index and the language
covariates, the model's declared pieces (main formula, random effects, the cell) and its errors."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stilts_core.analysis import crossed_reml
from stilts_core.analysis.crossed_reml import Component
from stilts_core.runs.results import (
    NO_INTERMEDIATE,
    headline_scores,
    paired_gains,
    setting,
    validate,
)
from stilts_core.tasks.benchmarks import get_benchmark
from stilts_core.tasks.registry import get_task

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
    return get_task(task).group


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
