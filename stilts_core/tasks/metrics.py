"""Metrics, one registry looked up by name, with the definitions of the official XTREME scorer.

Every metric returns a dict of named scores on the percent scale, as XTREME's ``evaluate.py``
does, and declares which of them make its *headline* (XTREME's ``avg_metric``: the mean of exact
match and F1 for QA, else F1, accuracy or mAP@20). The definitions follow, number for number:

* accuracy: XNLI, PAWS-X, XCOPA, Tatoeba (``evaluate.py``'s ``accuracy``);
* seqeval entity F1/precision/recall for PAN-X **and** UD-POS, with the chunking of seqeval 0.0.12,
  the version the XTREME reference scores were computed with (see :func:`entities`);
* SQuAD v1.1 exact match and F1 with the official normalisation (XQuAD, TyDiQA-GoldP;
  ``third_party/evaluate_squad.py``);
* MLQA exact match and F1 with its language-specific normalisation (``mlqa_evaluation_v1.py``);
* BUCC precision/recall/F1 over the *set* of predicted sentence pairs;
* mAP@20 (Mewsli-X, LAReQA), as XTREME-R's ``average_precision_at_k``.
"""

from __future__ import annotations

import collections
import functools
import re
import string
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stilts_core.lookup import lookup

Scores = dict[str, float]


@dataclass(frozen=True)
class Metric:
    """``compute(predictions, references, language)`` returns ``{score: value}``; ``headline``
    names the scores whose mean is the task's single figure."""

    name: str
    compute: Callable[[Sequence, Sequence, str | None], Scores]
    headline: tuple[str, ...]
    description: str
    higher_is_better: bool = True

    def headline_value(self, scores: Scores) -> float:
        return sum(scores[name] for name in self.headline) / len(self.headline)


class MetricInputError(ValueError):
    """Predictions and references that cannot be scored together; the message says why."""


def _check(name: str, predictions: Sequence, references: Sequence) -> None:
    if len(predictions) != len(references):
        raise MetricInputError(
            f"{name}: {len(predictions)} predictions for {len(references)} references")
    if not references:
        raise MetricInputError(f"{name}: no references to score")


def _check_sentences(name: str, predictions: Sequence[Sequence],
                     references: Sequence[Sequence]) -> None:
    """Tag sequences: as many sentences, and as many tags as words in each."""
    _check(name, predictions, references)
    for index, (predicted, gold) in enumerate(zip(predictions, references, strict=True)):
        if len(predicted) != len(gold):
            raise MetricInputError(f"{name}: sentence {index + 1} has {len(predicted)} "
                                   f"predicted tags for {len(gold)} words")


# --- accuracy -----------------------------------------------------------------------------------

def accuracy(predictions: Sequence, references: Sequence, language: str | None = None) -> Scores:
    """Percentage of predictions equal to their reference."""
    _check("accuracy", predictions, references)
    correct = sum(p == r for p, r in zip(predictions, references, strict=True))
    return {"accuracy": correct / len(references) * 100}  # the official order of operations


def token_accuracy(predictions: Sequence[Sequence], references: Sequence[Sequence],
                   language: str | None = None) -> Scores:
    """Percentage of words tagged correctly (reported beside seqeval F1 for UD-POS, whose tags
    are not entity chunks); a word without a prediction (``None``) counts as wrong."""
    _check_sentences("token_accuracy", predictions, references)
    total = correct = 0
    for predicted, gold in zip(predictions, references, strict=True):
        total += len(gold)
        correct += sum(p == g for p, g in zip(predicted, gold, strict=True))
    if total == 0:
        raise MetricInputError("token_accuracy: no words to score")
    return {"token_accuracy": 100.0 * correct / total}


# --- seqeval entity F1 --------------------------------------------------------------------------

SEQEVAL_VERSIONS = ("0.0.12", "1.x")


