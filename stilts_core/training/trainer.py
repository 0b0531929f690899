"""Fine-tuning with the Hugging Face ``Trainer``, one code path for every phase-(ii)/(iii) run.

A run trains one shared encoder with one head per task: a single task is the one-head case,
multi-task intermediate training and the continued-MLM variant add heads. The recipe follows
jiant's XTREME pipeline as used by Phang et al. 2020 (AdamW, linear warm-up and decay, clipping,
evaluation on English dev sets with early stopping). ``Trainer`` gives checkpoints with
optimiser, scheduler and RNG state, exact resume, gradient accumulation, bf16 and data-parallel
training: with several GPUs visible (a multi-GPU Slurm job), :func:`train` relaunches itself
under ``torchrun``, one process per GPU, and the effective batch size stays the same.

Batches come from a *schedule* fixed by the seed before training (which task, which examples):
examples-proportional task sampling with an optional temperature and cap, and length-grouped
batches (dynamic padding) within a task. Because the schedule is a plain indexable list, resume
skips exactly the batches already seen, and data-parallel workers split it like any dataset.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import datasets
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from stilts_core.data.features import Encoding, get_format
from stilts_core.evaluation.learning import learning_record
from stilts_core.evaluation.scoring import predict, references
from stilts_core.paths import checkpoint_name
from stilts_core.tasks.metrics import get_metric
from stilts_core.tasks.registry import TaskSpec
from stilts_core.training.progress import Progress

MEGABATCH = 50  # batches sorted by length together, as in HF's LengthGroupedSampler


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
    handler = get_format(task.format)
    labels = label_set(task, train_examples)
    encoding = Encoding(max_length=max_length or hyper.max_length, doc_stride=hyper.doc_stride,
                        labels=labels)
    if task.format == "extractive_qa":
        encoding.check_qa_window()
    train = handler.encode_train(train_examples, tokenizer, encoding)
    dev = handler.encode_eval(dev_examples, tokenizer, encoding) if dev_examples is not None else None
    num_labels = len(labels) if task.format in ("classification", "token_classification") else 0
    return TrainingTask(task.name, task, train, dev_examples, encoding, handler.head, num_labels, dev)


def prepare_mlm(texts: datasets.Dataset, tokenizer, max_length: int) -> TrainingTask:
    """Continued multilingual masked-LM (the paper's MLM variant): plain ``text`` rows."""

    def encode(batch):
        out = tokenizer(batch["text"], truncation=True, max_length=max_length)
        out["length"] = [len(ids) for ids in out["input_ids"]]
        return out

    train = texts.map(encode, batched=True, remove_columns=texts.column_names, desc="tokenize MLM")
    return TrainingTask("mlm", None, train, None, Encoding(max_length=max_length),
                        "AutoModelForMaskedLM")


# --- the batch schedule -------------------------------------------------------------------------

def batch_counts(sizes: dict[str, int], batch_size: int, epochs: float, temperature: float = 1.0,
                 cap: int | None = None) -> dict[str, int]:
    """Batches each task gets in a run over ``sizes`` (task -> number of training features).

    One epoch is as many batches as one pass over all tasks' data; task ``k`` gets a share of
    them proportional to ``min(n_k, cap) ** (1 / temperature)``. Also what the grid's GPU-hour
    projection counts.
    """
    per_epoch = sum(math.ceil(size / batch_size) for size in sizes.values())
    total = max(1, round(per_epoch * epochs))
    weights = {name: min(size, cap or size) ** (1 / temperature) for name, size in sizes.items()}
    norm = sum(weights.values())
    return {name: max(1, round(total * weight / norm)) for name, weight in weights.items()}


def batch_schedule(sizes: dict[str, list[int]], batch_size: int, epochs: float, seed: int,
                   temperature: float = 1.0, cap: int | None = None,
                   length_grouping: bool = True) -> list[tuple[str, list[int]]]:
    """``(task, example indices)`` per batch for the whole run.

    ``sizes`` maps each task to its examples' lengths; :func:`batch_counts` says how many
    batches each task gets, and a task that needs more batches than its data fills cycles
    through fresh shuffles. Within a task, batches are cut from length-sorted megabatches
    (``length_grouping``) or from the shuffled order as it is.
    """
    rng = random.Random(seed)
    counts = batch_counts({name: len(lengths) for name, lengths in sizes.items()}, batch_size,
                          epochs, temperature, cap)
    group = MEGABATCH if length_grouping else 1
    schedule = []
    for name, lengths in sizes.items():
        batches: list[list[int]] = []
        while len(batches) < counts[name]:
            order = list(range(len(lengths)))
            rng.shuffle(order)
            for start in range(0, len(order), batch_size * group):
                mega = order[start:start + batch_size * group]
                if length_grouping:
                    mega = sorted(mega, key=lambda i: -lengths[i])
                batches.extend(mega[i:i + batch_size] for i in range(0, len(mega), batch_size))
        schedule.extend((name, batch) for batch in batches[:counts[name]])
    rng.shuffle(schedule)
    return schedule


class ScheduledBatches:
    """The schedule as a dataset of ready, padded batches (one item = one batch)."""

    def __init__(self, tasks: dict[str, TrainingTask], schedule, collators: dict):
        self.tasks, self.schedule, self.collators = tasks, schedule, collators

    def __len__(self) -> int:
        return len(self.schedule)

    def __getitem__(self, index: int) -> dict:
        name, rows = self.schedule[index]
        features = self.tasks[name].train.select(rows)
        bookkeeping = [c for c in ("length", "word_ids", "example") if c in features.column_names]
        batch = self.collators[name](features.remove_columns(bookkeeping).to_list())
        batch["task_name"] = name
        return dict(batch)


# --- the model ----------------------------------------------------------------------------------

def _attach_shared_encoder(head_model, encoder) -> None:
    """Make ``head_model`` run on ``encoder`` without registering it as its submodule, so the
    encoder's weights appear once in the run's state dict (checkpoints) and once in the
    optimiser, however many heads share it."""
    prefix = head_model.base_model_prefix
    del head_model._modules[prefix]
    head_model.__dict__[prefix] = encoder
    output_embeddings = head_model.get_output_embeddings()
    if output_embeddings is not None:  # the MLM decoder is tied to the input embeddings
        output_embeddings.weight = encoder.get_input_embeddings().weight


def standalone(head_model):
    """The head model with its encoder registered again, for ``save_pretrained``."""
    prefix = head_model.base_model_prefix
    if prefix in head_model.__dict__:
        head_model.add_module(prefix, head_model.__dict__.pop(prefix))
    return head_model


def fresh_heads(model, seed: int) -> None:
    """Initialise every part of the heads that is not the transformer body afresh, from
    ``seed`` alone: the heads' own layers and the encoder's pooler (dense + tanh over ``<s>``),
    as ``from_pretrained`` initialises a missing layer (normal, std ``initializer_range``; zero
    bias; LayerNorm 1 and 0). A head then owes nothing to where the encoder came from, and
    runs of one seed start from the same head whatever their intermediate task.

    The pooler is a head part: only multiple-choice heads read it
    (``XLMRobertaForMultipleChoice`` scores each choice from ``outputs[1]``), but it lives in
    the shared encoder, so without this a phase-(iii) multiple-choice head would start with a
    part trained in phase (ii) (HellaSwag, Cosmos QA, CommonsenseQA, multi-task) while the
    other formats start wholly fresh. jiant (Phang et al. 2020) differs: its encoder output
    ``pooled`` is this pooler for classification and multiple-choice heads alike, and it is
    carried with the encoder from phase (ii) to phase (iii).
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    std = model.encoder.config.initializer_range
    pooler = getattr(model.encoder, "pooler", None)
    parts = ([pooler] if pooler is not None else []) + [model.heads[n] for n in sorted(model.heads)]
    # weights tied to the body (an MLM decoder shares the input embeddings) stay as they are
    body = ({id(p) for p in model.encoder.parameters()}
            - {id(p) for p in (pooler.parameters() if pooler is not None else ())})
    for part in parts:
        for module in part.modules():
            if isinstance(module, torch.nn.Linear) and id(module.weight) not in body:
                with torch.no_grad():
                    module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
                    if module.bias is not None:
                        module.bias.zero_()
            elif isinstance(module, torch.nn.LayerNorm):
                torch.nn.init.ones_(module.weight)
                torch.nn.init.zeros_(module.bias)


def initial_model(init_path: str, tasks: dict[str, TrainingTask], hyper: Hyperparameters,
                  seed: int, new_heads: bool = False):
    """The model a run starts training from, as :func:`train` builds it: seeded, the shared
    encoder from ``init_path`` and one head per task; ``new_heads`` (the start of phase iii)
    makes every head part fresh (:func:`fresh_heads`)."""
    from transformers import set_seed

    set_seed(seed)
    model = build_model(init_path, tasks, hyper.attention)
    if new_heads:
        fresh_heads(model, seed)
    return model


def build_model(init_path: str | None, tasks: dict[str, TrainingTask], attention: str = "sdpa",
                config=None):
    """The shared encoder and one head per task, from ``init_path``, or randomly initialised
    from ``config`` (the throughput benchmark: the real model's arithmetic without its weights)."""
    import torch
    import transformers

    class MultiTaskModel(torch.nn.Module):
        """One shared encoder, one ``AutoModelFor…`` head per task; ``task_name`` routes."""

        accepts_loss_kwargs = False
        main_input_name = "input_ids"

        def __init__(self, encoder, heads: dict):
            super().__init__()
            self.encoder = encoder
            self.heads = torch.nn.ModuleDict(heads)
            for head in heads.values():
                _attach_shared_encoder(head, encoder)

        def forward(self, task_name: str, input_ids=None, attention_mask=None, token_type_ids=None,
                    labels=None, start_positions=None, end_positions=None):
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask,
                      "token_type_ids": token_type_ids, "labels": labels,
                      "start_positions": start_positions, "end_positions": end_positions}
            return self.heads[task_name](**{k: v for k, v in inputs.items() if v is not None})

    def load(model_class, **options):
        if config is None:
            return model_class.from_pretrained(init_path, attn_implementation=attention, **options)
        return model_class.from_config(config_with(config, **options),
                                       attn_implementation=attention)

    encoder = load(transformers.AutoModel)
    heads = {}
    for name, t in tasks.items():
        options = {}
        if t.num_labels:
            labels = t.encoding.labels
            options = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                       "label2id": {label: i for i, label in enumerate(labels)}}
        heads[name] = load(getattr(transformers, t.head), **options)
    return MultiTaskModel(encoder, heads)


