"""Extractive QA in the SQuAD schema (XQuAD, MLQA, TyDiQA-GoldP, SQuAD): the answer is a span of
the context; long contexts are read in overlapping windows."""

from __future__ import annotations

import collections

import datasets
import numpy as np

from stilts_core.formats.base import ExampleError, Format, ModelHead, Origin
from stilts_core.formats.encoding import Encoding, padding_collator, tokenized_map


def problem(task) -> str | None:
    f = task.fields
    if not (f.id and len(f.context) == 1 and f.question and f.answers):
        return "extractive_qa needs id, context, question and answers fields"
    return None


def converter(task, origin: Origin):
    """Rows to ``id``, ``context``, ``question`` and ``answers``; every answer must sit at its
    ``answer_start`` in the context."""

    def convert(row: dict, index: int) -> dict:
        answers = row[task.fields.answers]
        texts, starts = list(answers["text"]), [int(s) for s in answers["answer_start"]]
        context = row[task.fields.context[0]]
        for text, start in zip(texts, starts, strict=True):
            if context[start:start + len(text)] != text:
                raise ExampleError(
                    f"{origin}, example {index + 1} (id {row[task.fields.id]!r}): answer {text!r} "
                    f"is not at answer_start {start} of the context")
        return {"id": str(row[task.fields.id]), "context": context,
                "question": row[task.fields.question],
                "answers": {"text": texts, "answer_start": starts}}

    return convert


def encode_train(dataset, tokenizer, encoding: Encoding) -> datasets.Dataset:
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

    return tokenized_map(dataset, encode, "tokenize QA (train)", tokenizer, encoding)


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


def encode_eval(dataset, tokenizer, encoding: Encoding) -> datasets.Dataset:
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

    return tokenized_map(dataset, encode, "tokenize QA (eval)", tokenizer, encoding)


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


def decode(task, examples, features, outputs, encoding) -> list[str]:
    answers = decode_spans(examples, features, outputs["start_logits"], outputs["end_logits"],
                           with_negative=task.version_2_with_negative)
    return [answers[example_id] for example_id in examples["id"]]


def gold(examples) -> list:
    return [answer["text"] for answer in examples["answers"]]


FORMAT = Format(
    name="extractive_qa",
    description="a question and a context; the answer is a span of the context",
    problem=problem,
    group="qa",
    converter=converter,
    head=ModelHead("AutoModelForQuestionAnswering", encode_train, encode_eval, padding_collator,
                   decode, gold, outputs=("start_logits", "end_logits"), token_level=True),
)
