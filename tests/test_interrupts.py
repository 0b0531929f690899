"""Ctrl-C and kills: a command ends every process it started (notebook kernels, grid workers,
statistics workers), says so in one line and exits with status 130, the last HTML book stays
whole, and an interrupted run is not marked done.

Ctrl-C is sent as a terminal sends it: SIGINT to the command's whole process group."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from stilts_core.paths import REPO_ROOT
from stilts_core.runs.processes import INTERRUPTED, held_signals

# What the copy of the checkout that `stilts book` builds in leaves out (it writes into book/).
LEFT_OUT = {".git", ".venv", ".pytest_cache", ".ruff_cache", "runs", "tests", "data/cache",
            "data/results", "book/_build", "book/generated"}
SMOKE_HYPERPARAMETERS = {"learning_rate": 5e-4, "batch_size": 32, "per_device_batch_size": 32,
                         "epochs": 2, "max_length": 64, "eval_steps": 10}


def _stilts(*args: str, log: Path, cwd: Path = REPO_ROOT, **env: str) -> subprocess.Popen:
    """``stilts ARGS`` in a session of its own, as a terminal starts a command."""
    return subprocess.Popen([sys.executable, "-m", "stilts_core.cli", *args], cwd=cwd,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
                                 **env},
                            stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _kernels(processes) -> list[psutil.Process]:
    def is_kernel(process: psutil.Process) -> bool:
        try:
            return "ipykernel_launcher" in " ".join(process.cmdline())
        except psutil.NoSuchProcess:
            return False

    return [process for process in processes if is_kernel(process)]


def _ctrl_c_once_running(command: subprocess.Popen, log: Path, kernels: int = 1,
                         timeout: float = 300) -> set[psutil.Process]:
    """Wait until ``kernels`` notebook kernels run under the command and have had two seconds
    to start working, press Ctrl-C, and check that the command stops within a few seconds with
    one line and status 130; returns every process seen under it."""
    parent, seen = psutil.Process(command.pid), set()
    deadline, running_since = time.time() + timeout, None
    while running_since is None or time.time() < running_since + 2:
        assert command.poll() is None, log.read_text()[-3000:]
        assert time.time() < deadline, f"no {kernels} kernel(s) started:\n{log.read_text()[-3000:]}"
        seen.update(parent.children(recursive=True))
        if running_since is None and len(_kernels(seen)) >= kernels:
            running_since = time.time()
        time.sleep(0.2)
    before = len(log.read_text())
    os.killpg(command.pid, signal.SIGINT)
    pressed = time.time()
    code = command.wait(timeout=60)
    output = log.read_text()
    assert time.time() - pressed < 10, output[-3000:]
    assert code == 130, output[-3000:]
    assert output.count(INTERRUPTED) == 1 and output.rstrip().endswith(INTERRUPTED), output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    # nothing after Ctrl-C but log lines already on their way (no kernel dying, no error)
    *after, _ = output[before:].strip().splitlines()
    assert all(line.startswith("[") for line in after), output[before:]
    return seen


def _assert_all_ended(seen: set[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(list(seen), timeout=5)  # the killed ones, reaped by init
    assert not alive, [" ".join(process.cmdline()) for process in alive]


def _kill(processes) -> None:
    """A failed test's leftovers: killed, so that they do not outlive the test."""
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.mark.slow
def test_ctrl_c_stops_stilts_run_and_its_kernel_and_the_run_is_not_done(tmp_path,
                                                                     fixtures_root):
    runs = tmp_path / "runs"
    command = _stilts("run", "intermediate", "-p", "task", "mnli", "-p", "model", "tiny-xlmr",
                      "-p", "data_root", str(fixtures_root), "-p", "smoke", "true",
                      log=tmp_path / "run.log", STILTS_RUNS_DIR=str(runs))
    seen = set()
    try:
        seen = _ctrl_c_once_running(command, tmp_path / "run.log")
        _assert_all_ended(seen)
    finally:
        _kill(seen)
    (run,) = runs.iterdir()
    assert (run / "params.json").is_file() and not (run / "DONE").exists()


