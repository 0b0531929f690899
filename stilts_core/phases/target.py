"""Phase (iii): fine-tune on a target task's English training data."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from stilts_core.models.registry import load_tokenizer
from stilts_core.paths import atomic_write_text
from stilts_core.phases.assessment import assess
from stilts_core.phases.common import (
    dev_rows,
    encoder_source,
    load_task_split,
    record_sources,
    start_phase,
    write_outputs,
)
from stilts_core.phases.params import ParameterError
from stilts_core.tasks.registry import get_task
from stilts_core.training.inputs import prepare_task
from stilts_core.training.trainer import train


def target(params: dict, run_dir: str = "") -> dict:
    """Phase (iii): fine-tune on the target task's English training data, stage by stage.

    Starts from the phase-(ii) encoder of ``intermediate_run`` under a fresh head, or from the
    pretrained model for the baseline: the same code either way. A task with several stages
    (XCOPA: SIQA, then COPA) carries its head from one stage to the next; a finished stage is
    not redone when the run resumes.
    """
    path, p = start_phase("target", params, run_dir)
    task = get_task(p.task)
    init_path, intermediate_task, _ = encoder_source(p.model, p.intermediate_run,
                                                     "intermediate_run")
    refs = [ref for stage in task.training for ref in (stage.train, stage.dev)]
    provenance = assess(path, p.model, p, [(get_task(r.task), r.split, r.language) for r in refs],
                         [p.intermediate_run], None if p.intermediate_run else init_path).label
    tokenizer = load_tokenizer(init_path)
    hyper = p.hyperparameters()
    record_sources(path, p, [get_task(ref.task) for ref in refs])
    metrics = {"hyperparameters": hyper.model_dump(), "stages": []}
    for number, stage in enumerate(task.training, start=1):
        stage_dir = path / "stages" / f"{number}-{stage.train.task}"
        if not (stage_dir / "STAGE_DONE").is_file():
            train_examples = load_task_split(get_task(stage.train.task), stage.train.split,
                                             stage.train.language, p, "train")
            dev = load_task_split(get_task(stage.dev.task), stage.dev.split, stage.dev.language,
                                  p, "eval")
            prepared = prepare_task(task, train_examples, dev, tokenizer, hyper,
                                    p.max_length_for(task))
            result = train(init_path, [prepared], tokenizer, stage_dir, hyper, p.seed,
                           new_heads=number == 1, progress_dir=path)
            atomic_write_text(stage_dir / "stage_metrics.json", json.dumps(result, default=str))
            atomic_write_text(stage_dir / "STAGE_DONE", "done\n")
        stage_metrics = json.loads((stage_dir / "stage_metrics.json").read_text())
        if "learning" not in stage_metrics:
            raise ParameterError(
                f"{stage_dir / 'stage_metrics.json'} has no field 'learning' (its dev score's "
                "interval and floor): the stage was trained by a version that did not record "
                "them. Delete that stage folder or run again with --force")
        metrics["stages"].append(stage_metrics)
        init_path = str(stage_dir / f"model-{task.name}")
    final = metrics["stages"][-1]
    for source, name in ((Path(init_path), "model"), (stage_dir / "encoder", "encoder")):
        if source.is_dir():  # moved, not copied: a rerun after a crash finds it moved already
            shutil.rmtree(path / name, ignore_errors=True)
            os.replace(source, path / name)
    value = final[f"{task.name}_{task.dev_metric}"]
    metrics[f"dev_{task.dev_metric}"] = value
    rows = dev_rows(p.model, intermediate_task, task.name, task.training[-1].dev.language, p.seed,
                    provenance, path, final["learning"][task.name])
    write_outputs(path, metrics, rows)
    return metrics
