"""multilingual-e5-small on this CPU: the project's encoding and training paths against a plain
Hugging Face loop, fp32 and bf16 autocast, side by side in one run.

    nice -n 5 python benchmarks/e5_cpu_speed.py     # a few minutes on 2 idle cores

Encoding (the retrieval and alignment path): :func:`stilts_core.evaluation.retrieval.embed_layers` (every
hidden state, mean pooling, length-sorted batches) against a plain loop over batches in input
order, each padded to its longest sentence, on the same Tatoeba sentences (drawn at random from
every language file of ``../shared/data/tatoeba``). Training: the run's own ``Trainer`` set-up
(:func:`stilts_core.grid.throughput.measure_training`: the schedule, collators and default
efficiency settings; random init of the model's config, the real model's arithmetic) against a
plain loop (``AutoModelForSequenceClassification``, AdamW, batches in input order padded to
the longest) on ANLI R1 dev pairs (premise, hypothesis), batch 32, length <= 128. Both are
timed in fp32 and under ``torch.autocast("cpu", bfloat16)``, which the project's runs do not
use on CPUs (their bf16 setting is GPU-only), so its speed and its change to the results are
measured here: the largest absolute change of the sentence vectors (every layer) and of the
loss of the real weights. Training is timed in bf16 only where the CPU has native bf16 kernels
(or with ``--bf16-training``): emulated bf16 is several times slower than fp32, as the encoding
figures show. The load average is recorded: the machine may be shared.

Tokens are real (unpadded) tokens. Figures are printed and written to ``--output``; nothing is
asserted about speed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import torch
import transformers

from stilts_core import logs
from stilts_core.data.canonical import canonicalise
from stilts_core.data.readers import read_local_file
from stilts_core.evaluation.retrieval import embed_layers, normalise
from stilts_core.grid.throughput import environment, measure_training
from stilts_core.models.registry import load_tokenizer, resolve_model
from stilts_core.paths import REPO_ROOT, atomic_write_text, shared_data_dir
from stilts_core.tasks.registry import get_task
from stilts_core.training.inputs import Hyperparameters

transformers.logging.set_verbosity_error()
datasets.disable_progress_bars()

MODEL = "multilingual-e5-small"
ANLI = "intermediate/anli/ANLI_analysis_r1_dev.csv"
PRECISIONS = {"fp32": contextlib.nullcontext,
              "bf16 autocast": lambda: torch.autocast("cpu", dtype=torch.bfloat16)}


def native_bf16() -> bool:
    """Whether oneDNN has bf16 kernels for this CPU (AVX512-BF16 or AMX); without them bf16
    autocast is emulated, and slower than fp32."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def tatoeba_sentences(count: int, seed: int = 0) -> list[str]:
    pool = [line for path in sorted((shared_data_dir() / "tatoeba").glob("tatoeba.*-eng.*"))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not pool:
        sys.exit(f"no Tatoeba files under {shared_data_dir() / 'tatoeba'} (the shared data pack)")
    return [pool[i] for i in np.random.default_rng(seed).choice(len(pool), count, replace=False)]


def plain_encode(sentences, model, tokenizer, batch_size: int, max_length: int) -> np.ndarray:
    """The baseline: input order, each batch padded to its longest, every layer mean-pooled."""
    layers = []
    with torch.inference_mode():
        for start in range(0, len(sentences), batch_size):
            batch = tokenizer(sentences[start:start + batch_size], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            states = model(**batch, output_hidden_states=True).hidden_states
            weights = batch["attention_mask"].unsqueeze(-1).float()
            layers.append(np.stack([((s.float() * weights).sum(1) / weights.sum(1)).numpy()
                                    for s in states]))
    return normalise(np.concatenate(layers, axis=1))


def timed(work):
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def measure_encoding(sentences, model, tokenizer, batch_size, max_length) -> tuple[list, dict]:
    tokens = sum(map(len, tokenizer(sentences, truncation=True, max_length=max_length)["input_ids"]))
    layers = list(range(model.config.num_hidden_layers + 1))
    paths = {
        "project (embed_layers, length-sorted)": lambda: embed_layers(
            sentences, model, tokenizer, layers, "mean", True, max_length, batch_size),
        "plain HF loop (input order)": lambda: plain_encode(sentences, model, tokenizer,
                                                            batch_size, max_length),
    }
    rows, vectors = [], {}
    for precision, context in PRECISIONS.items():
        for path, work in paths.items():
            with context():
                work_slice = sentences[:batch_size]
                embed_layers(work_slice, model, tokenizer, [0], "mean", True, max_length)  # warm-up
                vectors[path, precision], seconds = timed(work)
            rows.append({"path": path, "precision": precision, "seconds": seconds,
                         "sentences": len(sentences), "tokens": tokens,
                         "tokens_per_s": tokens / seconds})
            print(f"encode  {path:40} {precision:14} {tokens / seconds:8.0f} tokens/s", flush=True)
    project = "project (embed_layers, length-sorted)"
    change = {
        "max_abs_change_bf16": float(np.abs(vectors[project, "bf16 autocast"]
                                            - vectors[project, "fp32"]).max()),
        "min_cosine_bf16_vs_fp32": float((vectors[project, "bf16 autocast"]
                                          * vectors[project, "fp32"]).sum(-1).min()),
        "max_abs_difference_project_vs_plain_fp32": float(np.abs(
            vectors[project, "fp32"] - vectors["plain HF loop (input order)", "fp32"]).max()),
    }
    return rows, change


def anli_examples(count: int):
    path = shared_data_dir() / ANLI
    if not path.is_file():
        sys.exit(f"{path} is missing (the shared data pack)")
    task = get_task("anli_plus")
    return task, canonicalise(read_local_file(task, path), task, str(path)).select(range(count))


def plain_training(examples, tokenizer, config, batch_size, max_length, warmup, steps,
                   labels) -> dict:
    """The baseline: a classification model from the config, AdamW, input-order batches."""
    torch.manual_seed(1)
    model = transformers.AutoModelForSequenceClassification.from_config(
        transformers.AutoConfig.for_model(**{**config.to_dict(), "num_labels": len(labels)}))
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-5)
    tokens, started = 0, 0.0
    for step in range(warmup + steps):
        if step == warmup:
            tokens, started = 0, time.perf_counter()
        rows = examples[step * batch_size:(step + 1) * batch_size]
        batch = tokenizer(rows["text"], rows["text_pair"], padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt")
        target = torch.tensor([labels.index(label) for label in rows["label"]])
        model(**batch, labels=target).loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        tokens += int(batch["attention_mask"].sum())
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds,
            "samples_per_s": steps * batch_size / seconds}


def loss_change(model_path, examples, tokenizer, batch_size, max_length, labels) -> dict:
    """The real weights (a seeded classifier head on top): one batch's loss in fp32 and bf16."""
    torch.manual_seed(1)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=len(labels)).eval()
    rows = examples[:batch_size]
    batch = tokenizer(rows["text"], rows["text_pair"], padding=True, truncation=True,
                      max_length=max_length, return_tensors="pt")
    target = torch.tensor([labels.index(label) for label in rows["label"]])
    losses = {}
    for precision, context in PRECISIONS.items():
        with torch.inference_mode(), context():
            losses[precision] = float(model(**batch, labels=target).loss)
    return {"loss_fp32": losses["fp32"], "loss_bf16": losses["bf16 autocast"],
            "abs_change_bf16": abs(losses["bf16 autocast"] - losses["fp32"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=384)
    parser.add_argument("--encode-batch-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2, help="timed optimiser steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    parser.add_argument("--bf16-training", action=argparse.BooleanOptionalAction, default=None,
                        help="also time training under bf16 autocast (default: only where the "
                             "CPU has native bf16 kernels; emulated, it is many times slower)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "benchmarks" / "results"
                        / "e5-cpu-speed.json")
    args = parser.parse_args()
    logs.configure()  # the library's progress lines and notes
    if torch.cuda.is_available():
        sys.exit("this benchmark measures the CPU; hide the GPU (CUDA_VISIBLE_DEVICES=) to run it")
    if args.bf16_training is None:
        args.bf16_training = native_bf16()

    model_path = resolve_model(MODEL)
    prepared = Path(model_path) / "prepared.json"
    copy = json.loads(prepared.read_text())["copy"] if prepared.is_file() else "hub original"
    tokenizer = load_tokenizer(model_path)
    env = environment(shlex.join([Path(sys.executable).name, *sys.argv]),
                      f"{MODEL} ({copy})", f"{shared_data_dir()}: tatoeba/, {ANLI}")
    env |= {"native_bf16": native_bf16(), "load_average": list(os.getloadavg())}
    print(f"device: {env['device']}, {env['cpu_threads']} threads, native bf16 kernels: "
          f"{env['native_bf16']}, load average {env['load_average'][0]:.1f}; torch {env['torch']}, "
          f"transformers {env['transformers']}; model {MODEL} ({copy}, {model_path})", flush=True)

    model = transformers.AutoModel.from_pretrained(model_path).eval()
    sentences = tatoeba_sentences(args.sentences)
    encoding, vector_change = measure_encoding(sentences, model, tokenizer,
                                               args.encode_batch_size, args.max_length)

    task, examples = anli_examples(args.batch_size * (args.warmup + args.steps))
    labels = sorted(set(examples["label"]))
    training = []
    timed_precisions = [p for p in PRECISIONS if p == "fp32" or args.bf16_training]
    for precision in timed_precisions:
        context = PRECISIONS[precision]
        hyper = Hyperparameters(batch_size=args.batch_size, per_device_batch_size=args.batch_size,
                                max_length=args.max_length, precision="fp32")
        with context():
            project = measure_training(task, examples, tokenizer, model.config, MODEL, hyper,
                                       "project", args.steps, args.warmup, None)
            plain = plain_training(examples, tokenizer, model.config, args.batch_size,
                                   args.max_length, args.warmup, args.steps, labels)
        for path, figures in (("project (Trainer set-up)", {
                "seconds": project.seconds, "tokens": project.tokens,
                "tokens_per_s": project.derived["tokens_per_s"],
                "samples_per_s": project.derived["samples_per_s"],
                "padding_share": project.derived["padding_share"]}),
                ("plain HF loop (input order)", plain)):
            training.append({"path": path, "precision": precision, **figures})
            print(f"train   {path:40} {precision:14} {figures['tokens_per_s']:8.0f} tokens/s",
                  flush=True)
    loss = loss_change(model_path, examples, tokenizer, args.batch_size, args.max_length, labels)

    def ratio(rows, precision):
        rates = {row["path"].split()[0]: row["tokens_per_s"] for row in rows
                 if row["precision"] == precision}
        return rates["project"] / rates["plain"]

    summary = {f"{kind} {precision}: project / plain": ratio(rows, precision)
               for kind, rows, precisions in (("encode", encoding, PRECISIONS),
                                              ("train", training, timed_precisions))
               for precision in precisions}
    for kind, rows in (("encode", encoding), ("train", training)):
        project = {row["precision"]: row["tokens_per_s"] for row in rows
                   if row["path"].startswith("project")}
        if "bf16 autocast" in project:
            summary[f"{kind} project: bf16 / fp32"] = project["bf16 autocast"] / project["fp32"]
    for name, value in {**summary, **vector_change, **loss}.items():
        print(f"{name:45} {value:.4g}")
    env["load_average_at_end"] = list(os.getloadavg())
    atomic_write_text(args.output, json.dumps(
        {"environment": env, "model_copy": copy, "model_path": str(model_path),
         "settings": vars(args) | {"output": str(args.output)}, "encoding": encoding,
         "training": training, "ratios": summary, "bf16_change": {**vector_change, **loss}},
        indent=1) + "\n")
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
