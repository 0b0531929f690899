"""The processes a command starts end with it.

Ctrl-C reaches only the terminal's foreground process group, but jupyter_client starts every
notebook kernel in a session of its own, and statistics workers are children of those kernels:
the command's own process has to end them (:func:`stopping_on_signals`). A command killed outright
(SIGKILL) cannot, so worker processes also end when their parent does (:func:`die_with_parent`;
kernels already do, through ipykernel's parent poller).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

import psutil

INTERRUPTED = "interrupted; the next run resumes"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """In a child process: be killed when ``parent`` (the process that started it) ends, or
    exit now if it already has (it died before the request was made)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def worker_start(parent: int) -> None:
    """Initializer of a command's worker processes: Ctrl-C, which the terminal sends them too,
    is their parent's to handle (it ends them, without a traceback from each), and they end
    with their parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)


def end_children() -> None:
    """Kill every descendant of this process. SIGKILL, since nothing they hold needs saving (a
    run resumes from its last complete checkpoint), and at once, without waiting for any to go:
    threads of this process that see their kernel die would start the next notebook. The whole
    tree is listed before the first kill, since a process that dies hands its children to
    init, out of reach; then once more, for any started meanwhile (one started later still
    ends with this process: kernels through ipykernel's parent poller)."""
    me = psutil.Process()
    for _ in range(2):
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):  # it ended meanwhile
                child.kill()


def _stop(signum, frame) -> None:
    """End the children, say so in one line, and exit with 128 + the signal's number. Nothing
    else runs on the way out, so an interrupted run never reaches its ``DONE`` marker."""
    for each in STOP_SIGNALS:  # a second Ctrl-C does not cut the cleanup short
        signal.signal(each, signal.SIG_IGN)
    end_children()
    with contextlib.suppress(ValueError, OSError, RuntimeError):  # interrupted inside a write
        sys.stdout.flush()
    os.write(sys.stderr.fileno(), f"{INTERRUPTED}\n".encode())
    os._exit(128 + signum)


@contextlib.contextmanager
def stopping_on_signals():
    """Inside, Ctrl-C (SIGINT) or SIGTERM ends this process and every process it started; the
    handlers of before are restored after (a caller in a test process keeps its own)."""
    previous = {each: signal.signal(each, _stop) for each in STOP_SIGNALS}
    try:
        yield
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)


@contextlib.contextmanager
def held_signals():
    """Hold SIGINT and SIGTERM back while steps that must not be cut in two run (moving the new
    book into place); one received meanwhile takes effect after them. Main thread only."""
    held = []
    previous = {each: signal.signal(each, lambda signum, frame: held.append(signum))
                for each in STOP_SIGNALS}
    try:
        yield
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)
        for each in held:
            signal.raise_signal(each)
