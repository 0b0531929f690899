"""What a training run takes: its hyperparameters (the published ones, and the efficiency
settings that must not change a result), and each task prepared as features for its head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import datasets
from pydantic import BaseModel, ConfigDict, Field, model_validator

from stilts_core.formats import Encoding, model_head
from stilts_core.tasks.spec import TaskSpec


class Efficiency(BaseModel):
    """How a run is computed rather than what it learns. The defaults are the fast settings;
    ``benchmarks/train_throughput.py`` measures each against :data:`NAIVE`. Results differ only
    at rounding level (bf16, fused kernels) or not at all (padding is masked), but the settings
    are part of a run's parameters, so runs that differ in them are not pooled."""

    model_config = ConfigDict(extra="forbid")

    precision: Literal["bf16", "fp32"] = Field(
        "bf16", description="bf16 autocast on GPUs that support it (fp32 on CPUs), or fp32")
    attention: Literal["sdpa", "eager"] = Field(
        "sdpa", description="PyTorch scaled-dot-product (flash) attention, or eager attention")
    padding: Literal["dynamic", "max_length"] = Field(
        "dynamic", description="pad each batch to its longest sequence, or all to max_length")
    length_grouping: bool = Field(True, description="cut batches from length-sorted megabatches")
    optimizer: Literal["adamw_torch_fused", "adamw_torch"] = Field(
        "adamw_torch_fused", description="fused (one kernel) or per-tensor AdamW")
    compile: bool = Field(False, description="torch.compile the model")


NAIVE = Efficiency(precision="fp32", attention="eager", padding="max_length",
                   length_grouping=False, optimizer="adamw_torch", compile=False)


class Hyperparameters(Efficiency):
    """Training settings of one run; every field is recorded with the run."""

    learning_rate: float = Field(1e-5, gt=0)
    batch_size: int = Field(32, ge=1, description="effective batch size")
    per_device_batch_size: int = Field(8, ge=1)
    epochs: float = Field(3, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    max_length: int = Field(256, ge=8)
    doc_stride: int = Field(128, ge=1)
    eval_steps: int = Field(1000, ge=1)
    early_stopping_patience: int = Field(30, ge=1)
    max_steps: int = Field(-1, description="stop after this many optimiser steps; -1: by epochs")

    @model_validator(mode="after")
    def _batch_sizes_divide(self) -> Hyperparameters:
        if self.batch_size % self.per_device_batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} is not a multiple of per_device_batch_size "
                f"{self.per_device_batch_size}"
            )
        return self

    def accumulation_steps(self, world_size: int = 1) -> int:
        per_step = self.per_device_batch_size * world_size
        if self.batch_size % per_step:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of "
                             f"per_device_batch_size x {world_size} processes")
        return self.batch_size // per_step


@dataclass
class TrainingTask:
    """One head of a run: the task, its encoded training features, its canonical dev examples
    (``None``: not used for model selection, e.g. continued MLM) and its label set."""

    name: str
    task: TaskSpec | None
    train: datasets.Dataset
    dev: datasets.Dataset | None
    encoding: Encoding
    head: str
    num_labels: int = 0
    dev_features: datasets.Dataset | None = None


def label_set(task: TaskSpec, train_examples: datasets.Dataset) -> tuple[str, ...]:
    """Declared labels, or for tag sets declared by the data (CCG) the sorted tags seen."""
    if task.labels_from_data:
        return tuple(sorted({tag for tags in train_examples["tags"] for tag in tags}))
    return task.labels


def prepare_task(task: TaskSpec, train_examples, dev_examples, tokenizer, hyper: Hyperparameters,
                 max_length: int | None = None) -> TrainingTask:
    """Encode a task's canonical examples for its head."""
    head = model_head(task.format)
    labels = label_set(task, train_examples)
    encoding = Encoding(max_length=max_length or hyper.max_length, doc_stride=hyper.doc_stride,
                        labels=labels)
    train = head.encode_train(train_examples, tokenizer, encoding)
    dev = head.encode_eval(dev_examples, tokenizer, encoding) if dev_examples is not None else None
    num_labels = len(labels) if head.sized_by_labels else 0
    return TrainingTask(task.name, task, train, dev_examples, encoding, head.auto_class, num_labels,
                        dev)


def prepare_mlm(texts: datasets.Dataset, tokenizer, max_length: int) -> TrainingTask:
    """Continued multilingual masked-LM (the paper's MLM variant): plain ``text`` rows."""

    def encode(batch):
        out = tokenizer(batch["text"], truncation=True, max_length=max_length)
        out["length"] = [len(ids) for ids in out["input_ids"]]
        return out

    train = texts.map(encode, batched=True, remove_columns=texts.column_names, desc="tokenize MLM")
    return TrainingTask("mlm", None, train, None, Encoding(max_length=max_length),
                        "AutoModelForMaskedLM")
