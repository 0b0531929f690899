"""Typological complexity: WALS features of inflectional morphology, each coded on a
documented numeric scale (higher = more inflection), and a composite synthesis index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stilts_core.analysis.morphology.sources import Frozen, MorphologyError, MorphologySettings, index_row
from stilts_core.tasks.languages import (
    get_language,
    xtreme_r_languages,
)

# --- 1. WALS ----------------------------------------------------------------------------------

class WalsFeature(Frozen):
    """A WALS feature on a numeric scale where higher means more inflectional morphology.
    ``coding`` maps WALS value numbers to scores; ``None`` is a value off the scale (missing)."""

    id: str
    name: str
    coding: dict[int, float | None]
    reading: str
    in_composite: bool

    def score(self, value: int) -> float | None:
        return self.coding[value]

    def scaled(self, value: int) -> float | None:
        """The score mapped onto [0, 1] by the coding's range, for the composite."""
        score = self.score(value)
        scores = [s for s in self.coding.values() if s is not None]
        return None if score is None else (score - min(scores)) / (max(scores) - min(scores))


_LOCUS = {1: 1.0, 2: 1.0, 3: 2.0, 4: 0.0, 5: None}
WALS_FEATURES: dict[str, WalsFeature] = {f.id: f for f in (
    WalsFeature(id="20A", name="Fusion of selected inflectional formatives",
                coding={1: 1.0, 2: 0.0, 3: 1.0, 4: 0.5, 5: 1.0, 6: 1.0, 7: 0.5},
                reading="share of bound (non-isolating) exponence: concatenative, tonal or "
                        "ablaut 1, mixed with isolating 0.5, exclusively isolating 0",
                in_composite=True),
    WalsFeature(id="21A", name="Exponence of selected inflectional formatives (case)",
                coding={5: 0.0, 1: 1.0, 2: 2.0, 3: 2.0, 4: 2.0},
                reading="no case 0, monoexponential case 1, case cumulated with another "
                        "category 2", in_composite=True),
    WalsFeature(id="21B", name="Exponence of tense-aspect-mood inflection",
                coding={6: 0.0, 1: 1.0, 2: 2.0, 3: 2.0, 4: 2.0, 5: 2.0},
                reading="no TAM inflection 0, monoexponential 1, cumulated with another "
                        "category 2", in_composite=True),
    WalsFeature(id="22A", name="Inflectional synthesis of the verb",
                coding={1: 0.5, 2: 2.5, 3: 4.5, 4: 6.5, 5: 8.5, 6: 10.5, 7: 12.5},
                reading="categories per verb word, the midpoint of WALS's bin",
                in_composite=True),
    WalsFeature(id="23A", name="Locus of marking in the clause", coding=_LOCUS,
                reading="loci marked: none 0, head or dependent 1, both 2; 'other' is off the "
                        "scale", in_composite=False),
    WalsFeature(id="24A", name="Locus of marking in possessive noun phrases", coding=_LOCUS,
                reading="as 23A", in_composite=False),
    WalsFeature(id="25A", name="Locus of marking: whole-language typology",
                coding={1: 1.0, 2: 1.0, 3: 2.0, 4: 0.0, 5: None},
                reading="as 23A; 'inconsistent or other' is off the scale", in_composite=False),
    WalsFeature(id="25B", name="Zero marking of A and P arguments", coding={1: 0.0, 2: 1.0},
                reading="zero marking 0, non-zero 1", in_composite=False),
    WalsFeature(id="26A", name="Prefixing vs. suffixing in inflectional morphology",
                coding={1: 0.0, 2: 1.0, 3: 1.0, 4: 1.0, 5: 1.0, 6: 1.0},
                reading="little affixation 0, any affixing profile 1 (the feature's prefix/"
                        "suffix balance is not a complexity scale)", in_composite=True),
    WalsFeature(id="27A", name="Reduplication", coding={3: 0.0, 2: 1.0, 1: 2.0},
                reading="none 0, full only 1, full and partial 2", in_composite=False),
    WalsFeature(id="28A", name="Case syncretism", coding={1: 0.0, 3: 1.0, 2: 1.0, 4: 2.0},
                reading="no case 0, syncretic case 1, no syncretism 2", in_composite=False),
    WalsFeature(id="29A", name="Syncretism in verbal person/number marking",
                coding={1: 0.0, 2: 1.0, 3: 2.0},
                reading="no subject person/number marking 0, syncretic 1, not syncretic 2",
                in_composite=True),
    WalsFeature(id="49A", name="Number of cases",
                coding={1: 0.0, 9: 1.0, 2: 2.0, 3: 3.0, 4: 4.0, 5: 5.0, 6: 6.5, 7: 8.5, 8: 10.0},
                reading="number of cases (bin midpoint; 10 for ten or more); exclusively "
                        "borderline case marking 1", in_composite=True),
)}
COMPOSITE = "wals_synthesis"


def read_wals(metadata: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """WALS's LanguageTable and the values of :data:`WALS_FEATURES`, read with pycldf."""
    from pycldf import Dataset

    if not metadata.exists():
        raise MorphologyError(f"{metadata} is missing: point --sources at a folder with wals/ "
                              "(a WALS CLDF StructureDataset), or use --download")
    dataset = Dataset.from_metadata(metadata)
    languages = pd.DataFrame(list(dataset.iter_rows("LanguageTable")))
    values = pd.DataFrame([row for row in dataset.iter_rows("ValueTable")
                           if row["Parameter_ID"] in WALS_FEATURES])
    return languages, values


def wals_rows(values: pd.DataFrame, source_version: str,
              settings: MorphologySettings) -> list[dict]:
    """Every feature's score per language, and the composite over the composite features."""
    rows = []
    by_language = {(r.Language_ID, r.Parameter_ID): int(r.Value) for r in values.itertuples()}
    composite = [f for f in WALS_FEATURES.values() if f.in_composite]
    for language in xtreme_r_languages():
        wals_code = get_language(language).wals_code
        scaled = {}
        for feature in WALS_FEATURES.values():
            value = by_language.get((wals_code, feature.id))
            score = None if value is None else feature.score(value)
            note = ("not coded in WALS for this language" if value is None else
                    f"WALS value {value} is off the scale ({feature.reading})"
                    if score is None else "")
            rows.append(index_row(language, "wals", f"wals_{feature.id}", score,
                             f"WALS {feature.id} ({wals_code})", source_version, note=note))
            if feature.in_composite and score is not None:
                scaled[feature.id] = feature.scaled(value)
        enough = len(scaled) >= settings.wals_min_features
        rows.append(index_row(
            language, "wals", COMPOSITE,
            float(np.mean(list(scaled.values()))) if enough else None,
            f"WALS ({wals_code})", source_version,
            note=(f"mean of {len(scaled)}/{len(composite)} scaled features: {', '.join(scaled)}"
                  if enough else f"{len(scaled)} of the {len(composite)} composite features "
                                 f"coded (< {settings.wals_min_features})")))
    return rows
