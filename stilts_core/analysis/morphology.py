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
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np
import pandas as pd
import regex
from pydantic import BaseModel, ConfigDict, Field

from stilts_core.models.registry import load_tokenizer, resolve_model
from stilts_core.paths import atomic_write_text, data_dir
from stilts_core.tasks.languages import (
    LANGUAGES_CSV,
    LanguageSpec,
    get_language,
    languages_table,
    read_cc100,
    write_languages_table,
    xtreme_r_languages,
)
from stilts_core.tasks.registry import get_task

FAMILIES = ("wals", "corpus", "treebank", "tokenizer")
COLUMNS = ["language", "family", "measure", "value", "source", "source_version", "n_tokens", "note",
           "primary"]
OUTPUT_DIR = data_dir() / "morphology"


class MorphologyError(ValueError):
    """A source file is missing or malformed; the message names the file and the fix."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MorphologySettings(_Frozen):
    """Every choice that changes a number; written beside the tables (``settings.json``)."""

    mattr_window: int = Field(500, ge=10, description="MATTR window in words (Covington & "
                                                      "McFall 2010 use 500)")
    ud_sample_size: int = Field(5000, ge=100, description="words per UD sample: every treebank "
                                                          "is measured on equal-sized samples")
    ud_samples: int = Field(20, ge=1, description="random samples per treebank (mean reported)")
    seed: int = 0
    lemma_coverage_min: float = Field(0.9, description="share of words with a LEMMA below "
                                                       "which a treebank counts as unlemmatised")
    feats_coverage_min: float = Field(0.05, description="share of words with FEATS below "
                                                        "which a treebank counts as unannotated")
    wals_min_features: int = Field(3, ge=1, description="composite features a language needs "
                                                        "for a WALS synthesis index")


# --- where the sources are (one place for every URL) --------------------------------------------

# ``--download`` fetches exactly the files the committed tables were computed from: one row per
# file with its repository, commit and SHA-256 (the commits are the data pack's, mostly branch
# heads of their day rather than release tags; WALS is the v2020.4 release commit).
DOWNLOAD_SOURCES = data_dir() / "morphology" / "sources.tsv"
SOURCE_URLS = {
    "archive": "https://github.com/{repository}/archive/{commit}.zip",
    "raw": "https://raw.githubusercontent.com/{repository}/{commit}/{source_path}",
}
MISSING_FILE = "MISSING.tsv"


class Treebank(_Frozen):
    language: str
    repository: str  # UniversalDependencies/<repository>
    file: str
    kind: str  # "main" (XTREME-R's UD-POS treebank where available) or "pud" (parallel)

    def path(self, root: Path) -> Path:
        return root / "ud" / ("pud" if self.kind == "pud" else "") / self.file

    @property
    def relative_path(self) -> str:
        return f"ud/pud/{self.file}" if self.kind == "pud" else f"ud/{self.file}"


def _treebanks(kind: str, listing: str) -> tuple[Treebank, ...]:
    """``listing``: one ``language repository file-stem`` per line."""
    return tuple(Treebank(language=lang, repository=f"UD_{repo}", file=f"{stem}-ud-test.conllu",
                          kind=kind)
                 for lang, repo, stem in (line.split() for line in listing.strip().splitlines()))


# Thai has no "main" row: XTREME's UD-POS Thai treebank is Thai-PUD, so its PUD row is primary.
TREEBANKS: tuple[Treebank, ...] = _treebanks("main", """
af Afrikaans-AfriBooms af_afribooms
bg Bulgarian-BTB bg_btb
de German-GSD de_gsd
el Greek-GDT el_gdt
en English-EWT en_ewt
es Spanish-AnCora es_ancora
et Estonian-EDT et_edt
eu Basque-BDT eu_bdt
fa Persian-PerDT fa_perdt
fi Finnish-TDT fi_tdt
fr French-GSD fr_gsd
he Hebrew-HTB he_htb
hu Hungarian-Szeged hu_szeged
id Indonesian-GSD id_gsd
it Italian-ISDT it_isdt
ja Japanese-GSD ja_gsd
kk Kazakh-KTB kk_ktb
ko Korean-Kaist ko_kaist
lt Lithuanian-ALKSNIS lt_alksnis
mr Marathi-UFAL mr_ufal
nl Dutch-Alpino nl_alpino
pl Polish-PDB pl_pdb
pt Portuguese-Bosque pt_bosque
ro Romanian-RRT ro_rrt
ru Russian-GSD ru_gsd
ta Tamil-TTB ta_ttb
te Telugu-MTG te_mtg
tl Tagalog-TRG tl_trg
tr Turkish-BOUN tr_boun
uk Ukrainian-IU uk_iu
ur Urdu-UDTB ur_udtb
vi Vietnamese-VTB vi_vtb
wo Wolof-WTB wo_wtb
yo Yoruba-YTB yo_ytb
zh Chinese-GSD zh_gsd
""") + _treebanks("pud", "\n".join(
    f"{lang} {name}-PUD {lang}_pud" for lang, name in (
        ("ar", "Arabic"), ("de", "German"), ("en", "English"), ("es", "Spanish"),
        ("fi", "Finnish"), ("fr", "French"), ("hi", "Hindi"), ("id", "Indonesian"),
        ("it", "Italian"), ("ja", "Japanese"), ("ko", "Korean"), ("pl", "Polish"),
        ("pt", "Portuguese"), ("ru", "Russian"), ("th", "Thai"), ("tr", "Turkish"),
        ("zh", "Chinese"))))


def tatoeba_files(language: str) -> tuple[str, str] | None:
    """LASER's file names of the (language side, English side) pairs, or None."""
    code = get_task("tatoeba").language_codes.get(language)
    return None if code is None else (f"tatoeba/tatoeba.{code}-eng.{code}",
                                      f"tatoeba/tatoeba.{code}-eng.eng")


