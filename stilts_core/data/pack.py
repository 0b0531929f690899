"""The shared data pack's layout: which pack file holds each (task, split, language), read how.

The pack (``shared/data``, see its README) keeps every file in its release format and under
its release name. ``data_root: pack`` (or any root holding the pack's ``MANIFEST.tsv``) reads
tasks through :data:`PACK_LAYOUT` instead of ``<root>/<task>/<split>-<lang>.<ext>``.

Where the pack lacks a split the study needs, another split stands in for it, and the entry
says so in ``serves_as`` (recorded in each run's ``data_sources.json``). A dev set that serves
as training data gives up every tenth row (``rows='held_out'``) to early stopping, so training
and early stopping never see the same example.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

PACK = "pack"
MANIFEST = "MANIFEST.tsv"
HOLD_OUT_EVERY = 10  # rows 0, 10, 20, ... of a dev set that serves as training data

Rows = Literal["all", "held_out", "rest"]


class PackFormatError(ValueError):
    """A pack file does not have its declared format; the message names the file and line."""


@dataclass(frozen=True)
class PackFile:
    """One split of one task in the pack: ``paths`` (concatenated in order; ``{lang}`` is the
    ISO code, ``{code}`` the task's own code) read by ``reader``. ``columns`` names the fields
    of headerless TSV; ``renames`` and ``values`` map the release's fields and label values to
    the registry's; ``rows`` keeps all rows, only the held-out tenth, or the rest."""

    paths: tuple[str, ...]
    reader: str
    columns: tuple[str, ...] = ()
    renames: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    rows: Rows = "all"
    hold_out_every: int = HOLD_OUT_EVERY
    serves_as: str | None = None
    languages: tuple[str, ...] | None = None


def text_lines(text: str) -> list[str]:
    """Lines split at ``\n`` only: ``str.splitlines`` also splits at characters such as U+001D
    and U+2028, which occur inside XNLI sentences."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_tsv(path: Path, columns: tuple[str, ...]) -> list[dict]:
    """Headerless TSV with exactly ``len(columns)`` fields per line (XNLI, PAWS-X as XTREME ships
    them); with no ``columns``, the first line is the header (SST-2)."""
    lines = text_lines(path.read_text(encoding="utf-8"))
    start = 1
    if not columns:
        if not lines:
            raise PackFormatError(f"{path}: empty; expected a header line")
        columns, lines, start = tuple(lines[0].split("\t")), lines[1:], 2
    rows = []
    for number, line in enumerate(lines, start=start):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != len(columns):
            raise PackFormatError(f"{path}, line {number}: expected {len(columns)} tab-separated "
                                  f"fields ({', '.join(columns)}), found {len(parts)}: {line[:80]!r}")
        rows.append(dict(zip(columns, parts, strict=True)))
    return rows


def read_word_tag_tsv(path: Path, columns: tuple[str, ...]) -> list[dict]:
    """One ``word<TAB>tag`` per line, a blank line between sentences (XTREME's UD-POS and PAN-X
    files; ``.gz`` is read compressed). ``columns`` names the two list fields."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        lines = text_lines(handle.read())
    tokens_field, tags_field = columns
    rows, tokens, tags = [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            if tokens:
                rows.append({tokens_field: tokens, tags_field: tags})
            tokens, tags = [], []
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0] or not parts[1].strip():
            raise PackFormatError(f"{path}, line {number}: expected 'word<TAB>tag', found "
                                  f"{len(parts)} field(s): {line[:80]!r}")
        tokens.append(parts[0])
        tags.append(parts[1].strip())
    if tokens:
        rows.append({tokens_field: tokens, tags_field: tags})
    return rows


def read_csv(path: Path, columns: tuple[str, ...]) -> list[dict]:
    """CSV with a header (Cosmos QA, ANLIzing ANLI); a short or long row is an error."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = []
        for row in reader:
            if None in row or None in row.values():
                raise PackFormatError(f"{path}, line {reader.line_num}: the row does not have the "
                                      f"header's {len(reader.fieldnames)} fields")
            rows.append(row)
    return rows


# Formats read here; the hub schema's JSON lines, SQuAD JSON, CoNLL-U and line-aligned release
# files are read by stilts_core.data.readers (its readers are named in PACK_LAYOUT by these keys too).
PACK_READERS = {"tsv": read_tsv, "word_tag_tsv": read_word_tag_tsv, "csv": read_csv}


def select_rows(rows: list, part: Rows, every: int = HOLD_OUT_EVERY) -> list:
    """All rows, the held-out rows (every ``every``-th, for early stopping), or the rest
    (training)."""
    if part == "all":
        return rows
    held_out = part == "held_out"
    return [row for i, row in enumerate(rows) if (i % every == 0) == held_out]


_NLI = ("premise", "hypothesis", "label")
_DEV_AS_TRAIN = ("the pack has no {task} training set, so its {what} ({count}) serves as training "
                 "data, less every {every}th row, which is held out for early stopping")
_HELD_OUT = "every {every}th row of {what}, held out of training for early stopping"


def _dev_as_train(task: str, what: str, count: str, paths: tuple[str, ...], reader: str,
                  every: int = HOLD_OUT_EVERY, **options) -> dict[str, PackFile]:
    """A dev set split into training data and held-out rows (every ``every``-th) for early
    stopping and the learning check."""
    return {
        "train": PackFile(paths, reader, rows="rest", hold_out_every=every, **options,
                          serves_as=_DEV_AS_TRAIN.format(task=task, what=what, count=count,
                                                         every=every)),
        "validation": PackFile(paths, reader, rows="held_out", hold_out_every=every, **options,
                               serves_as=_HELD_OUT.format(what=what, every=every)),
    }


def _splits(task: str, entries: dict[str, PackFile]) -> dict[tuple, PackFile]:
    return {(task, split): entry for split, entry in entries.items()}


_ANLI_DEV = tuple(f"intermediate/anli/ANLI_analysis_r{r}_dev.csv" for r in (1, 2, 3))
_ANLI = _dev_as_train("ANLI", "R1-R3 dev sets as released with the ANLIzing annotations",
                      "3,198 rows; R3 has 1,198 of the official 1,200", _ANLI_DEV, "csv")
_MNLI = _dev_as_train("MNLI", "dev matched, gold-label rows", "9,815",
                      ("intermediate/mnli/dev_matched_premise_hypothesis_label.jsonl",), "jsonl")
# every fifth row: a tenth of 1,221 (122) is too few dev examples for the learning check
# (stilts_core.evaluation.learning.MIN_DEV_EXAMPLES)
_CSQA = _dev_as_train("CommonsenseQA", "dev set (dev_rand_split)", "1,221",
                      ("intermediate/commonsenseqa/validation_hf_tau_commonsense_qa.jsonl",), "jsonl",
                      every=5)
_COSMOS = _dev_as_train("Cosmos QA", "valid.csv", "2,985", ("intermediate/cosmosqa/valid.csv",), "csv")
_SIQA_VALUES = {"label": {"A": "1", "B": "2", "C": "3"}}
UD_TEST_FILES = {
    "af": "ud/af_afribooms", "ar": "ud/pud/ar_pud", "bg": "ud/bg_btb", "de": "ud/de_gsd",
    "el": "ud/el_gdt", "en": "ud/en_ewt", "es": "ud/es_ancora", "et": "ud/et_edt", "eu": "ud/eu_bdt",
    "fa": "ud/fa_perdt", "fi": "ud/fi_tdt", "fr": "ud/fr_gsd", "he": "ud/he_htb",
    "hi": "ud/pud/hi_pud", "hu": "ud/hu_szeged", "id": "ud/id_gsd", "it": "ud/it_isdt",
    "ja": "ud/ja_gsd", "kk": "ud/kk_ktb", "ko": "ud/ko_kaist", "lt": "ud/lt_alksnis",
    "mr": "ud/mr_ufal", "nl": "ud/nl_alpino", "pl": "ud/pl_pdb", "pt": "ud/pt_bosque",
    "ro": "ud/ro_rrt", "ru": "ud/ru_gsd", "ta": "ud/ta_ttb", "te": "ud/te_mtg", "th": "ud/th_tud",
    "tl": "ud/tl_trg", "tr": "ud/tr_boun", "uk": "ud/uk_iu", "ur": "ud/ur_udtb", "vi": "ud/vi_vtb",
    "wo": "ud/wo_wtb", "yo": "ud/yo_ytb", "zh": "ud/zh_gsd",
}
_PANX_LANGUAGES = ("af", "ar", "bg", "bn", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr",
                   "he", "hi", "hu", "id", "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "ms",
                   "my", "nl", "pt", "ru", "sw", "ta", "te", "tl", "tr", "ur", "vi", "yo", "zh")
_PANX = ("tokens", "ner_tags")
_UPOS = ("tokens", "pos_tags")

# (task, split) -> the pack file; a (task, split, language) key overrides it for one language.
PACK_LAYOUT: dict[tuple, PackFile] = {
    # intermediate tasks and English training sources
    **_splits("mnli", _MNLI), **_splits("anli", _ANLI), **_splits("anli_plus", _ANLI),
    **_splits("commonsense_qa", _CSQA), **_splits("cosmos_qa", _COSMOS),
    ("snli", "train"): PackFile(
        ("intermediate/snli/dev_premise_hypothesis_label.jsonl",), "jsonl",
        serves_as="the pack has no SNLI training set, so its dev set (gold-label rows, 9,842) "
                  "serves as SNLI's part of ANLI+ training (ANLI+ stops early on ANLI rows)"),
    ("sst2", "train"): PackFile(("intermediate/sst2/alps_train.tsv", "intermediate/sst2/alps_dev.tsv"),
                                "tsv"),
    ("sst2", "validation"): PackFile(("intermediate/sst2/glue_dev_via_alps_test.tsv",), "tsv"),
    ("siqa", "train"): PackFile(
        ("intermediate/siqa/socialIQa_v1.4_dev.jsonl",), "jsonl", renames={"correct": "label"},
        values=_SIQA_VALUES,
        serves_as="the pack has no Social IQa training set, so its v1.4 dev set (1,954) serves as "
                  "training data"),
    ("siqa", "validation"): PackFile(
        ("intermediate/siqa/socialIQa_v1.4_tst.jsonl",), "jsonl", renames={"correct": "label"},
        values=_SIQA_VALUES,
        serves_as="Social IQa's labelled v1.4 test set (2,224) serves as its dev set, which "
                  "trains here"),
    ("copa", "train"): PackFile(("intermediate/copa/xtreme_r_xcopa_train-en.jsonl",), "jsonl"),
    ("copa", "validation"): PackFile(("intermediate/copa/xtreme_r_xcopa_val-en.jsonl",), "jsonl"),
    ("squad_v1", "validation"): PackFile(
        ("xtreme/mlqa/MLQA_V1/dev/dev-context-en-question-en.json",), "squad_json",
        serves_as="the pack has no SQuAD 1.1 dev set, so MLQA's English dev set (Wikipedia "
                  "paragraphs, SQuAD format) serves for early stopping (TyDiQA-GoldP's recipe "
                  "stops on SQuAD dev)"),
    # target tasks
    ("xnli", "validation"): PackFile(("xtreme/xnli/xtreme/dev-{lang}.tsv",), "tsv", columns=_NLI),
    ("xnli", "test"): PackFile(
        ("xtreme/xnli/labeled/test-{lang}.tsv",), "tsv", columns=_NLI,
        serves_as="XTREME's XNLI test text with the English gold label of each row joined "
                  "(the pack README's derivation)"),
    ("pawsx", "train"): PackFile(
        ("xtreme/pawsx/xtreme/dev-en.tsv",), "tsv", columns=("sentence1", "sentence2", "label"),
        rows="rest",
        serves_as="the pack has no PAWS training set, so XTREME's English PAWS-X dev set serves as "
                  "training data, less the held-out tenth; the other languages' dev sets "
                  "translate the same pairs, so scores on them are not zero-shot"),
    ("pawsx", "validation"): PackFile(
        ("xtreme/pawsx/xtreme/dev-{lang}.tsv",), "tsv", columns=("sentence1", "sentence2", "label")),
    ("pawsx", "validation", "en"): PackFile(
        ("xtreme/pawsx/xtreme/dev-en.tsv",), "tsv", columns=("sentence1", "sentence2", "label"),
        rows="held_out", serves_as=_HELD_OUT.format(what="XTREME's English PAWS-X dev set",
                                                     every=HOLD_OUT_EVERY)),
    ("panx", "train"): PackFile(("xtreme/panx/train-en.tsv.gz",), "word_tag_tsv", columns=_PANX),
    ("panx", "validation"): PackFile(("xtreme/panx/dev-{lang}.tsv.gz",), "word_tag_tsv",
                                     columns=_PANX, languages=_PANX_LANGUAGES),
    ("panx", "test"): PackFile(("xtreme/panx/test-{lang}.tsv.gz",), "word_tag_tsv", columns=_PANX,
                               languages=_PANX_LANGUAGES),
    ("udpos", "train"): PackFile(("xtreme/udpos/train-en.tsv",), "word_tag_tsv", columns=_UPOS),
    ("udpos", "validation"): PackFile(("xtreme/udpos/dev-en.tsv",), "word_tag_tsv", columns=_UPOS,
                                      languages=("en",)),
    **{("udpos", "test", language): PackFile(
        (f"{stem}-ud-test.conllu",), "conllu",
        serves_as=None if "/pud/" not in stem else
        "the pack lacks this language's main UD test treebank, so its PUD treebank serves")
       for language, stem in UD_TEST_FILES.items()},
    ("tydiqa", "train"): PackFile(("xtreme/tydiqa_goldp/train/tydiqa.goldp.en.train.json",),
                                  "squad_json", languages=("en",)),
    ("tydiqa", "test"): PackFile(
        ("xtreme/tydiqa_goldp/dev/tydiqa.goldp.{lang}.dev.json",), "squad_json",
        serves_as="TyDiQA-GoldP's dev set is XTREME's test set"),
    ("mlqa", "validation"): PackFile(
        ("xtreme/mlqa/MLQA_V1/dev/dev-context-{lang}-question-{lang}.json",), "squad_json"),
    ("xquad", "test"): PackFile(("xtreme_r/xquad/xquad.{lang}.json",), "squad_json"),
    ("xcopa", "validation"): PackFile(("xtreme_r/xcopa/{lang}/val.{lang}.jsonl",), "jsonl"),
    ("xcopa", "test"): PackFile(("xtreme_r/xcopa/{lang}/test.{lang}.jsonl",), "jsonl"),
    ("tatoeba", "test"): PackFile(("tatoeba/tatoeba.{code}-eng.{code}", "tatoeba/tatoeba.{code}-eng.eng"),
                                  "aligned_lines"),
}


def is_pack(root: Path | None) -> bool:
    """Whether ``root`` is the shared data pack (it holds the pack's manifest)."""
    return root is not None and (Path(root) / MANIFEST).is_file()


def pack_entry(task: str, split: str, language: str) -> PackFile | None:
    """The pack file of one split and language, or ``None`` when the pack has none."""
    entry = PACK_LAYOUT.get((task, split, language)) or PACK_LAYOUT.get((task, split))
    if entry is None or (entry.languages is not None and language not in entry.languages):
        return None
    return entry


def entry_paths(root: Path, entry: PackFile, language: str, code: str) -> list[Path]:
    return [Path(root) / pattern.format(lang=language, code=code) for pattern in entry.paths]


def pack_record(task: str) -> dict:
    """What ``data_sources.json`` records of a task read from the pack: each split's files and
    what stands in for what."""
    record = {}
    for key, entry in PACK_LAYOUT.items():
        if key[0] == task:
            name = "/".join(key[1:])
            record[name] = {"files": list(entry.paths), "rows": entry.rows}
            if entry.rows != "all":
                record[name]["hold_out_every"] = entry.hold_out_every
            if entry.serves_as:
                record[name]["serves_as"] = entry.serves_as
    return record
