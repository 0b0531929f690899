"""Sequence settings and the tokenised-map helpers every trainable format uses. Padding is always
dynamic (the collators pad each batch to its longest row) unless a fixed length is asked for."""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass

import datasets
from datasets.fingerprint import Hasher

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


def tokenized_map(dataset: datasets.Dataset, function, description: str, tokenizer,
                  encoding: Encoding, with_indices: bool = False) -> datasets.Dataset:
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


def padding(max_length: int | None) -> dict:
    """Collator options: pad to the batch's longest sequence, or to ``max_length``."""
    return {"padding": "max_length", "max_length": max_length} if max_length else {}


def padding_collator(tokenizer, max_length: int | None = None):
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer, **padding(max_length))


def labels_column(examples) -> list:
    return examples["label"]