class SourceVersions:
    """``path -> repository@commit`` from the data pack's ``MANIFEST.tsv`` (the shared pack and
    ``download_sources`` both write one), so every number names the file version it came from."""

    def __init__(self, root: Path):
        self.root = root
        manifest = root / "MANIFEST.tsv"
        self.table = (pd.read_csv(manifest, sep="\t", dtype=str).set_index("path")
                      if manifest.exists() else None)

    def __call__(self, relative_path: str) -> str:
        if self.table is None or relative_path not in self.table.index:
            return f"local file {relative_path} (no MANIFEST.tsv entry)"
        row = self.table.loc[relative_path]
        return f"{row['source_repo']}@{str(row['source_commit'])[:12]}"


def source_url(row: dict) -> str:
    """Where one pinned source file is fetched from (a whole-repository archive for WALS)."""
    template = SOURCE_URLS["archive" if row["path"].endswith(".zip") else "raw"]
    return template.format(**row)


def download_sources(target: Path, log=print, sources: Path = DOWNLOAD_SOURCES) -> Path:
    """Fetch every pinned source file into ``target`` in the layout the build reads, check its
    SHA-256, and write ``MANIFEST.tsv``. A file that cannot be fetched (or differs) is listed in
    ``MISSING.tsv`` with its URL and the reason instead of stopping the others; a missing
    treebank is then reported in the tables, a missing WALS or Tatoeba file stops the build."""
    import hashlib

    target.mkdir(parents=True, exist_ok=True)
    rows = pd.read_csv(sources, sep="\t", dtype=str, keep_default_na=False).to_dict("records")
    fetched, missing = [], []
    for row in rows:
        url, destination = source_url(row), target / row["path"]
        if not destination.exists():
            log(f"[morphology] downloading {url}")
            destination.parent.mkdir(parents=True, exist_ok=True)
            partial = destination.with_name(f".{destination.name}.part")
            try:
                with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
                    shutil.copyfileobj(response, out)
            except OSError as error:
                partial.unlink(missing_ok=True)
                missing.append({"path": row["path"], "url": url, "reason": str(error)})
                continue
            digest = hashlib.sha256(partial.read_bytes()).hexdigest()
            if row["sha256"] and digest != row["sha256"]:
                partial.unlink()
                missing.append({"path": row["path"], "url": url, "reason": f"SHA-256 {digest} is "
                                f"not the committed tables' {row['sha256']}"})
                continue
            partial.replace(destination)
        fetched.append({"path": row["path"], "source_repo": row["repository"],
                        "source_commit": row["commit"], "source_url": url})
    archive = next((r for r in fetched if r["path"].endswith(".zip")), None)
    if archive is not None:
        with zipfile.ZipFile(target / archive["path"]) as zipped, tempfile.TemporaryDirectory() as tmp:
            zipped.extractall(tmp)
            (cldf,) = Path(tmp).glob("*/cldf")
            if (target / "wals").exists():
                shutil.rmtree(target / "wals")
            shutil.copytree(cldf, target / "wals")
        fetched += [{**archive, "path": f"wals/{path.name}"}
                    for path in sorted((target / "wals").glob("*.csv"))]
    atomic_write_text(target / "MANIFEST.tsv", pd.DataFrame(fetched).to_csv(sep="\t", index=False))
    table = pd.DataFrame(missing, columns=["path", "url", "reason"])
    atomic_write_text(target / MISSING_FILE, table.to_csv(sep="\t", index=False))
    for row in missing:
        log(f"[morphology] could not fetch {row['path']}: {row['url']} ({row['reason']})")
    return target


