import numpy as np
import torch

from stilts_core.retrieval import (
    RepresentationSettings,
    _pool,
    bitext_retrieval,
    encode,
    nearest_neighbours,
    rank_candidates,
)


def test_mean_pooling_skips_padding_and_special_tokens():
    hidden = torch.tensor([[[1.0], [2.0], [4.0], [8.0]]])
    attention = torch.tensor([[1, 1, 1, 0]])
    special = torch.tensor([[1, 0, 0, 0]])
    mean = RepresentationSettings(pooling="mean")
    assert _pool(hidden, attention, special, mean).item() == 3.0
    with_special = RepresentationSettings(pooling="mean", include_special_tokens=True)
    assert np.isclose(_pool(hidden, attention, special, with_special).item(), 7 / 3)
    assert _pool(hidden, attention, special, RepresentationSettings(pooling="first")).item() == 1.0


def test_retrieval_on_constructed_vectors():
    english = np.eye(4)
    source = np.eye(4)[[0, 1, 3, 2]]  # sentences 2 and 3 retrieve each other's translation
    found = bitext_retrieval(source, english)
    assert found["xx->en"].tolist() == [0, 1, 3, 2] and found["en->xx"].tolist() == [0, 1, 3, 2]
    assert nearest_neighbours(np.array([[1.0, 1.0]]), np.eye(2)).tolist() == [0]  # tie: lowest


def test_rankings_break_ties_by_candidate_order():
    scores = np.array([[0.5, 0.9, 0.5, 0.9, 0.1]])
    assert rank_candidates(scores, 4).tolist() == [[1, 3, 0, 2]]
    assert rank_candidates(-scores, 2).tolist() == [[4, 0]]


def test_encode_returns_unit_vectors_in_input_order(tiny_model_path):
    from transformers import AutoModel

    from stilts_core.modelling import load_tokenizer

    model = AutoModel.from_pretrained(tiny_model_path)
    tokenizer = load_tokenizer(tiny_model_path)
    sentences = ["Anna hat 5 Bücher.", "Paul a 12 chats à la maison.", "Nina."]
    settings = RepresentationSettings(layer=1)
    together = encode(sentences, model, tokenizer, settings, batch_size=2)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    alone = np.vstack([encode([s], model, tokenizer, settings) for s in sentences])
    assert np.allclose(together, alone, atol=1e-5)
