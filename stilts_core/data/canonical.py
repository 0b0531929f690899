"""Source rows to the canonical schema of the task's format: the declared fields checked, the
format's converter applied (:mod:`stilts_core.formats`), every label checked against the task's
label set (an error names the origin, the row and the field)."""

from __future__ import annotations

import datasets

from stilts_core.data.sources import DataSourceError, source_fields
from stilts_core.formats import ExampleError, Origin
from stilts_core.tasks.spec import TaskSpec


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
    converter = task.declared_format.converter
    if converter is None:
        raise DataSourceError(f"{origin}: task {task.name!r} ({task.format}) has no data reader; "
                              f"its predictions can be scored with `stilts score`")
    source = Origin(origin, _class_label_names(dataset, task.fields.tags or task.fields.label))
    try:
        return dataset.map(converter(task, source), with_indices=True,
                           remove_columns=dataset.column_names, desc=f"canonicalise {task.name}")
    except ExampleError as error:
        raise DataSourceError(str(error)) from None
