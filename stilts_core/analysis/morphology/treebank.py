"""Treebank measures of Çöltekin & Rama (2023) on the UD test treebanks, on equal-sized
samples of words."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stilts_core.analysis.morphology.corpus import unigram_entropy
from stilts_core.analysis.morphology.sources import (
    TREEBANKS,
    MorphologyError,
    MorphologySettings,
    SourceVersions,
    Treebank,
    index_row,
    missing_sources,
)
from stilts_core.tasks.languages import (
    xtreme_r_languages,
)

logger = logging.getLogger(__name__)

# --- 3. treebank measures (Çöltekin & Rama 2023) -------------------------------------------------

NON_WORD_UPOS = {"PUNCT", "SYM"}


@dataclass(frozen=True)
class TreebankWords:
    """The syntactic words of a treebank, sentence by sentence: (form, lemma, feature bundle)."""

    source: str
    sentences: list[list[tuple[str, str | None, tuple[str, ...] | None]]]

    @property
    def n_words(self) -> int:
        return sum(map(len, self.sentences))

    def coverage(self) -> tuple[float, float]:
        """Shares of words with a lemma and with morphological features."""
        flat = [w for s in self.sentences for w in s]
        return (sum(w[1] is not None for w in flat) / len(flat),
                sum(w[2] is not None for w in flat) / len(flat))


def read_treebank(path: Path) -> TreebankWords:
    """Syntactic words (integer ids: no multiword ranges, no empty nodes), without punctuation
    and symbols; ``_`` lemmas and FEATS become None."""
    import conllu

    if not path.exists():
        raise MorphologyError(f"{path} is missing: UD test treebanks go in <sources>/ud/ (and "
                              "ud/pud/), or use --download")
    sentences = []
    with open(path, encoding="utf-8") as handle:
        try:
            for sentence in conllu.parse_incr(handle):
                kept = [(t["form"].casefold(),
                         None if t["lemma"] in (None, "_", "") else t["lemma"].casefold(),
                         None if not t["feats"] else tuple(f"{k}={v}" for k, v in
                                                           sorted(t["feats"].items())))
                        for t in sentence if isinstance(t["id"], int)
                        and t["upos"] not in NON_WORD_UPOS]
                if kept:
                    sentences.append(kept)
        except (conllu.exceptions.ParseException, KeyError) as error:
            raise MorphologyError(f"{path}: not valid CoNLL-U (sentence {len(sentences) + 1}: "
                                  f"{error}); a word line needs the ten CoNLL-U columns") from None
    if not sentences:
        raise MorphologyError(f"{path}: no words found; is it a CoNLL-U treebank?")
    return TreebankWords(source=path.name, sentences=sentences)


def mean_size_of_paradigm(forms: Sequence[str], lemmas: Sequence[str]) -> float:
    """Word-form types per lemma type (Xanthos et al. 2011)."""
    return len(set(forms)) / len(set(lemmas))


def inflectional_synthesis(bundles: Sequence[tuple[str, ...] | None]) -> float:
    """Mean number of morphological features per word (a word without FEATS has none)."""
    return float(np.mean([len(b or ()) for b in bundles]))


def feature_entropy(bundles: Sequence[tuple[str, ...] | None]) -> float:
    """Entropy (bits) of the distribution of whole feature bundles, the empty bundle included."""
    return unigram_entropy(b or () for b in bundles)


def form_lemma_entropy_difference(forms: Sequence[str], lemmas: Sequence[str]) -> float:
    """H(word forms) - H(lemmas), bits: the information inflection adds to the lemma."""
    return unigram_entropy(forms) - unigram_entropy(lemmas)


# measure -> (function of a sample, what it needs: "lemma" or "feats")
TREEBANK_MEASURES = {
    "mean_size_of_paradigm": (lambda w: mean_size_of_paradigm(
        [x[0] for x in w if x[1] is not None], [x[1] for x in w if x[1] is not None]), "lemma"),
    "form_lemma_entropy_difference": (lambda w: form_lemma_entropy_difference(
        [x[0] for x in w if x[1] is not None], [x[1] for x in w if x[1] is not None]), "lemma"),
    "inflectional_synthesis": (lambda w: inflectional_synthesis([x[2] for x in w]), "feats"),
    "feature_entropy": (lambda w: feature_entropy([x[2] for x in w]), "feats"),
}


def word_samples(treebank: TreebankWords, size: int, samples: int,
                 seed: int) -> list[list[tuple]]:
    """``samples`` random samples of exactly ``size`` words: whole sentences in a random order,
    the last one cut. Equal sizes matter: type and entropy measures grow with sample size."""
    if treebank.n_words < size:
        raise ValueError(f"{treebank.source} has {treebank.n_words} words, fewer than {size}")
    rng = np.random.default_rng(seed)
    drawn = []
    for _ in range(samples):
        sample = []
        for index in rng.permutation(len(treebank.sentences)):
            sample += treebank.sentences[index]
            if len(sample) >= size:
                break
        drawn.append(sample[:size])
    return drawn


def treebank_rows(treebank: Treebank, words_: TreebankWords, version: str,
                  settings: MorphologySettings, primary: bool) -> list[dict]:
    """A measure the treebank cannot give (too small, no lemmas, no FEATS) is an empty value
    with the reason."""
    lemma_share, feats_share = words_.coverage()
    size = settings.ud_sample_size
    missing = {"lemma": "" if lemma_share >= settings.lemma_coverage_min else
               f"lemmas on {lemma_share:.1%} of words (< {settings.lemma_coverage_min:.0%}): the "
               "treebank is not lemmatised",
               "feats": "" if feats_share >= settings.feats_coverage_min else
               f"FEATS on {feats_share:.1%} of words (< {settings.feats_coverage_min:.0%}): the "
               "treebank has no morphological features to count"}
    too_small = "" if words_.n_words >= size else (
        f"the treebank has {words_.n_words} words, fewer than the sample size ({size}); values "
        "on fewer words are not comparable")
    samples = [] if too_small else word_samples(words_, size, settings.ud_samples, settings.seed)
    rows = []
    for name, (measure, needs) in TREEBANK_MEASURES.items():
        why = too_small or missing[needs]
        value = None if why else float(np.mean([measure(sample) for sample in samples]))
        rows.append(index_row(treebank.language, "treebank", name, value,
                         f"{treebank.repository} ({treebank.kind})", version,
                         min(words_.n_words, size),
                         why or f"mean over {len(samples)} random samples of {size} words",
                         primary=primary))
    return rows


def all_treebank_rows(root: Path, versions: SourceVersions, settings: MorphologySettings) -> list[dict]:
    """Main treebanks are primary; a PUD treebank is primary only where no main one exists."""
    rows = []
    with_main = {t.language for t in TREEBANKS if t.kind == "main"}
    not_fetched = missing_sources(root)
    for treebank in TREEBANKS:
        if treebank.relative_path in not_fetched and not treebank.path(root).exists():
            logger.info(f"[morphology] treebank {treebank.repository}: not downloaded")
            rows += [index_row(treebank.language, "treebank", name, None, f"{treebank.repository} "
                          f"({treebank.kind})", "", note=f"not downloaded: "
                          f"{not_fetched[treebank.relative_path]}",
                          primary=treebank.kind == "main" or treebank.language not in with_main)
                     for name in TREEBANK_MEASURES]
            continue
        words_ = read_treebank(treebank.path(root))
        logger.info(f"[morphology] treebank {treebank.repository}: {words_.n_words} words")
        primary = treebank.kind == "main" or treebank.language not in with_main
        rows += treebank_rows(treebank, words_, versions(treebank.relative_path), settings,
                              primary)
    covered = {t.language for t in TREEBANKS}
    rows += [index_row(language, "treebank", name, None, "UD", "",
                  note="no UD test treebank for this language in the data")
             for language in xtreme_r_languages() if language not in covered
             for name in TREEBANK_MEASURES]
    return rows
