"""Hand-worked cases for every metric, against the official XTREME definitions."""

import pytest

from stilts_core.tasks.metrics import (
    METRICS,
    MetricInputError,
    average_precision_at_k,
    entities,
    get_metric,
    normalize_mlqa,
    seqeval,
)


def score(name, predictions, references, language=None):
    return get_metric(name).compute(predictions, references, language)


def test_accuracy_hand_worked_and_refuses_bad_inputs():
    assert score("accuracy", [0, 1, 2, 2], [0, 1, 1, 2]) == {"accuracy": 75.0}
    assert score("accuracy", ["a"], ["b"]) == {"accuracy": 0.0}
    with pytest.raises(MetricInputError, match="3 predictions for 2 references"):
        score("accuracy", [0, 1, 2], [0, 1])
    with pytest.raises(MetricInputError, match="no references"):
        score("accuracy", [], [])
    with pytest.raises(KeyError, match="unknown metric"):
        get_metric("bleu")


def test_every_metric_declares_headline_scores_it_returns():
    cases = {"accuracy": ([1], [1]), "token_accuracy": ([["A"]], [["A"]]),
             "seqeval": ([["B-PER"]], [["B-PER"]]), "squad": (["x"], [["x"]]),
             "squad_f1": (["x"], [["x"]]), "squad_v2": ([""], [[]]),
             "squad_v2_f1": ([""], [[]]), "mlqa": (["x"], [["x"]]),
             "bucc_f1": ([("a", "b")], [("a", "b")]), "map_at_20": ([["x"]], [{"x"}])}
    assert set(cases) == set(METRICS)
    for name, (predictions, references) in cases.items():
        values = score(name, predictions, references, "en")
        assert set(get_metric(name).headline) <= set(values), name
        assert get_metric(name).headline_value(values) == 100.0, name


# --- seqeval ------------------------------------------------------------------------------------

def test_seqeval_entity_scores_follow_the_seqeval_example():
    gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    predicted = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    assert score("seqeval", predicted, gold) == {"f1": 50.0, "precision": 50.0, "recall": 50.0}


def test_bio_sequences_that_start_with_i_open_a_chunk():
    assert entities([["I-PER", "I-PER", "O"]]) == {("PER", 0, 1)}
    assert entities([["O", "I-LOC"]]) == {("LOC", 1, 1)}
    assert entities([["B-PER", "I-LOC"]]) == {("PER", 0, 0), ("LOC", 1, 1)}
    # sentences are joined with an O, so a chunk never runs across a sentence boundary
    assert entities([["B-ORG"], ["I-ORG"]]) == {("ORG", 0, 0), ("ORG", 2, 2)}
    for version in ("0.0.12", "1.x"):  # the versions agree on B-/I- tags
        assert entities([["I-PER", "B-PER", "I-LOC", "O", "I-ORG"]], version) == {
            ("PER", 0, 0), ("PER", 1, 1), ("LOC", 2, 2), ("ORG", 4, 4)}


def test_ud_pos_chunking_of_seqeval_0_0_12_and_where_1_x_differs():
    # 0.0.12: the first letter is read as the chunk prefix and the whole tag as the type, so a
    # run of the same tag is one "entity" and CCONJ, SCONJ are different types
    assert entities([["NOUN", "NOUN", "VERB"]]) == {("NOUN", 0, 1), ("VERB", 2, 2)}
    assert entities([["CCONJ", "SCONJ"]]) == {("CCONJ", 0, 0), ("SCONJ", 1, 1)}
    # 1.x: the type is the tag minus its first letter: CCONJ and SCONJ are both CONJ, and X is
    # "_", the type of O, so a chunk of X is never closed
    assert entities([["CCONJ", "SCONJ"]], "1.x") == {("CONJ", 1, 1)}
    assert entities([["X"]], "0.0.12") == {("X", 0, 0)}
    assert entities([["X"]], "1.x") == set()
    gold, predicted = [["CCONJ", "SCONJ"]], [["CCONJ", "ADP"]]
    assert score("seqeval", predicted, gold)["f1"] == 50.0
    assert seqeval(predicted, gold, version="1.x")["f1"] == 0.0
    # token accuracy, reported beside it for UD-POS, is plain per-word agreement
    assert score("token_accuracy", [["NOUN", "VERB"]], [["NOUN", "NOUN"]]) == {
        "token_accuracy": 50.0}
    assert score("seqeval", [["NOUN", "VERB"]], [["NOUN", "NOUN"]])["f1"] == 0.0


