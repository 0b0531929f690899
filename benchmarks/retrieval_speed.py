"""Retrieval throughput: sentences per second for encoding and queries per second for exact
k-nearest-neighbour search at BUCC size. Prints figures; asserts nothing about speed.

    python benchmarks/retrieval_speed.py                       # CPU: tiny model, BUCC-size pool
    python benchmarks/retrieval_speed.py --model large         # GPU: XLM-R-Large-shaped encoder

Encoding uses :func:`stilts_core.evaluation.retrieval.encode` (length-sorted batches, bf16 on GPU) on real
Tatoeba sentences when the shared data pack is present (else fixture sentences), repeated to
``--sentences``. ``large`` is a random-init model with XLM-R Large's shape (24 layers, hidden
1024, vocabulary 250,002): the arithmetic of the real weights. Search uses
:func:`stilts_core.evaluation.retrieval.knn` with k=4 (the BUCC margin's neighbourhood) of ``--queries``
random unit vectors against ``--candidates`` (BUCC de-en has about 400k sentences a side); the
time of the full all-pairs search is extrapolated from the queries measured. The figures, with
device, versions, date and command, go to ``benchmarks/results/retrieval-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers

from stilts_core import logs
from stilts_core.evaluation.retrieval import RepresentationSettings, encode, knn, normalise
from stilts_core.grid.throughput import XLMR_LARGE_CONFIG, environment, xlmr_tokenizer
from stilts_core.models.registry import load_tokenizer, resolve_model
from stilts_core.paths import REPO_ROOT, atomic_write_text, fixtures_dir, shared_data_dir

transformers.logging.set_verbosity_error()


def sentences(count: int) -> list[str]:
    folder = shared_data_dir() / "tatoeba"
    if folder.is_dir():
        pool = [line for path in sorted(folder.glob("tatoeba.*-eng.*"))
                for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        import json
        pool = [json.loads(line)["source_sentence"] for path in (fixtures_dir() / "tatoeba").glob("*")
                for line in path.read_text(encoding="utf-8").splitlines()]
    return [pool[i % len(pool)] for i in range(count)]


def load_model(name: str, device: str):
    """``(model, tokenizer, tokenizer description)``; ``large`` is XLM-R Large's shape with
    random weights and XLM-R's tokenizer where one loads (see ``xlmr_tokenizer``)."""
    from transformers import AutoModel, XLMRobertaConfig

    if name == "large":
        tokenizer, description = xlmr_tokenizer()
        config = XLMRobertaConfig(**XLMR_LARGE_CONFIG)
        return AutoModel.from_config(config).to(device), tokenizer, description
    path = resolve_model(name)
    return AutoModel.from_pretrained(path).to(device), load_tokenizer(path), f"{name}'s own"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-xlmr", help="tiny-xlmr, large, or a model name")
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--candidates", type=int, default=400_000)
    parser.add_argument("--queries", type=int, default=2048)
    parser.add_argument("--dimensions", type=int, default=1024)
    parser.add_argument("--candidate-chunk", type=int, default=65536)
    parser.add_argument("--output", type=Path, help="default: benchmarks/results/retrieval-<device>.json")
    args = parser.parse_args()
    logs.configure()  # the library's progress lines and notes
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer, tokenizer_name = load_model(args.model, device)
    env = environment(shlex.join([Path(sys.executable).name, *sys.argv]), tokenizer_name,
                      "Tatoeba sentences of the shared data pack, else the fixtures")
    print(f"device: {env['device']}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"tokenizer: {tokenizer_name}")
    texts = sentences(args.sentences)
    settings = RepresentationSettings(layer=-1, pooling="mean", max_length=128)
    encode(texts[:args.batch_size], model, tokenizer, settings, args.batch_size)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    encode(texts, model, tokenizer, settings, args.batch_size)
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    encoding = len(texts) / elapsed
    print(f"encoding: {args.model}, {len(texts)} sentences, batch {args.batch_size}: "
          f"{encoding:.1f} sentences/s")

    rng = np.random.default_rng(0)
    candidates = normalise(rng.standard_normal((args.candidates, args.dimensions),
                                               dtype=np.float32))
    queries = normalise(rng.standard_normal((args.queries, args.dimensions), dtype=np.float32))
    knn(queries[:64], candidates, 4, candidate_chunk=args.candidate_chunk)  # warm-up
    started = time.perf_counter()
    knn(queries, candidates, 4, candidate_chunk=args.candidate_chunk)
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    rate = args.queries / elapsed
    print(f"search: k=4, {args.queries} queries x {args.candidates} candidates x "
          f"{args.dimensions} dims: {rate:.1f} queries/s; one direction of a "
          f"{args.candidates} x {args.candidates} BUCC search: {args.candidates / rate / 60:.1f} min")
    slug = "".join(c if c.isalnum() else "-" for c in env["device"].lower()).strip("-")
    output = args.output or REPO_ROOT / "benchmarks" / "results" / f"retrieval-{slug}.json"
    figures = {"model": args.model, "sentences": len(texts), "batch_size": args.batch_size,
               "encoding_sentences_per_s": round(encoding, 1), "search_k": 4,
               "queries": args.queries, "candidates": args.candidates,
               "dimensions": args.dimensions, "search_queries_per_s": round(rate, 1),
               "one_direction_minutes": round(args.candidates / rate / 60, 1)}
    atomic_write_text(output, json.dumps({"environment": env, "figures": figures}, indent=1) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
