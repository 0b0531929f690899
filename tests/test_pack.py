"""The shared data pack through the data layer: every file the study reads, in its release format,
and malformed copies of each format named by file and line."""

import gzip
from collections import Counter

import pytest

from stilts_core.data import pack
from stilts_core.data.loading import load_split
from stilts_core.data.pack import PACK_LAYOUT, entry_paths, pack_entry, pack_record
from stilts_core.data.sources import DataSourceError, resolve_data_root
from stilts_core.tasks.registry import get_task

# Sizes the pack README states (or the release's own), after the held-out tenth where a dev
# set serves as training data.
EXPECTED_ROWS = {
    ("mnli", "train", "en"): 9815 - 982, ("mnli", "validation", "en"): 982,
    ("snli", "train", "en"): 9842,
    ("anli_plus", "train", "en"): 3198 - 320, ("anli_plus", "validation", "en"): 320,
    ("sst2", "train", "en"): 67349, ("sst2", "validation", "en"): 872,
    ("commonsense_qa", "train", "en"): 1221 - 245, ("commonsense_qa", "validation", "en"): 245,
    ("cosmos_qa", "train", "en"): 2985 - 299, ("cosmos_qa", "validation", "en"): 299,
    ("siqa", "train", "en"): 1954, ("siqa", "validation", "en"): 2224,
    ("copa", "train", "en"): 400, ("copa", "validation", "en"): 100,
    ("xnli", "validation", "de"): 2490, ("xnli", "test", "sw"): 5010,
    ("pawsx", "train", "en"): 1800, ("pawsx", "validation", "en"): 200,
    ("pawsx", "validation", "ja"): 2000,
    ("panx", "train", "en"): 20000, ("panx", "validation", "fi"): 10000,
    ("udpos", "train", "en"): 21253, ("udpos", "validation", "en"): 3974,
    ("udpos", "test", "ar"): 1000, ("udpos", "test", "mr"): 47,
    ("tydiqa", "train", "en"): 3696, ("xcopa", "validation", "qu"): 100,
    ("xcopa", "test", "zh"): 500, ("xquad", "test", "th"): 1190, ("tatoeba", "test", "jv"): 205,
}


@pytest.mark.parametrize("key", sorted(EXPECTED_ROWS), ids="-".join)
def test_pack_split_reads_in_the_canonical_schema_with_the_release_size(shared_data, key):
    task, split, language = key
    dataset = load_split(get_task(task), split, language, "pack")
    assert len(dataset) == EXPECTED_ROWS[key]


def test_every_layout_entry_resolves_to_pack_files_for_every_declared_language(shared_data):
    missing = []
    for key, entry in PACK_LAYOUT.items():
        task = get_task(key[0])
        languages = [key[2]] if len(key) == 3 else entry.languages or task.languages
        if not any("{" in p for p in entry.paths):
            languages = ["en"]
        for language in languages:
            if pack_entry(task.name, key[1], language) is not entry:
                continue  # a per-language entry overrides this one
            code = task.language_codes.get(language, language)
            missing += [str(p) for p in entry_paths(shared_data, entry, language, code)
                        if not p.is_file()]
    assert missing == []


def test_xnli_labelled_test_is_balanced_in_every_language_it_is_read_in(shared_data):
    for language in ("en", "ar", "zh"):
        labels = Counter(load_split(get_task("xnli"), "test", language, "pack")["label"])
        assert labels == {0: 1670, 1: 1670, 2: 1670}


def test_tydiqa_dev_serves_as_the_nine_language_test_set(shared_data):
    task = get_task("tydiqa")
    assert sum(len(load_split(task, "test", lang, "pack")) for lang in task.languages) == 5077


def test_siqa_letters_become_the_registry_choice_labels(shared_data):
    labels = Counter(load_split(get_task("siqa"), "train", "en", "pack")["label"])
    assert set(labels) == {0, 1, 2} and sum(labels.values()) == 1954


def test_held_out_and_training_rows_split_a_dev_set_without_overlap(shared_data):
    task = get_task("mnli")
    train = load_split(task, "train", "en", "pack")
    held_out = load_split(task, "validation", "en", "pack")
    pairs = set(zip(train["text"], train["text_pair"], strict=True))
    assert not pairs & set(zip(held_out["text"], held_out["text_pair"], strict=True))


