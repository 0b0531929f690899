import numpy as np

from stilts_core.evaluation.scoring import predict


def test_batched_length_sorted_prediction_keeps_input_order(tiny_model_path, fixtures_root):
    import torch
    from transformers import AutoModelForSequenceClassification

    from stilts_core.data.loading import load_split
    from stilts_core.formats import Encoding
    from stilts_core.formats.classification import encode as encode_classification
    from stilts_core.models.registry import load_tokenizer
    from stilts_core.tasks.registry import get_task

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
