"""The XTREME-R languages: one declared record each, and the table ``data/languages.csv``.

What is declared here (codes, the WALS entry chosen for the variety the task data is in, the
script) carries its source; what WALS knows (Glottocode, family, genus) is read from the WALS
CLDF data, and XLM-R's pretraining data size from the committed copy of XLM-R's CC-100 table.
``languages_table`` joins them; every column's source is written beside the table as CSVW
metadata (``languages.csv-metadata.json``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict

from stilts_core.lookup import lookup
from stilts_core.paths import atomic_write_text, data_dir
from stilts_core.tasks.benchmarks import get_benchmark


class LanguageSpec(BaseModel):
    """One XTREME-R language. ``iso639_3`` is the individual language of the task data where
    ISO 639-1 names a macrolanguage (ar -> arb, fa -> pes, sw -> swh, zh -> cmn ...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    iso639_1: str
    iso639_3: str
    name: str
    wals_code: str
    script: str  # ISO 15924
    cc100_names: tuple[str, ...] = ()  # rows of XLM-R's CC-100 table; () = not in CC-100
    glottocode: str | None = None  # only where WALS has none

    @property
    def latin_script(self) -> bool:
        return self.script == "Latn"

    @property
    def spaces_between_words(self) -> bool:
        return self.script not in SCRIPTS_WITHOUT_WORD_SPACES


# Scripts whose orthography does not put spaces between words: corpus measures need a segmenter.
SCRIPTS_WITHOUT_WORD_SPACES = {"Hans", "Hant", "Jpan", "Thai", "Mymr", "Khmr", "Laoo"}


def _lang(iso1, iso3, name, wals, script, *cc100, glottocode=None) -> LanguageSpec:
    return LanguageSpec(iso639_1=iso1, iso639_3=iso3, name=name, wals_code=wals, script=script,
                        cc100_names=cc100, glottocode=glottocode)


LANGUAGES: dict[str, LanguageSpec] = {spec.iso639_1: spec for spec in (
    _lang("af", "afr", "Afrikaans", "afr", "Latn", "Afrikaans"),
    _lang("ar", "arb", "Arabic", "ams", "Arab", "Arabic"),
    # WALS's Azerbaijani entry has no Glottocode; Glottolog's North Azerbaijani is nort2697.
    _lang("az", "azj", "Azerbaijani", "aze", "Latn", "Azerbaijani", glottocode="nort2697"),
    _lang("bg", "bul", "Bulgarian", "bul", "Cyrl", "Bulgarian"),
    _lang("bn", "ben", "Bengali", "ben", "Beng", "Bengali"),
    _lang("de", "deu", "German", "ger", "Latn", "German"),
    _lang("el", "ell", "Greek", "grk", "Grek", "Greek"),
    _lang("en", "eng", "English", "eng", "Latn", "English"),
    _lang("es", "spa", "Spanish", "spa", "Latn", "Spanish"),
    _lang("et", "ekk", "Estonian", "est", "Latn", "Estonian"),
    _lang("eu", "eus", "Basque", "bsq", "Latn", "Basque"),
    _lang("fa", "pes", "Persian", "prs", "Arab", "Persian"),
    _lang("fi", "fin", "Finnish", "fin", "Latn", "Finnish"),
    _lang("fr", "fra", "French", "fre", "Latn", "French"),
    _lang("gu", "guj", "Gujarati", "guj", "Gujr", "Gujarati"),
    _lang("he", "heb", "Hebrew", "heb", "Hebr", "Hebrew"),
    _lang("hi", "hin", "Hindi", "hin", "Deva", "Hindi"),
    _lang("ht", "hat", "Haitian Creole", "hcr", "Latn"),
    _lang("hu", "hun", "Hungarian", "hun", "Latn", "Hungarian"),
    _lang("id", "ind", "Indonesian", "ind", "Latn", "Indonesian"),
    _lang("it", "ita", "Italian", "ita", "Latn", "Italian"),
    _lang("ja", "jpn", "Japanese", "jpn", "Jpan", "Japanese"),
    _lang("jv", "jav", "Javanese", "jav", "Latn", "Javanese"),
    _lang("ka", "kat", "Georgian", "geo", "Geor", "Georgian"),
    _lang("kk", "kaz", "Kazakh", "kaz", "Cyrl", "Kazakh"),
    _lang("ko", "kor", "Korean", "kor", "Kore", "Korean"),
    _lang("lt", "lit", "Lithuanian", "lit", "Latn", "Lithuanian"),
    _lang("ml", "mal", "Malayalam", "mym", "Mlym", "Malayalam"),
    _lang("mr", "mar", "Marathi", "mhi", "Deva", "Marathi"),
    _lang("ms", "zsm", "Malay", "mly", "Latn", "Malay"),
    # XLM-R's table lists Burmese twice (Unicode and Zawgyi-encoded text); the copy does not say
    # which row is which, and both are Burmese text, so both count.
    _lang("my", "mya", "Burmese", "brm", "Mymr", "Burmese (row 1)", "Burmese (row 2)"),
    _lang("nl", "nld", "Dutch", "dut", "Latn", "Dutch"),
    _lang("pa", "pan", "Punjabi", "pan", "Guru", "Punjabi"),
    _lang("pl", "pol", "Polish", "pol", "Latn", "Polish"),
    _lang("pt", "por", "Portuguese", "por", "Latn", "Portuguese"),
    # XCOPA's Quechua is the Cusco-Collao variety of Southern Quechua.
    _lang("qu", "quz", "Quechua", "qcu", "Latn"),
    _lang("ro", "ron", "Romanian", "rom", "Latn", "Romanian"),
    _lang("ru", "rus", "Russian", "rus", "Cyrl", "Russian"),
    _lang("sw", "swh", "Swahili", "swa", "Latn", "Swahili"),
    _lang("ta", "tam", "Tamil", "tml", "Taml", "Tamil"),
    _lang("te", "tel", "Telugu", "tel", "Telu", "Telugu"),
    _lang("th", "tha", "Thai", "tha", "Thai", "Thai"),
    _lang("tl", "tgl", "Tagalog", "tag", "Latn", "Filipino"),
    _lang("tr", "tur", "Turkish", "tur", "Latn", "Turkish"),
    _lang("uk", "ukr", "Ukrainian", "ukr", "Cyrl", "Ukrainian"),
    _lang("ur", "urd", "Urdu", "urd", "Arab", "Urdu"),
    _lang("vi", "vie", "Vietnamese", "vie", "Latn", "Vietnamese"),
    _lang("wo", "wol", "Wolof", "wlf", "Latn"),
    _lang("yo", "yor", "Yoruba", "yor", "Latn"),
    # XLM-R's table lists Simplified and Traditional Chinese separately: both are Chinese.
    _lang("zh", "cmn", "Chinese", "mnd", "Hans", "Chinese (Simplified)", "Chinese (Traditional)"),
)}


def get_language(code: str) -> LanguageSpec:
    return lookup(LANGUAGES, code, "language", hint=" (the XTREME-R languages of "
                  "stilts_core.tasks.languages.LANGUAGES)")


def xtreme_r_languages() -> tuple[str, ...]:
    """Every language some XTREME-R task scores, from the benchmark registry."""
    return tuple(sorted({lang for langs in get_benchmark("xtreme-r").tasks.values()
                         for lang in langs}))


CC100_TABLE = data_dir() / "published" / "xlmr_cc100.csv"
LANGUAGES_CSV = data_dir() / "languages.csv"

# Column -> (description, source). Written as CSVW metadata beside the table.
COLUMNS: dict[str, tuple[str, str]] = {
    "iso639_1": ("ISO 639-1 code, as the XTREME-R tasks use it", "ISO 639-1; stilts_core.tasks.registry"),
    "iso639_3": ("ISO 639-3 code of the individual language of the task data",
                 "ISO 639-3 (SIL); declared in stilts_core.tasks.languages"),
    "name": ("English name", "ISO 639 reference names; declared in stilts_core.tasks.languages"),
    "glottocode": ("Glottolog languoid of the WALS entry",
                   "WALS CLDF languages.csv (Glottocode); Glottolog where WALS has none (az)"),
    "wals_code": ("WALS language chosen for the variety of the task data",
                  "WALS Online v2020.4; declared in stilts_core.tasks.languages"),
    "family": ("Language family (WALS classification)", "WALS CLDF languages.csv (Family)"),
    "genus": ("Genus (WALS classification)", "WALS CLDF languages.csv (Genus)"),
    "script": ("ISO 15924 script of the task data",
               "ISO 15924 / CLDR likely subtags; declared in stilts_core.tasks.languages and checked "
               "against the local text in the tests"),
    "latin_script": ("Whether the script is Latin", "derived from script"),
    "spaces_between_words": ("Whether the orthography separates words with spaces",
                             "derived from script"),
    "latitude": ("Latitude of the WALS entry, degrees (where maps place the language)",
                 "WALS CLDF languages.csv (Latitude)"),
    "longitude": ("Longitude of the WALS entry, degrees", "WALS CLDF languages.csv (Longitude)"),
    "cc100_tokens_m": ("XLM-R pretraining data for the language, millions of tokens (empty: not "
                       "one of XLM-R's 100 languages)",
                       "Conneau et al. 2020 (XLM-R), Appendix A Table 6, via "
                       "data/published/xlmr_cc100.csv"),
    "cc100_gib": ("XLM-R pretraining data for the language, GiB",
                  "Conneau et al. 2020 (XLM-R), Appendix A Table 6, via "
                  "data/published/xlmr_cc100.csv"),
}


def read_cc100(path: Path = CC100_TABLE) -> pd.DataFrame:
    table = pd.read_csv(path)
    expected = {"iso_code", "language", "tokens_m", "size_gib"}
    if not expected <= set(table.columns):
        raise ValueError(f"{path}: needs the columns {sorted(expected)}, has {list(table.columns)}")
    return table


def languages_table(wals_languages: pd.DataFrame, cc100: pd.DataFrame) -> pd.DataFrame:
    """One row per XTREME-R language; ``wals_languages`` is WALS's CLDF ``LanguageTable``."""
    wals = wals_languages.set_index("ID")
    sizes = cc100.set_index("language")
    rows = []
    for code in xtreme_r_languages():
        spec = get_language(code)
        if spec.wals_code not in wals.index:
            raise ValueError(f"WALS has no language {spec.wals_code!r} (declared for {code} in "
                             "stilts_core.tasks.languages.LANGUAGES): fix the wals_code")
        entry = wals.loc[spec.wals_code]
        missing = [name for name in spec.cc100_names if name not in sizes.index]
        if missing:
            raise ValueError(f"{CC100_TABLE.name} has no row(s) {missing} (declared for {code})")
        glottocode = spec.glottocode or (None if pd.isna(entry["Glottocode"]) else entry["Glottocode"])
        rows.append({
            "iso639_1": code, "iso639_3": spec.iso639_3, "name": spec.name,
            "glottocode": glottocode, "wals_code": spec.wals_code,
            "family": entry["Family"], "genus": entry["Genus"], "script": spec.script,
            "latin_script": spec.latin_script, "spaces_between_words": spec.spaces_between_words,
            "latitude": float(entry["Latitude"]), "longitude": float(entry["Longitude"]),
            "cc100_tokens_m": sizes.loc[list(spec.cc100_names), "tokens_m"].sum()
            if spec.cc100_names else None,
            "cc100_gib": round(sizes.loc[list(spec.cc100_names), "size_gib"].sum(), 1)
            if spec.cc100_names else None,
        })
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["cc100_tokens_m"] = table["cc100_tokens_m"].astype("Int64")
    return table


def write_languages_table(table: pd.DataFrame, path: Path = LANGUAGES_CSV) -> Path:
    """The CSV and its CSVW metadata (each column's description and source), both atomically."""
    atomic_write_text(path, table.to_csv(index=False, quoting=csv.QUOTE_MINIMAL,
                                         lineterminator="\n"))
    metadata = {
        "@context": "http://www.w3.org/ns/csvw",
        "url": path.name,
        "dc:title": "The XTREME-R languages",
        "dc:source": "written by `stilts morphology build` (stilts_core.tasks.languages)",
        "tableSchema": {"columns": [
            {"name": name, "dc:description": description, "dc:source": source}
            for name, (description, source) in COLUMNS.items()
        ]},
    }
    atomic_write_text(path.with_name(f"{path.name}-metadata.json"),
                      json.dumps(metadata, indent=1, ensure_ascii=False) + "\n")
    return path


def read_languages_table(path: Path = LANGUAGES_CSV) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `stilts morphology build`")
    return pd.read_csv(path, keep_default_na=False, na_values=[""])
