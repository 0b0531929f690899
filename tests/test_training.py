"""Every head learns a small learnable synthetic task on the tiny model; multi-task runs share
one encoder; an interrupted run resumes to the same weights as an uninterrupted one."""

import random
from collections import Counter

import datasets
import pytest

from stilts_core.tasks.registry import get_task
from stilts_core.training.inputs import Hyperparameters, prepare_task
from stilts_core.training.schedule import batch_schedule
from stilts_core.training.trainer import train

NAMES_A = ("Anna", "Marco", "Lena", "Omar", "Sofia", "Jonas", "Clara", "Ivan")
NAMES_B = ("Nina", "Paul", "Yuki", "Amir", "Elena", "Tomas", "Mira", "Hugo")
NOUNS = ("apples", "books", "cats", "cars", "flowers")


def _sentence(rng, name):
    n = rng.randint(2, 19)
    return f"{name} has {n} {rng.choice(NOUNS)} at home.", n


def _classification(rng, count):  # label: which group the name comes from
    rows = []
    for _ in range(count):
        label = rng.randrange(2)
        rows.append({"text": _sentence(rng, rng.choice((NAMES_A, NAMES_B)[label]))[0],
                     "label": label})
    return rows


def _multiple_choice(rng, count):  # the right choice is always a group-A name
    rows = []
    for _ in range(count):
        right, wrong = rng.choice(NAMES_A), rng.choice(NAMES_B)
        label = rng.randrange(2)
        choices = [right, wrong] if label == 0 else [wrong, right]
        rows.append({"context": _sentence(rng, rng.choice(NAMES_A + NAMES_B))[0],
                     "question": "Who is it?", "choices": choices, "label": label})
    return rows


def _tokens(rng, count):  # names are B-PER, numbers B-LOC, everything else O
    rows = []
    for _ in range(count):
        name = rng.choice(NAMES_A + NAMES_B)
        words = _sentence(rng, name)[0].rstrip(".").split() + ["."]
        tags = ["B-PER" if w == name else "B-LOC" if w.isdigit() else "O" for w in words]
        rows.append({"tokens": words, "tags": tags})
    return rows


def _qa(rng, count):  # the answer is the number
    rows = []
    for index in range(count):
        context, n = _sentence(rng, rng.choice(NAMES_A + NAMES_B))
        context = f"Today {context}"
        rows.append({"id": str(index), "context": context, "question": "How many?",
                     "answers": {"text": [str(n)], "answer_start": [context.index(f" {n} ") + 1]}})
    return rows


HEADS = {  # task whose format and labels the head uses, generator, dev metric floor
    "classification": ("sst2", _classification, 75.0),
    "multiple_choice": ("cosmos_qa", _multiple_choice, 75.0),
    "token_classification": ("panx", _tokens, 90.0),
    "extractive_qa": ("squad_v1", _qa, 60.0),
}

FAST = dict(learning_rate=5e-4, batch_size=16, per_device_batch_size=16, epochs=8, max_length=48,
            doc_stride=8, eval_steps=50, early_stopping_patience=30)


def _prepared(format_name, tokenizer, seed=0, train_size=400):
    task_name, generate, _ = HEADS[format_name]
    rng = random.Random(seed)
    train_rows, dev_rows = generate(rng, train_size), generate(rng, 100)
    hyper = Hyperparameters(**{**FAST, "max_length": 96 if format_name == "extractive_qa" else 48})
    return prepare_task(get_task(task_name), datasets.Dataset.from_list(train_rows),
                        datasets.Dataset.from_list(dev_rows), tokenizer, hyper), hyper


@pytest.mark.parametrize("format_name", sorted(HEADS))
def test_each_head_learns_a_small_synthetic_task(format_name, tiny_model_path, tokenizer, tmp_path):
    task_name, _, floor = HEADS[format_name]
    prepared, hyper = _prepared(format_name, tokenizer)
    metrics = train(tiny_model_path, [prepared], tokenizer, tmp_path, hyper, seed=1)
    score = metrics[f"{task_name}_{get_task(task_name).dev_metric}"]
    assert score > floor, metrics
    assert (tmp_path / "encoder" / "config.json").is_file()
    assert (tmp_path / f"model-{task_name}" / "config.json").is_file()


def test_resume_after_a_crash_reaches_the_same_weights(tiny_model_path, tokenizer, tmp_path,
                                                       monkeypatch):
    import safetensors.torch

    from stilts_core.training.schedule import ScheduledBatches

    prepared, hyper = _prepared("classification", tokenizer, train_size=160)
    hyper = hyper.model_copy(update={"max_steps": 24, "eval_steps": 8})
    train(tiny_model_path, [prepared], tokenizer, tmp_path / "straight", hyper, seed=3)

    original = ScheduledBatches.__getitem__
    served = Counter()

    def crash_after_18_batches(self, index):
        served["batches"] += 1
        if served["batches"] > 18:
            raise KeyboardInterrupt("simulated pre-emption")
        return original(self, index)

    monkeypatch.setattr(ScheduledBatches, "__getitem__", crash_after_18_batches)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model_path, [prepared], tokenizer, tmp_path / "resumed", hyper, seed=3)
    monkeypatch.setattr(ScheduledBatches, "__getitem__", original)
    metrics = train(tiny_model_path, [prepared], tokenizer, tmp_path / "resumed", hyper, seed=3)
    assert metrics["resumed_from"] == "checkpoint-16"  # a name: the run deletes the folder

    def weights(run):
        return safetensors.torch.load_file(str(tmp_path / run / "model-sst2" / "model.safetensors"))

    straight, resumed = weights("straight"), weights("resumed")
    assert straight.keys() == resumed.keys()
    for name, tensor in straight.items():
        assert (tensor == resumed[name]).all(), name


