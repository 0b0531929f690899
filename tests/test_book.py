"""The book as a reader gets it: the README's main command from a fresh clone in a new
directory, then every page opened in headless Chromium. Screenshots of the landing page and the
claims chapter are saved under ``tests/output/book/`` for a person to look at.

(`make test`, the other README command, is what CI itself runs on a fresh clone.)
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from stilts_core.analysis.result_sets import load_book_config
from stilts_core.analysis.statistics import MAIN_FORMULA
from stilts_core.paths import REPO_ROOT

SCREENSHOTS = REPO_ROOT / "tests" / "output" / "book"
# As the machine's probe starts it: no sandbox as root, and no background connections, which a
# closed network refuses many at a time.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LOCAL_HOST = "127.0.0.1"


def test_the_plan_states_the_numbers_the_notebooks_use():
    """question.md promises what the build does: the plan's formula, index, test level and
    replicates are read from the book configuration that the chapters take them from."""
    plan = load_book_config().plan
    question = " ".join((REPO_ROOT / "book" / "question.md").read_text(encoding="utf-8").split())
    assert f"`{plan.formula}`" in question
    assert plan.formula == MAIN_FORMULA  # the code's default is the plan's model
    assert f"`{plan.index}`" in question
    assert f"α = {plan.alpha}" in question
    assert f"({plan.bootstrap_reps:,} replicates at full scale)" in question
    assert f"({plan.power_reps:,} simulated result sets per slope at full scale)" in question
    for index in plan.compare[1:]:
        assert f"`{index}`" in question


@pytest.fixture(scope="module")
def fresh_book(tmp_path_factory) -> Path:
    """``make book`` in a fresh clone; the HTML folder. ``STILTS_TEST_BOOK_HTML`` points the
    tests at a book already built instead (a quicker loop while editing chapters)."""
    if os.environ.get("STILTS_TEST_BOOK_HTML"):
        return Path(os.environ["STILTS_TEST_BOOK_HTML"])
    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("git and make are needed to clone and build")
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    clone = tmp_path_factory.mktemp("book") / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STILTS_", "VIRTUAL_ENV"))}
    finished = subprocess.run(["make", "book"], cwd=clone, env=env, capture_output=True,
                              text=True, timeout=1800)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert (clone / "data" / "results" / "smoke.parquet").is_file()
    return clone / "book" / "_build" / "html"


@pytest.mark.slow
def test_make_book_from_a_fresh_clone_labels_every_result_set(fresh_book):
    intro = (fresh_book / "intro.html").read_text()
    assert "Kinds of evidence" in intro and "runs the smoke grid" in intro
    chapter = (fresh_book / "generated" / "results.html").read_text()
    assert "results-smoke.html" in chapter and "Smoke run" in chapter
    results = (fresh_book / "generated" / "results-smoke.html").read_text()
    assert "Smoke run" in results and "pipeline check, not a finding" in results
    assert "<img" in results  # the seaborn figures are rendered from the results table
    real = (fresh_book / "generated" / "results-e5_study_v2.html").read_text()
    assert ">Reduced-scale real run</strong>" in real and "Alignment gain per language" in real
    section = real.split('id="alignment-gain-per-language"')[1].split("</section>")[0]
    assert "training language" in section and "<img" in section  # the table and the map
    for page in ("mixed_effects", "power"):  # the committed real set is analysed, no simulation
        assert not (fresh_book / "generated" / f"{page}-simulation-all.html").exists()
        for outcome in ("all", "transfer", "alignment"):
            text = (fresh_book / "generated" / f"{page}-e5_study_v2-{outcome}.html").read_text()
            assert ">Reduced-scale real run</strong>" in text
            assert f"<strong>Outcome</strong> {outcome}:" in text
    question = (fresh_book / "question.html").read_text()
    answered = question.split('id="what-the-runs-so-far-found"')[1]
    assert ">Reduced-scale real run</strong>" in answered and "Smoke run" not in answered
    assert "transfer gain from mnli" in answered and "mattr_over_english" in answered
    assert "generated/mixed_effects-e5_study_v2-all.html" in answered  # each number links its page
    claims = (fresh_book / "generated" / "claims.html").read_text()
    assert result_claim_statuses(claims) == ["not yet run at full scale"] * 12  # C1-C6's quantities
    assert "never compared" in claims
    published = (fresh_book / "generated" / "published.html").read_text()
    assert "Published figures" in published and "xtreme_zero_shot_task_averages.tsv" in published


@pytest.mark.slow
def test_one_worker_gives_the_numbers_of_the_books_two_workers(fresh_book, tmp_path):
    """The same run ids give the same numbers however the grid was scheduled: the smoke grid's
    seed-1 training and zero-shot runs (its retrieval and alignment runs only encode, and are
    left out for time), executed again by one worker whose environment offers two threads,
    equal the rows that ``make book``'s two workers of one core each wrote, bit for bit."""
    import sys

    import pandas as pd
    import yaml

    from stilts_core.runs.results import KEY

    book_table = pd.read_parquet(fresh_book.parents[2] / "data" / "results" / "smoke.parquet")
    config = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    config.update(name="smoke-seed-1", seeds=[1], retrieval_tasks=[], alignment_tasks=[],
                  data_root=str(REPO_ROOT / "data" / "fixtures"))
    for section in ("retrieval", "alignment", "alignment_after_target"):
        config.pop(section)
    path = tmp_path / "smoke-seed-1.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "STILTS_RUNS_DIR": str(tmp_path / "runs"), "OMP_NUM_THREADS": "2"}
    for command in (["grid", "run", str(path), "--workers", "1"],
                    ["collect", str(path), "--output", str(tmp_path / "one.parquet")]):
        finished = subprocess.run([sys.executable, "-m", "stilts_core.cli", *command], env=env,
                                  capture_output=True, text=True, timeout=1200)
        assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    one_worker = pd.read_parquet(tmp_path / "one.parquet")
    two_workers = book_table[book_table["run_id"].isin(set(one_worker["run_id"]))]
    assert len(one_worker) > 0 and len(two_workers) == len(one_worker)
    assert set(one_worker["seed"].dropna()) == {1}
    pd.testing.assert_frame_equal(one_worker.sort_values(list(KEY)).reset_index(drop=True),
                                  two_workers.sort_values(list(KEY)).reset_index(drop=True),
                                  check_exact=True)
    computes = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/compute.json")]
    assert computes and all(c["threads"] == 1 and "instruction set" in c["reproducible"]
                            for c in computes)


