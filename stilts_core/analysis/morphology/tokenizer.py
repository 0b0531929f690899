"""Tokenizer measures of Rust et al. (2021): subword fertility and the share of words split,
for a given model tokenizer."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stilts_core.analysis.morphology.corpus import read_lines
from stilts_core.analysis.morphology.segmenters import words
from stilts_core.analysis.morphology.sources import (
    TREEBANKS,
    MorphologyError,
    SourceVersions,
    index_row,
    tatoeba_files,
)
from stilts_core.analysis.morphology.treebank import NON_WORD_UPOS
from stilts_core.tasks.languages import (
    get_language,
    xtreme_r_languages,
)
from stilts_core.tasks.registry import get_task

logger = logging.getLogger(__name__)

# --- 4. tokenizer measures (Rust et al. 2021) ---------------------------------------------------

TOKENIZER_MEASURES = ("subword_fertility", "proportion_split")


def subword_fertility(tokenize: Callable[[str], Sequence], tokens: Sequence[str]) -> tuple[float, float]:
    """(subwords per word, share of words split into two or more subwords), each word
    tokenised on its own as in Rust et al. (2021); each distinct word is tokenised once."""
    counts = Counter(tokens)
    pieces = {word: len(tokenize(word)) for word in counts}
    total = sum(counts.values())
    return (sum(pieces[word] * count for word, count in counts.items()) / total,
            sum(count for word, count in counts.items() if pieces[word] >= 2) / total)


@dataclass(frozen=True)
class TokenizerText:
    """The words of one text of a language as written (NFC, not case-folded: the model
    tokenizers are cased), which the tokenizer measures are computed on."""

    language: str
    source: str
    files: tuple[str, ...]  # relative to the sources folder
    words: list[str]
    primary: bool


def treebank_surface_words(path: Path) -> list[str]:
    """The words of a treebank as they are written: a multiword token (``zum``, not ``zu dem``)
    counts once, its syntactic words not at all; punctuation and symbols are not words."""
    import unicodedata

    import conllu

    forms = []
    with open(path, encoding="utf-8") as handle:
        try:
            for sentence in conllu.parse_incr(handle):
                inside = set()
                for token in sentence:
                    identifier = token["id"]
                    if isinstance(identifier, tuple) and identifier[1] == "-":
                        forms.append(token["form"])
                        inside.update(range(identifier[0], identifier[2] + 1))
                    elif (isinstance(identifier, int) and identifier not in inside
                          and token["upos"] not in NON_WORD_UPOS):
                        forms.append(token["form"])
        except (conllu.exceptions.ParseException, KeyError) as error:
            raise MorphologyError(f"{path}: not valid CoNLL-U ({error}); a word line needs the "
                                  "ten CoNLL-U columns") from None
    return [unicodedata.normalize("NFC", form) for form in forms]


def tokenizer_texts(root: Path) -> list[TokenizerText]:
    """Every text of each XTREME-R language in the sources: its Tatoeba side, its main UD test
    treebank and its PUD treebank. The primary one is Tatoeba (the same content in every
    language), else the main treebank, else PUD; English's Tatoeba text is the English sides of
    all pair files."""
    tatoeba = [lang for lang in get_task("tatoeba").languages if lang in xtreme_r_languages()]
    texts = []
    for language in tatoeba:
        own = tatoeba_files(language)[0]
        texts.append(TokenizerText(language, f"Tatoeba {Path(own).name}", (own,), [
            w for line in read_lines(root / own) for w in words(line, language, casefold=False)],
            primary=True))
    english = [tatoeba_files(language)[1] for language in tatoeba]
    texts.append(TokenizerText("en", "Tatoeba, English sides", tuple(english), [
        w for name in english for line in read_lines(root / name)
        for w in words(line, "en", casefold=False)], primary=True))
    with_text = {text.language for text in texts}
    for kind in ("main", "pud"):
        for treebank in (t for t in TREEBANKS if t.kind == kind):
            texts.append(TokenizerText(
                treebank.language, f"{treebank.repository} ({kind})", (treebank.relative_path,),
                treebank_surface_words(treebank.path(root)),
                primary=treebank.language not in with_text))
            with_text.add(treebank.language)
    return texts


METASPACE = "\u2581"  # SentencePiece's word-boundary mark


def tokenizer_rows(texts: Sequence[TokenizerText], tokenizer, name: str,
                   versions: SourceVersions) -> list[dict]:
    """Both measures on every text; a language without any text gets empty values that say so.

    A word tokenised alone is read as if a space preceded it. For orthographies without spaces
    between words that adds a piece running text does not have (XLM-R: ``▁`` then ``日本``),
    so there a leading piece that is only the boundary mark is not counted."""
    def tokenize(word: str, spaced: bool) -> list[int]:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        unspaced_mark = (not spaced and len(ids) > 1
                         and tokenizer.convert_ids_to_tokens(ids[0]) == METASPACE)
        return ids[1:] if unspaced_mark else ids

    rows = []
    for text in texts:
        spaced = get_language(text.language).spaces_between_words
        fertility, split = subword_fertility(lambda word, spaced=spaced: tokenize(word, spaced),
                                             text.words)
        logger.info(f"[morphology] tokenizer {text.language} ({text.source}): {len(text.words)} words, "
            f"fertility {fertility:.2f}")
        version = ", ".join(sorted({versions(file) for file in text.files}))
        note = "words as written, each tokenised alone" + (
            "" if spaced else f"; a leading {METASPACE} piece not counted (no spaces in the "
                              "orthography)")
        rows += [index_row(text.language, "tokenizer", measure, value, f"{name} on {text.source}",
                      version, len(text.words), note, primary=text.primary)
                 for measure, value in zip(TOKENIZER_MEASURES, (fertility, split), strict=True)]
    with_text = {text.language for text in texts}
    rows += [index_row(language, "tokenizer", measure, None, name, "",
                  note="no Tatoeba, UD or PUD text for this language in the sources")
             for language in xtreme_r_languages() if language not in with_text
             for measure in TOKENIZER_MEASURES]
    return rows
