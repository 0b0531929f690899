"""Every format's preprocessing, on real release files (``../shared/data``) where the project
has them and on small files in the hub schemas that the tests write."""

import json

import numpy as np
import pytest

from stilts_core.data.loading import load_split
from stilts_core.data.readers import read_local_file
from stilts_core.data.sources import DataSourceError
from stilts_core.formats import IGNORE_INDEX, Encoding
from stilts_core.formats.classification import encode as encode_classification
from stilts_core.formats.extractive_qa import decode_spans
from stilts_core.formats.extractive_qa import encode_eval as encode_qa_eval
from stilts_core.formats.extractive_qa import encode_train as encode_qa_train
from stilts_core.formats.multiple_choice import encode as encode_multiple_choice
from stilts_core.formats.token_classification import decode_word_tags
from stilts_core.formats.token_classification import encode as encode_tokens
from stilts_core.tasks.registry import get_task


def _canonical(task_name, path, language="en"):
    from stilts_core.data.canonical import canonicalise

    task = get_task(task_name)
    return canonicalise(read_local_file(task, path), task, str(path))


def _write_jsonl(root, task, name, rows):
    path = root / task / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- real files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("round_", [1, 2, 3])
def test_anli_release_csv_becomes_labelled_pairs(shared_data, tokenizer, round_):
    path = shared_data / "intermediate" / "anli" / f"ANLI_analysis_r{round_}_dev.csv"
    examples = _canonical("anli_plus", path)
    assert len(examples) > 100 and set(examples["label"]) == {0, 1, 2}
    first = examples[0]
    assert first["text"] and first["text_pair"]
    features = encode_classification(examples, tokenizer, Encoding(max_length=64))
    assert max(features["length"]) <= 64 and features["labels"] == examples["label"]


def test_cosmos_release_csv_becomes_four_choices(shared_data, tokenizer):
    examples = _canonical("cosmos_qa", shared_data / "intermediate" / "cosmosqa" / "valid.csv")
    assert all(len(c) == 4 for c in examples["choices"]) and set(examples["label"]) == {0, 1, 2, 3}
    features = encode_multiple_choice(examples.select(range(20)), tokenizer, Encoding(max_length=96))
    assert all(len(f["input_ids"]) == 4 for f in features)
    assert all(len(ids) <= 96 for f in features for ids in f["input_ids"])


def test_xcopa_release_rows_become_two_choices_with_the_question_spelled_out(shared_data, tokenizer):
    examples = _canonical("xcopa", shared_data / "xtreme_r" / "xcopa" / "et" / "val.et.jsonl")
    assert len(examples) == 100 and all(len(c) == 2 for c in examples["choices"])
    assert set(examples["question"]) == {"What was the cause?", "What happened as a result?"}
    features = encode_multiple_choice(examples, tokenizer, Encoding(max_length=64))
    assert features["labels"] == examples["label"]


def test_xquad_offsets_map_back_to_the_exact_answer_text(shared_data, tokenizer):
    examples = _canonical("xquad", shared_data / "xtreme_r" / "xquad" / "xquad.de.json").select(
        range(60))
    encoding = Encoding(max_length=160, doc_stride=32)
    train = encode_qa_train(examples, tokenizer, encoding)
    assert len(train) > len(examples)  # long contexts are split into overlapping windows
    evaluation = encode_qa_eval(examples, tokenizer, encoding)
    contexts = {e["id"]: e for e in examples}
    found = 0
    for window, start, end in zip(evaluation, train["start_positions"], train["end_positions"],
                                  strict=True):
        if start == 0:
            continue
        example = contexts[window["example_id"]]
        offsets = window["offset_mapping"]
        text = example["context"][offsets[start][0]:offsets[end][1]]
        assert text.strip() == example["answers"]["text"][0].strip()
        found += 1
    assert found >= len(examples)  # every answer is inside at least one window


def test_ud_treebank_tags_sit_on_first_subwords_only(shared_data, tokenizer):
    path = shared_data / "ud" / "fi_tdt-ud-test.conllu"
    examples = _canonical("udpos", path).select(range(50))
    assert all(len(t) == len(g) for t, g in zip(examples["tokens"], examples["tags"], strict=True))
    labels = get_task("udpos").labels
    features = encode_tokens(examples, tokenizer, Encoding(max_length=512, labels=labels))
    for example, feature in zip(examples, features, strict=True):
        tagged = [(w, lab) for w, lab in zip(feature["word_ids"], feature["labels"], strict=True)
                  if lab != IGNORE_INDEX]
        assert [w for w, _ in tagged] == list(range(len(example["tokens"])))
        assert [labels[lab] for _, lab in tagged] == example["tags"]
        assert feature["labels"][0] == IGNORE_INDEX and feature["labels"][-1] == IGNORE_INDEX


