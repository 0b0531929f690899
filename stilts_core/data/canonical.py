"""The canonical schema of each task format: hub-schema rows converted, with every label
checked against the task's label set (an error names the origin, the row and the field)."""

from __future__ import annotations

from dataclasses import dataclass

import datasets

from stilts_core.data.sources import DataSourceError, source_fields
from stilts_core.tasks.spec import TaskSpec

# --- canonical schema ---------------------------------------------------------------------------

def dotted_value(row: dict, dotted: str):
    """``row['a']['b']`` for the field name ``a.b`` (hub schemas nest some fields)."""
    value = row
    for part in dotted.split("."):
        value = value[part]
    return value


def _class_label_names(dataset: datasets.Dataset, name: str | None) -> list[str] | None:
    """Names of a hub ``ClassLabel`` feature (or of a sequence of them), else ``None``."""
    feature = dataset.features.get(name) if name else None
    feature = getattr(feature, "feature", feature)  # Sequence(ClassLabel) / List(ClassLabel)
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def canonicalise(dataset: datasets.Dataset, task: TaskSpec, origin: str) -> datasets.Dataset:
    """Validate the declared fields and convert rows to the canonical schema of the format."""
    missing = [name for name in source_fields(task) if name not in dataset.column_names]
    if missing:
        raise DataSourceError(
            f"{origin}: missing field(s) {missing} required by task {task.name!r}; "
            f"found {dataset.column_names}. Rename the fields to the hub schema."
        )
    if task.drop_labels:
        dataset = dataset.filter(lambda value: value not in task.drop_labels,
                                 input_columns=task.fields.label)
    if len(dataset) == 0:
        raise DataSourceError(f"{origin}: no examples for task {task.name!r}")
    if task.format not in _CONVERTERS:
        raise DataSourceError(f"{origin}: task {task.name!r} ({task.format}) has no data reader; "
                              f"its predictions can be scored with `stilts score`")
    source = _Origin(origin, _class_label_names(dataset, task.fields.tags or task.fields.label))
    convert = _CONVERTERS[task.format](task, source)
    return dataset.map(convert, with_indices=True, remove_columns=dataset.column_names,
                       desc=f"canonicalise {task.name}")


@dataclass(frozen=True)
class _Origin:
    """Where the examples come from (named in every error) and, for a hub data set whose labels
    are ``ClassLabel`` ids, their names."""

    name: str
    label_names: list[str] | None

    def __str__(self) -> str:
        return self.name


def _label_error(origin: _Origin, index: int, field_name: str, value, expected: str) -> DataSourceError:
    return DataSourceError(f"{origin}, example {index + 1}: field {field_name!r} has {value!r}; "
                           f"expected {expected}")


def _classification(task: TaskSpec, origin: _Origin):
    names = {name: i for i, name in enumerate(task.labels)}
    names.update({alias: names[target] for alias, target in task.label_aliases.items()})
    hub_names = origin.label_names
    remap = hub_names if hub_names and set(hub_names) <= set(names) else None
    with_label = task.format == "classification"

    def convert(row: dict, index: int) -> dict:
        texts = [dotted_value(row, name) for name in task.fields.text]
        out = {"text": texts[0]}
        if len(texts) == 2:
            out["text_pair"] = texts[1]
        if not with_label:
            return out
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
            raise _label_error(origin, index, task.fields.label, value,
                               f"one of {list(names)} or an id 0..{len(task.labels) - 1}")
        return out

    return convert


def _multiple_choice(task: TaskSpec, origin: _Origin):
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
            raise _label_error(origin, index, f.label, value, expected)
        context = " ".join(str(dotted_value(row, name)) for name in f.context)
        return {"context": context, "question": question, "choices": [str(c) for c in choices],
                "label": label}

    return convert


def _token_classification(task: TaskSpec, origin: _Origin):
    allowed = set(task.labels)
    hub_names = origin.label_names

    def convert(row: dict, index: int) -> dict:
        tokens, tags = list(row[task.fields.tokens]), list(row[task.fields.tags])
        if hub_names is not None:
            tags = [hub_names[t] if isinstance(t, int) else t for t in tags]
        if len(tokens) != len(tags):
            raise DataSourceError(f"{origin}, example {index + 1}: {len(tokens)} tokens but "
                                  f"{len(tags)} tags; each word needs exactly one tag")
        unknown = sorted({t for t in tags if not isinstance(t, str) or (allowed and t not in allowed)},
                         key=str)
        if unknown:
            raise _label_error(origin, index, task.fields.tags, unknown,
                               f"tags among {sorted(allowed)}" if allowed else "tag strings")
        return {"tokens": [str(t) for t in tokens], "tags": tags}

    return convert


def _extractive_qa(task: TaskSpec, origin: _Origin):
    def convert(row: dict, index: int) -> dict:
        answers = row[task.fields.answers]
        texts, starts = list(answers["text"]), [int(s) for s in answers["answer_start"]]
        context = row[task.fields.context[0]]
        for text, start in zip(texts, starts, strict=True):
            if context[start:start + len(text)] != text:
                raise DataSourceError(
                    f"{origin}, example {index + 1} (id {row[task.fields.id]!r}): answer {text!r} "
                    f"is not at answer_start {start} of the context")
        return {"id": str(row[task.fields.id]), "context": context,
                "question": row[task.fields.question],
                "answers": {"text": texts, "answer_start": starts}}

    return convert


_CONVERTERS = {
    "classification": _classification,
    "bitext_retrieval": _classification,
    "masked_lm": _classification,
    "multiple_choice": _multiple_choice,
    "token_classification": _token_classification,
    "extractive_qa": _extractive_qa,
}
