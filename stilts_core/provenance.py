"""What kind of evidence a number is: the provenance classes, declared once, and the rule that
derives a run's class from its parameters and its upstream runs.

A run is a **full-scale run** only when every condition holds: a model the registry declares
full-scale, the task's hub data (or a local copy whose declared split sizes match), no parameter
that cuts the published recipe, and upstream runs that are full-scale themselves. Anything else
is labelled by what it is, and a downstream run never reads stronger than the weakest run it
depends on. The record (``provenance.json`` in the run's folder) lists every condition with its
value, so a reader sees why a run is what it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from stilts_core.lookup import lookup

PROVENANCE_RECORD = "provenance.json"


@dataclass(frozen=True)
class ProvenanceClass:
    """One kind of evidence: its label in the results table, its badge and what it means.
    ``strength`` orders the classes of runs (a run inherits the weakest of its upstream runs)."""

    name: str
    badge: str
    colour: str
    definition: str
    strength: int
    is_run: bool = True


PUBLISHED = "published"
FULL_SCALE = "full-scale run"
REDUCED_SCALE = "reduced-scale real run"
PARTIAL = "partial run"
SMOKE = "smoke run"
SIMULATION = "simulation"

CLASSES: dict[str, ProvenanceClass] = {
    c.name: c
    for c in (
        ProvenanceClass(PUBLISHED, "Published figures", "#1f6feb",
                        "copied from the cited papers, with their sources", strength=5,
                        is_run=False),
        ProvenanceClass(FULL_SCALE, "Full-scale run", "#1a7f37",
                        "this project's own run of a full-scale model on the tasks' full data with "
                        "the published recipe, every upstream run full-scale too", strength=4),
        ProvenanceClass(REDUCED_SCALE, "Reduced-scale real run", "#0969da",
                        "a real pretrained model on real data, but not the published recipe: a "
                        "smaller model, subsampled training and evaluation sets (each run records "
                        "which model, which copy of it, which data and which sample sizes); real "
                        "evidence at its own scale, never set beside published numbers", strength=3),
        ProvenanceClass(PARTIAL, "Partial run", "#9a6700",
                        "a run that is not full-scale for the reasons its record lists (a cut "
                        "recipe, data that do not match the declared sizes, an unregistered model, "
                        "or a weaker upstream run): not a finding", strength=2),
        ProvenanceClass(SMOKE, "Smoke run", "#bf8700",
                        "tiny random-init model on bundled fixtures: a pipeline check, not a finding",
                        strength=1),
        ProvenanceClass(SIMULATION, "Simulation", "#8250df",
                        "data drawn from a statistical model with a stated truth, not a run",
                        strength=0, is_run=False),
    )
}


class ProvenanceError(ValueError):
    """A provenance label or record is not one of the declared ones; the message says which."""


def get_class(name: str) -> ProvenanceClass:
    return lookup(CLASSES, name, "provenance", ProvenanceError)


def weakest(names) -> str:
    """The weakest of several run classes (what a run that depends on all of them can claim)."""
    return min(names, key=lambda name: get_class(name).strength)


@dataclass(frozen=True)
class Condition:
    """One condition of a full-scale run: what it asks, the run's value, and whether it holds."""

    name: str
    value: str
    holds: bool
    requirement: str

    def as_record(self) -> dict:
        return {"condition": self.name, "value": self.value, "holds": self.holds,
                "requirement": self.requirement}


@dataclass(frozen=True)
class Assessment:
    """A run's provenance: its class and every condition it was judged on."""

    label: str
    conditions: tuple[Condition, ...]
    ceiling: str  # the strongest class the model and data allow, before recipe and upstream
    model_copy: str = ""  # which copy of the weights the run loaded (hub original, a decoded copy)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.value} (needs {c.requirement})" for c in self.conditions if not c.holds]

    def as_record(self) -> dict:
        return {"provenance": self.label, "ceiling": self.ceiling, "model_copy": self.model_copy,
                "reasons": self.reasons,
                "conditions": [c.as_record() for c in self.conditions],
                "definition": get_class(self.label).definition}


def classify(ceiling: str, conditions: list[Condition], upstream: dict[str, str | None],
             model_copy: str = "") -> Assessment:
    """The class of a run: full-scale when every condition holds; otherwise what the model and
    data allow (``ceiling``: smoke for the tiny model or fixture data, reduced-scale for a real
    model declared as such), a full-scale model with a failed condition being a partial run; and
    never stronger than the weakest upstream run (one without a record counts as partial)."""
    own = PARTIAL if ceiling == FULL_SCALE and not all(c.holds for c in conditions) else ceiling
    inherited = {run: label or PARTIAL for run, label in upstream.items()}
    label = weakest([own, *inherited.values()])
    conditions = [*conditions, *(
        Condition(f"upstream {run}", label if label else "no provenance record (made before runs "
                  "recorded one; rerun it)", label == FULL_SCALE, FULL_SCALE)
        for run, label in upstream.items())]
    return Assessment(label=label, conditions=tuple(conditions), ceiling=ceiling,
                      model_copy=model_copy)


def write_record(run_dir: Path, assessment: Assessment) -> None:
    from stilts_core.paths import atomic_write_text

    atomic_write_text(Path(run_dir) / PROVENANCE_RECORD, json.dumps(assessment.as_record(), indent=1))


def read_label(run_dir: Path) -> str | None:
    """The class a finished run recorded, or ``None`` for a run made before runs recorded one."""
    path = Path(run_dir) / PROVENANCE_RECORD
    if not path.is_file():
        return None
    label = json.loads(path.read_text(encoding="utf-8")).get("provenance")
    get_class(label)
    return label