def test_multitask_run_shares_one_encoder_and_saves_a_head_per_task(tiny_model_path, tokenizer,
                                                                     tmp_path):
    classification, hyper = _prepared("classification", tokenizer, train_size=120)
    tagging, _ = _prepared("token_classification", tokenizer, train_size=240)
    hyper = hyper.model_copy(update={"epochs": 1})
    metrics = train(tiny_model_path, [classification, tagging], tokenizer, tmp_path, hyper, seed=1)
    assert {"sst2_accuracy", "panx_seqeval", "score"} <= set(metrics)
    assert {name: check["metric"] for name, check in metrics["learning"].items()} == {
        "sst2": "accuracy", "panx": "f1"}  # every dev task's learning check
    assert metrics["scheduled_batches"] == 8 + 15
    for name in ("encoder", "model-sst2", "model-panx"):
        assert (tmp_path / name / "config.json").is_file()


def test_schedule_is_examples_proportional_and_tempered():
    sizes = {"big": [5] * 900, "small": [5] * 100}
    counts = Counter(task for task, _ in batch_schedule(sizes, 10, 1, seed=0))
    assert counts == {"big": 90, "small": 10}
    flat = Counter(task for task, _ in batch_schedule(sizes, 10, 1, seed=0, temperature=1e6))
    assert flat == {"big": 50, "small": 50}  # a very high temperature: uniform over tasks
    capped = Counter(task for task, _ in batch_schedule(sizes, 10, 1, seed=0, cap=100))
    assert capped == {"big": 50, "small": 50}
    one_epoch = batch_schedule({"only": [3, 9, 1, 7] * 25}, 10, 1, seed=0)
    assert sorted(i for _, batch in one_epoch for i in batch) == list(range(100))  # each once
    assert batch_schedule(sizes, 10, 2.5, seed=4) == batch_schedule(sizes, 10, 2.5, seed=4)


def test_training_with_two_processes_runs_under_torchrun(tiny_model_path, tokenizer, tmp_path,
                                                         monkeypatch):
    """The multi-GPU path, on two CPU processes (gloo): each process takes half of every
    effective batch, and rank 0 alone writes the final models and the progress lines."""
    prepared, hyper = _prepared("classification", tokenizer, train_size=160)
    hyper = hyper.model_copy(update={"max_steps": 6, "eval_steps": 3, "per_device_batch_size": 8})
    monkeypatch.setenv("STILTS_NPROC", "2")
    metrics = train(tiny_model_path, [prepared], tokenizer, tmp_path, hyper, seed=3,
                    progress_dir=tmp_path)
    steps = [line.split(", ")[0] for line in (tmp_path / "progress.log").read_text().splitlines()]
    assert len(steps) == len(set(steps))  # one writer
    assert [steps[0], steps[-1]] == [f"[stilts] {tmp_path.name}: train sst2 step {n}/6 "
                                     f"({n / 6:.0%})" for n in (1, 6)]
    assert metrics["processes"] == 2 and metrics["global_step"] == 6
    assert 0 <= metrics["sst2_accuracy"] <= 100
    assert (tmp_path / "model-sst2" / "model.safetensors").is_file()
    assert (tmp_path / "launch" / "result.json").is_file()


def test_resume_skips_a_checkpoint_cut_off_while_it_was_saved(tmp_path):
    from stilts_core.training.trainer import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path / "absent") is None
    for step, state in ((2, "{}"), (10, "{}"), (11, '{"global_st'), (12, None)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


def test_progress_lines_and_logged_epochs_count_the_schedule(tiny_model_path, tokenizer, tmp_path):
    """The schedule holds 3 epochs of 4 steps in one ``Trainer`` pass: logs say epoch 3, not 1;
    the run's progress log gets the first and last step (and one every 30 s between them) with
    step/total, ETA, loss and epoch."""
    import json
    import re

    prepared, hyper = _prepared("classification", tokenizer, train_size=64)
    hyper = hyper.model_copy(update={"epochs": 3, "eval_steps": 6})
    train(tiny_model_path, [prepared], tokenizer, tmp_path / "model", hyper, seed=1,
          progress_dir=tmp_path)
    history = json.loads((tmp_path / "model" / "train_log.json").read_text())
    assert [(entry["step"], entry["epoch"]) for entry in history if "loss" in entry] == [
        (1, 0.25), (3, 0.75), (6, 1.5), (9, 2.25), (12, 3.0)]
    lines = (tmp_path / "progress.log").read_text().splitlines()
    number = r"\d+\.\d+"
    pattern = (rf"\[stilts\] {tmp_path.name}: train sst2 step (\d+)/12 \(\d+%\), \d:\d\d:\d\d "
               rf"elapsed, ETA (\d:\d\d:\d\d), loss {number}(, dev score {number})?, "
               rf"epoch ({number})")
    matches = [re.fullmatch(pattern, line) for line in lines]
    assert all(matches), lines
    assert [(m[1], m[4]) for m in (matches[0], matches[-1])] == [("1", "0.25"), ("12", "3.00")]
    assert all(float(m[4]) == int(m[1]) / 4 for m in matches)
    assert matches[-1][2] == "0:00:00" and matches[-1][3]  # done; the dev score of step 6
