"""Multiple choice (XCOPA, COPA, CommonsenseQA, Cosmos QA, HellaSwag, Social IQa): a context, a
question and one sequence per choice; the label is the index of the right choice."""

from __future__ import annotations

import datasets

from stilts_core.formats.base import Format, ModelHead, Origin, dotted_value, label_error
from stilts_core.formats.classification import decode_choice
from stilts_core.formats.encoding import Encoding, labels_column, padding, tokenized_map


def problem(task) -> str | None:
    if not task.fields.choices or not task.fields.label:
        return "multiple_choice needs choices and a label field"
    return None


def converter(task, origin: Origin):
    """Rows to ``context`` (the context fields joined), ``question`` (rewritten by the task's
    question templates), ``choices`` and the right choice's index."""
    f = task.fields

    def convert(row: dict, index: int) -> dict:
        if len(f.choices) == 1:
            choices = list(dotted_value(row, f.choices[0]))
        else:
            choices = [dotted_value(row, name) for name in f.choices]
        question = dotted_value(row, f.question) if f.question else ""
        question = f.question_templates.get(question, question)
        value = dotted_value(row, f.label)
        if task.choice_labels:
            label = task.choice_labels.index(str(value)) if str(value) in task.choice_labels else -1
        else:
            label = int(value) if str(value).strip().lstrip("-").isdigit() else -1
        if not 0 <= label < len(choices):
            expected = (f"one of {list(task.choice_labels)}" if task.choice_labels
                        else f"a choice index 0..{len(choices) - 1}")
            raise label_error(origin, index, f.label, value, expected)
        context = " ".join(str(dotted_value(row, name)) for name in f.context)
        return {"context": context, "question": question, "choices": [str(c) for c in choices],
                "label": label}

    return convert


def encode(dataset, tokenizer, encoding: Encoding) -> datasets.Dataset:
    """Each choice is one sequence: ``context`` and ``question + choice`` as a pair."""

    def encode_batch(batch):
        firsts, seconds, sizes = [], [], []
        for context, question, choices in zip(batch["context"], batch["question"], batch["choices"],
                                              strict=True):
            sizes.append(len(choices))
            for choice in choices:
                firsts.append(context)
                seconds.append(f"{question} {choice}".strip())
        if not any(firsts):  # no context at all (CommonsenseQA): the question-choice is one text
            flat = tokenizer(seconds, truncation=True, max_length=encoding.max_length)
        else:
            flat = tokenizer(firsts, seconds, truncation="longest_first",
                             max_length=encoding.max_length)
        out = {key: [] for key in flat}
        start = 0
        for size in sizes:
            for key, values in flat.items():
                out[key].append(values[start:start + size])
            start += size
        out["labels"] = batch["label"]
        out["length"] = [max(len(ids) for ids in example) for example in out["input_ids"]]
        return out

    return tokenized_map(dataset, encode_batch, "tokenize multiple choice", tokenizer, encoding)


def collator(tokenizer, max_length: int | None = None):
    from transformers import DataCollatorForMultipleChoice

    return DataCollatorForMultipleChoice(tokenizer, **padding(max_length))


FORMAT = Format(
    name="multiple_choice",
    description="a context and question, several choices, the index of the right one",
    problem=problem,
    group="multiple_choice",
    converter=converter,
    head=ModelHead("AutoModelForMultipleChoice", encode, encode, collator, decode_choice,
                   labels_column),
)
