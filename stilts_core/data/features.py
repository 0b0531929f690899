"""Model inputs for every task format, and model outputs back into task predictions.

One :class:`FormatHandler` per format, looked up by ``TaskSpec.format``: which ``AutoModelFor…``
head it trains, how canonical examples (:mod:`stilts_core.data.canonical`) become features for training
and for evaluation, how features are batched, and how outputs are decoded. Padding is always
dynamic (the collators pad each batch to its longest row).
"""

from __future__ import annotations

import collections
import hashlib
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import datasets
import numpy as np
from datasets.fingerprint import Hasher

from stilts_core.lookup import lookup

IGNORE_INDEX = -100  # positions the loss and the scoring skip (non-first subwords, specials)


@dataclass(frozen=True)
class Encoding:
    """Sequence settings; ``doc_stride`` only matters for extractive QA."""

    max_length: int
    doc_stride: int = 128
    max_query_length: int = 64  # QA questions are cut to this many tokens (XTREME's setting)
    labels: tuple[str, ...] = ()  # tag set of a token-classification head

    def check_qa_window(self) -> None:
        """The tokenizer needs room for the context beyond the stride, after the question."""
        room = self.max_length - self.max_query_length - 4  # specials around the two segments
        if self.doc_stride >= room:
            raise ValueError(f"doc_stride {self.doc_stride} leaves no room: max_length "
                             f"{self.max_length} minus a {self.max_query_length}-token question "
                             f"fits {room} context tokens; lower doc_stride or raise max_length")


def _map(dataset: datasets.Dataset, function, description: str, tokenizer, encoding: Encoding,
         with_indices: bool = False) -> datasets.Dataset:
    """Batched map that drops the source columns; cached on disk when the source is.

    Its fingerprint is given, not derived: ``datasets`` would otherwise pickle the closure, and
    with it the tokenizer, on every call (about 12 s for XLM-R's 250,002-piece vocabulary, more
    than encoding a sampled evaluation language takes). The output depends only on the source
    (its fingerprint), the encoder (``description``), the tokenizer and the encoding settings.
    """
    fingerprint = Hasher.hash([dataset._fingerprint, description, tokenizer_digest(tokenizer),
                               repr(encoding)])
    return dataset.map(function, batched=True, with_indices=with_indices,
                       remove_columns=dataset.column_names, desc=description,
                       new_fingerprint=fingerprint)


_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tokenizer_digest(tokenizer) -> str:
    """A content hash of a tokenizer (its class, serialised pipeline and special tokens),
    computed once per tokenizer object."""
    if tokenizer not in _DIGESTS:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        content = backend.to_str() if backend is not None else Hasher.hash(tokenizer)
        _DIGESTS[tokenizer] = hashlib.sha256("\n".join(
            [type(tokenizer).__name__, content, repr(tokenizer.special_tokens_map),
             str(tokenizer.padding_side), str(tokenizer.truncation_side)]).encode()).hexdigest()
    return _DIGESTS[tokenizer]


# --- classification -----------------------------------------------------------------------------

def encode_classification(dataset, tokenizer, encoding: Encoding) -> datasets.Dataset:
    def encode(batch):
        pairs = batch.get("text_pair")
        out = tokenizer(batch["text"], pairs, truncation=True, max_length=encoding.max_length)
        out["labels"] = batch["label"]
        out["length"] = [len(ids) for ids in out["input_ids"]]
        return out

    return _map(dataset, encode, "tokenize classification", tokenizer, encoding)


# --- multiple choice ----------------------------------------------------------------------------

def encode_multiple_choice(dataset, tokenizer, encoding: Encoding) -> datasets.Dataset:
    """Each choice is one sequence: ``context`` and ``question + choice`` as a pair."""

    def encode(batch):
        firsts, seconds, sizes = [], [], []
        for context, question, choices in zip(batch["context"], batch["question"], batch["choices"],
                                              strict=True):
            sizes.append(len(choices))
            for choice in choices:
                firsts.append(context)
                seconds.append(f"{question} {choice}".strip())
        if not any(firsts):  # no context at all (CommonsenseQA): the question-choice is one text
            flat = tokenizer(seconds, truncation=True, max_length=encoding.max_length)
        else:
            flat = tokenizer(firsts, seconds, truncation="longest_first",
                             max_length=encoding.max_length)
        out = {key: [] for key in flat}
        start = 0
        for size in sizes:
            for key, values in flat.items():
                out[key].append(values[start:start + size])
            start += size
        out["labels"] = batch["label"]
        out["length"] = [max(len(ids) for ids in example) for example in out["input_ids"]]
        return out

    return _map(dataset, encode, "tokenize multiple choice", tokenizer, encoding)


