"""Progress inside a run: throttled lines in the run's progress log, passed on to the log of the
process executing the run, and the last one shown by ``stilts grid status``."""

import threading

import pytest

from stilts_core.cli import main
from stilts_core.grid.plan import load_config, plan
from stilts_core.paths import configs_dir
from stilts_core.runs import execution
from stilts_core.runs.execution import RunError, execute_phase, mark_done, run_lock, run_path
from stilts_core.training.progress import (
    PROGRESS,
    Progress,
    follow,
    last_line,
    write_line,
)


def test_a_loop_writes_its_first_and_last_step_and_otherwise_every_30_seconds(tmp_path):
    now = [100.0]
    progress = Progress(tmp_path / "target-xnli-abc", "train step", 10, done=2,
                        clock=lambda: now[0])
    (tmp_path / "target-xnli-abc").mkdir()
    for step in range(3, 11):
        now[0] += 10
        progress.update(step, f"loss {1 / step:.4f}")
    lines = (tmp_path / "target-xnli-abc" / PROGRESS).read_text().splitlines()
    # steps 3 (first), 6 (30 s on), 9 (30 s on), 10 (last); pace: 1 step per 10 s since step 2
    assert lines == [
        "[stilts] target-xnli-abc: train step 3/10 (30%), 0:00:10 elapsed, ETA 0:01:10, "
        "loss 0.3333",
        "[stilts] target-xnli-abc: train step 6/10 (60%), 0:00:40 elapsed, ETA 0:00:40, "
        "loss 0.1667",
        "[stilts] target-xnli-abc: train step 9/10 (90%), 0:01:10 elapsed, ETA 0:00:10, "
        "loss 0.1111",
        "[stilts] target-xnli-abc: train step 10/10 (100%), 0:01:20 elapsed, ETA 0:00:00, "
        "loss 0.1000"]
    assert last_line(tmp_path / "target-xnli-abc")[0] == lines[-1]
    assert last_line(tmp_path) is None


def test_followed_lines_reach_the_log_while_the_run_goes_on_and_only_once(tmp_path):
    write_line(tmp_path, "from an earlier attempt")
    logged, arrived = [], threading.Event()

    def log(line):
        logged.append(line)
        arrived.set()

    with follow(tmp_path, log, every=0.01):
        with open(tmp_path / PROGRESS, "a") as file:
            file.write(f"[stilts] {tmp_path.name}: step 1\n[stilts] {tmp_path.name}: st")
        assert arrived.wait(5)
        assert logged == [f"[stilts] {tmp_path.name}: step 1"]  # a half-written line waits
        with open(tmp_path / PROGRESS, "a") as file:
            file.write("ep 2\n")
    assert logged == [f"[stilts] {tmp_path.name}: step 1", f"[stilts] {tmp_path.name}: step 2"]


def test_executing_a_run_passes_its_progress_lines_to_the_log_with_the_run_id(tmp_path,
                                                                              monkeypatch, caplog):
    monkeypatch.setenv("STILTS_RUNS_DIR", str(tmp_path))

    def notebook(source, output, parameters):
        write_line(parameters["run_dir"], "train step 1/4 (25%)")

    monkeypatch.setattr(execution, "execute_notebook", notebook)
    caplog.set_level("INFO", logger="stilts_core")
    with pytest.raises(RunError, match="without writing"):
        execute_phase("alignment", {"task": "tatoeba"})
    identifier = execution.run_id("alignment", {"task": "tatoeba"})
    assert (execution.__name__, 20, f"[stilts] {identifier}: train step 1/4 (25%)") in (
        caplog.record_tuples)


def test_grid_status_shows_the_last_progress_line_of_running_and_partial_runs(tmp_path,
                                                                              monkeypatch, capsys):
    monkeypatch.setenv("STILTS_RUNS_DIR", str(tmp_path))
    config = configs_dir() / "smoke.yaml"
    running, partial, done = (run.run_id for run in plan(load_config(config))[:3])
    for identifier in (running, partial, done):
        run_path(identifier).mkdir(parents=True, exist_ok=True)
        write_line(run_path(identifier), "train step 1/8 (12%)")
        write_line(run_path(identifier), f"{identifier} step 8/8 (100%), loss 0.5")
    mark_done(run_path(done))
    with run_lock(run_path(running)):
        assert main(["grid", "status", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("grid smoke: ") and "running 1, partial 1" in out[0]
    for state, identifier in (("running", running), ("partial", partial)):
        at = out.index(f"{state:<8} {identifier}")
        assert out[at + 1].startswith(f"{'':<8} [stilts] {identifier}: {identifier} step 8/8")
        assert out[at + 1].endswith(" ago)")
    at = out.index(f"{'done':<8} {done}")
    assert not out[at + 1].startswith(" ")
