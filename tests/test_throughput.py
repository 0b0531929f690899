"""Throughput arithmetic, the results file, the GPU-hour projection and the benchmark's CPU mode.

Nothing here asserts a speed: figures are printed by the benchmark and recorded in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from stilts_core.grid.config import GridConfig
from stilts_core.grid.plan import load_config, plan, plan_table
from stilts_core.grid.throughput import (
    XLMR_LARGE_CONFIG,
    Measurement,
    ModelShape,
    NotProjected,
    TokenCounter,
    peak_bf16_tflops,
    projected_hours,
    read_results,
    scheduled_work_table,
    write_results,
)
from stilts_core.paths import REPO_ROOT
from stilts_core.tasks.registry import get_task
from stilts_core.training.inputs import NAIVE, Efficiency
from stilts_core.training.schedule import batch_schedule


def test_xlmr_large_matmul_parameters_are_the_layer_stack_without_embeddings():
    import torch
    from transformers import AutoModel, XLMRobertaConfig

    with torch.device("meta"):
        encoder = AutoModel.from_config(XLMRobertaConfig(**XLMR_LARGE_CONFIG))
    shape = ModelShape.of(encoder)
    d, ffn = 1024, 4096
    per_layer = 4 * (d * d + d) + (d * ffn + ffn) + (ffn * d + d) + 2 * 2 * d  # + 2 LayerNorms
    assert shape == ModelShape(layers=24, hidden=1024, matmul_parameters=24 * per_layer)
    assert shape.matmul_parameters == 302_309_376
    # one 100-token sequence: 2 N t for the matmuls, 4 L d t^2 for attention scores and mixing
    assert shape.forward_flops(100, 100 ** 2) == 2 * 302_309_376 * 100 + 4 * 24 * 1024 * 100 ** 2


@pytest.mark.parametrize(("name", "peak"), [
    ("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 NVL", 835.0),
    ("NVIDIA H200", 989.4), ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA GeForce GTX 1080", None)])
def test_dense_bf16_peak_is_looked_up_by_device_name(name, peak):
    assert peak_bf16_tflops(name) == peak


def test_token_counter_counts_real_and_padded_tokens_of_what_the_model_sees():
    import torch

    seen = []
    model = torch.nn.Module()
    model.forward = lambda **kwargs: seen.append(kwargs)
    counter = TokenCounter(model)
    choices = torch.tensor([[[1, 1, 1, 0], [1, 1, 0, 0]], [[1, 0, 0, 0], [1, 1, 1, 1]]])
    model(input_ids=choices, attention_mask=choices)
    assert counter.totals() == {"samples": 2, "sequences": 4, "tokens": 3 + 2 + 1 + 4,
                                "squares": 9 + 4 + 1 + 16, "padded_tokens": 16}
    counter.reset()
    assert counter.totals()["tokens"] == 0 and len(seen) == 1


def _measurement(kind: str, fmt: str, samples_per_s: float, **fields) -> Measurement:
    defaults = dict(model="tiny-xlmr", task="t", setting="optimised", max_length=256,
                    per_device_batch_size=8, batch_size=32, efficiency=Efficiency().model_dump(),
                    steps=1, sequences=1, tokens=1, padded_tokens=1, model_flops=0.0)
    return Measurement(kind=kind, format=fmt, seconds=10.0, samples=round(samples_per_s * 10),
                       **{**defaults, **fields})


def test_mfu_is_model_flops_per_second_over_the_stated_peak():
    m = _measurement("train", "classification", 100, model_flops=5e15, peak_tflops=1000.0,
                     tokens=900, padded_tokens=1200)
    assert m.derived["model_tflops_per_s"] == pytest.approx(500.0)
    assert m.derived["mfu"] == pytest.approx(0.5)
    assert m.derived["padding_share"] == pytest.approx(0.25)
    assert _measurement("train", "classification", 100).derived["mfu"] is None


@pytest.fixture()
def measured(tmp_path):
    """A results file with known rates: classification trains 400 features/s and evaluates 1000
    examples/s; QA trains 100 windows/s at 1.5 windows per example."""
    path = tmp_path / "throughput.json"
    write_results(path, {"device": "test device", "date": "today"}, [
        _measurement("train", "classification", 400),
        _measurement("train", "classification", 50, efficiency=NAIVE.model_dump(),
                     setting="naive"),
        _measurement("inference", "classification", 1000),
        _measurement("train", "extractive_qa", 100, max_length=384, batch_size=16,
                     features_per_example=1.5),
        _measurement("inference", "extractive_qa", 200, max_length=384),
    ])
    return path


def test_projection_counts_every_scheduled_batch_and_every_dev_evaluation(measured):
    measurements = read_results(measured)[1]
    config = GridConfig(name="p", models=["tiny-xlmr"], data_root="hub", seeds=[1],
                        intermediate_tasks=["none"], target_tasks=["xnli", "xquad"],
                        retrieval_tasks=[])
    runs = {run.params.get("task"): run for run in plan(config)}
    # XNLI trains on MNLI (392,702) for 2 epochs in micro-batches of 8, 4 per optimiser step,
    # and scores the XNLI English dev set (2,490) every 1,000 steps and at the end
    batches = round(math.ceil(392_702 / 8) * 2)
    evaluations = batches // 4 // 1000 + 1
    expected = (batches * 8 / 400 + evaluations * 2_490 / 1000) / 3600
    assert projected_hours("target", runs["xnli"].params, measurements) == pytest.approx(expected)
    # XQuAD trains on SQuAD 1.1 (87,599 examples, 1.5 windows each) with batches of 16 = 2 x 8
    windows = round(87_599 * 1.5)
    batches = round(math.ceil(windows / 8) * 2)
    expected = (batches * 8 / 100 + (batches // 2 // 1000 + 1) * 10_570 / 200) / 3600
    assert projected_hours("target", runs["xquad"].params, measurements) == pytest.approx(expected)


def test_scheduled_work_counts_the_examples_each_head_type_is_fed():
    config = GridConfig(name="p", models=["tiny-xlmr"], data_root="hub", seeds=[1, 2],
                        intermediate_tasks=["none", "ccg"], target_tasks=["xnli"],
                        retrieval_tasks=[])
    runs = [(run.phase, run.params) for run in plan(config)]
    work = scheduled_work_table(runs)
    batches = round(math.ceil(392_702 / 8) * 2)  # XNLI: MNLI, 2 epochs, micro-batches of 8
    # two seeds x (after the baseline, after CCG); the two CCG runs have no declared size
    assert work.to_dict("records") == [{
        "format": "classification", "max_length": 256, "train_examples": 4 * batches * 8,
        "dev_examples": 4 * (batches // 4 // 1000 + 1) * 2_490}]
    assert work.attrs["runs_not_counted"] == 2


def test_projection_uses_the_measurement_with_the_runs_own_settings(measured):
    measurements = read_results(measured)[1]
    config = GridConfig(name="p", models=["tiny-xlmr"], data_root="hub", seeds=[1],
                        intermediate_tasks=["none"], target_tasks=["xnli"], retrieval_tasks=[],
                        hyperparameters=NAIVE.model_dump())
    run = next(run for run in plan(config) if run.phase == "target")
    fast = GridConfig(name="p", models=["tiny-xlmr"], data_root="hub", seeds=[1],
                      intermediate_tasks=["none"], target_tasks=["xnli"], retrieval_tasks=[])
    fast_run = next(run for run in plan(fast) if run.phase == "target")
    naive_hours = projected_hours("target", run.params, measurements)
    assert naive_hours > 7 * projected_hours("target", fast_run.params, measurements)
    slow = {**fast_run.params, "per_device_batch_size": 16}
    with pytest.raises(NotProjected, match="micro-batch 16"):
        projected_hours("target", slow, measurements)


def test_runs_that_cannot_be_projected_say_why(measured):
    config = GridConfig(name="p", models=["tiny-xlmr"], data_root="hub", seeds=[1],
                        intermediate_tasks=["none", "ccg", "mnli"],
                        target_tasks=["tydiqa", "udpos", "xnli"], retrieval_tasks=["tatoeba"])
    table = plan_table(config, measured).set_index("run_id")
    reasons = dict(zip(table["task"] + ":" + table["phase"], table["projection"], strict=True))
    assert reasons["ccg:intermediate"] == "no declared English train size for 'ccg'"
    assert reasons["tydiqa:target"] == "no declared English train size for 'tydiqa'"
    assert reasons["udpos:target"].startswith("no training measurement of tiny-xlmr on "
                                              "token_classification at length 256")
    assert reasons["tatoeba:retrieval"].endswith("that the benchmark measures")
    projected = table[table["projection"] == ""]
    # MNLI, and XNLI after each of the three upstreams (its own sizes do not depend on them)
    assert set(projected["phase"]) == {"intermediate", "target"} and len(projected) == 1 + 3
    assert (projected["projected_gpu_hours"] > 0).all()


def test_every_training_set_of_the_full_grid_has_a_declared_size_except_ccg_and_tydiqa():
    from stilts_core.grid.throughput import training_stages

    missing = set()
    for run in plan(load_config(REPO_ROOT / "configs" / "xstilts.yaml")):
        if run.phase in ("intermediate", "target"):
            try:
                training_stages(run.phase, run.params)
            except NotProjected as reason:
                missing.add(str(reason))
    assert missing == {"no declared English train size for 'ccg'",
                       "no declared English train size for 'tydiqa'"}
    assert all(get_task(name).sizes.source for name in ("mnli", "snli", "squad_v1", "copa"))


def test_unreadable_throughput_file_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"measurements": []}')
    with pytest.raises(ValueError, match=r"bad.json: not a throughput file .* run it"):
        read_results(path)


def test_without_length_grouping_batches_are_cut_from_the_shuffled_order():
    lengths = list(range(100))
    grouped = batch_schedule({"t": lengths}, 4, 1, seed=3)
    ungrouped = batch_schedule({"t": lengths}, 4, 1, seed=3, length_grouping=False)
    assert sorted(i for _, b in grouped for i in b) == sorted(i for _, b in ungrouped for i in b)
    assert all(b == sorted(b, reverse=True) for _, b in grouped)
    assert not all(b == sorted(b, reverse=True) for _, b in ungrouped)


@pytest.mark.parametrize("task_name", ["mnli", "cosmos_qa", "udpos", "squad_v1"])
def test_naive_collators_pad_every_sequence_to_the_maximum_length(tiny_model_path, task_name):
    from stilts_core.formats import Encoding
    from stilts_core.models.registry import load_tokenizer
    from stilts_core.training.inputs import TrainingTask
    from stilts_core.training.model import collators

    tokenizer = load_tokenizer(tiny_model_path)
    task = get_task(task_name)
    rows = {"classification": {"input_ids": [0, 5, 2], "attention_mask": [1, 1, 1], "labels": 0},
            "multiple_choice": {"input_ids": [[0, 5, 2], [0, 6, 7, 2]],
                                "attention_mask": [[1, 1, 1], [1, 1, 1, 1]], "labels": 1},
            "token_classification": {"input_ids": [0, 5, 2], "attention_mask": [1, 1, 1],
                                     "labels": [-100, 3, -100]},
            "extractive_qa": {"input_ids": [0, 5, 2], "attention_mask": [1, 1, 1],
                              "start_positions": 1, "end_positions": 1}}[task.format]
    prepared = TrainingTask(task.name, task, None, None, Encoding(max_length=48), "head")
    naive = collators([prepared], tokenizer, "max_length")[task.name]([rows, rows])
    dynamic = collators([prepared], tokenizer, "dynamic")[task.name]([rows, rows])
    assert naive["input_ids"].shape[-1] == 48
    assert dynamic["input_ids"].shape[-1] == (4 if task.format == "multiple_choice" else 3)
    assert int(naive["attention_mask"].sum()) == int(dynamic["attention_mask"].sum())


def test_attention_implementation_reaches_encoder_and_heads(tiny_model_path):
    from stilts_core.formats import Encoding
    from stilts_core.training.inputs import TrainingTask
    from stilts_core.training.model import build_model

    task = get_task("mnli")
    prepared = TrainingTask("mnli", task, None, None, Encoding(64, labels=task.labels),
                            "AutoModelForSequenceClassification", num_labels=3)
    for attention in ("eager", "sdpa"):
        model = build_model(tiny_model_path, {"mnli": prepared}, attention)
        assert model.encoder.config._attn_implementation == attention
        assert model.heads["mnli"].config._attn_implementation == attention


def test_benchmark_cpu_mode_prints_every_figure_and_feeds_the_grid_projection(shared_data,
                                                                             tmp_path):
    output = tmp_path / "cpu.json"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "train_throughput.py"), "--cpu",
         "--steps", "1", "--warmup", "1", "--examples", "48", "--sentences", "64",
         "--output", str(output)],
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    environment, table = read_results(output)
    assert {"device", "driver", "torch", "transformers", "date", "command"} <= set(environment)
    assert "--cpu" in environment["command"]
    trained = table[table["kind"] == "train"]
    assert set(trained["format"]) == {"classification", "multiple_choice",
                                      "token_classification", "extractive_qa"}
    assert set(trained["setting"]) == {"naive", "optimised"}
    assert set(trained["max_length"]) == {256, 384}
    assert (table["samples_per_s"] > 0).all() and (table["tokens_per_s"] > 0).all()
    assert set(table["kind"]) == {"train", "inference", "encode"}
    naive = trained[trained["setting"] == "naive"]
    assert (naive["padded_tokens"] == naive["sequences"] * naive["max_length"]).all()
    for head in ("classification", "multiple_choice", "token_classification", "extractive_qa"):
        assert f"-> {head}: " in done.stdout and "the naive baseline's samples/s" in done.stdout
    config = tmp_path / "grid.yaml"
    config.write_text("name: cpu\nmodels: [tiny-xlmr]\ndata_root: hub\nseeds: [1]\n"
                      "intermediate_tasks: [none, mnli]\ntarget_tasks: [xnli, xquad]\n"
                      "retrieval_tasks: []\n")
    plan_run = subprocess.run([sys.executable, "-m", "stilts_core.cli", "grid", "plan",
                               str(config), "--throughput", str(output)],
                              capture_output=True, text=True, cwd=REPO_ROOT)
    assert plan_run.returncode == 0, plan_run.stderr
    assert "training work per head type" in plan_run.stdout
    assert "projected_gpu_hours" in plan_run.stdout and f"projected on {environment['device']}" \
        in plan_run.stdout
    table = plan_table(load_config(config), output)
    training = table[table["phase"].isin(["intermediate", "target"])]
    assert len(training) == 1 + 2 * 2 and (training["projected_gpu_hours"] > 0).all()
    json.loads(output.read_text())  # well-formed, written atomically
