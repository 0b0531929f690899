"""Progress lines through :mod:`logging`. Every module logs to its own logger
(``logging.getLogger(__name__)``, under ``stilts_core``); nothing is shown until the entry point
calls :func:`configure`: the command line, each worker of a grid, each phase notebook.

One handler on the ``stilts_core`` logger writes to the standard output of the moment (a
terminal, a Slurm job's log, a notebook cell, pytest's capture). In a terminal a line is the time
and the message; anywhere else (a Slurm log, a file, a notebook) it carries the date, the level
and the module as well, so a log read later still says when and where each line came from.
``STILTS_LOG_LEVEL`` (or ``stilts --log-level``) sets the level; the default is INFO."""

from __future__ import annotations

import logging
import os
import sys

ROOT = "stilts_core"
LEVEL_VARIABLE = "STILTS_LOG_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TERMINAL = "%(asctime)s {origin}%(message)s"
RECORDED = "%(asctime)s %(levelname)s %(name)s: {origin}%(message)s"


class CurrentStdout(logging.StreamHandler):
    """A handler on whatever ``sys.stdout`` is when a line is emitted, formatted for it; a line
    starts with ``[origin]`` where the process has one (a grid worker's name)."""

    def __init__(self) -> None:
        super().__init__()
        self.origin = ""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler sets it; the property always reads sys.stdout
        pass

    def format(self, record: logging.LogRecord) -> str:
        isatty = getattr(sys.stdout, "isatty", None)
        terminal = isatty is not None and isatty()
        origin = f"[{self.origin}] " if self.origin else ""
        formatter = logging.Formatter((TERMINAL if terminal else RECORDED).format(origin=origin),
                                      datefmt="%H:%M:%S" if terminal else "%Y-%m-%d %H:%M:%S")
        return formatter.format(record)


def configure(level: str | None = None, origin: str | None = None) -> logging.Logger:
    """Show the ``stilts_core`` loggers' lines at ``level`` (default: ``$STILTS_LOG_LEVEL``, else
    INFO), each line after ``[origin]`` when one is given. The level is exported in
    ``$STILTS_LOG_LEVEL``, so the processes this one starts (grid workers, notebook kernels) log
    at the same level. Calling it again changes the level and never adds a second handler."""
    chosen = (level or os.environ.get(LEVEL_VARIABLE) or "INFO").upper()
    if chosen not in LEVELS:
        raise ValueError(f"log level {chosen!r} (from {'--log-level' if level else LEVEL_VARIABLE})"
                         f" is not one of {', '.join(LEVELS)}")
    root = logging.getLogger(ROOT)
    handler = next((h for h in root.handlers if isinstance(h, CurrentStdout)), None)
    if handler is None:
        handler = CurrentStdout()
        root.addHandler(handler)
    if origin is not None:
        handler.origin = origin
    root.setLevel(chosen)
    os.environ[LEVEL_VARIABLE] = chosen
    return root
