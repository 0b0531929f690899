"""The long table of every measure (one row per language, family, measure and source, with
its provenance), its wide view, its coverage, and the build that writes it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from stilts_core.analysis.morphology.corpus import corpus_rows, tatoeba_pairs
from stilts_core.analysis.morphology.segmenters import SEGMENTERS
from stilts_core.analysis.morphology.sources import (
    COLUMNS,
    FAMILIES,
    OUTPUT_DIR,
    MorphologyError,
    MorphologySettings,
    SourceVersions,
)
from stilts_core.analysis.morphology.tokenizer import tokenizer_rows, tokenizer_texts
from stilts_core.analysis.morphology.treebank import all_treebank_rows
from stilts_core.analysis.morphology.wals import WALS_FEATURES, read_wals, wals_rows
from stilts_core.models.registry import load_tokenizer, resolve_model
from stilts_core.paths import atomic_write_text
from stilts_core.tasks.languages import (
    LANGUAGES_CSV,
    languages_table,
    read_cc100,
    write_languages_table,
)

logger = logging.getLogger(__name__)

# --- the table ----------------------------------------------------------------------------------

DEFAULT_SETTINGS = MorphologySettings()


def build_indices(root: Path, wals_values: pd.DataFrame,
                  settings: MorphologySettings = DEFAULT_SETTINGS, tokenizer=None,
                  tokenizer_name: str | None = None) -> pd.DataFrame:
    """Every measure of every family for every XTREME-R language, as one long table;
    ``wals_values`` is the ValueTable :func:`read_wals` returns."""
    versions = SourceVersions(root)
    pairs = tatoeba_pairs(root)
    rows = wals_rows(wals_values, versions("wals/values.csv"), settings)
    rows += corpus_rows(pairs, versions, settings)
    rows += all_treebank_rows(root, versions, settings)
    if tokenizer is not None:
        rows += tokenizer_rows(tokenizer_texts(root), tokenizer, tokenizer_name, versions)
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["n_tokens"] = table["n_tokens"].astype("Int64")
    return table.sort_values(["family", "measure", "language", "source"], ignore_index=True)


def wide_view(indices: pd.DataFrame) -> pd.DataFrame:
    """One row per language, one column per measure, from the primary rows."""
    primary = indices[indices["primary"]]
    duplicated = primary[primary.duplicated(["language", "measure"], keep=False)]
    if not duplicated.empty:
        pairs = duplicated[["language", "measure"]].drop_duplicates().values.tolist()
        raise MorphologyError(f"several primary rows for (language, measure) {pairs}")
    return primary.pivot(index="language", columns="measure", values="value").reindex(
        columns=list(dict.fromkeys(primary["measure"])))


def coverage(indices: pd.DataFrame) -> pd.DataFrame:
    """Per language and family: how many of the family's measures have a value."""
    primary = indices[indices["primary"]]
    counts = primary.assign(present=primary["value"].notna()).groupby(
        ["language", "family"])["present"].agg(["sum", "size"])
    return (counts["sum"].astype(int).astype(str) + "/" + counts["size"].astype(str)).unstack(
        "family").reindex(columns=[f for f in FAMILIES if f in set(primary["family"])])


def read_indices(path: Path = OUTPUT_DIR / "indices.csv") -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `stilts morphology build`")
    table = pd.read_csv(path, keep_default_na=False, na_values=[""],
                        dtype={"note": str, "source_version": str})
    missing = set(COLUMNS) - set(table.columns)
    if missing:
        raise MorphologyError(f"{path}: missing column(s) {sorted(missing)}; rebuild it with "
                              "`stilts morphology build`")
    table["n_tokens"] = table["n_tokens"].astype("Int64")
    text = ["source", "source_version", "note"]
    table[text] = table[text].fillna("")
    return table


def build(root: Path, output_dir: Path = OUTPUT_DIR, languages_csv: Path | None = None,
          tokenizer_name: str | None = None, settings: MorphologySettings = DEFAULT_SETTINGS) -> list[Path]:
    """Compute everything from the sources under ``root``, then write the tables, each
    atomically: nothing is written until every table is computed, so a failure leaves the old
    tables together rather than a new languages table beside stale indices."""
    tokenizer = None
    if tokenizer_name:
        tokenizer = load_tokenizer(resolve_model(tokenizer_name))
    wals_languages, wals_values = read_wals(root / "wals" / "StructureDataset-metadata.json")
    languages = languages_table(wals_languages, read_cc100())
    indices = build_indices(root, wals_values, settings, tokenizer, tokenizer_name)
    outputs = {"indices.csv": indices, "indices_wide.csv": wide_view(indices).reset_index(),
               "coverage.csv": coverage(indices).reset_index()}
    details = {
        "settings": settings.model_dump(),
        "tokenizer": tokenizer_name,
        "segmenters": {script: f"{s.version()} ({s.description})"
                       for script, s in SEGMENTERS.items()},
        "wals_features": {f.id: {"name": f.name, "reading": f.reading,
                                 "in_composite": f.in_composite, "coding": f.coding}
                          for f in WALS_FEATURES.values()},
    }
    written = [write_languages_table(languages, languages_csv or LANGUAGES_CSV)]
    for name, table in outputs.items():
        path = output_dir / name
        atomic_write_text(path, table.to_csv(index=False, float_format="%.6g",
                                             lineterminator="\n"))
        written.append(path)
    atomic_write_text(output_dir / "settings.json", json.dumps(details, indent=1) + "\n")
    written.append(output_dir / "settings.json")
    return written
