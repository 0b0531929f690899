"""Morphological complexity measures: each on hand-made data with known answers, WALS coding on
a small CLDF dataset, the download path on local copies, and sanity on the real data pack."""

from __future__ import annotations

import math
import unicodedata
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stilts_core.analysis.morphology import corpus, segmenters, sources, table, tokenizer, treebank, wals
from stilts_core.paths import data_dir
from stilts_core.tasks.languages import (
    LANGUAGES,
    get_language,
    languages_table,
    read_cc100,
    xtreme_r_languages,
)
from stilts_core.tasks.registry import get_task

# --- corpus measures by hand ------------------------------------------------------------------


def test_type_token_ratio_entropy_and_word_length_by_hand():
    tokens = ["a", "bb", "a", "ccc"]
    assert corpus.type_token_ratio(tokens) == 3 / 4
    # p = 1/2, 1/4, 1/4 -> H = 1/2 * 1 + 2 * 1/4 * 2 = 1.5 bits
    assert corpus.unigram_entropy(tokens) == pytest.approx(1.5)
    assert corpus.unigram_entropy(["x"] * 5) == 0
    assert corpus.mean_word_length(tokens) == pytest.approx((1 + 2 + 1 + 3) / 4)


def test_moving_average_ttr_by_hand_and_against_brute_force():
    # windows of 2 over a a b b: {a a} 1/2, {a b} 1, {b b} 1/2 -> 2/3
    assert corpus.moving_average_ttr(list("aabb"), 2) == pytest.approx(2 / 3)
    assert corpus.moving_average_ttr(list("ab"), 3) is None
    rng = np.random.default_rng(0)
    tokens = list(rng.choice(list("abcdefg"), size=200))
    brute = np.mean([len(set(tokens[i:i + 17])) / 17 for i in range(200 - 17 + 1)])
    assert corpus.moving_average_ttr(tokens, 17) == pytest.approx(brute)


def test_words_drop_punctuation_keep_combining_marks_and_case_fold():
    assert segmenters.words("The cat, THE dog!", "en") == ["the", "cat", "the", "dog"]
    # Devanagari vowel signs are combining marks: a word must not break at them
    assert segmenters.words("नमस्ते दुनिया।", "hi") == ["नमस्ते", "दुनिया"]
    assert segmenters.words("Ça va ?", "fr") == ["ça", "va"]


@pytest.mark.parametrize("language, text", [("zh", "我喜欢学习自然语言处理。"),
                                            ("ja", "私は日本語を勉強しています。"),
                                            ("th", "ฉันชอบกินข้าวมาก")])
def test_languages_without_word_spaces_are_segmented(language, text):
    segmented = segmenters.words(text, language)
    assert len(segmented) >= 3
    assert "".join(segmented) == "".join(segmenters.WORD.findall(unicodedata.normalize("NFC", text)))


def test_a_script_without_spaces_and_without_a_segmenter_is_an_error():
    assert not get_language("my").spaces_between_words
    with pytest.raises(sources.MorphologyError, match="no segmenter.*SEGMENTERS"):
        segmenters.words("မင်္ဂလာပါ", "my")


# --- treebank measures by hand ----------------------------------------------------------------

CONLLU = """\
# sent_id = 1
1\twalk\twalk\tVERB\t_\tVerbForm=Inf\t0\troot\t_\t_
2\twalks\twalk\tVERB\t_\tNumber=Sing|Person=3\t1\tdep\t_\t_
3\t.\t.\tPUNCT\t_\t_\t1\tpunct\t_\t_

# sent_id = 2
1-2\tdel\t_\t_\t_\t_\t_\t_\t_\t_
1\twalked\twalk\tVERB\t_\tTense=Past\t0\troot\t_\t_
2\trun\trun\tVERB\t_\t_\t1\tdep\t_\t_
3\truns\trun\tVERB\t_\tNumber=Sing|Person=3\t1\tdep\t_\t_
3.1\tghost\tghost\tNOUN\t_\t_\t_\t_\t_\t_

"""


@pytest.fixture()
def tiny_treebank(tmp_path) -> treebank.TreebankWords:
    path = tmp_path / "xx_tiny-ud-test.conllu"
    path.write_text(CONLLU, encoding="utf-8")
    return treebank.read_treebank(path)