def test_a_dev_set_standing_in_for_another_split_says_so():
    for key, entry in PACK_LAYOUT.items():
        if entry.rows != "all":
            assert entry.serves_as, key
    record = pack_record("mnli")
    assert "serves as training data" in record["train"]["serves_as"]
    assert record["validation"]["rows"] == "held_out"
    assert "serves_as" not in pack_record("sst2")["train"]


def test_pack_root_name_resolves_to_the_shared_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("STILTS_SHARED_DATA", str(tmp_path))
    assert resolve_data_root("pack") == tmp_path.resolve()


def test_split_the_pack_lacks_names_the_root_and_the_override(tmp_path):
    (tmp_path / pack.MANIFEST).write_text("path\n")
    with pytest.raises(DataSourceError, match=r"no 'train' data for task 'xnli'.*data_roots"):
        load_split(get_task("xnli"), "train", "en", tmp_path)
    with pytest.raises(DataSourceError, match=r"dev-de\.tsv: missing from the shared data pack"):
        load_split(get_task("xnli"), "validation", "de", tmp_path)


# --- malformed files: the error names the file and the line ---------------------------------------

def _fake_pack(root, relative: str, content: bytes):
    (root / pack.MANIFEST).write_text("path\n")
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


MALFORMED = {
    "xtreme tsv": ("xnli", "validation", "de", "xtreme/xnli/xtreme/dev-de.tsv",
                   b"a\tb\tneutral\nc\td\tentailment\nonly two\tfields\n", r"dev-de\.tsv, line 3"),
    "header tsv": ("sst2", "validation", "en", "intermediate/sst2/glue_dev_via_alps_test.tsv",
                   b"sentence\tlabel\ngood .\t1\nbad .\n", r"glue_dev_via_alps_test\.tsv, line 3"),
    "word/tag gz": ("panx", "test", "de", "xtreme/panx/test-de.tsv.gz",
                    gzip.compress(b"Berlin\tB-LOC\n\nein\tO\nTag ohne Tab\n"),
                    r"test-de\.tsv\.gz, line 4: expected 'word<TAB>tag'"),
    "word/tag tsv": ("udpos", "train", "en", "xtreme/udpos/train-en.tsv",
                     b"The\tDET\ndog\t\n", r"train-en\.tsv, line 2"),
    "csv": ("cosmos_qa", "train", "en", "intermediate/cosmosqa/valid.csv",
            b"id,context,question,answer0,answer1,answer2,answer3,label\n1,c,q,a,b,c,d,0\n2,c,q\n",
            r"valid\.csv, line 3: the row does not have the header's 8 fields"),
    "jsonl": ("copa", "train", "en", "intermediate/copa/xtreme_r_xcopa_train-en.jsonl",
              b'{"premise": "p", "choice1": "a", "choice2": "b", "question": "cause", "label": 0}\n'
              b'{"premise": \n', r"xtreme_r_xcopa_train-en\.jsonl, line 2: not JSON"),
    "conllu": ("udpos", "test", "fi", "ud/fi_tdt-ud-test.conllu",
               b"# text = Hei\n1\tHei\thei\tINTJ\t_\t_\t0\troot\t_\t_\n2\tbroken\n",
               r"fi_tdt-ud-test\.conllu: .*line 3 has 2 columns"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_pack_file_is_named_by_file_and_line(tmp_path, case):
    task, split, language, relative, content, message = MALFORMED[case]
    _fake_pack(tmp_path, relative, content)
    with pytest.raises(DataSourceError, match=message):
        load_split(get_task(task), split, language, tmp_path)


def test_well_formed_small_word_tag_file_reads_sentence_by_sentence(tmp_path):
    _fake_pack(tmp_path, "xtreme/panx/test-de.tsv.gz",
               gzip.compress(b"Berlin\tB-LOC\nist\tO\n\nParis\tB-LOC\n"))
    dataset = load_split(get_task("panx"), "test", "de", tmp_path)
    assert dataset["tokens"] == [["Berlin", "ist"], ["Paris"]]
    assert dataset["tags"] == [["B-LOC", "O"], ["B-LOC"]]


def test_separator_characters_inside_a_sentence_do_not_break_its_line(tmp_path):
    # XNLI's Greek test has U+001D inside a sentence; str.splitlines would split there.
    _fake_pack(tmp_path, "xtreme/xnli/xtreme/dev-el.tsv",
               "a\x1db\u2028c\td\tneutral\ne\tf\tentailment\n".encode())
    dataset = load_split(get_task("xnli"), "validation", "el", tmp_path)
    assert dataset["text"] == ["a\x1db\u2028c", "e"]


@pytest.mark.parametrize("task, split", [("xnli", "validation"), ("xnli", "test"),
                                         ("panx", "test"), ("udpos", "test"),
                                         ("xcopa", "test"), ("tatoeba", "test")])
def test_every_language_of_the_study_reads(shared_data, task, split):
    spec = get_task(task)
    languages = [lang for lang in spec.languages if pack_entry(task, split, lang)]
    assert languages
    for language in languages:
        assert len(load_split(spec, split, language, "pack")) > 0, language


def test_grid_check_takes_a_stand_in_split_for_what_it_is(shared_data):
    from stilts_core.data.sources import DataSources
    from stilts_core.grid.preflight import Need, check_local

    sources = DataSources(shared_data)
    status, source, detail = check_local(Need("mnli", "train", "en", sources), shared_data)
    assert status == "ok" and source.endswith("dev_matched_premise_hypothesis_label.jsonl")
    assert "8833 examples" in detail and "serves as training data" in detail
    status, _, detail = check_local(Need("sst2", "train", "en", sources), shared_data)
    assert (status, detail) == ("ok", "67349 examples (= declared size)")
    status, _, detail = check_local(Need("panx", "test", "th", sources, optional=True), shared_data)
    assert status == "skipped"


def test_run_records_the_pack_files_and_what_stands_in_for_what(shared_data, tmp_path):
    import json

    from stilts_core.phases.common import record_sources
    from stilts_core.phases.params import PARAMS

    params = PARAMS["intermediate"](task="anli_plus", model="multilingual-e5-small", data_root="pack")
    record_sources(tmp_path, params, [get_task(n) for n in ("anli_plus", "snli", "mnli")])
    record = json.loads((tmp_path / "data_sources.json").read_text())
    assert record["anli_plus"]["pack"] == "pack:."  # the pack's root, the same on every machine
    assert "ANLIzing" in record["anli_plus"]["splits"]["train"]["serves_as"]
    assert "serves as SNLI's part of ANLI+ training" in record["snli"]["splits"]["train"]["serves_as"]


@pytest.mark.parametrize("task, split, expected", [("xnli", "test", 15), ("udpos", "test", 38),
                                                   ("panx", "test", 39)])
def test_evaluation_languages_of_a_pack_task_are_those_its_layout_has(shared_data, tmp_path, task,
                                                                      split, expected):
    """A zero-shot run over 'every language' finds the pack's files through its layout, not as
    <task>/<split>-<lang>.jsonl (which the pack does not have)."""
    from stilts_core.phases.common import available_languages
    from stilts_core.phases.params import PARAMS

    params = PARAMS["zero_shot_eval"](target_run="x", data_root="pack")
    found = available_languages(get_task(task), split, params, tmp_path)
    assert len(found) == expected and "en" in found


@pytest.mark.parametrize("task, split, language, size", [("panx", "test", "ja", 25),
                                                         ("xnli", "test", "sw", 40),
                                                         ("anli_plus", "train", "en", 30),
                                                         ("snli", "train", "en", 30)])
def test_a_sample_drawn_before_conversion_is_the_sample_drawn_after(shared_data, task, split,
                                                                    language, size):
    """Sampling raw rows (fast) picks the examples that sampling converted rows picked; a task
    that drops labels (SNLI's '-') is sampled after conversion."""
    from stilts_core.data.loading import sample_rows

    spec = get_task(task)
    every = load_split(spec, split, language, "pack")
    assert load_split(spec, split, language, "pack", sample=size).to_list() == \
        sample_rows(every, size).to_list()
