"""Corpus measures on the Tatoeba test pairs (the same content in every language): TTR,
moving-average TTR, word entropy and word length, raw and relative to the English side."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from stilts_core.analysis.morphology.segmenters import segmenter_for, words
from stilts_core.analysis.morphology.sources import (
    MorphologyError,
    MorphologySettings,
    SourceVersions,
    index_row,
    tatoeba_files,
)
from stilts_core.tasks.languages import (
    get_language,
    xtreme_r_languages,
)
from stilts_core.tasks.registry import get_task

logger = logging.getLogger(__name__)

# --- 2. corpus measures ------------------------------------------------------------------------

def type_token_ratio(tokens: Sequence[str]) -> float:
    return len(set(tokens)) / len(tokens)


def moving_average_ttr(tokens: Sequence[str], window: int) -> float | None:
    """Mean TTR over every window of ``window`` consecutive tokens (Covington & McFall 2010);
    None when the text is shorter than one window."""
    if len(tokens) < window:
        return None
    counts = Counter(tokens[:window])
    total = len(counts)
    for start in range(1, len(tokens) - window + 1):
        leaving, entering = tokens[start - 1], tokens[start + window - 1]
        counts[leaving] -= 1
        if counts[leaving] == 0:
            del counts[leaving]
        counts[entering] += 1
        total += len(counts)
    return total / (len(tokens) - window + 1) / window


def unigram_entropy(items: Iterable) -> float:
    """Plug-in (maximum-likelihood) Shannon entropy of the unigram distribution, in bits."""
    counts = np.array(list(Counter(items).values()), dtype=float)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def mean_word_length(tokens: Sequence[str]) -> float:
    return float(np.mean([len(t) for t in tokens]))


CORPUS_MEASURES: dict[str, Callable[[Sequence[str], MorphologySettings], float | None]] = {
    "ttr": lambda tokens, s: type_token_ratio(tokens),
    "mattr": lambda tokens, s: moving_average_ttr(tokens, s.mattr_window),
    "word_entropy": lambda tokens, s: unigram_entropy(tokens),
    "mean_word_length": lambda tokens, s: mean_word_length(tokens),
}


def read_lines(path: Path) -> list[str]:
    if not path.exists():
        raise MorphologyError(f"{path} is missing: the Tatoeba pair files go in <sources>/tatoeba/ "
                              "(LASER's data/tatoeba/v1 layout), or use --download")
    return path.read_text(encoding="utf-8").splitlines()


def tatoeba_words(root: Path, language: str) -> tuple[list[str], list[str]]:
    """Words of the language side and of the English side of the same Tatoeba pairs."""
    own, english = (root / name for name in tatoeba_files(language))
    own_lines, english_lines = read_lines(own), read_lines(english)
    if len(own_lines) != len(english_lines):
        raise MorphologyError(f"{own} has {len(own_lines)} lines but {english} has "
                              f"{len(english_lines)}: the pair files must be line-aligned")
    return ([w for line in own_lines for w in words(line, language)],
            [w for line in english_lines for w in words(line, "en")])


def tatoeba_pairs(root: Path) -> dict[str, tuple[list[str], list[str]]]:
    """:func:`tatoeba_words` of every Tatoeba language, read and segmented once."""
    return {language: tatoeba_words(root, language) for language in get_task("tatoeba").languages
            if language in xtreme_r_languages()}


def corpus_rows(pairs: dict[str, tuple[list[str], list[str]]], versions: SourceVersions,
                settings: MorphologySettings) -> list[dict]:
    """The measures on each language's side, and relative to the English side of the same
    pairs. English's own value is the mean over the English sides of all pair files."""
    rows, english = [], {name: [] for name in CORPUS_MEASURES}
    english_tokens, english_versions = [], set()
    for language in xtreme_r_languages():
        if language == "en":
            continue
        if language not in pairs:
            rows += [index_row(language, "corpus", name, None, "Tatoeba", "",
                          note="no Tatoeba test pairs for this language")
                     for name in (*CORPUS_MEASURES, *_relative_names())]
            continue
        own, eng = pairs[language]
        own_file = tatoeba_files(language)[0]
        source, version = f"Tatoeba {Path(own_file).name}", versions(own_file)
        segmenter = segmenter_for(get_language(language))
        note = f"segmented with {segmenter.version()}" if segmenter else ""
        english_tokens.append(len(eng))
        english_versions.add(versions(tatoeba_files(language)[1]))
        logger.info(f"[morphology] corpus {language}: {len(own)} words ({len(eng)} on the English side)")
        for name, measure in CORPUS_MEASURES.items():
            value, reference = measure(own, settings), measure(eng, settings)
            english[name].append(reference)
            short = "" if value is not None else (
                f"fewer words than the window ({settings.mattr_window})")
            rows.append(index_row(language, "corpus", name, value, source, version, len(own),
                             "; ".join(filter(None, (note, short)))))
            relative = None if value is None or reference is None else value / reference
            rows.append(index_row(language, "corpus", f"{name}_over_english", relative, source,
                             version, len(own), "divided by the same measure on the English "
                                                "side of the same pairs"))
    for name, values in english.items():
        present = [v for v in values if v is not None]
        rows.append(index_row("en", "corpus", name, float(np.mean(present)) if present else None,
                         "Tatoeba, English sides", ", ".join(sorted(english_versions)),
                         int(np.mean(english_tokens)),
                         f"mean over the English sides of {len(present)} pair files"))
    rows += [index_row("en", "corpus", name, None, "Tatoeba", "", note="English is the reference")
             for name in _relative_names()]
    return rows


def _relative_names() -> list[str]:
    return [f"{name}_over_english" for name in CORPUS_MEASURES]