def missing_sources(root: Path) -> dict[str, str]:
    """``path -> 'URL (reason)'`` of the files ``download_sources`` could not fetch."""
    path = root / MISSING_FILE
    if not path.exists():
        return {}
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return {row.path: f"{row.url} ({row.reason})" for row in table.itertuples()}


# --- 1. WALS ----------------------------------------------------------------------------------

class WalsFeature(_Frozen):
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
            rows.append(_row(language, "wals", f"wals_{feature.id}", score,
                             f"WALS {feature.id} ({wals_code})", source_version, note=note))
            if feature.in_composite and score is not None:
                scaled[feature.id] = feature.scaled(value)
        enough = len(scaled) >= settings.wals_min_features
        rows.append(_row(
            language, "wals", COMPOSITE,
            float(np.mean(list(scaled.values()))) if enough else None,
            f"WALS ({wals_code})", source_version,
            note=(f"mean of {len(scaled)}/{len(composite)} scaled features: {', '.join(scaled)}"
                  if enough else f"{len(scaled)} of the {len(composite)} composite features "
                                 f"coded (< {settings.wals_min_features})")))
    return rows


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


def _segmenter(spec: LanguageSpec) -> Segmenter | None:
    if spec.spaces_between_words:
        return None
    if spec.script not in SEGMENTERS:
        raise MorphologyError(f"{spec.iso639_1} is written without spaces between words "
                              f"(script {spec.script}) and has no segmenter: add one to "
                              "stilts_core.analysis.morphology.SEGMENTERS")
    return SEGMENTERS[spec.script]


def words(text: str, language: str, casefold: bool = True) -> list[str]:
    """Words: runs of letters, marks and digits (NFC), after segmentation where the
    orthography has no spaces; punctuation and symbols are not words. Case-folded for the
    corpus measures; as written for the (cased) tokenizers."""
    import unicodedata

    text = unicodedata.normalize("NFC", text)
    segmenter = _segmenter(get_language(language))
    pieces = segmenter.segment(text) if segmenter else [text]
    return [w.casefold() if casefold else w for piece in pieces for w in WORD.findall(piece)]


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


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        raise MorphologyError(f"{path} is missing: the Tatoeba pair files go in <sources>/tatoeba/ "
                              "(LASER's data/tatoeba/v1 layout), or use --download")
    return path.read_text(encoding="utf-8").splitlines()