def test_long_sentences_are_split_into_windows_that_tag_every_word_once(shared_data, tokenizer):
    examples = _canonical("udpos", shared_data / "ud" / "fi_tdt-ud-test.conllu").select(range(30))
    labels = get_task("udpos").labels
    features = encode_tokens(examples, tokenizer, Encoding(max_length=16, labels=labels))
    assert len(features) > len(examples) and max(features["length"]) <= 16
    seen = [[] for _ in range(len(examples))]
    for feature in features:
        seen[feature["example"]] += [w for w in feature["word_ids"] if w >= 0]
    assert seen == [list(range(len(tokens))) for tokens in examples["tokens"]]
    logits = [np.eye(len(labels))[[max(lab, 0) for lab in f["labels"]]] for f in features]
    decoded = decode_word_tags(features, logits, labels, [len(t) for t in examples["tokens"]])
    assert decoded == examples["tags"]  # one-hot "logits" of the gold tags decode to the gold


def test_multiword_tokens_are_skipped_like_xtreme(tmp_path):
    conllu = ("# text = du\n1-2\tdu\t_\t_\t_\t_\t_\t_\t_\t_\n1\tde\tde\tADP\t_\t_\t0\troot\t_\t_\n"
              "2\tle\tle\tDET\t_\t_\t1\tdet\t_\t_\n2.1\tx\tx\tX\t_\t_\t_\t_\t_\t_\n\n")
    path = tmp_path / "udpos" / "test-fr.conllu"
    path.parent.mkdir()
    path.write_text(conllu)
    examples = load_split(get_task("udpos"), "test", "fr", tmp_path)
    assert examples[0] == {"tokens": ["de", "le"], "tags": ["ADP", "DET"]}


# --- hub-schema files ---------------------------------------------------------------------------

def test_squad_v2_unanswerable_questions_point_at_the_first_token(tmp_path, tokenizer):
    context = "Anna has 7 apples in the garden. Marco has 3 books at home."
    rows = [
        {"id": "a", "title": "t", "context": context, "question": "Who has 7 apples?",
         "answers": {"text": ["Anna"], "answer_start": [0]}},
        {"id": "b", "title": "t", "context": context, "question": "Who has a car?",
         "answers": {"text": [], "answer_start": []}},
    ]
    _write_jsonl(tmp_path, "squad", "train-en.jsonl", rows)
    examples = load_split(get_task("squad"), "train", "en", tmp_path)
    features = encode_qa_train(examples, tokenizer, Encoding(max_length=96, doc_stride=16))
    assert features["start_positions"][1] == features["end_positions"][1] == 0
    assert features["start_positions"][0] > 0
    bad = [{**rows[0], "answers": {"text": ["Marco"], "answer_start": [0]}}]
    _write_jsonl(tmp_path, "squad", "validation-en.jsonl", bad)
    with pytest.raises(DataSourceError, match=r"example 1 \(id 'a'\): answer 'Marco' is not at"):
        load_split(get_task("squad"), "validation", "en", tmp_path)


def test_span_decoding_picks_the_best_valid_span_or_no_answer(tmp_path, tokenizer):
    context = "Anna has 7 apples in the garden."
    rows = [{"id": "q", "title": "", "context": context, "question": "How many?",
             "answers": {"text": ["7"], "answer_start": [9]}}]
    _write_jsonl(tmp_path, "squad", "validation-en.jsonl", rows)
    examples = load_split(get_task("squad"), "validation", "en", tmp_path)
    features = encode_qa_eval(examples, tokenizer, Encoding(max_length=96, doc_stride=16))
    offsets = features[0]["offset_mapping"]
    target = next(i for i, o in enumerate(offsets) if o and context[o[0]:o[1]].strip() == "7")
    start, end = np.zeros(len(offsets)), np.zeros(len(offsets))
    start[target] = end[target] = 5.0
    start[1] = 9.0  # a question token: outside the context, never an answer
    answer = decode_spans(examples, features, [start], [end], with_negative=True)
    assert answer["q"].strip() == "7"
    start[0] = end[0] = 6.0  # the no-answer score now beats the best span
    assert decode_spans(examples, features, [start], [end], with_negative=True)["q"] == ""
    assert decode_spans(examples, features, [start], [end], with_negative=False)["q"].strip() == "7"


@pytest.mark.parametrize("task_name, row, expected", [
    ("hellaswag", {"ctx_a": "He opens the door.", "ctx_b": "Then he",
                   "endings": ["walks in.", "flies.", "sings.", "sleeps."], "label": "0"},
     {"context": "He opens the door.", "question": "Then he", "label": 0}),
    ("commonsense_qa", {"question": "Where are books?", "answerKey": "C",
                        "choices": {"label": list("ABCDE"),
                                    "text": ["sea", "sky", "library", "oven", "car"]}},
     {"context": "", "question": "Where are books?", "label": 2}),
])
def test_multiple_choice_hub_schemas(tmp_path, tokenizer, task_name, row, expected):
    _write_jsonl(tmp_path, task_name, "validation-en.jsonl", [row])
    example = load_split(get_task(task_name), "validation", "en", tmp_path)[0]
    assert {k: example[k] for k in expected} == expected
    features = encode_multiple_choice(load_split(get_task(task_name), "validation", "en", tmp_path),
                                      tokenizer, Encoding(max_length=32))
    assert len(features[0]["input_ids"]) == len(example["choices"])