def config_with(config, **options):
    """A copy of a model config with ``options`` (e.g. a head's labels) set."""
    changed = copy.deepcopy(config)
    changed.update(options)
    return changed


def collators(tasks: list[TrainingTask], tokenizer, padding: str = "dynamic") -> dict:
    """Each task's batch collator: dynamic padding, or every sequence padded to the task's
    ``max_length`` (the naive baseline)."""
    def pad_to(t: TrainingTask) -> int | None:
        return t.encoding.max_length if padding == "max_length" else None

    return {t.name: (_mlm_collator(tokenizer, pad_to(t)) if t.task is None
                     else get_format(t.task.format).collator(tokenizer, pad_to(t)))
            for t in tasks}


# --- training -----------------------------------------------------------------------------------

def launch_processes() -> int:
    """Training processes: ``STILTS_NPROC`` if set (e.g. 2 on a CPU, to exercise the
    distributed path), else one per visible GPU."""
    if os.environ.get("STILTS_NPROC"):
        return int(os.environ["STILTS_NPROC"])
    import torch

    return max(1, torch.cuda.device_count())


def train(init_path: str, tasks: list[TrainingTask], tokenizer, output_dir: Path,
          hyper: Hyperparameters, seed: int, temperature: float = 1.0,
          cap: int | None = None, new_heads: bool = False,
          progress_dir: Path | None = None) -> dict:
    """Train the encoder and one head per task; resume if ``output_dir`` has checkpoints.

    Writes ``encoder/`` (the shared encoder, what the next phase loads under a fresh head),
    ``model-<task>/`` (encoder + head, for evaluation) and ``train_log.json``; returns the final
    dev scores. ``new_heads``: the run hands over from an encoder to new heads (phase iii), so
    every head part starts fresh, the pooler too (:func:`fresh_heads`). With more than one
    process (:func:`launch_processes`) the same function runs under ``torchrun``.
    ``progress_dir``: the run's folder, whose ``progress.log`` reports the steps
    (:func:`schedule_callback`).
    """
    arguments = (init_path, tasks, tokenizer, str(output_dir), hyper, seed, temperature, cap,
                 new_heads, progress_dir)
    processes = launch_processes()
    if processes > 1 and "LOCAL_RANK" not in os.environ:
        return _train_under_torchrun(processes, arguments)
    return _train(*arguments)


