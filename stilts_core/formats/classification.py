"""Sentence(-pair) classification (XNLI, PAWS-X, MNLI, SST-2, QQP, ANLI): one or two text fields
and a label from the task's declared label set."""

from __future__ import annotations

import datasets
import numpy as np

from stilts_core.formats.base import (
    Format,
    ModelHead,
    Origin,
    dotted_value,
    label_error,
    text_converter,
)
from stilts_core.formats.encoding import Encoding, labels_column, padding_collator, tokenized_map


def problem(task) -> str | None:
    f = task.fields
    if len(f.text) not in (1, 2) or not f.label or not task.labels:
        return "classification needs one or two text fields, a label field and labels"
    return None


def converter(task, origin: Origin):
    """Rows to ``text`` (``text_pair``) and a label id; labels are read as declared names, their
    aliases, the hub's ``ClassLabel`` ids or plain ids."""
    names = {name: i for i, name in enumerate(task.labels)}
    names.update({alias: names[target] for alias, target in task.label_aliases.items()})
    hub_names = origin.label_names
    remap = hub_names if hub_names and set(hub_names) <= set(names) else None
    texts = text_converter(task, origin)

    def convert(row: dict, index: int) -> dict:
        out = texts(row, index)
        value = dotted_value(row, task.fields.label)
        if remap is not None and isinstance(value, int):
            value = remap[value]
        if isinstance(value, str) and value.strip() in names:
            out["label"] = names[value.strip()]
        elif isinstance(value, str) and value.strip().isdigit() and int(value) < len(task.labels):
            out["label"] = int(value)
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(task.labels):
            out["label"] = value
        else:
            raise label_error(origin, index, task.fields.label, value,
                              f"one of {list(names)} or an id 0..{len(task.labels) - 1}")
        return out

    return convert


def encode(dataset, tokenizer, encoding: Encoding) -> datasets.Dataset:
    def encode_batch(batch):
        pairs = batch.get("text_pair")
        out = tokenizer(batch["text"], pairs, truncation=True, max_length=encoding.max_length)
        out["labels"] = batch["label"]
        out["length"] = [len(ids) for ids in out["input_ids"]]
        return out

    return tokenized_map(dataset, encode_batch, "tokenize classification", tokenizer, encoding)


def decode_choice(task, examples, features, outputs, encoding) -> list[int]:
    """The highest-scoring class (or choice) of each example."""
    return [int(np.argmax(row)) for row in outputs["logits"]]


FORMAT = Format(
    name="classification",
    description="one or two texts, one label",
    problem=problem,
    group="classification",
    converter=converter,
    head=ModelHead("AutoModelForSequenceClassification", encode, encode, padding_collator,
                   decode_choice, labels_column, sized_by_labels=True),
)
