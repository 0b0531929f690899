"""Batched inference for every task format: model outputs into task predictions, and the gold
side in the same terms, for the metrics of :mod:`stilts_core.tasks.metrics`."""

from __future__ import annotations

import numpy as np

from stilts_core.formats import Encoding, model_head
from stilts_core.tasks.metrics import get_metric


def run_model(model, collator, features, batch_size: int = 64,
              outputs: tuple[str, ...] = ("logits",), token_level: bool = False) -> dict:
    """Outputs per feature in the original order; length-sorted batches with dynamic padding,
    bf16 autocast on GPU. Token-level outputs are cut back to each feature's own length."""
    import torch

    device = next(model.parameters()).device
    order = np.argsort(features["length"], kind="stable")
    model_inputs = [c for c in ("input_ids", "attention_mask", "token_type_ids", "labels")
                    if c in features.column_names]  # some collators need the labels to be there
    rows = features.select_columns(model_inputs)
    lengths = features["length"]
    results = {name: [None] * len(order) for name in outputs}
    model.eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    with torch.inference_mode(), autocast:
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = collator([rows[int(i)] for i in index])
            batch.pop("labels", None)
            output = model(**{k: v.to(device) for k, v in batch.items()})
            for name in outputs:
                values = output[name].float().cpu().numpy()
                for row, i in zip(values, index, strict=True):
                    results[name][i] = row[:lengths[i]] if token_level else row
    return results


def predict(task, model, tokenizer, examples, encoding: Encoding, batch_size: int = 64,
            features=None) -> list:
    """Task-level predictions for canonical ``examples``: label ids (classification, multiple
    choice), word tags (token classification) or answer texts (extractive QA). ``features``:
    the examples already encoded with the format's evaluation encoder."""
    handler = model_head(task.format)
    if features is None:
        features = handler.encode_eval(examples, tokenizer, encoding)
    outputs = run_model(model, handler.collator(tokenizer), features, batch_size, handler.outputs,
                        handler.token_level)
    return handler.decode(task, examples, features, outputs, encoding)


def references(task, examples) -> list:
    """The gold side of :func:`predict`, in the same terms."""
    return model_head(task.format).gold(examples)


def score_language(task, predictions: list, gold: list, language: str) -> dict[str, float]:
    """Every score of the task in one language: its metric's (e.g. seqeval F1, precision,
    recall) and those of its extra metrics (UD-POS: token accuracy)."""
    scores = {}
    for name in (task.metric, *task.extra_metrics):
        scores.update(get_metric(name).compute(predictions, gold, language))
    return scores



# --- retrieval tasks: the encoder as it is (or a dual encoder), no classification head ---------
# ``embed(texts, max_length)`` returns L2-normalised vectors of the run's representation.

def retrieval_records(predicted: list[int], gold: list[int]) -> list[dict]:
    """A retrieval run's predictions: each query's retrieved index beside the gold one."""
    return [{"prediction": int(p), "label": int(g)} for p, g in zip(predicted, gold, strict=True)]


def bitext_scores(task, pairs, embed, query_length: int, candidate_length: int,
                  language: str) -> tuple[dict[str, float], list[dict]]:
    """Tatoeba: accuracy of the nearest English sentence of each non-English sentence
    (``accuracy``, the direction the issue and LASER report) and of the reverse search
    (``accuracy_en_to_xx``, the direction XTREME's ``evaluate_retrieval.py`` computes: English
    queries against an index of the other language)."""
    return bitext_vector_scores(task, embed(pairs["text"], query_length),
                                embed(pairs["text_pair"], candidate_length), language)


def bitext_vector_scores(task, source, english, language: str) -> tuple[dict[str, float], list[dict]]:
    """:func:`bitext_scores` of sentence vectors already made (row i of ``source`` translates
    row i of ``english``): the alignment phase's, which encode every layer in one pass."""
    from stilts_core.evaluation.retrieval import bitext_retrieval

    found = bitext_retrieval(source, english)
    gold = list(range(len(source)))
    scores = {name: score_language(task, found[direction].tolist(), gold, language)["accuracy"]
              for direction, name in (("xx->en", "accuracy"), ("en->xx", "accuracy_en_to_xx"))}
    return scores, retrieval_records(found["xx->en"].tolist(), gold)


