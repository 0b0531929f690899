import numpy as np
import pytest

from stilts_core.evaluation import get_metric, predict


def test_accuracy_hand_worked():
    accuracy = get_metric("accuracy").compute
    assert accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 75.0
    assert accuracy(["a"], ["b"]) == 0.0


def test_accuracy_refuses_mismatched_or_empty_inputs():
    accuracy = get_metric("accuracy").compute
    with pytest.raises(ValueError, match="3 predictions for 2 references"):
        accuracy([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="no references"):
        accuracy([], [])
    with pytest.raises(KeyError, match="unknown metric"):
        get_metric("bleu")


def test_batched_length_sorted_prediction_keeps_input_order(tiny_model_path, fixtures_root):
    import torch
    from transformers import AutoModelForSequenceClassification

    from stilts_core.data import load_split
    from stilts_core.features import Encoding, encode_classification
    from stilts_core.modelling import load_tokenizer
    from stilts_core.tasks import get_task

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_path, num_labels=3)
    tokenizer = load_tokenizer(tiny_model_path)
    task = get_task("xnli")
    examples = load_split(task, "test", "es", fixtures_root).select(range(40))
    batched = predict(task, model, tokenizer, examples, Encoding(max_length=64), batch_size=7)
    features = encode_classification(examples, tokenizer, Encoding(max_length=64))
    single = [int(model(input_ids=torch.tensor([f["input_ids"]])).logits.argmax())
              for f in features]
    assert np.array_equal(batched, single)


def test_squad_metrics_follow_the_official_normalisation():
    em, f1 = get_metric("squad_em").compute, get_metric("squad_f1").compute
    assert em(["The  Eiffel Tower!"], [["eiffel tower"]]) == 100.0
    assert f1(["in Paris France"], [["Paris", "Lyon"]]) == pytest.approx(100 * 2 * (1 / 3) / (1 + 1 / 3))
    assert f1([""], [[]]) == 100.0 and f1(["Paris"], [[]]) == 0.0  # SQuAD 2.0 no-answer
    assert get_metric("token_accuracy").compute([["A", None]], [["A", "B"]]) == 50.0
