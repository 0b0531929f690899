"""The provenance badge every page shows above its numbers: which kind of evidence they are."""

from __future__ import annotations

import html

import pandas as pd

from stilts_core.provenance import get_class


def badge_label(provenance: str) -> str:
    """A provenance class's badge text in its colour: the one label every page shows."""
    kind = get_class(provenance)
    return f'<strong style="color:{kind.colour}">{html.escape(kind.badge)}</strong>'


def provenance_badge(table: pd.DataFrame, source: str) -> str:
    """An HTML banner naming the provenance class of every result set in ``table`` (its badge
    and definition, declared in :mod:`stilts_core.provenance`) and its file."""
    parts = []
    for provenance in sorted(table["provenance"].unique()):
        kind = get_class(provenance)
        parts.append(
            f'<div style="border-left:6px solid {kind.colour};padding:0.4em 0.8em;margin:0.4em 0;'
            f'background:#f6f8fa">{badge_label(provenance)} &mdash; '
            f"{html.escape(kind.definition)}. Source: <code>{html.escape(source)}</code></div>"
        )
    return "\n".join(parts)