def _train_under_torchrun(processes: int, arguments: tuple) -> dict:
    """Run :func:`train` in ``processes`` data-parallel processes (``torchrun --standalone``,
    one node) and return rank 0's result; the launcher's output is passed through."""
    launch = Path(arguments[3]) / "launch"
    launch.mkdir(parents=True, exist_ok=True)
    (launch / "arguments.pkl").write_bytes(pickle.dumps(arguments))
    (launch / "result.json").unlink(missing_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", "-m", "stilts_core.training.trainer", str(launch)]
    print(f"[stilts] training with {processes} processes: {' '.join(command)}", flush=True)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as launcher:
        for line in launcher.stdout:
            print(line, end="", flush=True)
    if launcher.returncode != 0:
        raise RuntimeError(f"torchrun training failed with exit status {launcher.returncode} "
                           f"(its output is above); command: {' '.join(command)}")
    return json.loads((launch / "result.json").read_text())


def training_arguments(hyper: Hyperparameters, output_dir: Path, seed: int, **overrides):
    """``TrainingArguments`` of a run: one schedule item is one micro-batch, the schedule holds
    every epoch, evaluation and checkpoints every ``eval_steps``; the efficiency settings map
    to bf16 autocast, the optimiser and ``torch.compile``. The benchmark passes ``overrides``
    (no evaluation, no checkpoints) and otherwise trains exactly as a run does."""
    import torch
    from transformers import TrainingArguments

    on_gpu = torch.cuda.is_available()
    settings = dict(
        output_dir=str(output_dir),
        learning_rate=hyper.learning_rate,
        per_device_train_batch_size=1,  # one schedule item is one batch
        gradient_accumulation_steps=1,
        num_train_epochs=1,  # the schedule holds every epoch
        max_steps=hyper.max_steps,
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
        metric_for_best_model="score",
        greater_is_better=True,
        logging_steps=max(1, min(hyper.eval_steps // 2, 50)),  # the loss progress lines show
        logging_first_step=True,
        seed=seed,
        data_seed=seed,
        bf16=hyper.precision == "bf16" and on_gpu and torch.cuda.is_bf16_supported(),
        optim=hyper.optimizer,
        torch_compile=hyper.compile,
        use_cpu=not on_gpu,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_pin_memory=on_gpu,
        ddp_find_unused_parameters=True,  # each batch trains one head of several
    )
    args = TrainingArguments(**{**settings, **overrides})
    args.gradient_accumulation_steps = hyper.accumulation_steps(args.world_size)
    return args


# A run whose ``eval_steps`` reach past its last step scores its dev set once, at the end, and
# keeps its last weights: no mid-run evaluation, no checkpoint.
FINAL_EVALUATION_ONLY = {"eval_strategy": "no", "save_strategy": "no",
                         "load_best_model_at_end": False}


def _train(init_path: str, tasks: list[TrainingTask], tokenizer, output_dir: Path,
           hyper: Hyperparameters, seed: int, temperature: float = 1.0,
           cap: int | None = None, new_heads: bool = False,
           progress_dir: Path | None = None) -> dict:
    import safetensors.torch
    from transformers import EarlyStoppingCallback, Trainer

    output_dir = Path(output_dir)
    checkpoints = output_dir / "checkpoints"
    by_name = {t.name: t for t in tasks}
    if not any(t.dev is not None for t in tasks):
        raise ValueError("at least one task needs a dev set for model selection")
    model = initial_model(init_path, by_name, hyper, seed, new_heads)
    schedule = batch_schedule({t.name: t.train["length"] for t in tasks},
                              hyper.per_device_batch_size, hyper.epochs, seed, temperature, cap,
                              hyper.length_grouping)
    args = training_arguments(hyper, checkpoints, seed)
    steps = hyper.max_steps if hyper.max_steps > 0 else \
        math.ceil(len(schedule) / args.gradient_accumulation_steps)
    selecting = hyper.eval_steps < steps
    if not selecting:  # the last weights are the model: no checkpoint that nothing would read
        args = training_arguments(hyper, checkpoints, seed, **FINAL_EVALUATION_ONLY)
    callbacks = [schedule_callback(hyper.epochs, progress_dir, f"train {'+'.join(by_name)}")]
    if selecting:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=hyper.early_stopping_patience))

    class MultiTaskTrainer(Trainer):
        """``Trainer`` with per-task dev scoring and checkpoints of a shared-encoder model."""

        dev_predictions: dict = {}

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            metrics = dev_scores(self.model, by_name, tokenizer, prefix=metric_key_prefix,
                                 predictions=self.dev_predictions)
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control,
                                                             metrics)
            return metrics

        def _save(self, output_dir=None, state_dict=None):
            output_dir = Path(output_dir or self.args.output_dir)
            output_dir.mkdir(parents=True, exist_ok=True)
            safetensors.torch.save_model(self.model, str(output_dir / "model.safetensors"))

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            safetensors.torch.load_model(model or self.model,
                                         str(Path(resume_from_checkpoint) / "model.safetensors"))

        def _load_best_model(self):
            self._load_from_checkpoint(self.state.best_model_checkpoint)

    trainer = MultiTaskTrainer(
        model=model, args=args, data_collator=unwrap_batch,
        train_dataset=ScheduledBatches(by_name, schedule,
                                       collators(tasks, tokenizer, hyper.padding)),
        eval_dataset={t.name: t.dev for t in tasks if t.dev is not None},
        callbacks=callbacks,
    )
    resume = last_complete_checkpoint(checkpoints)
    trainer.train(resume_from_checkpoint=resume)
    final = trainer.evaluate()
    learning = {name: learning_record(by_name[name].task, predicted,
                                      references(by_name[name].task, by_name[name].dev))
                for name, predicted in trainer.dev_predictions.items()}
    if trainer.is_world_process_zero():  # one writer of the final models
        encoder = trainer.model.encoder
        encoder.save_pretrained(str(output_dir / "encoder"))
        tokenizer.save_pretrained(str(output_dir / "encoder"))
        for name, head in trainer.model.heads.items():
            if by_name[name].task is not None:
                standalone(head).save_pretrained(str(output_dir / f"model-{name}"))
                tokenizer.save_pretrained(str(output_dir / f"model-{name}"))
        (output_dir / "train_log.json").write_text(json.dumps(trainer.state.log_history,
                                                              indent=1))
    return {
        **{key.removeprefix("eval_"): value for key, value in final.items()},
        "global_step": trainer.state.global_step,
        "scheduled_batches": len(schedule),
        "best_checkpoint": checkpoint_name(trainer.state.best_model_checkpoint),
        "resumed_from": checkpoint_name(resume),
        "processes": args.world_size,
        "learning": learning,
    }


