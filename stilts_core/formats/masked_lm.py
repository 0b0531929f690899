"""Continued masked-language-model training on plain text (the paper's MLM phase)."""

from __future__ import annotations

from stilts_core.formats.base import Format, text_converter


def problem(task) -> str | None:
    if len(task.fields.text) != 1:
        return "masked_lm needs one text field"
    return None


FORMAT = Format(
    name="masked_lm",
    description="plain text for continued masked-LM training",
    problem=problem,
    converter=text_converter,
)
