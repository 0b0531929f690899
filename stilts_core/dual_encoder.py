"""XTREME-R's second retrieval protocol: fine-tune the encoder as a dual encoder on English
(query, relevant candidate) pairs with in-batch negatives, then rank with it (Mewsli-X, LAReQA).

One encoder embeds both sides (shared weights, as XTREME-R's ``BertForRetrieval``). The loss is
the in-batch softmax of query→candidate cosines times a learnable logit scale initialised to
100, one direction only, as there. Unlike the reference, which uses the pooler output, the
vectors are the run's :class:`~stilts_core.retrieval.RepresentationSettings` (layer, pooling),
so both protocols rank with the same, recorded representation; and the in-batch negatives are
the whole batch (the reference takes them from each forward pass of 4 or 8 and accumulates).

Training checkpoints every ``checkpoint_steps`` (model, optimiser, schedule, step, RNG) with
an atomic rename and resumes from the last one, so a crash costs at most that many steps.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .data import TrainingPairs
from .paths import atomic_write_text
from .retrieval import RepresentationSettings, pool

CHECKPOINT = "checkpoint.pt"


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


def _embed(model, tokenizer, texts: list[str], max_length: int, settings: RepresentationSettings):
    import torch

    device = next(model.parameters()).device
    batch = tokenizer(texts, truncation=True, max_length=max_length, padding=True,
                      return_special_tokens_mask=True, return_tensors="pt")
    special = batch.pop("special_tokens_mask").to(device)
    batch = {key: value.to(device) for key, value in batch.items()}
    states = model(**batch, output_hidden_states=True).hidden_states
    vectors = pool(states[settings.layer].float(), batch["attention_mask"], special,
                   settings.pooling, settings.include_special_tokens)
    return torch.nn.functional.normalize(vectors, dim=-1)


def train_dual_encoder(init_path: str, pairs: TrainingPairs, tokenizer, output_dir: Path,
                       settings: RepresentationSettings, hyper: DualEncoderHyperparameters,
                       seed: int, log=print) -> dict:
    """Fine-tune the encoder at ``init_path``; writes ``encoder/`` (the fine-tuned encoder and
    tokenizer) and ``train_log.json`` under ``output_dir`` and returns the training summary."""
    import torch
    from transformers import AutoModel, get_linear_schedule_with_warmup, set_seed

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    set_seed(seed)
    on_gpu = torch.cuda.is_available()
    device = "cuda" if on_gpu else "cpu"
    model = AutoModel.from_pretrained(init_path).to(device)
    logit_scale = torch.nn.Parameter(torch.tensor(hyper.initial_logit_scale, device=device))
    decay = [p for n, p in model.named_parameters() if not n.endswith("bias") and "LayerNorm" not in n]
    rest = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": hyper.weight_decay},
         {"params": [*rest, logit_scale], "weight_decay": 0.0}],
        lr=hyper.learning_rate, eps=1e-8, fused=on_gpu)
    batches = batch_order(len(pairs.queries), hyper.batch_size, hyper.epochs, seed)
    if hyper.max_steps > 0:
        batches = batches[:hyper.max_steps]
    schedule = get_linear_schedule_with_warmup(
        optimizer, int(hyper.warmup_ratio * len(batches)), len(batches))
    step, history = 0, []
    checkpoint = output_dir / CHECKPOINT
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        with torch.no_grad():
            logit_scale.copy_(state["logit_scale"])
        torch.set_rng_state(state["rng"])
        step, history = state["step"], state["history"]
        log(f"dual encoder: resuming at step {step}/{len(batches)}")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_gpu)
    model.train()
    started = time.time()
    while step < len(batches):
        index = batches[step]
        with autocast:
            queries = _embed(model, tokenizer, [pairs.queries[i] for i in index],
                             hyper.query_max_length, settings)
            candidates = _embed(model, tokenizer, [pairs.candidates[i] for i in index],
                                hyper.candidate_max_length, settings)
        logits = logit_scale * queries @ candidates.T
        loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(index), device=device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hyper.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        history.append({"step": step, "loss": loss.item(), "logit_scale": logit_scale.item()})
        if step % hyper.checkpoint_steps == 0 or step == len(batches):
            log(f"dual encoder: step {step}/{len(batches)}, loss {history[-1]['loss']:.4f} "
                f"({step / max(time.time() - started, 1e-9):.1f} steps/s this session)")
            _save_checkpoint(checkpoint, model, optimizer, schedule, logit_scale, step, history)
    model.save_pretrained(str(output_dir / "encoder"))
    tokenizer.save_pretrained(str(output_dir / "encoder"))
    atomic_write_text(output_dir / "train_log.json", json.dumps(history))
    checkpoint.unlink(missing_ok=True)
    return {"steps": step, "final_loss": history[-1]["loss"] if history else None,
            "logit_scale": logit_scale.item(), "training_pairs": len(pairs.queries),
            "training_data": pairs.origin}


def _save_checkpoint(path: Path, model, optimizer, schedule, logit_scale, step: int,
                     history: list) -> None:
    import torch

    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "logit_scale": logit_scale.detach(),
                "rng": torch.get_rng_state(), "step": step, "history": history}, temporary)
    os.replace(temporary, path)
