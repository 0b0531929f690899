"""Sentence representations from any layer, and the searches the retrieval tasks run on them.

Every setting (layer, pooling, whether special tokens are pooled, the margin, k, the search
chunk) is an explicit argument that the caller records with its results: the XTREME scripts
hide these in shell defaults, and the papers disagree with them.

* Tatoeba: the nearest neighbour by cosine, in both directions (:func:`bitext_retrieval`).
* BUCC 2018: ratio-margin scores over the k nearest neighbours of both sides (Artetxe &
  Schwenk 2019, "Margin-based parallel corpus mining with multilingual sentence embeddings"),
  candidates mined as LASER's ``mine_bitexts.py`` does in its ``max`` mode, and the decision
  threshold tuned on gold pairs (:func:`mine_candidates`, :func:`tune_threshold`).
* Mewsli-X, LAReQA: the 20 best candidates of a pool (:func:`rank_pool`).

Nearest-neighbour search is exact and chunked (:func:`knn`): a block of queries against a
block of candidates at a time, so memory is bounded by the two chunk sizes, never by
queries x candidates; on a GPU the same code runs there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from stilts_core.lookup import lookup

Pooling = Literal["mean", "first"]


class RepresentationChoice(BaseModel):
    """Which layer and pooling make a sentence vector. ``layer`` indexes ``hidden_states`` (0 =
    the embedding output; negative counts from the top). Vectors are always L2-normalised.

    ``prefix`` is text put before every sentence (e5's ``query: ``).

    The defaults are XTREME's Tatoeba choice for XLM-R Large (the mean over every token, ``<s>``
    and ``</s>`` included, of ``hidden_states[14]``); a model whose registry entry declares its
    own protocol (``ModelSpec.retrieval``) uses that instead."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layer: int = 14
    pooling: Pooling = "mean"
    include_special_tokens: bool = True
    prefix: str = ""

    def as_record(self) -> dict:
        """The settings a result row carries; no prefix is left out, as in rows made before
        prefixes existed."""
        record = self.model_dump()
        if not record["prefix"]:
            del record["prefix"]
        return record


class RepresentationSettings(RepresentationChoice):
    """A choice and the length sentences are cut to, which has no default: it is each task's
    (``TaskSpec.retrieval``)."""

    max_length: int = Field(ge=2)


class Preset(BaseModel):
    """A published choice of representation, with where it comes from."""

    model_config = ConfigDict(frozen=True)

    settings: RepresentationChoice
    source: str


# The choices the XTREME scripts make for XLM-R Large. Ours defaults to the Tatoeba one for every
# task; the BUCC ones are runnable by name (grid config ``retrieval: {preset: xtreme-bucc}``).
# Lengths are not part of a preset: they are each task's (``TaskSpec.retrieval``).
PRESETS: dict[str, Preset] = {
    "xtreme-tatoeba": Preset(
        settings=RepresentationChoice(layer=14, pooling="mean", include_special_tokens=True),
        source="google-research/xtreme scripts/run_tatoeba.sh: mean over every token, <s> and "
               "</s> included, of hidden_states[14] of XLM-R Large (LAYER=13 of the last 24)"),
    "xtreme-bucc": Preset(
        settings=RepresentationChoice(layer=7, pooling="first", include_special_tokens=False),
        source="google-research/xtreme scripts/run_bucc2018.sh as written: the first token "
               "(<s>, --pool_type cls) of layer 7"),
    "xtreme-bucc-xlmr-as-run": Preset(
        settings=RepresentationChoice(layer=20, pooling="first", include_special_tokens=False),
        source="what run_bucc2018.sh computes for XLM-R Large: --specific_layer 7 counts from "
               "the last --num_layers layers, which it leaves at 12, so hidden_states[-12:][7]"),
}


def get_preset(name: str) -> Preset:
    return lookup(PRESETS, name, "representation preset")


# --- encoding -----------------------------------------------------------------------------------

