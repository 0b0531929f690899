"""Batched inference for every task format: model outputs into task predictions, and the gold
side in the same terms, for the metrics of :mod:`stilts_core.metrics`."""

from __future__ import annotations

import numpy as np

from .features import Encoding, get_format
from .metrics import get_metric


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


def score_language(task, predictions: list, gold: list, language: str) -> dict[str, float]:
    """Every score of the task in one language: its metric's (e.g. seqeval F1, precision,
    recall) and those of its extra metrics (UD-POS: token accuracy)."""
    scores = {}
    for name in (task.metric, *task.extra_metrics):
        scores.update(get_metric(name).compute(predictions, gold, language))
    return scores