# --- token classification -----------------------------------------------------------------------

def encode_tokens(dataset, tokenizer, encoding: Encoding) -> datasets.Dataset:
    """Word-level tags on the first subword of each word; the other subwords and the special
    tokens get :data:`IGNORE_INDEX`. A sentence too long for ``max_length`` is split at word
    boundaries into consecutive windows, as XTREME's preprocessing splits long sentences, so
    every word is tagged exactly once. Words the tokenizer turns into nothing are replaced by the
    unknown token, as XTREME's ``run_tag.py`` does. ``example`` (the sentence) and ``word_ids``
    (its word index at first subwords, -1 elsewhere) map predictions back to words."""
    tag_ids = {tag: i for i, tag in enumerate(encoding.labels)}
    columns = ("input_ids", "attention_mask", "labels", "word_ids", "example", "length")

    def encode(batch, indices):
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

    return _map(dataset, encode, "tokenize token classification", tokenizer, encoding,
                with_indices=True)


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


# --- extractive QA ------------------------------------------------------------------------------

def encode_qa_train(dataset, tokenizer, encoding: Encoding) -> datasets.Dataset:
    """Question + context windows (``max_length``, overlapping by ``doc_stride``). A window that
    does not contain the whole answer, or an unanswerable question, points at the first token
    (the no-answer position), as in the SQuAD 2.0 recipe of BERT and HF."""

    encoding.check_qa_window()

    def encode(batch):
        out = _qa_windows(tokenizer, batch, encoding)
        sample_map = out.pop("overflow_to_sample_mapping")
        offsets_all = out.pop("offset_mapping")
        out["start_positions"], out["end_positions"] = [], []
        for index, offsets in enumerate(offsets_all):
            answers = batch["answers"][sample_map[index]]
            sequence_ids = out.sequence_ids(index)
            start, end = _answer_positions(answers, offsets, sequence_ids)
            out["start_positions"].append(start)
            out["end_positions"].append(end)
        out["length"] = [len(ids) for ids in out["input_ids"]]
        return out

    return _map(dataset, encode, "tokenize QA (train)", tokenizer, encoding)


def _qa_windows(tokenizer, batch, encoding: Encoding):
    """Question + context windows of ``max_length``, overlapping by ``doc_stride``."""
    questions = _short_questions(tokenizer, batch["question"], encoding.max_query_length)
    return tokenizer(questions, batch["context"], truncation="only_second",
                     max_length=encoding.max_length, stride=encoding.doc_stride,
                     return_overflowing_tokens=True, return_offsets_mapping=True)


def _short_questions(tokenizer, questions: list[str], max_tokens: int) -> list[str]:
    """Questions without leading spaces, cut to ``max_tokens`` tokens (at a token boundary)."""
    out = []
    for question in questions:
        question = question.lstrip()
        pieces = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
        if len(pieces["input_ids"]) > max_tokens:
            question = question[:pieces["offset_mapping"][max_tokens - 1][1]]
        out.append(question)
    return out


def _answer_positions(answers: dict, offsets, sequence_ids) -> tuple[int, int]:
    if not answers["answer_start"]:
        return 0, 0
    start_char = answers["answer_start"][0]
    end_char = start_char + len(answers["text"][0])
    context = [i for i, s in enumerate(sequence_ids) if s == 1]
    first, last = context[0], context[-1]
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return 0, 0
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


def encode_qa_eval(dataset, tokenizer, encoding: Encoding) -> datasets.Dataset:
    """Evaluation windows keep ``example_id`` and the character offsets of context tokens
    (``None`` elsewhere), so span predictions map back to exact substrings of the context."""

    encoding.check_qa_window()

    def encode(batch):
        out = _qa_windows(tokenizer, batch, encoding)
        sample_map = out.pop("overflow_to_sample_mapping")
        out["example_id"] = [batch["id"][i] for i in sample_map]
        out["offset_mapping"] = [
            [offset if sequence_id == 1 else None
             for offset, sequence_id in zip(offsets, out.sequence_ids(index), strict=True)]
            for index, offsets in enumerate(out["offset_mapping"])
        ]
        out["length"] = [len(ids) for ids in out["input_ids"]]
        return out

    return _map(dataset, encode, "tokenize QA (eval)", tokenizer, encoding)