@pytest.mark.slow
def test_ctrl_c_stops_stilts_grid_run_its_workers_and_their_kernels(tmp_path, fixtures_root):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "name": "tiny", "models": ["tiny-xlmr"], "data_root": str(fixtures_root), "smoke": True,
        "seeds": [1], "intermediate_tasks": ["none", "mnli"], "target_tasks": ["xnli"],
        "hyperparameters": SMOKE_HYPERPARAMETERS}))
    runs = tmp_path / "runs"
    command = _stilts("grid", "run", str(config), "--workers", "2", log=tmp_path / "grid.log",
                      STILTS_RUNS_DIR=str(runs))
    seen = set()
    try:  # the MNLI intermediate run and the baseline's target run, side by side
        seen = _ctrl_c_once_running(command, tmp_path / "grid.log", kernels=2)
        _assert_all_ended(seen)
    finally:
        _kill(seen)
    assert len([*runs.glob("*/params.json")]) == 2 and not [*runs.glob("*/DONE")]


@pytest.mark.slow
def test_ctrl_c_stops_stilts_book_and_leaves_the_last_book_whole(tmp_path):
    def left_out(folder: str, names: list[str]) -> list[str]:
        relative = Path(folder).relative_to(REPO_ROOT)
        return [name for name in names
                if (relative / name).as_posix() in LEFT_OUT or name == "__pycache__"]

    copy = tmp_path / "checkout"
    shutil.copytree(REPO_ROOT, copy, ignore=left_out)
    last = copy / "book" / "_build" / "html" / "index.html"
    last.parent.mkdir(parents=True)
    last.write_text("the last book")
    command = _stilts("book", "--results", str(copy / "data" / "real_results" / "e5_study_v2.parquet"),
                      log=tmp_path / "book.log", cwd=copy, PYTHONPATH=str(copy))
    seen = set()
    try:
        seen = _ctrl_c_once_running(command, tmp_path / "book.log")
        _assert_all_ended(seen)
    finally:
        _kill(seen)
    assert [p.name for p in (copy / "book" / "_build").iterdir()] == ["html"]
    assert [p.name for p in last.parent.iterdir()] == ["index.html"]
    assert last.read_text() == "the last book"


def test_statistics_workers_end_with_the_process_that_started_them(tmp_path):
    """A kernel killed outright (or ended by the book) took its bootstrap workers with it only
    through their parent-death signal; left running, four of them outlived a killed build."""
    script = tmp_path / "bootstrap.py"
    script.write_text(
        "import time\n\n"
        "from stilts_core.analysis import statistics as st\n\n\n"
        "def wait(chunk):\n"
        "    time.sleep(300)\n"
        "    return chunk\n\n\n"
        "st.in_chunks(wait, lambda chunk: chunk, [0, 1], 2, 'waiting')\n")
    parent = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    workers = []
    try:
        deadline = time.time() + 120
        while len(workers) < 2:
            assert parent.poll() is None and time.time() < deadline
            workers = psutil.Process(parent.pid).children()
            time.sleep(0.1)
        parent.kill()
        parent.wait()
        _assert_all_ended(set(workers))
    finally:
        _kill(workers)


def test_a_signal_during_held_steps_takes_effect_after_them():
    steps = []
    with pytest.raises(KeyboardInterrupt), held_signals():
        signal.raise_signal(signal.SIGINT)
        steps.append("finished after the signal")
    assert steps == ["finished after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_failed_or_interrupted_html_build_leaves_the_last_book(tmp_path, monkeypatch):
    """jupyter-book builds elsewhere; its pages replace the last book only once it succeeded."""
    from stilts_core.book import build

    monkeypatch.setattr(build, "book_dir", lambda: tmp_path)
    html = tmp_path / "_build" / "html"
    html.mkdir(parents=True)
    (html / "index.html").write_text("the last book")

    def jupyter_book(outcome: str):
        def run(command: list[str], **kwargs):
            pages = Path(command[command.index("--path-output") + 1]) / "_build" / "html"
            pages.mkdir(parents=True)
            (pages / "index.html").write_text("the new book")
            (pages / "new_page.html").write_text("a page")
            if outcome == "interrupted":
                raise KeyboardInterrupt
            return subprocess.CompletedProcess(command, 0 if outcome == "built" else 1, "", "")

        return run

    for outcome, error in (("interrupted", KeyboardInterrupt), ("failed", build.BookError)):
        monkeypatch.setattr(build.subprocess, "run", jupyter_book(outcome))
        with pytest.raises(error):
            build.build_html()
        assert sorted(p.name for p in html.iterdir()) == ["index.html"]
        assert (html / "index.html").read_text() == "the last book"
    monkeypatch.setattr(build.subprocess, "run", jupyter_book("built"))
    assert build.build_html() == html
    assert sorted(p.name for p in html.iterdir()) == ["index.html", "new_page.html"]
    assert (html / "index.html").read_text() == "the new book"
    assert [p.name for p in html.parent.iterdir()] == ["html"]  # nothing left beside it
