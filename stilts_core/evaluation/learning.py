"""Did a training run learn? Its English dev score, with a 95% interval, against the task's floor.

A gain built on a model that never left its floor measures noise, so every training run records
this check and the book reads every gain beside it. The *floor* is what a model gets without
learning anything from the input, scored with the task's own dev metric on the same dev examples
(:data:`FLOORS`, one declaration per trainable format):

* classification and multiple choice: chance (one over the labels or choices), or the majority
  label or answer position where that is higher;
* tagging: every word tagged with the commonest tag, which for named entities is ``O``: no entity;
* extractive QA: no answer.

The interval is Wilson's for accuracy (independent examples, a proportion) and a percentile
bootstrap over dev examples for every other metric (entity F1 and token accuracy, whose words
cluster in sentences). A run *learned* when it scored at least :data:`MIN_DEV_EXAMPLES` examples
and its interval's lower end clears the floor.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from stilts_core.tasks.metrics import get_metric

MIN_DEV_EXAMPLES = 200  # fewer leave an interval too wide to tell learning from guessing
INTERVAL_LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
PROPORTION_METRICS = ("accuracy",)  # one independent right-or-wrong per example

# The result rows a training run writes beside its dev score (split ``validation``), by name.
RECORD_METRICS = {"interval_low": "dev_interval_low", "interval_high": "dev_interval_high",
                  "floor": "learning_floor", "examples": "dev_examples"}


@dataclass(frozen=True)
class Floor:
    """``constant(task, gold)`` returns ``(kind, predictions)`` pairs: predictions that ignore the
    input; the floor is the best of them under the dev metric, named by its kind."""

    description: str
    constant: Callable[[object, list], list[tuple[str, list]]]


def _choice_constants(count: int, gold: list) -> list[tuple[str, list]]:
    """Every label (or answer position) predicted for every example: the best of them is the
    majority class, which scores chance when the labels are balanced."""
    majority = collections.Counter(gold).most_common(1)[0][0]
    return [("chance", [label] * len(gold)) for label in range(count) if label != majority] + [
        ("majority class", [majority] * len(gold))]


def _classification(task, gold: list) -> list[tuple[str, list]]:
    return _choice_constants(len(task.labels) or len(set(gold)), gold)


def _multiple_choice(task, gold: list) -> list[tuple[str, list]]:
    return _choice_constants(len(task.choice_labels) or len(task.fields.choices), gold)


def _tagging(task, gold: list) -> list[tuple[str, list]]:
    commonest = collections.Counter(tag for sentence in gold for tag in sentence).most_common(1)[0][0]
    kind = "no entity" if commonest == "O" else f"every word {commonest}"
    return [(kind, [[commonest] * len(sentence) for sentence in gold])]


def _no_answer(task, gold: list) -> list[tuple[str, list]]:
    return [("no answer", [""] * len(gold))]


FLOORS: dict[str, Floor] = {
    "classification": Floor("chance, or the majority label where higher", _classification),
    "multiple_choice": Floor("chance, or the majority answer position where higher",
                             _multiple_choice),
    "token_classification": Floor("the commonest tag on every word (NER: no entity)", _tagging),
    "extractive_qa": Floor("no answer", _no_answer),
}


def metric_value(metric_name: str, predictions: Sequence, gold: Sequence) -> float:
    metric = get_metric(metric_name)
    return metric.headline_value(metric.compute(list(predictions), list(gold)))


def floor(task, gold: list) -> tuple[float, str]:
    """The task's floor on these dev examples and its kind (``chance``, ``majority class``,
    ``no entity``...). Where several constants tie at the top, chance names it."""
    scored = [(metric_value(task.dev_metric, predictions, gold), kind)
              for kind, predictions in FLOORS[task.format].constant(task, gold)]
    best = max(value for value, _ in scored)
    kinds = [kind for value, kind in scored if value == best]
    return best, "chance" if "chance" in kinds else kinds[0]


def interval(metric_name: str, predictions: Sequence, gold: Sequence,
             level: float = INTERVAL_LEVEL) -> tuple[float, float]:
    """The dev score's interval: Wilson for accuracy, else a percentile bootstrap over examples
    (seeded, so a rerun gives the same interval)."""
    n = len(gold)
    if metric_name in PROPORTION_METRICS:
        from statsmodels.stats.proportion import proportion_confint

        correct = sum(p == g for p, g in zip(predictions, gold, strict=True))
        low, high = proportion_confint(correct, n, alpha=1 - level, method="wilson")
        return 100.0 * low, 100.0 * high
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    values = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        picked = rng.integers(0, n, n)
        values.append(metric_value(metric_name, [predictions[i] for i in picked],
                             [gold[i] for i in picked]))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def score_name(metric_name: str) -> str:
    """The results-table name of a dev metric's figure: its one score (``f1`` for seqeval), or
    ``headline`` for a mean of several."""
    headline = get_metric(metric_name).headline
    return headline[0] if len(headline) == 1 else "headline"


def learning_record(task, predictions: Sequence, gold: Sequence) -> dict:
    """The check of one task's dev predictions: the score (named as in the results table), its
    interval, the examples, the floor, its kind and whether the run learned."""
    value = metric_value(task.dev_metric, predictions, gold)
    low, high = interval(task.dev_metric, predictions, gold)
    floor_value, kind = floor(task, list(gold))
    return {"metric": score_name(task.dev_metric), "value": value, "interval_low": low,
            "interval_high": high,
            "level": INTERVAL_LEVEL, "examples": len(gold), "floor": floor_value,
            "floor_kind": kind, "learned": learned(len(gold), low, floor_value)}


def learned(examples: int, interval_low: float, floor_value: float) -> bool:
    """Enough dev examples for a real interval, and the interval above the floor."""
    return examples >= MIN_DEV_EXAMPLES and interval_low > floor_value
