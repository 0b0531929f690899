"""Metrics (one registry, looked up by name) and batched inference for every task format.

Each metric follows the definition in the official XTREME ``evaluate.py`` (SQuAD: the official
v1.1/v2.0 normalisation and token F1); it is declared once with its direction and reports on
the percent scale, as the XTREME tables do.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .features import Encoding, get_format


@dataclass(frozen=True)
class Metric:
    name: str
    compute: Callable[[Sequence, Sequence], float]
    higher_is_better: bool = True


def _check(name: str, predictions: Sequence, references: Sequence) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{name}: {len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError(f"{name}: no references to score")


def _accuracy(predictions: Sequence, references: Sequence) -> float:
    """Percentage of exact matches (XTREME: XNLI, PAWS-X, XCOPA, Tatoeba)."""
    _check("accuracy", predictions, references)
    return 100.0 * float(np.mean([p == r for p, r in zip(predictions, references, strict=True)]))


def _token_accuracy(predictions: Sequence[Sequence], references: Sequence[Sequence]) -> float:
    """Percentage of words tagged correctly; a word without a prediction counts as wrong."""
    _check("token_accuracy", predictions, references)
    pairs = [(p, r) for ps, rs in zip(predictions, references, strict=True)
             for p, r in zip(ps, rs, strict=True)]
    return 100.0 * float(np.mean([p == r for p, r in pairs]))


def normalize_answer(text: str) -> str:
    """Official SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _f1(prediction: str, gold: str) -> float:
    predicted, truth = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not truth:  # SQuAD 2.0: no-answer is right only against no-answer
        return float(predicted == truth)
    common = collections.Counter(predicted) & collections.Counter(truth)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(truth)
    return 2 * precision * recall / (precision + recall)


def _best_over_golds(score: Callable[[str, str], float]):
    def compute(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
        _check("squad", predictions, references)
        return 100.0 * float(np.mean([
            max(score(p, g) for g in (golds or [""]))
            for p, golds in zip(predictions, references, strict=True)
        ]))

    return compute


_squad_em = _best_over_golds(lambda p, g: float(normalize_answer(p) == normalize_answer(g)))
_squad_f1 = _best_over_golds(_f1)

METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", _accuracy),
    Metric("token_accuracy", _token_accuracy),
    Metric("squad_em", _squad_em),
    Metric("squad_f1", _squad_f1),
)}


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; registered: {', '.join(METRICS)}") from None


# --- inference ----------------------------------------------------------------------------------

def run_model(model, collator, features, batch_size: int = 64,
              outputs: tuple[str, ...] = ("logits",), token_level: bool = False) -> dict:
    """Outputs per feature in the original order; length-sorted batches with dynamic padding,
    bf16 autocast on GPU. Token-level outputs are cut back to each feature's own length."""
    import torch

    device = next(model.parameters()).device
    order = np.argsort(features["length"], kind="stable")
    model_inputs = [c for c in ("input_ids", "attention_mask", "token_type_ids", "labels")
                    if c in features.column_names]  # some collators need the labels to be there
    rows = features.select_columns(model_inputs)
    lengths = features["length"]
    results = {name: [None] * len(order) for name in outputs}
    model.eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    with torch.inference_mode(), autocast:
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = collator([rows[int(i)] for i in index])
            batch.pop("labels", None)
            output = model(**{k: v.to(device) for k, v in batch.items()})
            for name in outputs:
                values = output[name].float().cpu().numpy()
                for row, i in zip(values, index, strict=True):
                    results[name][i] = row[:lengths[i]] if token_level else row
    return results


def predict(task, model, tokenizer, examples, encoding: Encoding, batch_size: int = 64,
            features=None) -> list:
    """Task-level predictions for canonical ``examples``: label ids (classification, multiple
    choice), word tags (token classification) or answer texts (extractive QA). ``features``:
    the examples already encoded with the format's evaluation encoder."""
    handler = get_format(task.format)
    if features is None:
        features = handler.encode_eval(examples, tokenizer, encoding)
    outputs = run_model(model, handler.collator(tokenizer), features, batch_size, handler.outputs,
                        handler.token_level)
    return handler.decode(task, examples, features, outputs, encoding)


def references(task, examples) -> list:
    """The gold side of :func:`predict`, in the same terms."""
    return get_format(task.format).gold(examples)