def test_seqeval_refuses_misaligned_sentences_and_untagged_words():
    with pytest.raises(MetricInputError, match="sentence 1 has 1 predicted tags for 2 words"):
        score("seqeval", [["O"]], [["O", "O"]])
    with pytest.raises(MetricInputError, match="words without a tag"):
        score("seqeval", [["O", None]], [["O", "O"]])
    assert score("token_accuracy", [["A", None]], [["A", "B"]]) == {"token_accuracy": 50.0}


# --- SQuAD and MLQA -----------------------------------------------------------------------------

def test_squad_v1_normalisation_and_token_f1():
    assert score("squad", ["The  Eiffel Tower!"], [["eiffel tower"]]) == {
        "exact_match": 100.0, "f1": 100.0}
    f1 = score("squad", ["in Paris France"], [["Paris", "Lyon"]])["f1"]
    assert f1 == pytest.approx(100 * 2 * (1 / 3) / (1 + 1 / 3))  # best over the gold answers


def test_empty_and_missing_predictions():
    assert score("squad", [""], [["Paris"]]) == {"exact_match": 0.0, "f1": 0.0}
    # v1.1: a gold answer that normalises to nothing is matched exactly but has F1 0
    assert score("squad", ["The"], [["the"]]) == {"exact_match": 100.0, "f1": 0.0}
    # an unanswered question (None) scores 0 and still counts
    assert score("squad", ["Paris", None], [["Paris"], ["Rome"]]) == {
        "exact_match": 50.0, "f1": 50.0}
    # SQuAD 2.0 (the intermediate task's dev set): no answer is right only for no answer
    assert score("squad_v2", ["", "Paris", ""], [[], [], ["Rome"]]) == {
        "exact_match": pytest.approx(100 / 3), "f1": pytest.approx(100 / 3)}
    # as the official v2.0 script, gold answers that normalise to nothing are dropped first
    assert score("squad_v2", [""], [["the", "Paris"]])["exact_match"] == 0.0
    assert score("squad_v2", [""], [["the"]])["exact_match"] == 100.0


def test_mlqa_removes_unicode_and_cjk_punctuation():
    assert normalize_mlqa("电化电池。", "zh") == "电 化 电 池"
    assert score("mlqa", ["「电化电池」"], [["电化电池"]], "zh")["exact_match"] == 100.0
    assert normalize_mlqa("«El gato» ¿negro?", "es") == "gato negro"
    assert score("squad", ["«El gato»"], [["gato"]])["exact_match"] == 0.0  # SQuAD keeps «»
    assert score("mlqa", ["«El gato»"], [["gato"]], "es")["exact_match"] == 100.0


def test_mlqa_articles_per_language():
    assert normalize_mlqa("der Hund und die Katze", "de") == "hund und katze"
    assert normalize_mlqa("những cái bàn", "vi") == "bàn"
    assert normalize_mlqa("الكتاب", "ar") == "كتاب"  # every "ال" goes, as in the official script
    assert normalize_mlqa("the book", "hi") == "the book"  # Hindi: no article removal
    with pytest.raises(MetricInputError, match="no normalisation for language 'fi'"):
        normalize_mlqa("kirja", "fi")
    with pytest.raises(MetricInputError, match="needs the language"):
        score("mlqa", ["a"], [["a"]])


def test_chinese_f1_is_over_characters():
    # 电化电池 vs 化学电池: 3 shared characters of 4 on each side
    assert score("mlqa", ["电化电池"], [["化学电池"]], "zh")["f1"] == 75.0
    assert score("squad", ["电化电池"], [["化学电池"]])["f1"] == 0.0  # one "word" each
    assert normalize_mlqa("iPhone 12手机", "zh") == "iphone 12 手 机"


# --- retrieval ----------------------------------------------------------------------------------

def test_bucc_scores_sets_of_pairs_so_duplicates_count_once():
    predicted = [("de-1", "en-1"), ("de-1", "en-1"), ("de-2", "en-9")]
    gold = [("de-1", "en-1"), ("de-3", "en-3")]
    assert score("bucc_f1", predicted, gold) == {"f1": 50.0, "precision": 50.0, "recall": 50.0}
    assert score("bucc_f1", [("a", "b")], gold) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}


def test_average_precision_at_k():
    assert average_precision_at_k({1, 3}, [1, 2, 3]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision_at_k({1, 3}, [1, 1, 3]) == pytest.approx((1 + 2 / 3) / 2)  # repeat
    assert average_precision_at_k({"x"}, [f"c{i}" for i in range(20)] + ["x"]) == 0.0  # rank 21
    assert average_precision_at_k(set(range(25)), list(range(20))) == 1.0  # divisor min(25, 20)
    assert score("map_at_20", [["a", "b"], None], [{"b"}, {"c"}]) == {"map_at_20": 25.0}
    with pytest.raises(MetricInputError, match="no relevant candidate"):
        average_precision_at_k(set(), ["a"])
