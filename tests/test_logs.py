"""Progress lines go through logging: one handler on the ``stilts_core`` logger, set up by the
entry points, readable in a terminal and in a Slurm log."""

import io
import logging
import os
import re

import pytest

from stilts_core import logs
from stilts_core.cli import build_parser

logger = logging.getLogger("stilts_core.grid.executors")


@pytest.fixture
def fresh_logging(monkeypatch):
    """The ``stilts_core`` logger without our handler, and restored afterwards."""
    root = logging.getLogger(logs.ROOT)
    saved = root.handlers[:], root.level
    root.handlers = [h for h in root.handlers if not isinstance(h, logs.CurrentStdout)]
    monkeypatch.delenv(logs.LEVEL_VARIABLE, raising=False)
    yield root
    root.handlers, root.level = saved


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_line_is_short_in_a_terminal_and_dated_with_its_module_in_a_slurm_log(
        fresh_logging, monkeypatch):
    logs.configure()
    terminal, recorded = Terminal(), io.StringIO()
    monkeypatch.setattr("sys.stdout", terminal)
    logger.info("[stilts] grid smoke: run 1/4 (intermediate)")
    monkeypatch.setattr("sys.stdout", recorded)  # a Slurm job's output is a file
    logger.info("[stilts] grid smoke: run 2/4 (target)")
    assert re.fullmatch(r"\d\d:\d\d:\d\d \[stilts\] grid smoke: run 1/4 \(intermediate\)\n",
                        terminal.getvalue())
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO stilts_core\.grid\.executors: "
                        r"\[stilts\] grid smoke: run 2/4 \(target\)\n", recorded.getvalue())


def test_a_worker_names_itself_and_configuring_again_adds_no_second_handler(
        fresh_logging, monkeypatch):
    logs.configure()
    logs.configure(origin="worker 2")
    assert sum(isinstance(h, logs.CurrentStdout) for h in fresh_logging.handlers) == 1
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    logger.info("[stilts] run-a: done in 3s")
    assert out.getvalue().endswith("executors: [worker 2] [stilts] run-a: done in 3s\n")


def test_the_level_comes_from_the_option_or_the_environment_and_reaches_child_processes(
        fresh_logging, monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setenv(logs.LEVEL_VARIABLE, "warning")
    logs.configure()
    logger.info("hidden")
    logger.warning("shown")
    assert "hidden" not in out.getvalue() and "shown" in out.getvalue()
    logs.configure("debug")
    assert fresh_logging.level == logging.DEBUG
    assert os.environ[logs.LEVEL_VARIABLE] == "DEBUG"  # grid workers and kernels inherit it
    monkeypatch.setenv(logs.LEVEL_VARIABLE, "loud")
    with pytest.raises(ValueError, match=r"'LOUD' \(from STILTS_LOG_LEVEL\) is not one of DEBUG"):
        logs.configure()
    assert build_parser().parse_args(["--log-level", "warning", "fixtures"]).log_level == "WARNING"