@pytest.mark.parametrize("task_name, row, label", [
    ("mnli", {"premise": "a", "hypothesis": "b", "label": 2}, 2),
    ("qqp", {"question1": "a?", "question2": "b?", "label": "duplicate"}, 1),
    ("sst2", {"sentence": "great film", "label": 1}, 1),
    ("anli_plus", {"premise": "a", "hypothesis": "b", "label": "c"}, 2),
])
def test_classification_hub_schemas(tmp_path, tokenizer, task_name, row, label):
    _write_jsonl(tmp_path, task_name, "validation-en.jsonl", [row])
    examples = load_split(get_task(task_name), "validation", "en", tmp_path)
    assert examples[0]["label"] == label
    assert ("text_pair" in examples.column_names) == (task_name != "sst2")
    features = encode_classification(examples, tokenizer, Encoding(max_length=32))
    assert features[0]["input_ids"][0] == tokenizer.cls_token_id


def test_ccg_is_local_only_with_instructions_and_reads_its_tag_set_from_data(tmp_path, tokenizer):
    with pytest.raises(DataSourceError, match=r"LDC.*<root>/ccg/train-en\.jsonl.*data_root"):
        load_split(get_task("ccg"), "train", "en", "hub")
    rows = [{"tokens": ["Anna", "reads"], "tags": ["N", r"S[dcl]\NP"]},
            {"tokens": ["Marco", "sleeps", "."], "tags": ["N", r"S[dcl]\NP", "."]}]
    _write_jsonl(tmp_path, "ccg", "train-en.jsonl", rows)
    from stilts_core.training.inputs import label_set

    examples = load_split(get_task("ccg"), "train", "en", tmp_path)
    assert label_set(get_task("ccg"), examples) == (".", "N", r"S[dcl]\NP")


def test_mismatched_tokens_and_tags_are_named(tmp_path):
    _write_jsonl(tmp_path, "panx", "test-de.jsonl", [{"tokens": ["a", "b"], "ner_tags": ["O"]}])
    with pytest.raises(DataSourceError, match=r"example 1: 2 tokens but 1 tags"):
        load_split(get_task("panx"), "test", "de", tmp_path)
    _write_jsonl(tmp_path, "panx", "test-fr.jsonl", [{"tokens": ["a"], "ner_tags": ["B-CITY"]}])
    with pytest.raises(DataSourceError, match=r"field 'ner_tags' has \['B-CITY'\]"):
        load_split(get_task("panx"), "test", "fr", tmp_path)


def test_translated_data_comes_from_local_files_only(tmp_path):
    with pytest.raises(DataSourceError, match="translated 'mnli' data \\(de\\) comes only from local"):
        load_split(get_task("mnli"), "train", "de", "hub", translated=True)
    _write_jsonl(tmp_path, "mnli", "train-de.jsonl",
                 [{"premise": "Anna hat 3 Äpfel.", "hypothesis": "Anna hat Äpfel.", "label": 0}])
    assert load_split(get_task("mnli"), "train", "de", tmp_path, translated=True)["label"] == [0]


def test_encoded_features_are_fingerprinted_by_content_without_pickling_the_tokenizer(
        tokenizer, monkeypatch):
    """datasets would pickle the closure (and the tokenizer) to fingerprint every map; the
    fingerprint is given instead, from the source, the encoder, the tokenizer's content and the
    settings, so equal inputs share it and any change of them changes it."""
    import datasets
    from datasets.fingerprint import Hasher

    from stilts_core.formats import tokenizer_digest

    source = datasets.Dataset.from_list([{"text": "a b", "text_pair": "c", "label": 0}] * 3)
    hash_one = Hasher.hash

    def refuse_tokenizers(value):
        assert value is not tokenizer, "the tokenizer was pickled to fingerprint a map"
        return hash_one(value)

    monkeypatch.setattr(Hasher, "hash", staticmethod(refuse_tokenizers))
    first = encode_classification(source, tokenizer, Encoding(max_length=16))
    again = encode_classification(source, tokenizer, Encoding(max_length=16))
    longer = encode_classification(source, tokenizer, Encoding(max_length=32))
    assert first._fingerprint == again._fingerprint != longer._fingerprint
    assert first["input_ids"] == longer["input_ids"]
    digest = tokenizer_digest(tokenizer)
    assert len(digest) == 64 and tokenizer_digest(tokenizer) == digest