def tatoeba_words(root: Path, language: str) -> tuple[list[str], list[str]]:
    """Words of the language side and of the English side of the same Tatoeba pairs."""
    own, english = (root / name for name in tatoeba_files(language))
    own_lines, english_lines = _read_lines(own), _read_lines(english)
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
                settings: MorphologySettings, log=print) -> list[dict]:
    """The measures on each language's side, and relative to the English side of the same
    pairs. English's own value is the mean over the English sides of all pair files."""
    rows, english = [], {name: [] for name in CORPUS_MEASURES}
    english_tokens, english_versions = [], set()
    for language in xtreme_r_languages():
        if language == "en":
            continue
        if language not in pairs:
            rows += [_row(language, "corpus", name, None, "Tatoeba", "",
                          note="no Tatoeba test pairs for this language")
                     for name in (*CORPUS_MEASURES, *_relative_names())]
            continue
        own, eng = pairs[language]
        own_file = tatoeba_files(language)[0]
        source, version = f"Tatoeba {Path(own_file).name}", versions(own_file)
        segmenter = _segmenter(get_language(language))
        note = f"segmented with {segmenter.version()}" if segmenter else ""
        english_tokens.append(len(eng))
        english_versions.add(versions(tatoeba_files(language)[1]))
        log(f"[morphology] corpus {language}: {len(own)} words ({len(eng)} on the English side)")
        for name, measure in CORPUS_MEASURES.items():
            value, reference = measure(own, settings), measure(eng, settings)
            english[name].append(reference)
            short = "" if value is not None else (
                f"fewer words than the window ({settings.mattr_window})")
            rows.append(_row(language, "corpus", name, value, source, version, len(own),
                             "; ".join(filter(None, (note, short)))))
            relative = None if value is None or reference is None else value / reference
            rows.append(_row(language, "corpus", f"{name}_over_english", relative, source,
                             version, len(own), "divided by the same measure on the English "
                                                "side of the same pairs"))
    for name, values in english.items():
        present = [v for v in values if v is not None]
        rows.append(_row("en", "corpus", name, float(np.mean(present)) if present else None,
                         "Tatoeba, English sides", ", ".join(sorted(english_versions)),
                         int(np.mean(english_tokens)),
                         f"mean over the English sides of {len(present)} pair files"))
    rows += [_row("en", "corpus", name, None, "Tatoeba", "", note="English is the reference")
             for name in _relative_names()]
    return rows


def _relative_names() -> list[str]:
    return [f"{name}_over_english" for name in CORPUS_MEASURES]


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
        rows.append(_row(treebank.language, "treebank", name, value,
                         f"{treebank.repository} ({treebank.kind})", version,
                         min(words_.n_words, size),
                         why or f"mean over {len(samples)} random samples of {size} words",
                         primary=primary))
    return rows