def embed_layers(sentences: Sequence[str], model, tokenizer, layers: Sequence[int],
                 pooling: Pooling, include_special_tokens: bool, max_length: int,
                 batch_size: int = 64,
                 progress: Callable[[str], None] | None = None,
                 prefix: str = "") -> np.ndarray:
    """L2-normalised sentence vectors of several layers from one forward pass per batch:
    an array ``[len(layers), len(sentences), hidden]`` in input order. ``prefix`` goes before
    every sentence; ``progress`` hears how far the encoding is (first and last batch, and one
    line every 30 s between).

    Sentences are tokenised once, sorted by token length (longest first, so an out-of-memory
    batch fails at once) and padded per batch; on a GPU the forward pass runs in bf16.
    """
    import torch

    device = str(next(model.parameters()).device)
    encoded = tokenizer([prefix + sentence for sentence in sentences], truncation=True,
                        max_length=max_length, return_special_tokens_mask=True)
    lengths = np.array([len(ids) for ids in encoded["input_ids"]])
    order = np.argsort(-lengths, kind="stable")
    hidden_size = model.config.hidden_size
    vectors = np.empty((len(layers), len(sentences), hidden_size), dtype=np.float32)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))
    batches = math.ceil(len(order) / batch_size)
    started, reported = time.time(), 0
    model.eval()
    with torch.inference_mode():
        for number, start in enumerate(range(0, len(order), batch_size), start=1):
            index = order[start:start + batch_size]
            batch = tokenizer.pad({key: [encoded[key][i] for i in index]
                                   for key in ("input_ids", "attention_mask",
                                               "special_tokens_mask")},
                                  return_tensors="pt")
            special = batch.pop("special_tokens_mask").to(device)
            batch = {key: value.to(device) for key, value in batch.items()}
            with autocast:
                states = model(**batch, output_hidden_states=True).hidden_states
            for slot, layer in enumerate(layers):
                pooled = pool(states[layer].float(), batch["attention_mask"], special, pooling,
                              include_special_tokens)
                vectors[slot, index] = pooled.cpu().numpy()
            if progress and (number == batches or time.time() - reported > 30):
                reported, done = time.time(), start + len(index)
                pace = done / (reported - started)
                progress(f"encoded {done}/{len(order)} sentences ({pace:.0f}/s), "
                         f"{timedelta(seconds=round(reported - started))} elapsed, "
                         f"ETA {timedelta(seconds=round((len(order) - done) / pace))}")
    return normalise(vectors)


def encode(sentences: Sequence[str], model, tokenizer, settings: RepresentationSettings,
           batch_size: int = 64, progress: Callable[[str], None] | None = None) -> np.ndarray:
    """L2-normalised sentence vectors of ``settings.layer``, one row per sentence, in order."""
    return embed_layers(sentences, model, tokenizer, [settings.layer], settings.pooling,
                        settings.include_special_tokens, settings.max_length, batch_size, progress,
                        settings.prefix)[0]


def pool(hidden, attention_mask, special_tokens_mask, pooling: Pooling,
         include_special_tokens: bool):
    """First token, or the mean over real tokens (optionally without ``<s>``/``</s>``)."""
    if pooling == "first":
        return hidden[:, 0]
    mask = attention_mask.bool()
    if not include_special_tokens:
        mask = mask & ~special_tokens_mask.bool()
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


# --- exact, chunked nearest-neighbour search ----------------------------------------------------

def _top(similarities, k: int):
    """The ``k`` best of each row with equal scores going to the lower column (``topk`` alone
    breaks ties in no defined order): everything above the k-th score, then the leftmost of the
    columns that equal it, found in linear time rather than by sorting the row."""
    import torch

    if k == 1:
        return similarities.max(dim=1, keepdim=True)  # the first maximum on ties
    kth = similarities.topk(k, dim=1).values[:, -1:]
    above = similarities > kth
    ties = similarities == kth
    wanted = k - above.sum(dim=1, keepdim=True)
    chosen = above | (ties & (torch.cumsum(ties, dim=1) <= wanted))
    positions = chosen.nonzero()[:, 1].reshape(len(similarities), k)  # ascending columns
    return similarities.gather(1, positions), positions


