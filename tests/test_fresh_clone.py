"""The README's main command from a fresh clone in a new directory, as a new user runs it.

(`make test`, the other README command, is what CI itself runs on a fresh clone.)
"""

import os
import shutil
import subprocess

import pytest

from stilts_core.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def test_make_book_from_a_fresh_clone_builds_the_book(tmp_path):
    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("git and make are needed to clone and build")
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STILTS_", "VIRTUAL_ENV"))}
    finished = subprocess.run(["make", "book"], cwd=clone, env=env, capture_output=True,
                              text=True, timeout=1200)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    html = clone / "book" / "_build" / "html"
    intro = (html / "intro.html").read_text()
    assert "This build shows a smoke run" in intro
    results = (html / "generated" / "results.html").read_text()
    assert "Smoke run" in results and "pipeline check, not a finding" in results
    assert "<img" in results  # the seaborn figure is rendered from the results table
    assert (clone / "data" / "results" / "smoke.parquet").is_file()
