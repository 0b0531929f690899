"""The answer with its uncertainty: each quantity of a result set as an estimate with a 95%
interval over languages.

Every quantity is the mean of paired differences over the non-English languages: STILTs minus
direct fine-tuning (transfer, and Tatoeba retrieval at the retrieval layer), a phase-(ii) encoder
minus the pretrained one (alignment, per layer), an encoder after target fine-tuning minus the
same encoder before (the change fine-tuning makes). English is the training language, not a
transfer target, and never counts.

The language is the unit of every interval. One trained model is scored on every language, so
the seeds of a language share that language's effect and are not further languages: they are
averaged within the language first. Intermediate tasks are separate quantities and never pooled,
nor are the groups of :data:`~stilts_core.runs.results.NEVER_POOLED`, nor encoders with and
without target fine-tuning. The interval covers the sampling of languages and each language's own
seed noise; a seed effect shared by every language (one seed's model better everywhere) moves all
languages alike and is not in it, and three seeds could not estimate it.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from scipy import stats

from stilts_core.evaluation.alignment import METRIC_PREFIX
from stilts_core.runs.results import (
    NEVER_POOLED,
    NO_INTERMEDIATE,
    before_target_fine_tuning,
    headline_scores,
    paired_gains,
    setting,
    with_protocol,
)

TRAINING_LANGUAGE = "en"
LEVEL = 0.95
RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # the same values always give the same bootstrap interval
# below this many languages a bootstrap-t has too few distinct resamples to mean anything
MIN_BOOTSTRAP_LANGUAGES = 5
STATISTICS = ["estimate", "low", "high", "bootstrap_low", "bootstrap_high", "languages", "seeds"]
RETRIEVAL_MEASURE = "retrieval_accuracy"
ALIGNMENT_TASK = "tatoeba"  # its retrieval accuracy is the alignment outcome at the retrieval layer


def language_interval(values_by_language: pd.Series, level: float = LEVEL) -> dict:
    """The mean over languages of one value per language (indexed by language), its t-interval
    over languages and a language bootstrap-t interval.

    The t-interval (``low``, ``high``) is the answer. The bootstrap-t (``bootstrap_low``,
    ``bootstrap_high``; Davison & Hinkley 1997, sec. 5.2.1) resamples languages and takes the
    quantiles of the studentised mean, ``(mean* - mean) / se*``, in place of Student's t: it
    assumes nothing of the shape of the per-language values, and unlike the percentile bootstrap
    (too narrow with fifteen-odd languages: no t quantile, the variance divided by n) it keeps its
    level there (Methods, the robust calibration). Where the two intervals disagree, a few
    languages drive the mean, and the per-language gains are the thing to read. A resample of one
    repeated value studentises to -/+ infinity (0 where it is the mean), so that many of them
    leave the interval unbounded; with fewer than :data:`MIN_BOOTSTRAP_LANGUAGES` languages the
    bootstrap is NaN, and one language has no interval at all."""
    if not values_by_language.index.is_unique:
        raise ValueError("one value per language: average the seeds within each language first "
                         "(seeds are not further languages)")
    values = values_by_language.to_numpy(dtype=float)
    n = len(values)
    estimate = float(values.mean())
    low = high = boot_low = boot_high = float("nan")
    if n > 1:
        se = values.std(ddof=1) / np.sqrt(n)
        half = stats.t.ppf((1 + level) / 2, n - 1) * se
        low, high = estimate - half, estimate + half
    if n >= MIN_BOOTSTRAP_LANGUAGES:
        drawn = values[np.random.default_rng(BOOTSTRAP_SEED).integers(0, n, size=(RESAMPLES, n))]
        shift = drawn.mean(axis=1) - estimate
        drawn_se = drawn.std(axis=1, ddof=1) / np.sqrt(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            studentised = np.where(drawn_se > 0, shift / drawn_se, np.sign(shift) * np.inf)
        upper, lower = np.quantile(studentised, [(1 + level) / 2, (1 - level) / 2],
                                   method="inverted_cdf")
        boot_low, boot_high = estimate - upper * se, estimate - lower * se
    return {"estimate": estimate, "low": float(low), "high": float(high),
            "bootstrap_low": float(boot_low), "bootstrap_high": float(boot_high), "languages": n}


def _staged(frame: pd.DataFrame) -> pd.DataFrame:
    """``protocol``, ``fine_tuned_on`` (empty for an encoder no target task fine-tuned), ``layer``
    and the alignment ``measure`` as columns."""
    frame = with_protocol(frame)
    frame["fine_tuned_on"] = setting(frame, "fine_tuned_on").fillna("")
    frame["layer"] = setting(frame, "layer")
    frame["measure"] = frame["metric"].str.removeprefix(METRIC_PREFIX)
    return frame


def _summarise(gains: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of ``keys``: the ``gain`` averaged over seeds within each non-English language,
    then :func:`language_interval`, with the seeds it rests on. Two rows for one language and
    seed in a group (two settings of the same score) are refused rather than averaged."""
    gains = gains[gains["language"] != TRAINING_LANGUAGE]
    repeated = gains.duplicated([*keys, "language", "seed"], keep=False)
    if repeated.any():
        raise ValueError("several settings for one language and seed of a quantity; select one "
                         "per quantity first (e.g. by results.setting(table, 'max_length')):\n"
                         + gains.loc[repeated, [*keys, "language", "seed", "settings"]]
                         .head().to_string(index=False))
    records = [{**dict(zip(keys, key, strict=True)),
                **language_interval(rows.groupby("language")["gain"].mean()),
                "seeds": rows["seed"].nunique()}
               for key, rows in gains.groupby(keys, sort=True, dropna=False)]
    return pd.DataFrame(records, columns=[*keys, *STATISTICS]).astype(
        {**dict.fromkeys(STATISTICS[:5], float), "languages": int, "seeds": int})