def test_treebank_reader_keeps_syntactic_words_only(tiny_treebank):
    forms = [w[0] for s in tiny_treebank.sentences for w in s]
    assert forms == ["walk", "walks", "walked", "run", "runs"]  # no punct, range or empty node
    assert tiny_treebank.coverage() == (1.0, 0.8)


def test_treebank_measures_by_hand(tiny_treebank):
    flat = [w for s in tiny_treebank.sentences for w in s]
    forms, lemmas, bundles = zip(*flat, strict=True)
    assert treebank.mean_size_of_paradigm(forms, lemmas) == 5 / 2
    assert treebank.inflectional_synthesis(bundles) == pytest.approx((1 + 2 + 1 + 0 + 2) / 5)
    # bundles: {Inf}, {Sg3} x2, {Past}, {} -> p = .2, .4, .2, .2
    expected = -(3 * 0.2 * math.log2(0.2) + 0.4 * math.log2(0.4))
    assert treebank.feature_entropy(bundles) == pytest.approx(expected)
    # 5 distinct forms (log2 5) minus lemmas walk 3/5, run 2/5
    lemma_entropy = -(0.6 * math.log2(0.6) + 0.4 * math.log2(0.4))
    assert treebank.form_lemma_entropy_difference(forms, lemmas) == pytest.approx(
        math.log2(5) - lemma_entropy)


def test_equal_sized_samples_and_missing_annotation_are_said_not_zeroed(tmp_path):
    words_ = treebank.TreebankWords(source="t", sentences=[[(f"w{i}", None, None), (f"v{i}", None, None)]
                                                     for i in range(60)])
    samples = treebank.word_samples(words_, 101, 3, seed=1)
    assert [len(s) for s in samples] == [101, 101, 101]
    with pytest.raises(ValueError, match="fewer than"):
        treebank.word_samples(words_, 121, 1, seed=1)
    declared = sources.Treebank(language="vi", repository="UD_X-Y", file="x.conllu", kind="main")
    settings = sources.MorphologySettings(ud_sample_size=100, ud_samples=2)
    rows = {r["measure"]: r for r in treebank.treebank_rows(declared, words_, "v1", settings, True)}
    assert all(r["value"] is None for r in rows.values())
    assert "not lemmatised" in rows["mean_size_of_paradigm"]["note"]
    assert "no morphological features" in rows["inflectional_synthesis"]["note"]
    small = treebank.treebank_rows(declared, words_, "v1",
                                   sources.MorphologySettings(ud_sample_size=500), True)
    assert all(r["value"] is None and "fewer than the sample size" in r["note"] for r in small)


def test_invalid_treebank_names_the_file(tmp_path):
    path = tmp_path / "bad.conllu"
    path.write_text("1\tonly\tthree\n\n", encoding="utf-8")
    with pytest.raises(sources.MorphologyError, match="bad.conllu"):
        treebank.read_treebank(path)
    with pytest.raises(sources.MorphologyError, match="missing.conllu is missing"):
        treebank.read_treebank(tmp_path / "missing.conllu")


# --- tokenizer measures -----------------------------------------------------------------------

def test_subword_fertility_by_hand():
    def by_pairs(word):  # a word of n letters -> ceil(n / 2) pieces
        return [word[i:i + 2] for i in range(0, len(word), 2)]

    assert tokenizer.subword_fertility(by_pairs, ["ab", "abc", "abcde", "a", "abc"]) == (
        pytest.approx((1 + 2 + 3 + 1 + 2) / 5), pytest.approx(3 / 5))


# --- WALS coding on a small CLDF dataset ------------------------------------------------------

def _write_cldf(folder: Path, values: dict[str, dict[str, int]]) -> Path:
    from pycldf import StructureDataset

    dataset = StructureDataset.in_dir(folder)
    dataset.add_component("LanguageTable")
    dataset.add_component("ParameterTable")
    dataset.add_component("CodeTable")
    dataset.write(
        LanguageTable=[{"ID": code, "Name": code} for code in values],
        ParameterTable=[{"ID": f, "Name": wals.WALS_FEATURES[f].name} for f in wals.WALS_FEATURES],
        CodeTable=[{"ID": f"{f}-{n}", "Parameter_ID": f, "Name": str(n)}
                   for f in wals.WALS_FEATURES for n in wals.WALS_FEATURES[f].coding],
        ValueTable=[{"ID": f"{f}-{code}", "Language_ID": code, "Parameter_ID": f,
                     "Code_ID": f"{f}-{v}", "Value": str(v)}
                    for code, features in values.items() for f, v in features.items()],
    )
    return folder / "StructureDataset-metadata.json"