def result_claim_statuses(page: str) -> list[str]:
    """The status cells of the result claims (C1-C6) in the claims table, nothing else."""
    import re

    return re.findall(r"<td><strong>C[1-6]</strong><br><small>result</small></td>.*?"
                      r'font-weight:bold">([^<]*)</span>', page, flags=re.S)


# --- headless Chromium ---------------------------------------------------------------------------

def chromium() -> str:
    """Debian's Chromium: found, or installed with apt-get where this test runs as root."""
    for name in CHROMIUM_NAMES:
        if shutil.which(name):
            return shutil.which(name)
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("no Chromium on PATH, and no root apt-get to install Debian's chromium "
                    "package; install it (apt-get install chromium) to run the browser test")
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]):
        finished = subprocess.run(command, capture_output=True, text=True, timeout=900,
                                  env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        assert finished.returncode == 0, f"{' '.join(command)} failed:\n{finished.stderr[-2000:]}"
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium but it is not on PATH"
    return found


@pytest.fixture(scope="module")
def served(fresh_book):
    """The built HTML over HTTP on localhost, as a reader's browser would load it."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        (LOCAL_HOST, 0), functools.partial(Quiet, directory=str(fresh_book)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{LOCAL_HOST}:{server.server_port}/"
    server.shutdown()


def is_local(url: str) -> bool:
    return urllib.parse.urlsplit(url).hostname in (LOCAL_HOST, None)


def link_problem(url: str, cache: dict) -> str | None:
    """Why an internal link does not resolve: the page is missing, or its anchor is."""
    page, _, anchor = url.partition("#")
    if page not in cache:
        try:
            with urllib.request.urlopen(page) as response:
                cache[page] = response.read().decode("utf-8", "replace")
        except OSError as error:
            cache[page] = None
            return f"{page}: {error}"
    if cache[page] is None:
        return f"{page}: not found"
    anchor = urllib.parse.unquote(anchor)
    if anchor and f'id="{anchor}"' not in cache[page] and f'name="{anchor}"' not in cache[page]:
        return f"{url}: no element with id {anchor!r}"
    return None


@pytest.mark.slow
def test_every_page_renders_in_headless_chromium(fresh_book, served):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is a test extra")
    executable = chromium()
    pages = sorted(path.relative_to(fresh_book).as_posix() for path in fresh_book.rglob("*.html")
                   if not path.relative_to(fresh_book).parts[0].startswith("_"))
    for chapter in ("intro.html", "question.html", "generated/claims.html",
                    "generated/reproduce.html", "bibliography.html"):
        assert chapter in pages
    # the root index.html is a bare redirect without an icon link: browsers ask for /favicon.ico
    with urllib.request.urlopen(served + "favicon.ico") as response:
        assert response.status == 200
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems, pages_cache = [], {}
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        for name in pages:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors = []
            page.on("pageerror", lambda error, errors=errors: errors.append(f"{error}"))
            page.on("console", lambda message, errors=errors: errors.append(
                f"console: {message.text}") if message.type == "error"
                and is_local(message.location.get("url", "")) else None)
            page.on("requestfailed", lambda request, errors=errors: errors.append(
                f"request failed: {request.url}") if is_local(request.url) else None)
            page.goto(served + name, wait_until="networkidle")
            # the first h1 a reader sees (the theme keeps an empty print-only header before it)
            title = page.evaluate("(Array.from(document.querySelectorAll('main h1')).find(h => "
                                  "h.getBoundingClientRect().height > 0) || {innerText: ''})"
                                  ".innerText").strip().rstrip("#").strip()
            if not title or title not in page.title():
                problems.append(f"{name}: no visible title (h1 {title!r}, <title> {page.title()!r})")
            broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || "
                                   "i.naturalWidth === 0).map(i => i.src)")
            problems += [f"{name}: image does not load: {src}" for src in broken]
            links = page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
            for link in sorted({link for link in links if link.startswith(served)}):
                problem = link_problem(link, pages_cache)
                if problem:
                    problems.append(f"{name}: link {problem}")
            problems += [f"{name}: {error}" for error in errors]
            if name in ("intro.html", "generated/claims.html"):
                page.screenshot(path=str(SCREENSHOTS / f"{Path(name).stem}.png"), full_page=True)
            page.close()
        browser.close()
    assert not problems, "\n".join(problems)
    for shot in ("intro.png", "claims.png"):
        assert (SCREENSHOTS / shot).stat().st_size > 10_000


# --- a book from results collected elsewhere ---------------------------------------------------------

def shown(notebook: Path) -> str:
    """What an executed page shows a reader: its markdown and its cells' outputs (HTML first),
    not its code."""
    import json

    parts = []
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            parts.append("".join(cell["source"]))
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            for kind in ("text/html", "text/markdown", "text/plain"):
                if kind in data:
                    parts.append("".join(data[kind]))
                    break
            else:
                parts.append("".join(output.get("text", "")))
    return "\n".join(parts)


def collected_elsewhere(folder: Path) -> dict[str, Path]:
    """Two tables as a cluster's `stilts collect` writes them: a reduced-scale real set (gains
    drawn with a known truth over real languages) and a partial run of XLM-R Large."""
    from stilts_core.analysis import statistics as st
    from stilts_core.analysis.morphology import read_indices, wide_view
    from stilts_core.tasks.languages import read_languages_table

    covariates = st.simulation_covariates(read_languages_table(), wide_view(read_indices()),
                                          "mattr_over_english")
    languages = tuple(list(covariates.index)[:14])
    design = st.Design(tasks={"xnli": languages, "tatoeba": languages},
                       intermediate_tasks=("mnli", "sst2", "cosmos_qa"), seeds=(1, 2))
    table = st.simulated_results(design, covariates, 1.0, st.PLAUSIBLE_VARIANCES, seed=3)
    paths = {}
    for name, (label, model) in {"cluster-e5": ("reduced-scale real run", "multilingual-e5-small"),
                                 "debug-large": ("partial run", "xlm-roberta-large")}.items():
        paths[name] = folder / f"{name}.parquet"
        table.assign(provenance=label, model=model, run_id=f"{name}-run").to_parquet(paths[name])
    return paths


@pytest.mark.slow
def test_a_book_from_tables_collected_elsewhere_runs_no_grid(tmp_path):
    """`stilts book --results A --results B` in a fresh clone: every chapter shows each set under
    its own badge, the statistics analyse the set that is a finding (not a simulation), and
    nothing is trained."""
    import sys

    import yaml

    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("git and a git checkout are needed to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    tables = collected_elsewhere(tmp_path)
    config = yaml.safe_load((REPO_ROOT / "configs" / "book.yaml").read_text())
    config["plan"].update(bootstrap_reps=10, case_bootstrap_reps=10,
                          power_reps=4)  # a test's budget, not the plan's
    config["plan"]["outcomes"] = config["plan"]["outcomes"][:1]
    book_config = tmp_path / "book.yaml"
    book_config.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STILTS_")}
    env["PYTHONPATH"] = str(clone)
    finished = subprocess.run(  # the executed pages; the HTML build is make book's test
        [sys.executable, "-m", "stilts_core.cli", "book", "--book-config", str(book_config),
         "--results", str(tables["cluster-e5"]), "--results", str(tables["debug-large"]),
         "--no-html"], cwd=clone, env=env, capture_output=True, text=True, timeout=1800)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert not (clone / "runs").exists()  # nothing was run
    assert not (clone / "data" / "results" / "simulation.parquet").exists()
    pages = clone / "book" / "generated"
    for name, badge in (("cluster-e5", "Reduced-scale real run"), ("debug-large", "Partial run")):
        page = shown(pages / f"results-{name}.ipynb")
        assert badge in page and str(tables[name]) in page
    assert {p.name for p in pages.glob("mixed_effects-*.ipynb")} == {"mixed_effects-cluster-e5-all.ipynb"}
    assert {p.name for p in pages.glob("power-*.ipynb")} == {"power-cluster-e5-all.ipynb"}
    analysis = shown(pages / "mixed_effects-cluster-e5-all.ipynb")
    assert ">Reduced-scale real run</strong>" in analysis  # the badge, not a code cell's text
    assert ">Simulation</strong>" not in analysis
    claims = shown(pages / "claims.ipynb")
    assert result_claim_statuses(claims) == ["not yet run at full scale"] * 12
    assert "partial run rows" in claims and "reduced-scale real run rows" in claims


def test_kernels_started_during_a_build_share_the_cores(monkeypatch):
    """Pages executed side by side each get their share of the cores; a user's own setting and
    the environment outside the build are left as they were."""
    from stilts_core.book.build import kernels_share_the_cores

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    with kernels_share_the_cores(2):
        assert os.environ["OMP_NUM_THREADS"] == "3"
    assert "OMP_NUM_THREADS" not in os.environ
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    with kernels_share_the_cores(2):
        assert os.environ["OMP_NUM_THREADS"] == "7"
    assert os.environ["OMP_NUM_THREADS"] == "7"
