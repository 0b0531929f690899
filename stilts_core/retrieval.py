"""Sentence representations from any layer, and bitext retrieval (Tatoeba).

Every setting (layer, pooling, whether special tokens are pooled) is an explicit argument that
the caller records with its results: the XTREME scripts hide these, and they disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

Pooling = Literal["mean", "first"]


@dataclass(frozen=True)
class RepresentationSettings:
    """How a sentence vector is made. ``layer`` indexes ``hidden_states`` (0 = embeddings;
    negative counts from the top)."""

    layer: int = -1
    pooling: Pooling = "mean"
    include_special_tokens: bool = False
    max_length: int = 128

    def as_record(self) -> dict:
        return asdict(self)


def encode(sentences: list[str], model, tokenizer, settings: RepresentationSettings,
           batch_size: int = 64) -> np.ndarray:
    """L2-normalised sentence vectors, one row per sentence, in input order."""
    import torch

    device = next(model.parameters()).device
    order = np.argsort([len(s) for s in sentences], kind="stable")
    vectors = np.empty((len(sentences), model.config.hidden_size), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = tokenizer([sentences[i] for i in index], padding=True, truncation=True,
                              max_length=settings.max_length, return_tensors="pt",
                              return_special_tokens_mask=True)
            special = batch.pop("special_tokens_mask").to(device)
            batch = {k: v.to(device) for k, v in batch.items()}
            hidden = model(**batch, output_hidden_states=True).hidden_states[settings.layer]
            vectors[index] = _pool(hidden.float(), batch["attention_mask"], special,
                                   settings).cpu().numpy()
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


def _pool(hidden, attention_mask, special_tokens_mask, settings: RepresentationSettings):
    if settings.pooling == "first":
        return hidden[:, 0]
    mask = attention_mask.bool()
    if not settings.include_special_tokens:
        mask = mask & ~special_tokens_mask.bool()
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def nearest_neighbours(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Index of the most cosine-similar candidate for each (normalised) query; ties go to the
    lowest index, as ``argmax`` does in the XTREME scripts."""
    return np.argmax(queries @ candidates.T, axis=1)


def rank_candidates(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best candidates of each query (rows of ``scores``), best first. Equal scores
    keep the candidates' order, lowest index first, like :func:`nearest_neighbours`; the XTREME-R
    scripts' ``argsort()[::-1]`` leaves the order of ties to the sort algorithm."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def bitext_retrieval(source: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Tatoeba: the index of the nearest sentence on the other side, in both directions.
    ``xx->en`` is the direction XTREME reports (non-English queries, English candidates);
    sentence i of one side is the translation of sentence i of the other."""
    return {"xx->en": nearest_neighbours(source, target),
            "en->xx": nearest_neighbours(target, source)}