def all_treebank_rows(root: Path, versions: SourceVersions, settings: MorphologySettings,
                      log=print) -> list[dict]:
    """Main treebanks are primary; a PUD treebank is primary only where no main one exists."""
    rows = []
    with_main = {t.language for t in TREEBANKS if t.kind == "main"}
    not_fetched = missing_sources(root)
    for treebank in TREEBANKS:
        if treebank.relative_path in not_fetched and not treebank.path(root).exists():
            log(f"[morphology] treebank {treebank.repository}: not downloaded")
            rows += [_row(treebank.language, "treebank", name, None, f"{treebank.repository} "
                          f"({treebank.kind})", "", note=f"not downloaded: "
                          f"{not_fetched[treebank.relative_path]}",
                          primary=treebank.kind == "main" or treebank.language not in with_main)
                     for name in TREEBANK_MEASURES]
            continue
        words_ = read_treebank(treebank.path(root))
        log(f"[morphology] treebank {treebank.repository}: {words_.n_words} words")
        primary = treebank.kind == "main" or treebank.language not in with_main
        rows += treebank_rows(treebank, words_, versions(treebank.relative_path), settings,
                              primary)
    covered = {t.language for t in TREEBANKS}
    rows += [_row(language, "treebank", name, None, "UD", "",
                  note="no UD test treebank for this language in the data")
             for language in xtreme_r_languages() if language not in covered
             for name in TREEBANK_MEASURES]
    return rows


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
            w for line in _read_lines(root / own) for w in words(line, language, casefold=False)],
            primary=True))
    english = [tatoeba_files(language)[1] for language in tatoeba]
    texts.append(TokenizerText("en", "Tatoeba, English sides", tuple(english), [
        w for name in english for line in _read_lines(root / name)
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
                   versions: SourceVersions, log=print) -> list[dict]:
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
        log(f"[morphology] tokenizer {text.language} ({text.source}): {len(text.words)} words, "
            f"fertility {fertility:.2f}")
        version = ", ".join(sorted({versions(file) for file in text.files}))
        note = "words as written, each tokenised alone" + (
            "" if spaced else f"; a leading {METASPACE} piece not counted (no spaces in the "
                              "orthography)")
        rows += [_row(text.language, "tokenizer", measure, value, f"{name} on {text.source}",
                      version, len(text.words), note, primary=text.primary)
                 for measure, value in zip(TOKENIZER_MEASURES, (fertility, split), strict=True)]
    with_text = {text.language for text in texts}
    rows += [_row(language, "tokenizer", measure, None, name, "",
                  note="no Tatoeba, UD or PUD text for this language in the sources")
             for language in xtreme_r_languages() if language not in with_text
             for measure in TOKENIZER_MEASURES]
    return rows


# --- the table ----------------------------------------------------------------------------------

def _row(language: str, family: str, measure: str, value: float | None, source: str,
         source_version: str, n_tokens: int | None = None, note: str = "",
         primary: bool = True) -> dict:
    if value is not None and not math.isfinite(value):
        raise ArithmeticError(f"{measure} for {language} is {value}")
    return {"language": language, "family": family, "measure": measure, "value": value,
            "source": source, "source_version": source_version, "n_tokens": n_tokens,
            "note": note, "primary": primary}


DEFAULT_SETTINGS = MorphologySettings()


def build_indices(root: Path, wals_values: pd.DataFrame,
                  settings: MorphologySettings = DEFAULT_SETTINGS, tokenizer=None,
                  tokenizer_name: str | None = None, log=print) -> pd.DataFrame:
    """Every measure of every family for every XTREME-R language, as one long table;
    ``wals_values`` is the ValueTable :func:`read_wals` returns."""
    versions = SourceVersions(root)
    pairs = tatoeba_pairs(root)
    rows = wals_rows(wals_values, versions("wals/values.csv"), settings)
    rows += corpus_rows(pairs, versions, settings, log)
    rows += all_treebank_rows(root, versions, settings, log)
    if tokenizer is not None:
        rows += tokenizer_rows(tokenizer_texts(root), tokenizer, tokenizer_name, versions, log)
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
          tokenizer_name: str | None = None, settings: MorphologySettings = DEFAULT_SETTINGS,
          log=print) -> list[Path]:
    """Compute everything from the sources under ``root``, then write the tables, each
    atomically: nothing is written until every table is computed, so a failure leaves the old
    tables together rather than a new languages table beside stale indices."""
    tokenizer = None
    if tokenizer_name:
        tokenizer = load_tokenizer(resolve_model(tokenizer_name))
    wals_languages, wals_values = read_wals(root / "wals" / "StructureDataset-metadata.json")
    languages = languages_table(wals_languages, read_cc100())
    indices = build_indices(root, wals_values, settings, tokenizer, tokenizer_name, log)
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
