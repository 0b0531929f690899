"""XTREME-R's second retrieval protocol: fine-tune the encoder as a dual encoder on English
(query, relevant candidate) pairs with in-batch negatives, then rank with it (Mewsli-X, LAReQA).

One encoder embeds both sides (shared weights, as XTREME-R's ``BertForRetrieval``). The loss is
the in-batch softmax of query→candidate cosines times a learnable logit scale initialised to
100, one direction only, as there. Unlike the reference, which uses the pooler output, the
vectors are the run's :class:`~stilts_core.evaluation.retrieval.RepresentationSettings` (layer, pooling),
so both protocols rank with the same, recorded representation; and the in-batch negatives are
the whole batch (the reference takes them from each forward pass of 4 or 8 and accumulates).

Training runs on the Hugging Face ``Trainer``, like every other run (:mod:`stilts_core.training.trainer`):
its optimiser, linear schedule, clipping, bf16 autocast, checkpoints every ``checkpoint_steps``
and exact resume. One item of the training set is one whole batch of pairs in a seeded order,
read sequentially, so the negatives of a step are fixed by the seed. The batch stays on one
device: split across GPUs it would lose negatives, so the loss is computed on the unwrapped
model even when ``Trainer`` would wrap it for several GPUs.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import Trainer

from stilts_core.data.releases import TrainingPairs
from stilts_core.evaluation.retrieval import RepresentationSettings, pool
from stilts_core.paths import atomic_write_text, checkpoint_name, portable_text
from stilts_core.training.trainer import last_complete_checkpoint, schedule_callback, unwrap_batch

logger = logging.getLogger(__name__)


class DualEncoderHyperparameters(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    learning_rate: float = Field(2e-5, gt=0)
    batch_size: int = Field(16, ge=2, description="pairs per step, each the others' negatives")
    epochs: float = Field(3.0, gt=0)
    max_steps: int = Field(-1, description="stop after this many steps; -1: the epochs")
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    initial_logit_scale: float = 100.0
    query_max_length: int = Field(96, ge=2)
    candidate_max_length: int = Field(256, ge=2)
    checkpoint_steps: int = Field(500, ge=1)


def batch_order(pairs: int, batch_size: int, epochs: float, seed: int) -> list[np.ndarray]:
    """Every step's pair indices: a fresh seeded permutation per epoch, cut into batches (a
    last short batch is dropped: fewer negatives would change the loss); the order is a
    function of the seed alone, so a resumed run continues the same sequence."""
    rng = np.random.default_rng(seed)
    per_epoch = pairs // batch_size
    if per_epoch == 0:
        raise ValueError(f"dual-encoder training needs at least batch_size={batch_size} pairs, "
                         f"got {pairs}")
    steps = math.ceil(per_epoch * epochs)
    batches: list[np.ndarray] = []
    while len(batches) < steps:
        permutation = rng.permutation(pairs)
        batches.extend(permutation[i * batch_size:(i + 1) * batch_size] for i in range(per_epoch))
    return batches[:steps]


class PairBatches(torch.utils.data.Dataset):
    """The batch order as a dataset of tokenised batches: one item is one step's pairs."""

    def __init__(self, pairs: TrainingPairs, batches: list[np.ndarray], tokenizer,
                 hyper: DualEncoderHyperparameters):
        self.pairs, self.batches, self.tokenizer, self.hyper = pairs, batches, tokenizer, hyper

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict:
        rows = self.batches[index]
        sides = {"query": ([self.pairs.queries[i] for i in rows], self.hyper.query_max_length),
                 "candidate": ([self.pairs.candidates[i] for i in rows],
                               self.hyper.candidate_max_length)}
        batch = {}
        for side, (texts, max_length) in sides.items():
            encoded = self.tokenizer(texts, truncation=True, max_length=max_length, padding=True,
                                     return_special_tokens_mask=True, return_tensors="pt")
            batch.update({f"{side}_{key}": value for key, value in encoded.items()})
        return batch


class DualEncoder(torch.nn.Module):
    """The encoder, used for both sides, and the learnable logit scale of the loss."""

    def __init__(self, encoder, settings: RepresentationSettings, initial_logit_scale: float):
        super().__init__()
        self.encoder, self.settings = encoder, settings
        self.logit_scale = torch.nn.Parameter(torch.tensor(initial_logit_scale))

    def embed(self, special_tokens_mask, **batch):
        states = self.encoder(**batch, output_hidden_states=True).hidden_states
        vectors = pool(states[self.settings.layer].float(), batch["attention_mask"],
                       special_tokens_mask, self.settings.pooling,
                       self.settings.include_special_tokens)
        return torch.nn.functional.normalize(vectors, dim=-1)

    def forward(self, **batch) -> dict:
        queries, candidates = (
            self.embed(**{key.removeprefix(prefix): value for key, value in batch.items()
                          if key.startswith(prefix)})
            for prefix in ("query_", "candidate_"))
        logits = self.logit_scale * queries @ candidates.T
        targets = torch.arange(len(queries), device=logits.device)
        return {"loss": torch.nn.functional.cross_entropy(logits, targets)}