def knn(queries: np.ndarray, candidates: np.ndarray, k: int, query_chunk: int = 2048,
        candidate_chunk: int = 65536, device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar candidates of every query by dot product (cosine for normalised
    vectors): ``(scores, indices)``, each ``[queries, k]``, best first.

    Exact search in blocks of ``query_chunk x candidate_chunk`` similarities, so memory stays
    bounded whatever the pool size; ``device`` defaults to the GPU when there is one. For
    ``k == 1`` equal scores go to the lowest candidate index, as ``argmax`` does in the XTREME
    scripts; for larger ``k`` results are ordered by score, then index.
    """
    import torch

    k = min(k, len(candidates))
    if k < 1:
        raise ValueError("knn needs at least one candidate and k >= 1")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pool_t = torch.from_numpy(np.ascontiguousarray(candidates, dtype=np.float32)).to(device)
    all_scores = np.empty((len(queries), k), dtype=np.float32)
    all_indices = np.empty((len(queries), k), dtype=np.int64)
    for q_start in range(0, len(queries), query_chunk):
        block = torch.from_numpy(np.ascontiguousarray(
            queries[q_start:q_start + query_chunk], dtype=np.float32)).to(device)
        best_scores = best_indices = None
        for c_start in range(0, len(pool_t), candidate_chunk):
            similarities = block @ pool_t[c_start:c_start + candidate_chunk].T
            values, positions = _top(similarities, min(k, similarities.shape[1]))
            positions = positions + c_start
            if best_scores is None:
                best_scores, best_indices = values, positions
            else:  # earlier chunks first: a stable merge keeps the lower index on ties
                merged_scores = torch.cat([best_scores, values], dim=1)
                merged_indices = torch.cat([best_indices, positions], dim=1)
                rank = torch.sort(-merged_scores, dim=1, stable=True).indices[:, :k]
                best_scores = merged_scores.gather(1, rank)
                best_indices = merged_indices.gather(1, rank)
        scores, indices = best_scores.cpu().numpy(), best_indices.cpu().numpy()
        order = np.lexsort((indices, -scores), axis=1)  # within the top k: score, then index
        all_scores[q_start:q_start + len(block)] = np.take_along_axis(scores, order, axis=1)
        all_indices[q_start:q_start + len(block)] = np.take_along_axis(indices, order, axis=1)
    return all_scores, all_indices


def nearest_neighbours(queries: np.ndarray, candidates: np.ndarray, **search) -> np.ndarray:
    """Index of the most similar candidate of each query; ties go to the lowest index."""
    return knn(queries, candidates, 1, **search)[1][:, 0]


def bitext_retrieval(source: np.ndarray, target: np.ndarray, **search) -> dict[str, np.ndarray]:
    """Tatoeba: the index of the nearest sentence on the other side, in both directions.
    ``xx->en``: non-English queries, English candidates (the direction LASER reports);
    ``en->xx``: the reverse, which XTREME's ``evaluate_retrieval.py`` computes. Sentence i of
    one side is the translation of sentence i of the other."""
    return {"xx->en": nearest_neighbours(source, target, **search),
            "en->xx": nearest_neighbours(target, source, **search)}


def rank_pool(queries: np.ndarray, candidates: np.ndarray, k: int = 20, **search) -> np.ndarray:
    """The ``k`` best candidates of each query, best first (Mewsli-X, LAReQA)."""
    return knn(queries, candidates, k, **search)[1]


# --- margin-based mining (BUCC) -----------------------------------------------------------------

MARGINS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "ratio": lambda similarity, neighbourhood: similarity / neighbourhood,
    "distance": lambda similarity, neighbourhood: similarity - neighbourhood,
    "absolute": lambda similarity, neighbourhood: similarity,
}
MINING_MODES = ("max", "forward", "backward", "intersection")


def margin_scores(source: np.ndarray, target: np.ndarray, k: int = 4, margin: str = "ratio",
                  **search) -> dict[str, np.ndarray]:
    """Margin scores of each sentence's ``k`` nearest neighbours on the other side.

    ``score(x, y) = margin(cos(x, y), (mean_k(x) + mean_k(y)) / 2)`` where ``mean_k(x)`` is the
    mean cosine of ``x`` with its k nearest neighbours on the other side (Artetxe & Schwenk
    2019, eq. 2 with the ratio margin). Returns the neighbour indices and margin scores of both
    directions (``forward``: source queries, ``backward``: target queries).
    """
    if margin not in MARGINS:
        raise ValueError(f"unknown margin {margin!r}; one of {', '.join(MARGINS)}")
    forward_sim, forward_ind = knn(source, target, k, **search)
    backward_sim, backward_ind = knn(target, source, k, **search)
    source_mean, target_mean = forward_sim.mean(axis=1), backward_sim.mean(axis=1)
    score = MARGINS[margin]
    return {
        "forward_indices": forward_ind,
        "forward_scores": score(forward_sim, (source_mean[:, None] + target_mean[forward_ind]) / 2),
        "backward_indices": backward_ind,
        "backward_scores": score(backward_sim,
                                 (target_mean[:, None] + source_mean[backward_ind]) / 2),
    }


def mine_candidates(scored: dict[str, np.ndarray], mode: str = "max") -> list[tuple[int, int, float]]:
    """Candidate pairs ``(source index, target index, score)``, best first, from
    :func:`margin_scores`: each sentence's best-scoring neighbour, combined as LASER's
    ``mine_bitexts.py`` does. ``max``: both directions' best pairs, taken greedily by score so
    that no sentence is used twice (the XTREME default); ``forward`` / ``backward``: one
    direction; ``intersection``: pairs that are each other's best."""
    if mode not in MINING_MODES:
        raise ValueError(f"unknown mining mode {mode!r}; one of {', '.join(MINING_MODES)}")
    rows_f = np.arange(len(scored["forward_indices"]))
    rows_b = np.arange(len(scored["backward_indices"]))
    best_f = scored["forward_scores"].argmax(axis=1)
    best_b = scored["backward_scores"].argmax(axis=1)
    forward = [(int(i), int(scored["forward_indices"][i, best_f[i]]),
                float(scored["forward_scores"][i, best_f[i]])) for i in rows_f]
    backward = [(int(scored["backward_indices"][j, best_b[j]]), int(j),
                 float(scored["backward_scores"][j, best_b[j]])) for j in rows_b]
    if mode == "forward":
        pairs = forward
    elif mode == "backward":
        pairs = backward
    elif mode == "intersection":
        back = {j: i for i, j, _ in backward}
        pairs = [(i, j, s) for i, j, s in forward if back.get(j) == i]
    else:
        pairs, used_source, used_target = [], set(), set()
        combined = forward + backward
        for position in np.argsort([-s for _, _, s in combined], kind="stable"):
            i, j, s = combined[position]
            if i not in used_source and j not in used_target:
                used_source.add(i)
                used_target.add(j)
                pairs.append((i, j, s))
    return sorted(pairs, key=lambda pair: -pair[2])


def tune_threshold(candidates: Sequence[tuple[object, object, float]],
                   gold: set[tuple[object, object]]) -> tuple[float, dict]:
    """The score threshold that maximises F1 of the candidates at or above it against ``gold``:
    candidates are swept best first and the threshold is the midpoint between the best cut's
    last score and the next one (XTREME's ``bucc_optimize``). Returns the threshold and the
    precision, recall and F1 at it (the dev scores; on test gold they are an *oracle*)."""
    if not gold:
        raise ValueError("tune_threshold needs gold pairs")
    ranked = sorted(candidates, key=lambda pair: -pair[2])
    correct, best_f1, best = 0, 0.0, {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    threshold = math.inf
    for position, (source, target, score) in enumerate(ranked, start=1):
        correct += (source, target) in gold
        if correct == 0:
            continue
        precision, recall = correct / position, correct / len(gold)
        f1 = 2 * precision * recall / (precision + recall)
        if f1 > best_f1:
            best_f1 = f1
            following = ranked[position][2] if position < len(ranked) else score
            threshold = (score + following) / 2
            best = {"f1": 100 * f1, "precision": 100 * precision, "recall": 100 * recall}
    return threshold, best


def apply_threshold(candidates: Sequence[tuple[object, object, float]],
                    threshold: float) -> list[tuple[object, object]]:
    """The pairs whose score is at least ``threshold`` (a tuned, not a test-gold, value)."""
    return [(source, target) for source, target, score in candidates if score >= threshold]
