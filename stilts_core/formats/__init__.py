"""Task formats, one module each: what a task of the format declares, its analysis group, how its
source rows become canonical examples, and, for formats a model is trained on, the
``AutoModelFor…`` head, the features, the collator and the decoding of outputs into predictions.

A new format is one module here declaring a :class:`~stilts_core.formats.base.Format`, plus its
entry in :mod:`stilts_core.formats.registry`; the task registry validates tasks against it and
the data, training and evaluation code look it up by ``TaskSpec.format``."""

from stilts_core.formats.base import ExampleError, Format, ModelHead, Origin
from stilts_core.formats.encoding import IGNORE_INDEX, Encoding, tokenizer_digest
from stilts_core.formats.registry import FORMATS, get_format, model_head

__all__ = ["FORMATS", "IGNORE_INDEX", "Encoding", "ExampleError", "Format", "ModelHead", "Origin",
           "get_format", "model_head", "tokenizer_digest"]
