"""Per-language views of the gains, as readers of typology studies expect to look at them: a
table of each language's gain, and each language's mean gain beside each morphological index
(their figures, the world map and the scatter, are in :mod:`stilts_core.book.chapters`)."""

from __future__ import annotations

import pandas as pd

from stilts_core.runs.results import (
    NEVER_POOLED,
    headline_scores,
    paired_gains,
    with_protocol,
)


def language_gains(table: pd.DataFrame, target_task: str, split: str = "test") -> pd.DataFrame:
    """Each language's headline score without intermediate training and its paired gain per
    intermediate task (mean over seeds), with the mean over intermediate tasks; one block of
    rows per provenance class x model x protocol (never pooled). English is kept and marked:
    it is the training language, not a transfer target."""
    scores = with_protocol(headline_scores(table[table["target_task"] == target_task], split))
    if scores.empty:
        return pd.DataFrame()
    gains = with_protocol(paired_gains(scores))
    gains["protocol"] = gains["protocol"].fillna("")
    keys = [*NEVER_POOLED, "language"]
    wide = gains.pivot_table(index=keys, columns="intermediate_task", values="gain",
                             aggfunc="mean")
    wide.columns = [f"gain {name}" for name in wide.columns]
    wide.insert(0, "mean gain", wide.mean(axis=1))
    baseline = (scores[scores["intermediate_task"] == "none"]
                .groupby(keys)["value"].mean().rename("baseline"))
    frame = wide.join(baseline, how="left").reset_index()
    frame.insert(len(keys), "training language", frame["language"] == "en")
    return frame.sort_values([*NEVER_POOLED, "mean gain"], ascending=[True] * 3 + [False])


def gain_against_indices(frame: pd.DataFrame, indices_wide: pd.DataFrame,
                         indices: list[str]) -> pd.DataFrame:
    """Per language and index: the language's mean gain in an analysis frame (over target
    tasks, intermediate tasks and seeds) beside its raw index value, long form."""
    means = frame.groupby("language")["gain"].mean()
    rows = []
    for index in indices:
        if index not in indices_wide.columns:
            continue
        values = indices_wide[index].reindex(means.index)
        rows += [{"index": index, "language": language, "value": value, "gain": gain}
                 for language, value, gain in zip(means.index, values, means, strict=True)
                 if pd.notna(value)]
    return pd.DataFrame(rows, columns=["index", "language", "value", "gain"])
