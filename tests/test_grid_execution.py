"""Executing a grid on the tiny offline model: two local workers started at once, a SIGKILL in the
middle of training followed by a rerun, and a real Slurm scheduler through submitit. Every
execution is compared, run for run, with the uninterrupted one."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from stilts_core.cli import main
from stilts_core.grid.executors import run_local, run_slurm
from stilts_core.grid.plan import collect_grid, load_config, plan
from stilts_core.runs.execution import PHASES, is_done
from stilts_core.runs.results import KEY

pytestmark = pytest.mark.slow

HYPERPARAMETERS = {"learning_rate": 5e-4, "batch_size": 32, "per_device_batch_size": 32,
                   "epochs": 2, "max_length": 64, "eval_steps": 10, "early_stopping_patience": 30}
SMALL_RESOURCES = {phase: {"gpus": 0, "cpus": 1, "mem_gb": 2, "time_min": 30} for phase in PHASES}


def _paraphrase_copy(source: Path, target: Path, fields: tuple[str, str]) -> None:
    """A binary pair task from NLI fixture rows: a pair is positive when the premise entails
    the hypothesis (label 0), which the tiny model can learn from names and digits."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open() as rows, target.open("w") as out:
        for line in rows:
            row = json.loads(line)
            out.write(json.dumps({fields[0]: row["premise"], fields[1]: row["hypothesis"],
                                  "label": int(row["label"] == 0)}) + "\n")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, fixtures_root) -> Path:
    """The bundled MNLI/XNLI fixtures plus two tasks made from them: QQP (a second intermediate
    task) and PAWS-X (a second target task, scored in en/de/es/fr)."""
    root = tmp_path_factory.mktemp("grid_data")
    for task in ("mnli", "xnli"):
        shutil.copytree(fixtures_root / task, root / task)
    for split in ("train", "validation"):
        _paraphrase_copy(root / "mnli" / f"{split}-en.jsonl", root / "qqp" / f"{split}-en.jsonl",
                         ("question1", "question2"))
    _paraphrase_copy(root / "mnli" / "train-en.jsonl", root / "pawsx" / "train-en.jsonl",
                     ("sentence1", "sentence2"))
    _paraphrase_copy(root / "xnli" / "validation-en.jsonl",
                     root / "pawsx" / "validation-en.jsonl", ("sentence1", "sentence2"))
    for language in ("en", "de", "es", "fr"):
        _paraphrase_copy(root / "xnli" / f"test-{language}.jsonl",
                         root / "pawsx" / f"test-{language}.jsonl", ("sentence1", "sentence2"))
    return root


def _config(folder: Path, data_root: Path, name: str, seeds: list[int],
            intermediate: list[str]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "models": ["tiny-xlmr"], "data_root": str(data_root), "smoke": True,
        "seeds": seeds, "intermediate_tasks": intermediate, "target_tasks": ["xnli", "pawsx"],
        "hyperparameters": HYPERPARAMETERS, "resources": SMALL_RESOURCES}))
    return path


# One thread per kernel everywhere: workers on the same two cores do not oversubscribe them, and
# every execution does its arithmetic in the same order, so their results can be compared exactly.
THREADS = {"OMP_NUM_THREADS": "1"}


@contextlib.contextmanager
def _runs_in(folder: Path):
    """Runs (and the kernels and Slurm jobs started from here) in ``folder``."""
    saved = {name: os.environ.get(name) for name in ("STILTS_RUNS_DIR", *THREADS)}
    os.environ.update(STILTS_RUNS_DIR=str(folder), **THREADS)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value


