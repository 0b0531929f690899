"""The task registry: every declared task (:mod:`stilts_core.tasks.declared`, each a
:class:`~stilts_core.tasks.spec.TaskSpec`) and mixture, looked up by name.

In the spirit of MTEB task metadata and lm-evaluation-harness task configs, a task says what it
*is* (format, languages, where its data comes from and under which field names, how it is
trained and scored); the data loaders, heads, metrics, the grid and the book's task tables all
read it from here instead of switching on task names.

Hub revisions: ``HubSource.revision`` is the branch or commit that is loaded. Every run records
the commit it resolved to (``data_sources.json``), and a run can pin any task to a commit with
the ``data_revisions`` parameter, which is part of the run's identity.
"""

from __future__ import annotations

from stilts_core.lookup import lookup
from stilts_core.tasks.declared import english, intermediate, mlm, retrieval, target
from stilts_core.tasks.spec import Mixture, TaskSpec


def _by_name(declared) -> dict:
    named = {}
    for entry in declared:
        if entry.name in named:
            raise ValueError(f"task {entry.name!r} is declared twice")
        named[entry.name] = entry
    return named


TASKS: dict[str, TaskSpec] = _by_name(
    [*english.DECLARED, *intermediate.DECLARED, *target.DECLARED, *retrieval.DECLARED,
     *mlm.DECLARED])
MIXTURES: dict[str, Mixture] = _by_name(intermediate.MIXTURES)
if TASKS.keys() & MIXTURES.keys():
    raise ValueError(f"names both a task and a mixture: {sorted(TASKS.keys() & MIXTURES.keys())}")


def get_task(name: str) -> TaskSpec:
    return lookup(TASKS, name, "task")


def get_mixture(name: str) -> Mixture:
    return lookup(MIXTURES, name, "mixture")


def intermediate_choices() -> list[str]:
    """What phase (ii) can train: every intermediate task and every mixture."""
    return sorted([n for n, t in TASKS.items() if t.role == "intermediate"] + list(MIXTURES))