def test_wals_coding_composite_and_missing_values(tmp_path):
    metadata = _write_cldf(tmp_path, {
        "fin": {"49A": 8, "22A": 2, "26A": 2, "20A": 1, "23A": 5},
        "eng": {"49A": 2, "26A": 2},
    })
    _, values = wals.read_wals(metadata)
    rows = {(r["language"], r["measure"]): r
            for r in wals.wals_rows(values, "sample", sources.MorphologySettings())}
    assert rows[("fi", "wals_49A")]["value"] == 10.0
    assert rows[("fi", "wals_22A")]["value"] == 2.5
    assert rows[("fi", "wals_23A")]["value"] is None
    assert "off the scale" in rows[("fi", "wals_23A")]["note"]
    assert rows[("en", "wals_22A")]["value"] is None
    assert rows[("en", "wals_22A")]["note"] == "not coded in WALS for this language"
    # 49A 10 -> 1; 22A 2.5 -> (2.5 - .5) / 12; 26A -> 1; 20A -> 1
    assert rows[("fi", wals.COMPOSITE)]["value"] == pytest.approx((1 + 2 / 12 + 1 + 1) / 4)
    assert "4/7" in rows[("fi", wals.COMPOSITE)]["note"]
    assert rows[("en", wals.COMPOSITE)]["value"] is None  # two composite features < three
    assert "(< 3)" in rows[("en", wals.COMPOSITE)]["note"]


def test_every_wals_coding_covers_the_features_values(shared_data):
    codes = pd.read_csv(shared_data / "wals" / "codes.csv")
    for feature in wals.WALS_FEATURES.values():
        numbers = set(codes.loc[codes["Parameter_ID"] == feature.id, "Number"])
        assert numbers == set(feature.coding), feature.id


# --- languages --------------------------------------------------------------------------------

def test_the_registry_declares_exactly_the_xtreme_r_languages():
    assert set(LANGUAGES) == set(xtreme_r_languages())
    assert len(xtreme_r_languages()) == 50


def test_languages_table_from_real_wals(shared_data):
    wals_languages, _ = wals.read_wals(shared_data / "wals" / "StructureDataset-metadata.json")
    table = languages_table(wals_languages, read_cc100()).set_index("iso639_1")
    assert table.loc["fi", "family"] == "Uralic" and table.loc["en", "genus"] == "Germanic"
    assert table.loc["zh", "cc100_tokens_m"] == 259 + 176  # Simplified + Traditional
    assert pd.isna(table.loc["qu", "cc100_tokens_m"])  # not one of XLM-R's languages
    assert table["glottocode"].notna().all()
    # each declared ISO 639-3 code is one of the chosen WALS entry's ISO codes
    entries = wals_languages.set_index("ID")
    for code, row in table.iterrows():
        assert row["iso639_3"] in entries.loc[row["wals_code"], "ISO_codes"], code


