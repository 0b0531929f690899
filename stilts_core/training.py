"""Fine-tuning with the Hugging Face ``Trainer``: shared by phase (ii) and phase (iii).

The recipe follows jiant's XTREME pipeline as used by Phang et al. 2020 (AdamW, linear warm-up
and decay, clipping, evaluation on the English dev set with early stopping). ``Trainer`` gives
checkpoints with optimiser, scheduler and RNG state, exact resume, gradient accumulation,
length-grouped batches and multi-GPU through ``accelerate``/``torchrun`` without code changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .evaluation import get_metric
from .tasks import TaskSpec


class Hyperparameters(BaseModel):
    """Training settings of one run; every field is recorded with the run."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(1e-5, gt=0)
    batch_size: int = Field(32, ge=1, description="effective batch size")
    per_device_batch_size: int = Field(8, ge=1)
    epochs: float = Field(3, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    max_length: int = Field(256, ge=8)
    eval_steps: int = Field(1000, ge=1)
    early_stopping_patience: int = Field(30, ge=1)

    @model_validator(mode="after")
    def _batch_sizes_divide(self) -> Hyperparameters:
        if self.batch_size % self.per_device_batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} is not a multiple of per_device_batch_size "
                f"{self.per_device_batch_size}"
            )
        return self

    @property
    def gradient_accumulation_steps(self) -> int:
        return self.batch_size // self.per_device_batch_size


def train_classifier(init_path: str, task: TaskSpec, train_features, eval_features, tokenizer,
                     output_dir: Path, hyper: Hyperparameters, seed: int) -> dict:
    """Train a fresh classification head (and the encoder) on ``task``; resume if interrupted.

    Writes ``model/`` (encoder and head) and ``encoder/`` (encoder alone, what the next phase
    loads under a fresh head) into ``output_dir`` and returns the final dev metrics.
    """
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        Trainer,
        TrainingArguments,
        set_seed,
    )
    from transformers.trainer_utils import get_last_checkpoint

    set_seed(seed)
    output_dir = Path(output_dir)
    checkpoints = output_dir / "checkpoints"
    labels = list(task.labels)
    model = AutoModelForSequenceClassification.from_pretrained(
        init_path, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    metric = get_metric(task.metric)
    on_gpu = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(checkpoints),
        learning_rate=hyper.learning_rate,
        per_device_train_batch_size=hyper.per_device_batch_size,
        per_device_eval_batch_size=max(hyper.per_device_batch_size, 32),
        gradient_accumulation_steps=hyper.gradient_accumulation_steps,
        num_train_epochs=hyper.epochs,
        warmup_steps=hyper.warmup_ratio,
        weight_decay=hyper.weight_decay,
        max_grad_norm=hyper.max_grad_norm,
        lr_scheduler_type="linear",
        eval_strategy="steps",
        eval_steps=hyper.eval_steps,
        save_strategy="steps",
        save_steps=hyper.eval_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model=task.metric,
        greater_is_better=metric.higher_is_better,
        logging_steps=max(1, hyper.eval_steps // 2),
        train_sampling_strategy="group_by_length",
        seed=seed,
        data_seed=seed,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        use_cpu=not on_gpu,
        report_to="none",
        disable_tqdm=True,
    )

    def compute_metrics(prediction) -> dict:
        predicted = np.argmax(prediction.predictions, axis=-1)
        return {task.metric: metric.compute(predicted.tolist(), prediction.label_ids.tolist())}

    trainer = Trainer(
        model=model, args=args, data_collator=DataCollatorWithPadding(tokenizer),
        train_dataset=train_features, eval_dataset=eval_features, processing_class=tokenizer,
        compute_metrics=compute_metrics,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=hyper.early_stopping_patience)],
    )
    resume = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    trainer.train(resume_from_checkpoint=resume)
    dev = trainer.evaluate()
    trainer.save_model(str(output_dir / "model"))
    trainer.model.base_model.save_pretrained(str(output_dir / "encoder"))
    tokenizer.save_pretrained(str(output_dir / "encoder"))
    (output_dir / "train_log.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    return {
        "dev_" + task.metric: dev[f"eval_{task.metric}"],
        "dev_loss": dev["eval_loss"],
        "global_step": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "resumed_from": resume,
    }
