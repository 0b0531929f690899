"""One lookup for every declared registry (tasks, mixtures, benchmarks, models, metrics,
languages, formats, phases, provenance classes, retrieval presets, submission layouts): a name
that is not declared fails with the closest declared names and all of them, e.g. ``unknown task
'xnl'; did you mean 'xnli'? registered: ...``."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TypeVar

Entry = TypeVar("Entry")


def lookup(registry: Mapping[str, Entry], name: str, what: str,
           error: type[Exception] = KeyError, hint: str = "") -> Entry:
    """``registry[name]``, or ``error`` with :func:`unknown_message`."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise error(unknown_message(what, name, registry, hint)) from None


def unknown_message(what: str, name, known, hint: str = "") -> str:
    """``unknown <what> <name>; did you mean <closest>? registered: <all, sorted><hint>``; the
    suggestion only where a declared name is close (difflib's ratio of at least 0.6)."""
    names = sorted(str(k) for k in known)
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
    suggestion = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    return f"unknown {what} {name!r}{suggestion} registered: {', '.join(names)}{hint}"