class _DualEncoderTrainer(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = self.model(**inputs)  # unwrapped: the whole batch on one device (module doc)
        return (outputs["loss"], outputs) if return_outputs else outputs["loss"]

    def get_decay_parameter_names(self, model) -> list[str]:
        return [name for name in super().get_decay_parameter_names(model) if name != "logit_scale"]

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if "loss" in logs:
            logs["logit_scale"] = self.model.logit_scale.item()
        super().log(logs, start_time)


def train_dual_encoder(init_path: str, pairs: TrainingPairs, tokenizer, output_dir: Path,
                       settings: RepresentationSettings, hyper: DualEncoderHyperparameters,
                       seed: int, progress_dir: Path | None = None) -> dict:
    """Fine-tune the encoder at ``init_path``; writes ``encoder/`` (the fine-tuned encoder and
    tokenizer) and ``train_log.json`` under ``output_dir`` and returns the training summary.
    Resumes from the last checkpoint under ``checkpoints/``, which is deleted at the end.
    ``progress_dir``: the run's folder, whose ``progress.log`` reports the steps."""
    from transformers import AutoModel, TrainingArguments, set_seed

    output_dir = Path(output_dir)
    checkpoints = output_dir / "checkpoints"
    set_seed(seed)
    on_gpu = torch.cuda.is_available()
    model = DualEncoder(AutoModel.from_pretrained(init_path), settings, hyper.initial_logit_scale)
    batches = batch_order(len(pairs.queries), hyper.batch_size, hyper.epochs, seed)
    if hyper.max_steps > 0:
        batches = batches[:hyper.max_steps]
    args = TrainingArguments(
        output_dir=str(checkpoints), learning_rate=hyper.learning_rate,
        per_device_train_batch_size=1,  # one item is one whole batch of pairs
        num_train_epochs=1, max_steps=len(batches),  # the batch order holds every epoch
        train_sampling_strategy="sequential",  # ... in the seed's order
        warmup_steps=hyper.warmup_ratio, weight_decay=hyper.weight_decay,
        max_grad_norm=hyper.max_grad_norm, lr_scheduler_type="linear",
        optim="adamw_torch_fused" if on_gpu else "adamw_torch",
        bf16=on_gpu and torch.cuda.is_bf16_supported(), use_cpu=not on_gpu,
        save_strategy="steps", save_steps=hyper.checkpoint_steps, save_total_limit=1,
        logging_steps=1, seed=seed, data_seed=seed, report_to="none", disable_tqdm=True,
        remove_unused_columns=False, dataloader_pin_memory=on_gpu)
    epochs = len(batches) / (len(pairs.queries) // hyper.batch_size)  # max_steps may cut them
    trainer = _DualEncoderTrainer(
        model=model, args=args, data_collator=unwrap_batch,
        train_dataset=PairBatches(pairs, batches, tokenizer, hyper),
        callbacks=[schedule_callback(epochs, progress_dir, "train dual encoder")])
    resume = last_complete_checkpoint(checkpoints)
    if resume:
        logger.info(f"dual encoder: resuming from {resume} ({len(batches)} steps in all)")
    trainer.train(resume_from_checkpoint=resume)
    history = [{"step": entry["step"], "loss": entry["loss"], "logit_scale": entry["logit_scale"]}
               for entry in trainer.state.log_history if "loss" in entry]
    model.encoder.save_pretrained(str(output_dir / "encoder"))
    tokenizer.save_pretrained(str(output_dir / "encoder"))
    atomic_write_text(output_dir / "train_log.json", json.dumps(history))
    shutil.rmtree(checkpoints, ignore_errors=True)
    final_loss = history[-1]["loss"] if history else None
    logger.info(f"dual encoder: {trainer.state.global_step} steps, final loss {final_loss}")
    return {"steps": trainer.state.global_step, "final_loss": final_loss,
            "logit_scale": model.logit_scale.item(), "training_pairs": len(pairs.queries),
            "training_data": portable_text(pairs.origin), "resumed_from": checkpoint_name(resume)}
