"""The declared task formats, looked up by ``TaskSpec.format``."""

from __future__ import annotations

from stilts_core.formats import (
    classification,
    extractive_qa,
    masked_lm,
    multiple_choice,
    retrieval,
    token_classification,
)
from stilts_core.formats.base import Format, ModelHead
from stilts_core.lookup import lookup

DECLARED: tuple[Format, ...] = (
    classification.FORMAT,
    multiple_choice.FORMAT,
    token_classification.FORMAT,
    extractive_qa.FORMAT,
    retrieval.BITEXT_RETRIEVAL,
    retrieval.BITEXT_MINING,
    retrieval.RANKING,
    masked_lm.FORMAT,
)
FORMATS: dict[str, Format] = {declared.name: declared for declared in DECLARED}
if len(FORMATS) != len(DECLARED):
    raise ValueError("a task format is declared twice")
HEADS: dict[str, ModelHead] = {name: f.head for name, f in FORMATS.items() if f.head is not None}


def get_format(name: str) -> Format:
    return lookup(FORMATS, name, "task format")


def model_head(name: str) -> ModelHead:
    """The trained head of a format; formats scored without one (retrieval) are not here."""
    return lookup(HEADS, name, "trainable format")
