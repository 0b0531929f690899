"""Retrieval formats, scored from sentence embeddings rather than a trained head: parallel
sentences (Tatoeba), bitext mining in a haystack (BUCC) and ranking a candidate pool (Mewsli-X,
LAReQA)."""

from __future__ import annotations

from stilts_core.formats.base import Format, text_converter


def bitext_problem(task) -> str | None:
    if len(task.fields.text) != 2:
        return "bitext_retrieval needs two text fields (source, target)"
    return None


def released_as_is(task) -> str | None:
    """Mining and ranking tasks are read from their releases (:mod:`stilts_core.data.releases`),
    so their declared fields constrain nothing."""
    return None


BITEXT_RETRIEVAL = Format(
    name="bitext_retrieval",
    description="parallel sentences; retrieve each sentence's translation",
    problem=bitext_problem,
    group="retrieval",
    converter=text_converter,
    protocols=("encoder",),
    parallel=True,
)
BITEXT_MINING = Format(
    name="bitext_mining",
    description="find the translation pairs hidden among unpaired sentences",
    problem=released_as_is,
    group="retrieval",
    protocols=("encoder",),
)
RANKING = Format(
    name="ranking",
    description="rank a candidate pool for each query",
    problem=released_as_is,
    group="retrieval",
    protocols=("encoder", "dual_encoder"),
)