def _stilts(config: Path, runs: Path, log: Path, *extra: str) -> subprocess.Popen:
    """``stilts grid run CONFIG`` in a process group of its own (so that a kill takes its
    notebook kernels too, as a node failure or a pre-emption would)."""
    env = {**os.environ, "STILTS_RUNS_DIR": str(runs), **THREADS}
    return subprocess.Popen([sys.executable, "-m", "stilts_core.cli", "grid", "run", str(config),
                             *extra], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(list(KEY)).reset_index(drop=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_root):
    """The small grid (baseline, MNLI and QQP; XNLI and PAWS-X; seeds 1 and 2), run by two
    `stilts grid run` processes started at the same moment on the same runs folder."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    config_path = _config(folder, data_root, "small", [1, 2], ["none", "mnli", "qqp"])
    logs = [folder / f"worker-{n}.log" for n in (1, 2)]
    workers = [_stilts(config_path, folder / "runs", log) for log in logs]
    codes = [worker.wait(timeout=1800) for worker in workers]
    outputs = [log.read_text() for log in logs]
    assert codes == [0, 0], outputs
    config = load_config(config_path)
    with _runs_in(folder / "runs"):
        table = collect_grid(config, folder / "small.parquet")
    return config, folder / "runs", outputs, table


def test_two_workers_at_once_run_every_run_exactly_once(uninterrupted):
    config, runs, outputs, table = uninterrupted
    planned = plan(config)
    assert len(planned) == 4 + 12 + 12  # intermediate, target, zero-shot evaluation
    started = [m for output in outputs
               for m in re.findall(r"\[stilts\] (\S+): (?:running|resuming) ", output)]
    assert sorted(started) == sorted(run.run_id for run in planned)
    assert all(started.count(identifier) == 1 for identifier in started)
    assert all(is_done(runs / run.run_id) for run in planned)
    assert not table.duplicated(list(KEY)).any()
    # XNLI and PAWS-X in four languages x 2 seeds x 3 settings, accuracy; plus the dev rows
    test_rows = table[table["split"] == "test"]
    assert len(test_rows) == 2 * 4 * 2 * 3
    assert set(table["intermediate_task"]) == {"none", "mnli", "qqp"}
    for run in planned:  # one result file per run x task x language
        files = sorted(p.relative_to(runs / run.run_id).as_posix()
                       for p in (runs / run.run_id / "results").rglob("*.csv"))
        if run.phase == "zero_shot_eval":
            task = next(r for r in planned if r.run_id == run.params["target_run"]).params["task"]
            assert files == [f"results/{task}/{lang}.csv" for lang in ("de", "en", "es", "fr")]


def test_sigkill_mid_training_then_rerun_gives_the_same_results(uninterrupted, tmp_path,
                                                                data_root):
    _, _, _, reference = uninterrupted
    config_path = _config(tmp_path, data_root, "killed", [1], ["none", "mnli"])
    runs = tmp_path / "runs"
    worker = _stilts(config_path, runs, tmp_path / "killed.log")
    deadline, checkpoint = time.time() + 600, None
    while checkpoint is None and time.time() < deadline and worker.poll() is None:
        checkpoint = next(runs.glob("*/**/checkpoints/checkpoint-*/trainer_state.json"), None)
        time.sleep(0.1)
    assert checkpoint is not None, (tmp_path / "killed.log").read_text()
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    killed = runs / checkpoint.relative_to(runs).parts[0]
    assert not is_done(killed), "the run finished before the kill; nothing was interrupted"

    config = load_config(config_path)
    with _runs_in(runs):
        report = run_local(config, workers=2)
        assert report.ok, report.summary()
        assert killed.name in report.executed
        table = collect_grid(config, tmp_path / "killed.parquet")
    assert re.search(r'"resumed_from": "[^"]*checkpoint-\d+"', (killed / "metrics.json").read_text())
    ids = {run.run_id for run in plan(config)}
    assert set(table["run_id"]) == ids
    expected = _sorted(reference[reference["run_id"].isin(ids)])
    assert len(expected) == len(table) and not table.duplicated(list(KEY)).any()
    pd.testing.assert_frame_equal(_sorted(table), expected)  # identical metrics, row for row


def test_failed_run_is_reported_with_its_notebook_and_cell_and_blocks_its_dependents(
        tmp_path, data_root, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump({
        "name": "broken", "models": ["tiny-xlmr"], "data_root": str(data_root), "smoke": True,
        "seeds": [1], "intermediate_tasks": ["sst2"], "target_tasks": ["xnli"],
        "hyperparameters": HYPERPARAMETERS}))
    with _runs_in(tmp_path / "runs"):
        assert main(["grid", "run", str(path)]) == 1
    output = capsys.readouterr().out
    failed = re.search(r"FAILED (intermediate-sst2-\w+): (.*)", output)
    assert failed, output
    assert re.search(r"failed in cell \d+ \(execution count \d+: .*\): DataSourceError", output)
    assert f"executed notebook: {tmp_path / 'runs' / failed.group(1) / 'notebook.ipynb'}" in output
    assert re.search(rf"NOT RUN target-xnli-\w+: needs {failed.group(1)}", output)


def _compute(run: Path) -> dict:
    """A run's compute record with its finishing time in seconds since the epoch."""
    record = json.loads((run / "compute.json").read_text())
    record["finished"] = time.mktime(time.strptime(record["finished"], "%Y-%m-%dT%H:%M:%S%z"))
    return record


def _slurm_node_up() -> bool:
    states = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True,
                            text=True)
    return states.returncode == 0 and any(s.strip().rstrip("*") in ("idle", "mix", "alloc")
                                          for s in states.stdout.split())


@pytest.mark.skipif(shutil.which("sinfo") is None,
                    reason="no Slurm here (sinfo is not on PATH); .ci/slurm-localhost starts a "
                           "single-node Slurm as root")
def test_grid_through_submitit_on_a_real_slurm_scheduler(uninterrupted, tmp_path, data_root):
    assert _slurm_node_up(), ("sinfo is installed but no node is up; start one with "
                              ".ci/slurm-localhost (as root) or check slurmctld/slurmd logs")
    _, _, _, reference = uninterrupted
    config = load_config(_config(tmp_path, data_root, "slurm", [1], ["none", "mnli"]))
    runs = tmp_path / "runs"
    with _runs_in(runs):
        report = run_slurm(config, wait=True, folder=tmp_path / "slurm")
        assert report.ok, report.summary()
        table = collect_grid(config, tmp_path / "slurm.parquet")
    planned = plan(config)
    assert set(report.submitted) == {run.run_id for run in planned}
    jobs = pd.read_csv(tmp_path / "slurm" / "jobs.tsv", sep="\t", dtype=str)
    assert set(jobs["run_id"]) == set(report.submitted)
    intermediate = next(run for run in planned if run.phase == "intermediate")
    for run in planned:
        if run.phase == "target" and run.params["intermediate_run"]:
            job = report.submitted[run.run_id]
            script = (tmp_path / "slurm" / job / f"{job}_submission.sh").read_text()
            assert f"--dependency=afterok:{report.submitted[intermediate.run_id]}" in script
            # the scheduler held it until phase (ii) was done
            upstream = _compute(runs / intermediate.run_id)
            record = _compute(runs / run.run_id)
            assert record["finished"] - record["seconds"] >= upstream["finished"] - 1
    expected = _sorted(reference[reference["run_id"].isin(set(report.submitted))])
    pd.testing.assert_frame_equal(_sorted(table), expected)