def entities(sentences: Sequence[Sequence[str]], version: str = "0.0.12"
             ) -> set[tuple[str, int, int]]:
    """Chunks ``(type, start, end)`` of IOB-style tags, as ``seqeval.get_entities`` finds them.

    Sentences are joined with an ``O`` between them, as seqeval does for nested lists. The first
    character of a tag is its chunk prefix (``B``, ``I``, ``E``, ``S``, ``O``); the two versions
    differ only in the *type*: 0.0.12 takes the text after the last ``-`` (a whole UD-POS tag such
    as ``SCONJ`` is its own type), 1.x the text after the first character and an optional ``-``
    (``CCONJ`` and ``SCONJ`` both become ``CONJ``; ``X`` and ``O`` both become ``_``). For
    B-/I- tags (PAN-X) the two agree. A sequence that starts with ``I-`` opens a chunk.
    """
    if version not in SEQEVAL_VERSIONS:
        raise ValueError(f"unknown seqeval version {version!r}; one of {SEQEVAL_VERSIONS}")
    flat = [tag for sentence in sentences for tag in [*sentence, "O"]]
    found = set()
    prev_tag, prev_type, begin = "O", "", 0
    for index, chunk in enumerate([*flat, "O"]):
        tag = chunk[0]
        if version == "0.0.12":
            type_ = chunk.split("-")[-1]
        else:
            type_ = chunk[1:].split("-", maxsplit=1)[-1] or "_"
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            found.add((prev_type, begin, index - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = index
        prev_tag, prev_type = tag, type_
    return found


_ENDS_AFTER = {("B", "B"), ("B", "S"), ("B", "O"), ("I", "B"), ("I", "S"), ("I", "O")}
_STARTS_AT = {("E", "E"), ("E", "I"), ("S", "E"), ("S", "I"), ("O", "E"), ("O", "I")}


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (prev_tag in ("E", "S") or (prev_tag, tag) in _ENDS_AFTER
            or (prev_tag not in ("O", ".") and prev_type != type_))


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (tag in ("B", "S") or (prev_tag, tag) in _STARTS_AT
            or (tag not in ("O", ".") and prev_type != type_))


def seqeval(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]],
            language: str | None = None, version: str = "0.0.12") -> Scores:
    """Micro entity precision, recall and F1 (seqeval's ``*_score``), 0 where undefined."""
    _check_sentences("seqeval", predictions, references)
    for index, predicted in enumerate(predictions):
        if any(tag is None for tag in predicted):
            raise MetricInputError(f"seqeval: sentence {index + 1} has words without a tag")
    gold, predicted = entities(references, version), entities(predictions, version)
    return _precision_recall_f1(len(gold & predicted), len(predicted), len(gold))


def _precision_recall_f1(correct: int, n_predicted: int, n_gold: int) -> Scores:
    precision = correct / n_predicted if n_predicted else 0.0
    recall = correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1 * 100, "precision": precision * 100, "recall": recall * 100}


# --- SQuAD v1.1 and MLQA ------------------------------------------------------------------------

