"""Morphological complexity of the XTREME-R languages, measured four ways, with provenance.

1. Typological: WALS features of inflectional morphology, each coded on a documented numeric
   scale (higher = more inflection), and a composite synthesis index.
2. Corpus: TTR, moving-average TTR, word entropy and word length on the Tatoeba test pairs (the
   same content in every language), raw and relative to the English side of the same pairs.
3. Treebank: Çöltekin & Rama's (2023) corpus measures on the UD test treebanks, on equal-sized
   samples of words.
4. Tokenizer: subword fertility and the share of words split, for a given model tokenizer.

The result is one long table (language, family, measure, value, source, source_version,
n_tokens, note, primary); a value the data cannot give is an empty cell with a note saying why,
never a zero. ``primary`` marks the one row per language and measure that the wide view uses.

The package's rooms, in the order a build runs them: ``sources`` (settings, the sources and their
versions, downloads), ``wals``, ``segmenters`` (words per language), ``corpus``, ``treebank`` and
``tokenizer`` (the measures), ``table`` (the long table, its wide view and the build). The names
below are what the rest of the project reads.
"""

from stilts_core.analysis.morphology.sources import (
    MorphologyError,
    MorphologySettings,
    download_sources,
    missing_sources,
    tatoeba_files,
)
from stilts_core.analysis.morphology.table import build, coverage, read_indices, wide_view
from stilts_core.analysis.morphology.wals import WALS_FEATURES

__all__ = [
    "build",
    "coverage",
    "download_sources",
    "missing_sources",
    "MorphologyError",
    "MorphologySettings",
    "read_indices",
    "tatoeba_files",
    "WALS_FEATURES",
    "wide_view",
]