def schedule_callback(epochs: float, progress_dir: Path | None, what: str):
    """A ``TrainerCallback`` for a training set that holds ``epochs`` epochs in one ``Trainer``
    pass (a batch schedule): it counts ``state.epoch`` in the schedule's epochs, so logs and
    checkpoints say epoch 3.27 of 12 rather than 0.27 of 1, and, given the run's folder, writes
    the steps to its progress log (:class:`~stilts_core.training.progress.Progress`) with the
    latest logged loss and dev score. Only the first process writes."""
    from transformers import TrainerCallback

    class ScheduleProgress(TrainerCallback):
        progress: Progress | None = None
        loss = score = None
        pending = False  # a line is due once the Trainer has logged this step's loss

        def on_train_begin(self, args, state, control, **kwargs):
            if progress_dir is not None and state.is_world_process_zero:
                self.progress = Progress(progress_dir, f"{what} step", state.max_steps,
                                         done=state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            state.epoch *= epochs  # the Trainer sets it afresh, as a fraction, every step
            if self.progress is not None and self.progress.due(state.global_step):
                self.pending = True
                if not control.should_log:
                    self.report(state)

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.loss = (logs or {}).get("loss", self.loss)
            self.score = (logs or {}).get("eval_score", self.score)
            if self.pending:
                self.report(state)

        def report(self, state) -> None:
            self.pending = False
            details = [f"loss {self.loss:.4f}" if self.loss is not None else "no loss logged yet"]
            if self.score is not None:
                details.append(f"dev score {self.score:.2f}")
            self.progress.write(state.global_step, *details, f"epoch {state.epoch:.2f}")

    return ScheduleProgress()


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint under ``folder`` that was written to the end, or None. ``Trainer``
    writes ``trainer_state.json`` last, so a run killed while saving leaves a newer folder
    without it; resuming from that one would fail, so the one before it is used."""
    found = []
    for candidate in Path(folder).glob("checkpoint-*"):
        state = candidate / "trainer_state.json"
        if candidate.name.removeprefix("checkpoint-").isdigit() and state.is_file():
            try:
                json.loads(state.read_text())
            except ValueError:
                continue  # cut off mid-write
            found.append((int(candidate.name.removeprefix("checkpoint-")), str(candidate)))
    return max(found)[1] if found else None


def unwrap_batch(items: list) -> dict:
    """The ``Trainer`` collator for :class:`ScheduledBatches`, whose items are whole batches."""
    return items[0]


def _mlm_collator(tokenizer, max_length: int | None = None):
    from transformers import DataCollatorForLanguageModeling

    # texts are truncated to max_length, so a multiple of it is exactly max_length
    return DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15,
                                           pad_to_multiple_of=max_length)


def dev_scores(model, tasks: dict[str, TrainingTask], tokenizer, prefix: str = "eval",
               predictions: dict | None = None) -> dict:
    """Each task's dev metric and their mean (``score``), the model-selection criterion; the
    dev predictions by task go into ``predictions`` when given (the last evaluation's are what
    the learning check reads)."""
    metrics = {}
    for name, t in tasks.items():
        if t.dev is None:
            continue
        metric = get_metric(t.task.dev_metric)
        predicted = predict(t.task, model.heads[name], tokenizer, t.dev, t.encoding,
                            features=t.dev_features)
        if predictions is not None:
            predictions[name] = predicted
        value = metric.headline_value(metric.compute(predicted, references(t.task, t.dev)))
        metrics[f"{prefix}_{name}_{metric.name}"] = value if metric.higher_is_better else -value
    metrics[f"{prefix}_score"] = float(np.mean(list(metrics.values())))
    return metrics


if __name__ == "__main__":  # one torchrun process: python -m stilts_core.training.trainer LAUNCH_DIR
    from stilts_core.paths import atomic_write_text
    from stilts_core.training.trainer import train as train_in_this_process

    launch_dir = Path(sys.argv[1])
    result = train_in_this_process(*pickle.loads((launch_dir / "arguments.pkl").read_bytes()))
    if int(os.environ.get("RANK", "0")) == 0:
        atomic_write_text(launch_dir / "result.json", json.dumps(result, default=str))