def mine_corpus(corpus, embed, max_length: int, k: int, margin: str,
                mode: str) -> list[tuple[str, str, float]]:
    """Candidate id pairs with margin scores, best first, for one BUCC corpus.

    As XTREME's BUCC pipeline: each side is deduplicated by text before embedding and mining;
    a text that occurs under several ids cannot be mapped back to one id, so candidates that
    contain it are dropped (it still competes as a neighbour).
    """
    from stilts_core.evaluation.retrieval import margin_scores, mine_candidates

    sides = []
    for ids, texts in ((corpus.source_ids, corpus.source_texts),
                       (corpus.target_ids, corpus.target_texts)):
        by_text: dict[str, list[str]] = {}
        for identifier, text in zip(ids, texts, strict=True):
            by_text.setdefault(text, []).append(identifier)
        sides.append(by_text)
    source_texts, target_texts = list(sides[0]), list(sides[1])
    scored = margin_scores(embed(source_texts, max_length), embed(target_texts, max_length),
                           k=k, margin=margin)
    candidates = []
    for i, j, score in mine_candidates(scored, mode):
        source_ids, target_ids = sides[0][source_texts[i]], sides[1][target_texts[j]]
        if len(source_ids) == 1 and len(target_ids) == 1:
            candidates.append((source_ids[0], target_ids[0], score))
    return candidates


def mining_scores(task, dev, test, embed, max_length: int, k: int, margin: str, mode: str,
                  language: str) -> dict:
    """BUCC: the threshold is tuned on the dev (sample) gold and applied to test. Returns the
    test scores, the dev scores at the tuned threshold, the threshold, the *oracle* F1 (the
    threshold tuned on the test gold itself; an upper bound, never the result) and the pairs."""
    from stilts_core.evaluation.retrieval import apply_threshold, tune_threshold

    dev_candidates = mine_corpus(dev, embed, max_length, k, margin, mode)
    test_candidates = mine_corpus(test, embed, max_length, k, margin, mode)
    threshold, dev_scores = tune_threshold(dev_candidates, dev.gold)
    predicted = apply_threshold(test_candidates, threshold)
    _, oracle = tune_threshold(test_candidates, test.gold)
    return {"test": score_language(task, predicted, sorted(test.gold), language),
            "validation": dev_scores, "threshold": threshold, "oracle_f1": oracle["f1"],
            "predicted": predicted, "candidates": len(test_candidates)}


def ranking_scores(task, ranking_set, embed, query_length: int, candidate_length: int,
                   languages: list[str], cutoff: int = 20) -> dict[str, dict]:
    """Mewsli-X, LAReQA: one shared candidate pool, embedded once; per query language the
    ``cutoff`` best candidates of each query and mAP@20 against its relevant set."""
    from stilts_core.evaluation.retrieval import rank_pool

    pool_vectors = embed(ranking_set.candidate_texts, candidate_length)
    results = {}
    for language in languages:
        index = ranking_set.for_language(language)
        if not index:
            raise ValueError(f"{ranking_set.origin}: no {language} queries")
        queries = embed([ranking_set.query_texts[i] for i in index], query_length)
        ranked = rank_pool(queries, pool_vectors, cutoff)
        rankings = [[ranking_set.candidate_ids[j] for j in row] for row in ranked]
        relevant = [ranking_set.relevant[i] for i in index]
        results[language] = {
            "scores": score_language(task, rankings, relevant, language),
            "records": [{"id": ranking_set.query_ids[i], "prediction": ranking,
                         "label": sorted(gold)}
                        for i, ranking, gold in zip(index, rankings, relevant, strict=True)],
        }
    return results
