"""How far a run has got, in lines a person reads while it runs.

A phase appends them to ``<run>/progress.log`` (training steps, languages scored, sentences
encoded); the process that executes the run passes new ones on to its own output, so they reach
the terminal and Slurm logs, and ``stilts grid status`` shows a running run's last one. They go
through a file because a phase runs in a notebook kernel, whose output lands in the notebook.
Each line names its run: ``[stilts] <run id>: train step 120/440 (27%), 0:02:10 elapsed, ETA
0:05:50, loss 0.6931, epoch 3.27``.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from collections.abc import Callable
from pathlib import Path

PROGRESS = "progress.log"
EVERY_SECONDS = 30.0  # a loop writes its first and last step, and between them at most this often
FOLLOW_SECONDS = 5.0


def duration(seconds: float) -> str:
    """``0:02:10``."""
    return str(datetime.timedelta(seconds=round(seconds)))


def write_line(run_dir: Path, message: str) -> None:
    """Append ``[stilts] <run id>: <message>`` to the run's progress log."""
    with open(Path(run_dir) / PROGRESS, "a", encoding="utf-8") as log:
        log.write(f"[stilts] {Path(run_dir).name}: {message}\n")


class Progress:
    """One loop of a run (``train step``, ``score xnli language``) over ``total`` steps, of which
    ``done`` were done before (a resumed run; the ETA counts only this attempt's pace)."""

    def __init__(self, run_dir: Path, what: str, total: int, done: int = 0,
                 every: float = EVERY_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.run_dir, self.what, self.total, self.every, self.clock = run_dir, what, total, every, clock
        self.first, self.started, self.written = done, clock(), None

    def due(self, done: int) -> bool:
        """Whether step ``done`` gets a line: the first, the last, or ``every`` seconds on."""
        return (self.written is None or done >= self.total
                or self.clock() - self.written >= self.every)

    def update(self, done: int, *details: str) -> None:
        if self.due(done):
            self.write(done, *details)

    def write(self, done: int, *details: str) -> None:
        """The line of step ``done``: step/total, elapsed time, ETA, then ``details``."""
        now = self.clock()
        elapsed = now - self.started
        pace = (done - self.first) / elapsed if elapsed > 0 and done > self.first else 0.0
        eta = duration((self.total - done) / pace) if pace else "unknown"
        write_line(self.run_dir, ", ".join([
            f"{self.what} {done}/{self.total} ({done / max(self.total, 1):.0%})",
            f"{duration(elapsed)} elapsed", f"ETA {eta}", *details]))
        self.written = now


def last_line(run_dir: Path) -> tuple[str, float] | None:
    """The run's last progress line and its age in seconds, or None if it has written none."""
    path = Path(run_dir) / PROGRESS
    if not path.is_file():
        return None
    with open(path, "rb") as log:
        log.seek(max(0, path.stat().st_size - 4096))
        lines = log.read().decode("utf-8", errors="replace").splitlines()
    if not lines or not lines[-1].strip():
        return None
    return lines[-1], time.time() - path.stat().st_mtime


@contextlib.contextmanager
def follow(run_dir: Path, log: Callable[[str], None], every: float = FOLLOW_SECONDS):
    """While the block runs, pass each line appended to the run's progress log to ``log``,
    looking every ``every`` seconds and once more at the end; lines of earlier attempts are
    not repeated."""
    path = Path(run_dir) / PROGRESS
    offset = path.stat().st_size if path.is_file() else 0

    def catch_up() -> None:
        nonlocal offset
        if not path.is_file():
            return
        with open(path, "rb") as file:
            file.seek(offset)
            complete = file.read().rpartition(b"\n")[0]
        if complete:
            offset += len(complete) + 1
            for line in complete.decode("utf-8", errors="replace").splitlines():
                log(line)

    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(every):
            catch_up()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        catch_up()
