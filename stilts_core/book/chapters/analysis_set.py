"""The preamble the results chapters share (results, mixed effects, power, claims): a result set
read and shown under its provenance badge (with the stated truth where it is a simulation), and
a page's analysis set (its gains, filtered as the page's parameters say, joined with the index
and the language covariates)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from IPython.display import HTML, Markdown, display

from stilts_core.analysis import statistics as st
from stilts_core.analysis.morphology import read_indices, wide_view
from stilts_core.book.badges import provenance_badge
from stilts_core.book.simulation import read_truth
from stilts_core.runs.results import read_results
from stilts_core.tasks.languages import read_languages_table


def shown_result_set(path: str) -> pd.DataFrame:
    """Read a collected result set and display its provenance badge, and for a simulated set the
    truth it was drawn from: a page never shows a number without saying what kind it is."""
    table = read_results(path)
    display(HTML(provenance_badge(table, path)))
    truth = read_truth(path)
    if truth is not None:
        display(Markdown(
            f"**Simulation truth**: index `{truth['index']}`, slope {truth['slope']} gain points "
            f"per SD, no interaction or covariate effects, variance components "
            f"{truth['variances']}; {truth['design']}."))
    return table


@dataclass(frozen=True)
class AnalysisSet:
    """What a statistics page analyses: the gains it keeps, the index and language tables, and
    the analysis frame (gains with the standardised index and the covariates)."""

    gains: pd.DataFrame
    indices_wide: pd.DataFrame
    language_table: pd.DataFrame
    frame: pd.DataFrame

    def summary(self, outcome: str, index: str) -> Markdown:
        frame = self.frame
        return Markdown(
            f"**Outcome** {outcome}. {len(frame)} gains over {frame['language'].nunique()} "
            f"languages, {frame['target_task'].nunique()} target tasks and "
            f"{frame['intermediate_task'].nunique()} intermediate tasks. Languages without "
            f"`{index}` (excluded, rows): {frame.attrs['excluded_languages'] or 'none'}.")


def analysis_set(results_path: str, index: str, *, indices_path: str, languages_path: str,
                 missing: str = "exclude", task_groups=(), target_tasks=(),
                 languages=()) -> AnalysisSet:
    """The page's result set shown under its badge, its gains restricted to the page's task
    groups and target tasks (empty: all), joined with ``index`` on the page's languages (empty:
    every language with the index; ``missing`` says whether the others are excluded or an
    error)."""
    gains = st.gains_table(shown_result_set(results_path))
    if task_groups:
        gains = gains[gains["task_group"].isin(task_groups)]
    if target_tasks:
        gains = gains[gains["target_task"].isin(target_tasks)]
    indices_wide = wide_view(read_indices(Path(indices_path)))
    language_table = read_languages_table(Path(languages_path))
    frame = st.analysis_frame(gains, indices_wide, language_table, index, missing=missing,
                              only_languages=list(languages) or None)
    return AnalysisSet(gains, indices_wide, language_table, frame)
