"""Small files in the original release formats of BUCC 2018, Mewsli-X and XQuAD-R (LAReQA),
written by the tests: the readers and the retrieval phase run on them exactly as on the
releases. Their sentences come from the bundled fixture templates."""

from __future__ import annotations

import json
from pathlib import Path

from stilts_core.data.fixtures import NAMES, tatoeba_pairs
from stilts_core.tasks.registry import get_task


def write_bucc(root: Path, language: str = "de", pairs: int = 12, extra: int = 4) -> None:
    """``<lang>-en.{sample,training}.{<lang>,en,gold}``: ``pairs`` translations hidden among
    ``extra`` unpaired sentences on each side, ids in the BUCC style."""
    folder = root / "bucc2018"
    folder.mkdir(parents=True, exist_ok=True)
    for split, seed in (("sample", 1), ("training", 2)):
        rows = tatoeba_pairs(language, pairs + 2 * extra, seed=seed)
        source = [(f"{language}-{i:09d}", r["source_sentence"]) for i, r in enumerate(rows)
                  if i < pairs + extra]
        target = [(f"en-{i:09d}", r["target_sentence"]) for i, r in enumerate(rows)
                  if i < pairs or i >= pairs + extra]
        gold = [(f"{language}-{i:09d}", f"en-{i:09d}") for i in range(pairs)]
        for suffix, lines in ((language, source), ("en", target), ("gold", gold)):
            (folder / f"{language}-en.{split}.{suffix}").write_text(
                "".join(f"{a}\t{b}\n" for a, b in lines), encoding="utf-8")


def write_mewslix(root: Path, languages=("de", "en", "es")) -> None:
    """An entity pool (one entity per name, an English description) and news mentions of the
    names in several languages, plus English Wikipedia training pairs."""
    folder = root / "mewslix"
    folder.mkdir(parents=True, exist_ok=True)
    entities = []
    for i, name in enumerate(NAMES):
        first, second = f"{name} is a person.", f"{name} likes books."
        entities.append({"entity_id": f"Q{i + 1}", "title": name,
                         "description": f"{first} {second}",
                         "sentence_spans": [{"start": 0, "end": len(first)},
                                            {"start": len(first) + 1,
                                             "end": len(first) + 1 + len(second)}],
                         "description_language": "en", "description_url": ""})
    _write_jsonl(folder / "candidate_set_entities.jsonl", entities)
    documents = []
    for language in languages:
        for offset, row in enumerate(tatoeba_pairs(language, 6, seed=7)):
            text = "Intro {sentence} Outro."
            sentence = row["source_sentence"]
            name = next(n for n in NAMES if sentence.startswith(n))
            full = text.format(sentence=sentence)
            start = full.index(name)
            documents.append({
                "context": {"document_title": "", "document_url": "", "document_id": str(offset),
                            "language": language, "text": full,
                            "sentence_spans": [{"start": 0, "end": 5},
                                               {"start": 6, "end": 6 + len(sentence)},
                                               {"start": 7 + len(sentence), "end": len(full)}]},
                "mentions": [{"example_id": f"{language}-{offset}",
                              "mention_span": {"start": start, "end": start + len(name),
                                               "text": name},
                              "entity_id": f"Q{NAMES.index(name) + 1}"}],
            })
    for split in ("dev", "test"):
        _write_jsonl(folder / f"wikinews_mentions-{split}.jsonl", documents)
    pairs = []
    for document in documents:
        if document["context"]["language"] == "en":
            mention = document["mentions"][0]
            entity = entities[int(mention["entity_id"][1:]) - 1]
            pairs.append({"contextual_mention": {"context": document["context"],
                                                 "mention": mention}, "entity": entity})
    _write_jsonl(folder / "wikipedia_pairs-train.jsonl", pairs * 4)


def write_xquad_r(root: Path, paragraphs: int = 3) -> None:
    """One XQuAD-R file per LAReQA language: paragraphs of two sentences, one question each
    whose answer is in the second sentence. Languages without fixture templates reuse the
    English sentences (the tests need the format, not the language)."""
    folder = root / "lareqa"
    folder.mkdir(parents=True, exist_ok=True)
    for language in get_task("lareqa").languages:
        template = language if language in ("de", "fr", "es") else "en"
        rows = tatoeba_pairs(template, 2 * paragraphs, seed=5)
        data = []
        for p in range(paragraphs):
            first = rows[2 * p]["source_sentence" if template != "en" else "target_sentence"]
            second = rows[2 * p + 1]["source_sentence" if template != "en" else "target_sentence"]
            context = f"{first} {second}"
            answer = second.split()[0]
            data.append({"title": str(p), "paragraphs": [{
                "context": context,
                "sentence_breaks": [[0, len(first)], [len(first) + 1, len(context)]],
                "sentences": [first, second],
                "qas": [{"id": f"q{p}", "question": f"Who is {answer}?",
                         "answers": [{"text": answer, "answer_start": len(first) + 1}]}],
            }]})
        (folder / f"{language}.json").write_text(json.dumps({"data": data}), encoding="utf-8")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
