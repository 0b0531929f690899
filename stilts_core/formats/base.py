"""What a task format is: one declared object per format (see :mod:`stilts_core.formats`), and the
example-level pieces every converter shares (the origin an error names, dotted field names)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class ExampleError(ValueError):
    """A source row does not fit its format; the message names the origin, the row and the field."""


@dataclass(frozen=True)
class Origin:
    """Where the examples come from (named in every error) and, for a hub data set whose labels
    are ``ClassLabel`` ids, their names."""

    name: str
    label_names: list[str] | None = None

    def __str__(self) -> str:
        return self.name


def label_error(origin: Origin, index: int, field_name: str, value, expected: str) -> ExampleError:
    return ExampleError(f"{origin}, example {index + 1}: field {field_name!r} has {value!r}; "
                        f"expected {expected}")


def dotted_value(row: dict, dotted: str):
    """``row['a']['b']`` for the field name ``a.b`` (hub schemas nest some fields)."""
    value = row
    for part in dotted.split("."):
        value = value[part]
    return value


def text_converter(task, origin: Origin) -> Callable[[dict, int], dict]:
    """Rows to ``text`` (and ``text_pair`` for a second text field), for formats without labels."""

    def convert(row: dict, index: int) -> dict:
        texts = [dotted_value(row, name) for name in task.fields.text]
        out = {"text": texts[0]}
        if len(texts) == 2:
            out["text_pair"] = texts[1]
        return out

    return convert


@dataclass(frozen=True)
class ModelHead:
    """How a format is trained and read: the ``AutoModelFor…`` class, the encoders of canonical
    examples into features (training, evaluation), the collator, the model outputs it reads, how
    they become task predictions and which canonical column holds the gold side.
    ``sized_by_labels``: the head is built with ``num_labels`` = the task's label count."""

    auto_class: str
    encode_train: Callable
    encode_eval: Callable
    collator: Callable
    decode: Callable
    gold: Callable
    outputs: tuple[str, ...] = ("logits",)
    token_level: bool = False
    sized_by_labels: bool = False


@dataclass(frozen=True)
class Format:
    """One task format. ``problem`` says what a task declaring it lacks (``None``: nothing);
    ``group`` is its analysis group (``None``: not a target of the analysis); ``converter``
    makes the canonical examples (``None``: the task is read from its own release files by
    :mod:`stilts_core.data.releases`, or its predictions are scored from files);
    ``head`` is set where a model is trained on the format."""

    name: str
    description: str
    problem: Callable[[object], str | None]
    group: str | None = None
    converter: Callable[[object, Origin], Callable[[dict, int], dict]] | None = None
    head: ModelHead | None = None
    labels_from_data: bool = False  # a task without declared labels reads its tag set from data
    # retrieval formats: the protocols a task is scored with (``encoder``: the encoder as it is;
    # ``dual_encoder``: XTREME-R's fine-tuning for ranking), and whether its pairs are parallel
    # sentences (on which alignment is measured)
    protocols: tuple[str, ...] = ()
    parallel: bool = False
