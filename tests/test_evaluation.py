import numpy as np
import pytest

from stilts_core.evaluation import get_metric, predict_classes


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

    from stilts_core.data import load_split, tokenize_pairs
    from stilts_core.modelling import load_tokenizer
    from stilts_core.tasks import get_task

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_path, num_labels=3)
    tokenizer = load_tokenizer(tiny_model_path)
    task = get_task("xnli")
    features = tokenize_pairs(load_split(task, "test", "es", fixtures_root).select(range(40)),
                              tokenizer, task, 64)
    batched = predict_classes(model, tokenizer, features, batch_size=7)
    single = [int(model(input_ids=torch.tensor([f["input_ids"]])).logits.argmax())
              for f in features]
    assert np.array_equal(batched, single)