def decode_spans(examples: datasets.Dataset, features: datasets.Dataset,
                 start_logits: list[np.ndarray], end_logits: list[np.ndarray], *,
                 with_negative: bool, n_best: int = 20, max_answer_length: int = 30,
                 null_threshold: float = 0.0) -> dict[str, str]:
    """Best answer text per example id over all its windows (n-best start/end pairs, valid spans
    inside the context, score = start + end logit). With ``with_negative`` (SQuAD 2.0), the
    answer is empty when the best no-answer score (first token, minimum over windows) beats the
    best span by more than ``null_threshold``."""
    windows = collections.defaultdict(list)
    for index, example_id in enumerate(features["example_id"]):
        windows[example_id].append(index)
    offsets_all = features["offset_mapping"]
    answers = {}
    for example in examples:
        best_text, best_score, null_score = "", -np.inf, np.inf
        for index in windows[example["id"]]:
            starts, ends, offsets = start_logits[index], end_logits[index], offsets_all[index]
            null_score = min(null_score, float(starts[0] + ends[0]))
            for s in np.argsort(starts)[::-1][:n_best]:
                for e in np.argsort(ends)[::-1][:n_best]:
                    if (s >= len(offsets) or e >= len(offsets) or offsets[s] is None
                            or offsets[e] is None or e < s or e - s + 1 > max_answer_length):
                        continue
                    score = float(starts[s] + ends[e])
                    if score > best_score:
                        best_score = score
                        best_text = example["context"][offsets[s][0]:offsets[e][1]]
        if with_negative and null_score > best_score + null_threshold:
            best_text = ""
        answers[example["id"]] = best_text
    return answers


# --- the registry -------------------------------------------------------------------------------

def _decode_choice(task, examples, features, outputs, encoding) -> list[int]:
    return [int(np.argmax(row)) for row in outputs["logits"]]


def _decode_tags(task, examples, features, outputs, encoding) -> list[list[str | None]]:
    return decode_word_tags(features, outputs["logits"], encoding.labels,
                            [len(tokens) for tokens in examples["tokens"]])


def _decode_answers(task, examples, features, outputs, encoding) -> list[str]:
    answers = decode_spans(examples, features, outputs["start_logits"], outputs["end_logits"],
                           with_negative=task.version_2_with_negative)
    return [answers[example_id] for example_id in examples["id"]]


@dataclass(frozen=True)
class FormatHandler:
    """How one format is trained and read: head class, encoders, collator, the model outputs it
    reads, how they become task predictions and which canonical column holds the gold side."""

    head: str
    encode_train: Callable
    encode_eval: Callable
    collator: Callable
    decode: Callable
    gold: Callable[[datasets.Dataset], list]
    outputs: tuple[str, ...] = ("logits",)
    token_level: bool = False


def _padding(max_length: int | None) -> dict:
    """Collator options: pad to the batch's longest sequence, or to ``max_length``."""
    return {"padding": "max_length", "max_length": max_length} if max_length else {}


def _padding_collator(tokenizer, max_length: int | None = None):
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer, **_padding(max_length))


def _choice_collator(tokenizer, max_length: int | None = None):
    from transformers import DataCollatorForMultipleChoice

    return DataCollatorForMultipleChoice(tokenizer, **_padding(max_length))


def _token_collator(tokenizer, max_length: int | None = None):
    from transformers import DataCollatorForTokenClassification

    return DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORE_INDEX,
                                              **_padding(max_length))


def _labels(examples) -> list:
    return examples["label"]


FORMATS: dict[str, FormatHandler] = {
    "classification": FormatHandler(
        "AutoModelForSequenceClassification", encode_classification, encode_classification,
        _padding_collator, _decode_choice, _labels),
    "multiple_choice": FormatHandler(
        "AutoModelForMultipleChoice", encode_multiple_choice, encode_multiple_choice,
        _choice_collator, _decode_choice, _labels),
    "token_classification": FormatHandler(
        "AutoModelForTokenClassification", encode_tokens, encode_tokens, _token_collator,
        _decode_tags, lambda examples: examples["tags"], token_level=True),
    "extractive_qa": FormatHandler(
        "AutoModelForQuestionAnswering", encode_qa_train, encode_qa_eval, _padding_collator,
        _decode_answers, lambda examples: [a["text"] for a in examples["answers"]],
        outputs=("start_logits", "end_logits"), token_level=True),
}


def get_format(name: str) -> FormatHandler:
    return lookup(FORMATS, name, "trainable format")
