"""The multi-task batch schedule: how many batches each task gets per epoch (examples-proportional
mixing with a temperature), batches of similar lengths together, and the shuffled order."""

from __future__ import annotations

import math
import random

from stilts_core.training.inputs import TrainingTask

MEGABATCH = 50  # batches sorted by length together, as in HF's LengthGroupedSampler


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