def mean_gains(table: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """The mean paired gain of each intermediate task on each target task's headline score:
    zero-shot transfer on the target tasks, and alignment at the retrieval layer as Tatoeba's
    accuracy. Encoders fine-tuned on a target task before scoring (``fine_tuned_on``) are their
    own rows: their gain is STILTs-then-target against target alone, another quantity."""
    gains = _staged(paired_gains(headline_scores(table, split, fine_tuned=True)))
    return _summarise(gains, [*NEVER_POOLED, "fine_tuned_on", "target_task", "intermediate_task"])


def alignment_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the layer-wise alignment measures, every layer and point in training."""
    return table[table["metric"].str.startswith(METRIC_PREFIX)]


def alignment_gains_by_layer(table: pd.DataFrame) -> pd.DataFrame:
    """The mean paired gain in each alignment measure at each layer of the phase-(ii) encoders
    over the pretrained encoder (which no seed changed, so it pairs with every seed); encoders
    after target fine-tuning are left to :func:`fine_tuning_alignment_change`."""
    gains = _staged(paired_gains(before_target_fine_tuning(alignment_rows(table))))
    return _summarise(gains, [*NEVER_POOLED, "target_task", "intermediate_task", "measure",
                              "layer"])


def without_stage(text: str) -> str:
    """A row's settings less the point in training (``fine_tuned_on``), so that one
    representation (layer, pooling, length) pairs across the points."""
    return json.dumps({key: value for key, value in json.loads(text or "{}").items()
                       if key != "fine_tuned_on"}, sort_keys=True)


def fine_tuning_alignment_changes(table: pd.DataFrame) -> pd.DataFrame:
    """Per row of an encoder fine-tuned on a target task (``fine_tuned_on``): each alignment
    measure minus the same encoder before it (same model, intermediate task, seed, layer and
    other settings), as ``gain``, with ``measure`` and ``layer``. Before direct fine-tuning
    (intermediate task 'none') the encoder is the pretrained one, which no seed changed and
    which pairs with every seed."""
    rows = _staged(alignment_rows(table))
    rows["settings"] = rows["settings"].map(without_stage)
    after, before = rows[rows["fine_tuned_on"] != ""], rows[rows["fine_tuned_on"] == ""]
    cell = ["model", "intermediate_task", "target_task", "language", "split", "metric", "settings"]
    seeded, unseeded = before[before["seed"].notna()], before[before["seed"].isna()]
    changes = pd.concat([
        after.merge(seeded[[*cell, "seed", "value"]], on=[*cell, "seed"], suffixes=("", "_before")),
        after.merge(unseeded[[*cell, "value"]], on=cell, suffixes=("", "_before")),
    ], ignore_index=True)
    changes["gain"] = changes["value"] - changes["value_before"]
    return changes


def fine_tuning_alignment_change(table: pd.DataFrame) -> pd.DataFrame:
    """The change target fine-tuning makes to alignment (:func:`fine_tuning_alignment_changes`),
    per target task it was fine-tuned on, with its interval over languages."""
    return _summarise(fine_tuning_alignment_changes(table),
                      [*NEVER_POOLED, "target_task", "fine_tuned_on", "intermediate_task",
                       "measure", "layer"])


def decides(low: float, high: float) -> str:
    """What an interval says of the sign: 'positive' or 'negative' when it excludes 0,
    'undecided' when it contains it (or there is none)."""
    if low > 0:
        return "positive"
    if high < 0:
        return "negative"
    return "undecided"


def _encoder(intermediate_task: str) -> str:
    return "pretrained" if intermediate_task == NO_INTERMEDIATE else intermediate_task


def answer_table(table: pd.DataFrame) -> pd.DataFrame:
    """The statement for the book, one row per quantity of each group never pooled: the transfer
    gain per target task and intermediate task, the alignment gain at the retrieval layer
    (Tatoeba accuracy) per intermediate task, and the change in retrieval accuracy at the top
    layer measured that fine-tuning on each target task makes; each with its t-interval, the
    language bootstrap-t's beside it, and what the t-interval decides."""
    gains = mean_gains(table)
    gains = gains[gains["fine_tuned_on"] == ""].copy()
    gains["quantity"] = [
        f"alignment gain at the retrieval layer ({task} accuracy) from {intermediate}"
        if task == ALIGNMENT_TASK else f"{task} transfer gain from {intermediate}"
        for task, intermediate in zip(gains["target_task"], gains["intermediate_task"], strict=True)]
    change = fine_tuning_alignment_change(table)
    change = change[change["measure"] == RETRIEVAL_MEASURE]
    change = change[change["layer"] == change.groupby(NEVER_POOLED)["layer"].transform("max")].copy()
    change["quantity"] = [
        f"{RETRIEVAL_MEASURE} change at top layer {layer} from fine-tuning on {task} "
        f"({_encoder(intermediate)} encoder)"
        for layer, task, intermediate in zip(change["layer"], change["fine_tuned_on"],
                                             change["intermediate_task"], strict=True)]
    answer = pd.concat([gains, change], ignore_index=True)
    answer["interval"] = [f"{low:.2f} to {high:.2f}" if np.isfinite(low) else "none (one language)"
                          for low, high in zip(answer["low"], answer["high"], strict=True)]
    answer["bootstrap_interval"] = [
        f"{low:.2f} to {high:.2f}" if not np.isnan(low)
        else f"none (fewer than {MIN_BOOTSTRAP_LANGUAGES} languages)"
        for low, high in zip(answer["bootstrap_low"], answer["bootstrap_high"], strict=True)]
    answer["decides"] = [decides(low, high)
                         for low, high in zip(answer["low"], answer["high"], strict=True)]
    answer["fine_tuned_on"] = answer["fine_tuned_on"].fillna("")
    return answer[[*NEVER_POOLED, "target_task", "intermediate_task", "fine_tuned_on", "quantity",
                   "estimate", "interval", "bootstrap_interval", "languages", "seeds", "decides"]]
