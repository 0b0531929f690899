"""Metrics (one registry, looked up by name) and batched zero-shot inference.

Each metric follows the definition in the official XTREME ``evaluate.py``; it is declared once
with its direction and the scale it reports on (percent, as the XTREME tables do).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metric:
    name: str
    compute: Callable[[Sequence, Sequence], float]
    higher_is_better: bool = True


def _accuracy(predictions: Sequence, references: Sequence) -> float:
    """Percentage of exact matches (XTREME: XNLI, PAWS-X, XCOPA, Tatoeba)."""
    if len(predictions) != len(references):
        raise ValueError(
            f"accuracy: {len(predictions)} predictions for {len(references)} references"
        )
    if not references:
        raise ValueError("accuracy: no references to score")
    return 100.0 * float(np.mean([p == r for p, r in zip(predictions, references, strict=True)]))


METRICS: dict[str, Metric] = {m.name: m for m in (Metric("accuracy", _accuracy),)}


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; registered: {', '.join(METRICS)}") from None


def predict_classes(model, tokenizer, features, batch_size: int = 64) -> np.ndarray:
    """Argmax class per example; length-sorted batches with dynamic padding, bf16 on GPU.

    ``features`` is a tokenised dataset (``input_ids``, ``attention_mask``). Predictions come back
    in the original order.
    """
    import torch
    from transformers import DataCollatorWithPadding

    device = next(model.parameters()).device
    collator = DataCollatorWithPadding(tokenizer)
    lengths = [len(ids) for ids in features["input_ids"]]
    order = np.argsort(lengths, kind="stable")
    columns = [c for c in ("input_ids", "attention_mask") if c in features.column_names]
    rows = features.select_columns(columns)
    predictions = np.empty(len(order), dtype=np.int64)
    model.eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    with torch.inference_mode(), autocast:
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = collator([rows[int(i)] for i in index])
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            predictions[index] = logits.argmax(dim=-1).cpu().numpy()
    return predictions
