"""Token classification (PAN-X, UD-POS, CCG): one tag per word, predicted on each word's first
subword."""

from __future__ import annotations

import datasets
import numpy as np

from stilts_core.formats.base import ExampleError, Format, ModelHead, Origin, label_error
from stilts_core.formats.encoding import IGNORE_INDEX, Encoding, padding, tokenized_map


def problem(task) -> str | None:
    if not task.fields.tokens or not task.fields.tags:
        return "token_classification needs tokens and tags fields"
    return None


def converter(task, origin: Origin):
    """Rows to ``tokens`` and ``tags`` (tag names; the hub's ``ClassLabel`` ids are named), one
    tag per word and every tag in the declared tag set where the task declares one."""
    allowed = set(task.labels)
    hub_names = origin.label_names

    def convert(row: dict, index: int) -> dict:
        tokens, tags = list(row[task.fields.tokens]), list(row[task.fields.tags])
        if hub_names is not None:
            tags = [hub_names[t] if isinstance(t, int) else t for t in tags]
        if len(tokens) != len(tags):
            raise ExampleError(f"{origin}, example {index + 1}: {len(tokens)} tokens but "
                               f"{len(tags)} tags; each word needs exactly one tag")
        unknown = sorted({t for t in tags if not isinstance(t, str) or (allowed and t not in allowed)},
                         key=str)
        if unknown:
            raise label_error(origin, index, task.fields.tags, unknown,
                              f"tags among {sorted(allowed)}" if allowed else "tag strings")
        return {"tokens": [str(t) for t in tokens], "tags": tags}

    return convert


def encode(dataset, tokenizer, encoding: Encoding) -> datasets.Dataset:
    """Word-level tags on the first subword of each word; the other subwords and the special
    tokens get :data:`IGNORE_INDEX`. A sentence too long for ``max_length`` is split at word
    boundaries into consecutive windows, as XTREME's preprocessing splits long sentences, so
    every word is tagged exactly once. Words the tokenizer turns into nothing are replaced by the
    unknown token, as XTREME's ``run_tag.py`` does. ``example`` (the sentence) and ``word_ids``
    (its word index at first subwords, -1 elsewhere) map predictions back to words."""
    tag_ids = {tag: i for i, tag in enumerate(encoding.labels)}
    columns = ("input_ids", "attention_mask", "labels", "word_ids", "example", "length")

    def encode_batch(batch, indices):
        out = {column: [] for column in columns}
        for index, tokens, tags in zip(indices, batch["tokens"], batch["tags"], strict=True):
            words = _nonempty_words(tokenizer, tokens)
            for offset, encoded in _word_windows(tokenizer, words, 0, encoding.max_length):
                labels, word_ids, previous = [], [], None
                for word in encoded.word_ids():
                    first = word is not None and word != previous
                    position = offset + word if first else -1
                    labels.append(tag_ids.get(tags[position], IGNORE_INDEX) if first
                                  else IGNORE_INDEX)
                    word_ids.append(position)
                    previous = word
                out["input_ids"].append(encoded["input_ids"])
                out["attention_mask"].append(encoded["attention_mask"])
                out["labels"].append(labels)
                out["word_ids"].append(word_ids)
                out["example"].append(index)
                out["length"].append(len(encoded["input_ids"]))
        return out

    return tokenized_map(dataset, encode_batch, "tokenize token classification", tokenizer,
                         encoding, with_indices=True)


def _word_windows(tokenizer, words: list[str], offset: int, max_length: int):
    """Encodings of consecutive runs of ``words`` that each fit ``max_length``, with the index
    of their first word; a run that does not fit is halved, and a single word too long for the
    window keeps its first subwords. An empty sentence has no window."""
    if not words:
        return []
    encoded = tokenizer(words, is_split_into_words=True, truncation=len(words) == 1,
                        max_length=max_length)
    if len(encoded["input_ids"]) <= max_length:
        return [(offset, encoded)]
    half = len(words) // 2
    return (_word_windows(tokenizer, words[:half], offset, max_length)
            + _word_windows(tokenizer, words[half:], offset + half, max_length))


def _nonempty_words(tokenizer, words: list[str]) -> list[str]:
    pieces = tokenizer(words, add_special_tokens=False)["input_ids"] if words else []
    return [word if ids else tokenizer.unk_token for word, ids in zip(words, pieces, strict=True)]


def decode_word_tags(features: datasets.Dataset, logits: list[np.ndarray], labels: tuple[str, ...],
                     n_words: list[int]) -> list[list[str | None]]:
    """Per sentence, the tag of every word from its first subword (``None`` only for a word the
    model never saw, which scoring counts as wrong)."""
    predictions = [[None] * n for n in n_words]
    for example, word_ids, scores in zip(features["example"], features["word_ids"], logits,
                                         strict=True):
        for position, word in enumerate(word_ids):
            if word >= 0:
                predictions[example][word] = labels[int(np.argmax(scores[position]))]
    return predictions


def decode(task, examples, features, outputs, encoding) -> list[list[str | None]]:
    return decode_word_tags(features, outputs["logits"], encoding.labels,
                            [len(tokens) for tokens in examples["tokens"]])


def collator(tokenizer, max_length: int | None = None):
    from transformers import DataCollatorForTokenClassification

    return DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORE_INDEX,
                                              **padding(max_length))


def gold(examples) -> list:
    return examples["tags"]


FORMAT = Format(
    name="token_classification",
    description="one tag per word",
    problem=problem,
    group="structured_prediction",
    converter=converter,
    head=ModelHead("AutoModelForTokenClassification", encode, encode, collator, decode, gold,
                   token_level=True, sized_by_labels=True),
    labels_from_data=True,
)
