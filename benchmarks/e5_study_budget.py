"""Wall-time estimate of a CPU grid (e.g. ``configs/e5_study_v2.yaml``) before running it.

    nice -n 5 python benchmarks/e5_study_budget.py configs/e5_study_v2.yaml \
        [--tokenizer DIR] [--train-rate 470] [--encode-rate 1800] [--startup 8] [--workers 2]

For every planned run, the examples it reads are loaded exactly as the run loads them (the same
sampled pack splits) and encoded by the project's own feature encoders with the model's
tokenizer; the tokens its batches hold are then divided by measured speeds: ``--train-rate``
tokens/s for training (forward, backward, optimiser) and ``--encode-rate`` for every forward-only
pass (dev scoring, zero-shot evaluation, retrieval, alignment). Multiple-choice examples count
each choice at the group's longest length, as batches pad them. ``--startup`` seconds per run
(kernel, imports, model load and save) are spread over ``--workers`` processes; the rates are
machine-wide, so compute time does not shrink with workers. Dependency stalls are not modelled.
The default rates are multilingual-e5-small fp32 on this 2-core machine when idle
(benchmarks/RESULTS.md). Prints one line per phase and task; asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stilts_core import logs
from stilts_core.grid.plan import load_config, plan
from stilts_core.phases.common import load_task_split  # noqa: E402
from stilts_core.phases.params import PARAMS  # noqa: E402
from stilts_core.tasks.registry import get_task  # noqa: E402
from stilts_core.training.inputs import Hyperparameters, prepare_task  # noqa: E402


def feature_tokens(features) -> int:
    """Tokens a model processes for encoded features (choices padded to the group's longest)."""
    total = 0
    for ids in features["input_ids"]:
        total += len(ids) * max(len(c) for c in ids) if ids and isinstance(ids[0], list) else len(ids)
    return total


class Counter:
    """Tokens of (task, split, language, cap, length) reads, each encoded once."""

    def __init__(self, tokenizer):
        self.tokenizer, self.cache = tokenizer, {}

    def split(self, task, split: str, language: str, p, purpose: str,
              max_length: int) -> tuple[int, int]:
        """(tokens, examples) of one split as the run reads it."""
        cap = p.max_train_examples if purpose == "train" else p.max_eval_examples
        key = (task.name, split, language, cap, max_length, p.smoke)
        if key not in self.cache:
            examples = load_task_split(task, split, language, p, purpose)
            if task.format == "bitext_retrieval":
                tokens = sum(len(ids) for side in ("text", "text_pair")
                             for ids in self.tokenizer(list(examples[side]), truncation=True,
                                                       max_length=max_length)["input_ids"])
            else:
                prepared = prepare_task(task, examples, None, self.tokenizer,
                                        Hyperparameters(max_length=max_length), max_length)
                tokens = feature_tokens(prepared.train)
            self.cache[key] = tokens, len(examples)
        return self.cache[key]


def run_seconds(run, counter: Counter, train_rate: float, encode_rate: float,
                target_params: dict) -> tuple[float, float]:
    """(training seconds, forward-only seconds) of one planned run."""
    p = PARAMS[run.phase](**run.params)
    if run.phase in ("intermediate", "target"):
        hyper = p.hyperparameters()
        stages = []  # per stage: training reads, dev reads
        if run.phase == "intermediate":
            reads = []
            for task in p.member_tasks():
                length = p.max_length_for(task)
                combined = task.combined_with if p.combined_with is None else p.combined_with
                reads += [(get_task(name), "train", "en", "train", length)
                          for name in (task.name, *combined)]
                reads.append((task, "validation", "en", "eval", length))
            stages.append(reads)
        else:
            task = get_task(p.task)
            length = p.max_length_for(task)
            stages += [[(get_task(s.train.task), s.train.split, s.train.language, "train", length),
                        (get_task(s.dev.task), s.dev.split, s.dev.language, "eval", length)]
                       for s in task.training]
        train_seconds = forward_seconds = 0.0
        for reads in stages:
            counted = [(purpose, *counter.split(task, split, language, p, purpose, length))
                       for task, split, language, purpose, length in reads]
            examples = sum(n for purpose, _, n in counted if purpose == "train")
            steps = math.ceil(examples / hyper.per_device_batch_size) * hyper.epochs
            evaluations = int(steps // hyper.accumulation_steps() // hyper.eval_steps) + 1
            train_seconds += hyper.epochs * sum(t for purpose, t, _ in counted
                                                if purpose == "train") / train_rate
            forward_seconds += evaluations * sum(t for purpose, t, _ in counted
                                                 if purpose == "eval") / encode_rate
        return train_seconds, forward_seconds
    if run.phase == "zero_shot_eval":
        trained = PARAMS["target"](**target_params[p.target_run])
        task = get_task(trained.task)
        length = trained.max_length_for(task)
        languages = p.languages or list(task.evaluation_languages)
        tokens = sum(counter.split(task, task.evaluation_split, language, p, "eval", length)[0]
                     for language in languages)
        return 0.0, tokens / encode_rate
    task = get_task(p.task)
    languages = [lang for lang in (p.languages or task.evaluation_languages) if lang != "en"]
    tokens = sum(counter.split(task, "test", language, p, "eval", p.max_length)[0]
                 for language in languages)
    return 0.0, tokens / encode_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("--tokenizer", help="tokenizer folder; default: the grid's model's")
    parser.add_argument("--train-rate", type=float, default=470.0)
    parser.add_argument("--encode-rate", type=float, default=1800.0)
    parser.add_argument("--startup", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    logs.configure()  # the library's progress lines and notes

    from stilts_core.models.registry import load_tokenizer, resolve_model

    config = load_config(args.config)
    tokenizer = load_tokenizer(args.tokenizer or resolve_model(config.models[0]))
    runs = plan(config)
    target_params = {run.run_id: run.params for run in runs if run.phase == "target"}
    counter = Counter(tokenizer)
    totals = defaultdict(lambda: [0, 0.0, 0.0])
    for run in runs:
        train, forward = run_seconds(run, counter, args.train_rate, args.encode_rate,
                                     target_params)
        task = run.params.get("task") or target_params[run.params["target_run"]]["task"]
        entry = totals[(run.phase, task)]
        entry[0] += 1
        entry[1] += train
        entry[2] += forward
    print(f"grid {config.name}: {len(runs)} runs; training {args.train_rate:g} tokens/s, "
          f"forward {args.encode_rate:g} tokens/s, start-up {args.startup:g} s per run, "
          f"{args.workers} workers")
    print(f"{'phase':<15} {'task':<15} {'runs':>5} {'train min':>10} {'forward min':>12}")
    for (phase, task), (count, train, forward) in sorted(totals.items()):
        print(f"{phase:<15} {task:<15} {count:>5} {train / 60:>10.1f} {forward / 60:>12.1f}")
    compute = sum(train + forward for _, train, forward in totals.values())
    startup = len(runs) * args.startup / args.workers
    print(f"compute {compute / 60:.1f} min + start-up {startup / 60:.1f} min = "
          f"{(compute + startup) / 60:.1f} min wall (estimate)")


if __name__ == "__main__":
    main()
