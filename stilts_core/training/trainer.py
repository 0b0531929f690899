"""Fine-tuning with the Hugging Face ``Trainer``, one code path for every phase-(ii)/(iii) run.

A run trains one shared encoder with one head per task: a single task is the one-head case,
multi-task intermediate training and the continued-MLM variant add heads. The recipe follows
jiant's XTREME pipeline as used by Phang et al. 2020 (AdamW, linear warm-up and decay, clipping,
evaluation on English dev sets with early stopping). ``Trainer`` gives checkpoints with
optimiser, scheduler and RNG state, exact resume, gradient accumulation, bf16 and data-parallel
training: with several GPUs visible (a multi-GPU Slurm job), :func:`train` relaunches itself
under ``torchrun``, one process per GPU, and the effective batch size stays the same.

Batches come from a *schedule* fixed by the seed before training (:mod:`.schedule`: which task,
which examples): examples-proportional task sampling with an optional temperature and cap, and
length-grouped batches (dynamic padding) within a task. Because the schedule is a plain
indexable list, resume skips exactly the batches already seen, and data-parallel workers split
it like any dataset. The heads and the shared encoder are built in :mod:`.model`, the prepared
tasks and hyperparameters in :mod:`.inputs`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

from stilts_core.evaluation.learning import learning_record
from stilts_core.evaluation.scoring import predict, references
from stilts_core.paths import checkpoint_name
from stilts_core.tasks.metrics import get_metric
from stilts_core.training.inputs import Hyperparameters, TrainingTask
from stilts_core.training.model import collators, initial_model, standalone
from stilts_core.training.progress import Progress
from stilts_core.training.schedule import ScheduledBatches, batch_schedule

logger = logging.getLogger(__name__)

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
    logger.info(f"[stilts] training with {processes} processes: {' '.join(command)}")
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as launcher:
        for line in launcher.stdout:
            logger.info(line.rstrip("\n"))
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
    from stilts_core import logs
    from stilts_core.paths import atomic_write_text
    from stilts_core.training.trainer import train as train_in_this_process

    logs.configure()  # its lines reach the launching kernel through the launcher's output
    launch_dir = Path(sys.argv[1])
    result = train_in_this_process(*pickle.loads((launch_dir / "arguments.pkl").read_bytes()))
    if int(os.environ.get("RANK", "0")) == 0:
        atomic_write_text(launch_dir / "result.json", json.dumps(result, default=str))