def test_committed_languages_table_matches_the_code(shared_data):
    wals_languages, _ = wals.read_wals(shared_data / "wals" / "StructureDataset-metadata.json")
    built = languages_table(wals_languages, read_cc100())
    committed = pd.read_csv(data_dir() / "languages.csv", keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(committed, built, check_dtype=False)


_SCRIPT_NAMES = {"LATIN": "Latn", "CYRILLIC": "Cyrl", "ARABIC": "Arab", "GREEK": "Grek",
                 "HEBREW": "Hebr", "DEVANAGARI": "Deva", "BENGALI": "Beng", "TAMIL": "Taml",
                 "TELUGU": "Telu", "MALAYALAM": "Mlym", "GEORGIAN": "Geor", "THAI": "Thai",
                 "HANGUL": "Kore", "CJK": "Hans", "HIRAGANA": "Jpan", "KATAKANA": "Jpan"}


def _dominant_script(text: str) -> str:
    counts = Counter(_SCRIPT_NAMES.get(unicodedata.name(c, "?").split()[0], "other")
                     for c in text if c.isalpha())
    if counts["Jpan"] > 0.1 * sum(counts.values()):
        return "Jpan"
    return counts.most_common(1)[0][0]


def test_declared_scripts_match_the_real_text(shared_data):
    tatoeba = get_task("tatoeba")
    for language in tatoeba.languages:
        own = shared_data / sources.tatoeba_files(language)[0]
        text = own.read_text(encoding="utf-8")
        assert _dominant_script(text) == get_language(language).script, language


# --- download path, on local copies -----------------------------------------------------------

def _upstream(shared_data: Path, root: Path, leave_out: set[str] = frozenset()) -> None:
    """A file:// stand-in laid out like GitHub: raw/<repo>/<commit>/<path> and
    archive/<repo>/<commit>.zip, holding the data pack's copies of the pinned files."""
    rows = pd.read_csv(sources.DOWNLOAD_SOURCES, sep="\t", dtype=str, keep_default_na=False)
    for row in rows.itertuples():
        if row.path in leave_out:
            continue
        if row.path.endswith(".zip"):
            archive_path = root / "archive" / row.repository / f"{row.commit}.zip"
            archive_path.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(archive_path, "w") as archive:
                for path in (shared_data / "wals").glob("*.csv"):
                    archive.write(path, f"wals-{row.commit}/cldf/{path.name}")
                for name in ("StructureDataset-metadata.json", "sources.bib"):
                    archive.write(shared_data / "wals" / name, f"wals-{row.commit}/cldf/{name}")
            continue
        destination = root / "raw" / row.repository / row.commit / row.source_path
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.symlink_to(shared_data / row.path)


def _point_at(monkeypatch, root: Path) -> None:
    monkeypatch.setitem(sources.SOURCE_URLS, "archive", root.as_uri() + "/archive/{repository}/{commit}.zip")
    monkeypatch.setitem(sources.SOURCE_URLS, "raw",
                        root.as_uri() + "/raw/{repository}/{commit}/{source_path}")


def test_download_urls_name_the_recorded_commits():
    rows = pd.read_csv(sources.DOWNLOAD_SOURCES, sep="\t", dtype=str, keep_default_na=False)
    urls = {row["path"]: sources.source_url(row) for row in rows.to_dict("records")}
    assert urls["ud/fi_tdt-ud-test.conllu"] == (
        "https://raw.githubusercontent.com/UniversalDependencies/UD_Finnish-TDT/"
        "5e3a88a671ea673fa330e10cc59f54da587a95a7/fi_tdt-ud-test.conllu")
    assert urls["wals.zip"] == ("https://github.com/cldf-datasets/wals/archive/"
                                "3a9efd69074e1ced1da69e31b9aebfd55006eb70.zip")
    versions = table.read_indices(data_dir() / "morphology" / "indices.csv")["source_version"]
    committed = {version for version in versions.dropna() if version}
    recorded = {f"{row.repository}@{row.commit[:12]}" for row in rows.itertuples()}
    assert committed == recorded  # every version in the tables is fetched, and nothing else
    assert not [path for path in urls if "th_tud" in path]


def test_download_fetches_the_pinned_files_and_lists_each_missing_one(shared_data, tmp_path,
                                                                      monkeypatch):
    upstream = tmp_path / "upstream"
    _upstream(shared_data, upstream, leave_out={"ud/wo_wtb-ud-test.conllu"})
    _point_at(monkeypatch, upstream)
    target = sources.download_sources(tmp_path / "sources")
    assert (target / "wals" / "StructureDataset-metadata.json").exists()
    assert (target / "ud" / "pud" / "th_pud-ud-test.conllu").exists()
    versions = sources.SourceVersions(target)
    assert versions("tatoeba/tatoeba.fin-eng.fin") == "facebookresearch/LASER@74bc6ae7ffb7"
    assert versions("ud/fi_tdt-ud-test.conllu") == "UniversalDependencies/UD_Finnish-TDT@5e3a88a671ea"
    missing = sources.missing_sources(target)
    assert list(missing) == ["ud/wo_wtb-ud-test.conllu"]
    assert "UD_Wolof-WTB/575a3ab64619" in missing["ud/wo_wtb-ud-test.conllu"]
    rows = treebank.all_treebank_rows(target, versions, sources.MorphologySettings(ud_samples=1))
    wolof = [r for r in rows if r["language"] == "wo"]
    assert wolof and all(r["value"] is None and "not downloaded: file://" in r["note"]
                         for r in wolof)


def test_a_file_that_differs_from_the_recorded_one_is_refused(shared_data, tmp_path, monkeypatch):
    upstream = tmp_path / "upstream"
    _upstream(shared_data, upstream)
    _point_at(monkeypatch, upstream)
    changed = upstream / "raw" / "UniversalDependencies" / "UD_Yoruba-YTB"
    (link,) = changed.rglob("*.conllu")
    link.unlink()
    link.write_text("# sent_id = 1\n1\tA\ta\tX\t_\t_\t0\troot\t_\t_\n\n")
    target = sources.download_sources(tmp_path / "sources")
    assert "is not the committed tables'" in sources.missing_sources(target)["ud/yo_ytb-ud-test.conllu"]
    assert not (target / "ud" / "yo_ytb-ud-test.conllu").exists()


def test_misaligned_tatoeba_pairs_name_both_files(tmp_path):
    folder = tmp_path / "tatoeba"
    folder.mkdir()
    (folder / "tatoeba.fin-eng.fin").write_text("yksi\nkaksi\n", encoding="utf-8")
    (folder / "tatoeba.fin-eng.eng").write_text("one\n", encoding="utf-8")
    with pytest.raises(sources.MorphologyError, match="tatoeba.fin-eng.fin has 2 lines.*line-aligned"):
        corpus.tatoeba_words(tmp_path, "fi")
    with pytest.raises(sources.MorphologyError, match="tatoeba.deu-eng.deu is missing"):
        corpus.tatoeba_words(tmp_path, "de")


# --- the real data ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built_tables(shared_data, e5_model_path, tmp_path_factory) -> Path:
    """What ``stilts morphology build --tokenizer multilingual-e5-small`` (the committed tables'
    command) writes, built from the real data pack; the tokenizer is the offline copy's, which
    is the hub original's tokenizer.json."""
    from stilts_core.models import registry as modelling

    output = tmp_path_factory.mktemp("morphology")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(modelling, "hub_unreachable", lambda: "tests use the offline copy")
        written = table.build(shared_data, output, languages_csv=output / "languages.csv",
                          tokenizer_name="multilingual-e5-small")
    assert {p.name for p in written} == {"languages.csv", "indices.csv", "indices_wide.csv",
                                         "coverage.csv", "settings.json"}
    assert not list(output.glob(".*tmp*"))  # nothing half-written left behind
    return output


@pytest.fixture(scope="module")
def real_indices(built_tables) -> pd.DataFrame:
    return table.read_indices(built_tables / "indices.csv")


@pytest.mark.parametrize("name", ["indices.csv", "indices_wide.csv", "coverage.csv",
                                  "settings.json"])
def test_the_committed_tables_are_what_the_command_computes(built_tables, name):
    committed = (data_dir() / "morphology" / name).read_text(encoding="utf-8")
    assert committed == (built_tables / name).read_text(encoding="utf-8"), (
        f"data/morphology/{name} differs from a fresh build: run `stilts morphology build`")


@pytest.mark.parametrize("measure", ["ttr", "mattr", "word_entropy", "mean_word_length",
                                     "mean_size_of_paradigm", "form_lemma_entropy_difference",
                                     "wals_synthesis"])
def test_finnish_turkish_hungarian_are_more_complex_than_english_and_vietnamese(
        real_indices, measure):
    wide = table.wide_view(real_indices)[measure]
    for complex_ in ("fi", "tr", "hu"):
        for simple in ("en", "vi"):
            assert wide[complex_] > wide[simple], (measure, complex_, simple)


@pytest.mark.parametrize("measure", ["inflectional_synthesis", "feature_entropy"])
def test_feature_measures_rank_against_english_and_leave_vietnamese_empty(real_indices, measure):
    wide = table.wide_view(real_indices)[measure]
    assert all(wide[lang] > wide["en"] for lang in ("fi", "tr", "hu"))
    assert pd.isna(wide["vi"])  # VTB has no FEATS: an empty cell, not a zero
    note = real_indices.query("language == 'vi' and measure == @measure")["note"].item()
    assert "no morphological features" in note


def test_every_language_and_measure_has_one_primary_row(real_indices):
    primary = real_indices[real_indices["primary"]]
    per_language = primary.groupby("measure")["language"].nunique()
    assert (per_language == 50).all()
    assert not primary.duplicated(["language", "measure"]).any()
    missing = primary[primary["value"].isna()]
    assert (missing["note"].str.len() > 0).all()


def test_tokenizer_measures_with_the_tiny_tokenizer(shared_data, tiny_model_path):
    from stilts_core.models.registry import load_tokenizer

    texts = tokenizer.tokenizer_texts(shared_data)
    rows = pd.DataFrame(tokenizer.tokenizer_rows(texts, load_tokenizer(tiny_model_path), "tiny-xlmr",
                                         sources.SourceVersions(shared_data)))
    primary = rows[rows["primary"]]
    assert not primary.duplicated(["language", "measure"]).any()
    table = primary.pivot(index="language", columns="measure", values="value")
    assert set(table.index) == set(xtreme_r_languages())
    measured = table.dropna()
    # every language with Tatoeba, UD or PUD text is measured: 41 Tatoeba, English, wo and yo (UD)
    assert len(measured) == 44 and {"wo", "yo", "en"} <= set(measured.index)
    assert primary.set_index("language").loc["yo", "source"].iloc[0].startswith("tiny-xlmr on UD_")
    assert (measured["subword_fertility"] >= 1).all()
    assert measured["proportion_split"].between(0, 1).all()
    # a 400-piece vocabulary learnt on English fixtures splits Finnish more than English
    assert measured.loc["fi", "subword_fertility"] > measured.loc["en", "subword_fertility"]
    # secondary rows: the treebanks of languages that also have Tatoeba pairs (fi: TDT and PUD)
    assert set(rows[~rows["primary"] & (rows["language"] == "fi")]["source"]) == {
        "tiny-xlmr on UD_Finnish-TDT (main)", "tiny-xlmr on UD_Finnish-PUD (pud)"}


class _MarkThenCharacters:
    """A tokenizer that reads a word alone as '▁' followed by one piece per character."""

    def __call__(self, word, add_special_tokens):
        return {"input_ids": [0] + [ord(c) for c in word]}

    def convert_ids_to_tokens(self, identifier):
        return "\u2581" if identifier == 0 else chr(identifier)


def test_the_boundary_mark_counts_only_where_the_orthography_has_spaces(shared_data):
    texts = [tokenizer.TokenizerText("de", "t", (), ["Haus", "ab"], True),
             tokenizer.TokenizerText("ja", "t", (), ["日本", "語"], True)]
    rows = pd.DataFrame(tokenizer.tokenizer_rows(texts, _MarkThenCharacters(), "chars",
                                         sources.SourceVersions(shared_data)))
    values = rows.dropna(subset=["value"]).set_index(["language", "measure"])["value"]
    assert values["de", "subword_fertility"] == pytest.approx((5 + 3) / 2)
    assert values["ja", "subword_fertility"] == pytest.approx((2 + 1) / 2)
    assert values["ja", "proportion_split"] == pytest.approx(1 / 2)


def test_tokenizer_words_are_as_written(tmp_path):
    assert segmenters.words("Ça va, Tom?", "fr", casefold=False) == ["Ça", "va", "Tom"]
    conllu = tmp_path / "t.conllu"
    lines = ["1-2\tZum\t_\t_\t_\t_\t_\t_\t_\t_", "1\tZu\tzu\tADP\t_\t_\t3\tcase\t_\t_",
             "2\tdem\tder\tDET\t_\t_\t3\tdet\t_\t_", "3\tHaus\tHaus\tNOUN\t_\t_\t0\troot\t_\t_",
             "4\t.\t.\tPUNCT\t_\t_\t3\tpunct\t_\t_"]
    conllu.write_text("# text = Zum Haus.\n" + "\n".join(lines) + "\n\n", encoding="utf-8")
    assert tokenizer.treebank_surface_words(conllu) == ["Zum", "Haus"]


def test_the_command_without_sources_says_what_to_pass(tmp_path, monkeypatch, capsys):
    from stilts_core.cli import main

    monkeypatch.setenv("STILTS_SHARED_DATA", str(tmp_path / "absent"))
    assert main(["morphology", "build", "--output", str(tmp_path / "out")]) == 2
    assert "pass --sources DIR" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_failed_build_writes_nothing(shared_data, tmp_path, monkeypatch):
    """Nothing is written before every index is computed: a languages.csv written first would be
    left beside stale index tables by a failure."""
    def fail(*args, **kwargs):
        raise RuntimeError("a source went missing")

    monkeypatch.setattr(table, "build_indices", fail)
    with pytest.raises(RuntimeError, match="went missing"):
        table.build(shared_data, tmp_path, languages_csv=tmp_path / "languages.csv")
    assert list(tmp_path.iterdir()) == []
