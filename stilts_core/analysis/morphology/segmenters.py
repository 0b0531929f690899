"""Word segmentation per language: a Unicode word pattern, and a segmenter for the languages
written without spaces (jieba, janome, pythainlp)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version as package_version

import regex

from stilts_core.analysis.morphology.sources import MorphologyError
from stilts_core.tasks.languages import (
    LanguageSpec,
    get_language,
)

# --- word segmentation ---------------------------------------------------------------------------

WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+")


def _jieba(text: str) -> Iterable[str]:
    import jieba

    jieba.setLogLevel(60)
    return jieba.cut(text)


@cache
def _janome_tokenizer():
    from janome.tokenizer import Tokenizer

    return Tokenizer(wakati=True)


def _janome(text: str) -> Iterable[str]:
    return _janome_tokenizer().tokenize(text)


def _pythainlp(text: str) -> Iterable[str]:
    from pythainlp.tokenize import word_tokenize

    return word_tokenize(text, engine="newmm")


@dataclass(frozen=True)
class Segmenter:
    package: str
    segment: Callable[[str], Iterable[str]]
    description: str

    def version(self) -> str:
        return f"{self.package} {package_version(self.package)}"


# Orthographies without spaces between words are segmented by a dictionary segmenter, keyed by
# ISO 15924 script; a script without one is an error, never unsegmented strings.
SEGMENTERS: dict[str, Segmenter] = {
    "Hans": Segmenter("jieba", _jieba, "jieba, precise mode"),
    "Jpan": Segmenter("janome", _janome, "Janome with its bundled IPADIC (MeCab's dictionary)"),
    "Thai": Segmenter("pythainlp", _pythainlp, "PyThaiNLP newmm (dictionary maximal matching)"),
}


def segmenter_for(spec: LanguageSpec) -> Segmenter | None:
    if spec.spaces_between_words:
        return None
    if spec.script not in SEGMENTERS:
        raise MorphologyError(f"{spec.iso639_1} is written without spaces between words "
                              f"(script {spec.script}) and has no segmenter: add one to "
                              "stilts_core.analysis.morphology.segmenters.SEGMENTERS")
    return SEGMENTERS[spec.script]


def words(text: str, language: str, casefold: bool = True) -> list[str]:
    """Words: runs of letters, marks and digits (NFC), after segmentation where the
    orthography has no spaces; punctuation and symbols are not words. Case-folded for the
    corpus measures; as written for the (cased) tokenizers."""
    import unicodedata

    text = unicodedata.normalize("NFC", text)
    segmenter = segmenter_for(get_language(language))
    pieces = segmenter.segment(text) if segmenter else [text]
    return [w.casefold() if casefold else w for piece in pieces for w in WORD.findall(piece)]