def normalize_answer(text: str) -> str:
    """Official SQuAD normalisation: lower case, no ASCII punctuation, no English articles,
    single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_ASCII_PUNCTUATION = frozenset(string.punctuation)


@functools.cache
def _mlqa_punctuation() -> frozenset[str]:
    """MLQA's punctuation: every Unicode category-P character plus ASCII punctuation (built on
    first use: scanning all code points takes a quarter of a second)."""
    return frozenset(chr(i) for i in range(sys.maxunicode)
                     if unicodedata.category(chr(i)).startswith("P")) | _ASCII_PUNCTUATION
_MLQA_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "ar": r"\sال^|ال",  # as in the official script: every "ال" is removed, wherever it occurs
    "hi": None,  # no formal articles
    "zh": None,
}
_MLQA_MIXED = ("zh",)
_CJK = re.compile(r"[\u4e00-\u9fa5]")


def _mixed_segmentation(text: str) -> list[str]:
    """MLQA's Chinese segmentation: every CJK ideograph (U+4E00–U+9FA5) and punctuation mark is a
    token of its own; runs of other characters are split on whitespace."""
    tokens, run, punctuation = [], "", _mlqa_punctuation()
    for char in text:
        if _CJK.search(char) or char in punctuation:
            tokens.extend(run.split())
            run = ""
            tokens.append(char)
        else:
            run += char
    tokens.extend(run.split())
    return tokens


def normalize_mlqa(text: str, language: str) -> str:
    """MLQA normalisation for ``language``: lower case, no Unicode punctuation, the language's
    articles removed, then whitespace (or, for Chinese, mixed character) tokenisation."""
    if language not in _MLQA_ARTICLES:
        raise MetricInputError(f"mlqa: no normalisation for language {language!r}; MLQA defines "
                               f"{', '.join(_MLQA_ARTICLES)}")
    punctuation = _mlqa_punctuation()
    text = "".join(ch for ch in text.lower() if ch not in punctuation)
    if _MLQA_ARTICLES[language]:
        text = re.sub(_MLQA_ARTICLES[language], " ", text)
    tokens = _mixed_segmentation(text) if language in _MLQA_MIXED else text.split()
    return " ".join(token for token in tokens if token.strip())


def _token_f1(predicted: list[str], gold: list[str]) -> float:
    """SQuAD v1.1 token F1: 0 when nothing is shared (also when both sides are empty)."""
    same = sum((collections.Counter(predicted) & collections.Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def _qa_scores(name: str, normalise: Callable[[str], str], predictions: Sequence[str | None],
               references: Sequence[Sequence[str]]) -> Scores:
    """Best exact match and F1 over each question's gold answers; a question without a
    prediction (``None``) scores 0 but counts, as in the official script."""
    _check(name, predictions, references)
    exact = f1 = 0.0
    for prediction, golds in zip(predictions, references, strict=True):
        if prediction is None:
            continue
        if not golds:
            raise MetricInputError(f"{name}: a question has no gold answer")
        predicted = normalise(prediction)
        normalised = [normalise(gold) for gold in golds]
        exact += max(float(predicted == gold) for gold in normalised)
        f1 += max(_token_f1(predicted.split(), gold.split()) for gold in normalised)
    return {"exact_match": 100.0 * exact / len(references), "f1": 100.0 * f1 / len(references)}


def squad(predictions: Sequence[str | None], references: Sequence[Sequence[str]],
          language: str | None = None) -> Scores:
    return _qa_scores("squad", normalize_answer, predictions, references)


def mlqa(predictions: Sequence[str | None], references: Sequence[Sequence[str]],
         language: str | None = None) -> Scores:
    if language is None:
        raise MetricInputError("mlqa: the normalisation needs the language of the answers")
    return _qa_scores("mlqa", lambda text: normalize_mlqa(text, language), predictions,
                      references)


def squad_v2(predictions: Sequence[str], references: Sequence[Sequence[str]],
             language: str | None = None) -> Scores:
    """SQuAD 2.0 rules: gold answers that normalise to nothing are dropped, and a question left
    without one is unanswerable (gold ``""``), where only the empty prediction is right."""
    _check("squad_v2", predictions, references)
    exact = f1 = 0.0
    for prediction, golds in zip(predictions, references, strict=True):
        predicted = normalize_answer(prediction or "")
        normalised = [normalize_answer(gold) for gold in golds if normalize_answer(gold)] or [""]
        exact += max(float(predicted == gold) for gold in normalised)
        f1 += max(float(predicted == gold) if not predicted or not gold
                  else _token_f1(predicted.split(), gold.split()) for gold in normalised)
    return {"exact_match": 100.0 * exact / len(references), "f1": 100.0 * f1 / len(references)}


# --- retrieval ----------------------------------------------------------------------------------

def bucc_f1(predictions: Sequence[tuple[str, str]], references: Sequence[tuple[str, str]],
            language: str | None = None) -> Scores:
    """Precision, recall and F1 of the predicted (source id, target id) pairs against the gold
    pairs; both are sets, so a pair listed twice counts once."""
    if not references:
        raise MetricInputError("bucc_f1: no gold pairs to score")
    gold, predicted = set(map(tuple, references)), set(map(tuple, predictions))
    correct = len(gold & predicted)
    if correct == 0:
        return {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    return _precision_recall_f1(correct, len(predicted), len(gold))


MAP_CUTOFF = 20


def average_precision_at_k(relevant: set, ranking: Sequence, k: int = MAP_CUTOFF) -> float:
    """AP@k: precision at each rank that finds a new relevant item, divided by
    ``min(|relevant|, k)``; a candidate repeated in the ranking counts once."""
    if not relevant:
        raise MetricInputError("map_at_20: a query has no relevant candidate")
    ranking = list(ranking[:k])
    hits, total, seen = 0, 0.0, set()
    for rank, candidate in enumerate(ranking, start=1):
        if candidate in relevant and candidate not in seen:
            hits += 1
            total += hits / rank
        seen.add(candidate)
    return total / min(len(relevant), k)


def map_at_20(predictions: Sequence[Sequence], references: Sequence[set],
              language: str | None = None) -> Scores:
    """Mean over queries of AP@20 (Mewsli-X, LAReQA); a query without a ranking scores 0."""
    _check("map_at_20", predictions, references)
    values = [average_precision_at_k(set(gold), ranking or [], MAP_CUTOFF)
              for ranking, gold in zip(predictions, references, strict=True)]
    return {"map_at_20": 100.0 * sum(values) / len(values)}


def _only(score: str, compute: Callable) -> Callable:
    """A single score of a multi-score metric (a dev metric for early stopping)."""
    return lambda predictions, references, language=None: {
        score: compute(predictions, references, language)[score]}


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", accuracy, ("accuracy",), "percentage of exact matches"),
    Metric("token_accuracy", token_accuracy, ("token_accuracy",),
           "percentage of words with the right tag"),
    Metric("seqeval", seqeval, ("f1",),
           "entity F1/precision/recall with seqeval 0.0.12 chunking (XTREME: PAN-X, UD-POS)"),
    Metric("squad", squad, ("exact_match", "f1"),
           "SQuAD v1.1 exact match and F1 (XQuAD, TyDiQA-GoldP)"),
    Metric("squad_f1", _only("f1", squad), ("f1",), "SQuAD v1.1 F1 alone (dev selection)"),
    Metric("squad_v2", squad_v2, ("exact_match", "f1"), "SQuAD 2.0 exact match and F1"),
    Metric("squad_v2_f1", _only("f1", squad_v2), ("f1",), "SQuAD 2.0 F1 alone (dev selection)"),
    Metric("mlqa", mlqa, ("exact_match", "f1"),
           "MLQA exact match and F1 with language-specific normalisation"),
    Metric("bucc_f1", bucc_f1, ("f1",), "F1 of mined sentence pairs (BUCC 2018)"),
    Metric("map_at_20", map_at_20, ("map_at_20",), "mean average precision at 20"),
)}


def get_metric(name: str) -> Metric:
    return lookup(METRICS, name, "metric")
