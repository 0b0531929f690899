"""Calibration of every test and interval the mixed-effects page reports, on null data whose
residuals are heavy-tailed (Student t, 3 df) and unequal (one intermediate task with 3x the
residual SD), beside the normal, equal-variance reference. Prints each rate with a Wilson 95%
interval and writes them to ``benchmarks/results/robust_calibration.json``. Targets: tests'
rejection rates at alpha = 0.05 within [0.03, 0.08]; 95% intervals' coverage within [0.92, 0.98].

    python benchmarks/robust_calibration.py [--reps 200] [--boot-sets 40] [--boot-reps 49]
                                            [--boot-settings NAME ...] [--n-jobs 2]

Each null set is tested and given every interval that needs no bootstrap (the likelihood-ratio
test of the morphology terms, the Wald test and interval of the slopes, the same under a residual
variance per intermediate task, the test of that residual model against one variance, the mean
gains' t-interval and language bootstrap-t, the predictive check's claim that the index predicts
held-out languages or families better); the first ``--boot-sets`` sets of the settings in
``--boot-settings`` also get the parametric and the language case bootstrap (``--boot-reps``
refits each; the book's intervals and the percentile intervals it does not use), which cost a
hundred times more; the two parts advance side by side. Every set's outcome is appended to
``--cache`` as it is done, so a stopped run continues where it stopped, and the figures (with
the CPU seconds each part took) are computed from it.

Design: 16 real languages with ``mattr_over_english`` (their index values and covariates) x the
reduced-scale study's three target tasks, one per task group it has (XNLI, PAN-X, Tatoeba) x
three intermediate tasks (MNLI, SST-2 and their mixture, as in ``configs/e5_study_v2.yaml``) x 3
seeds, with the plausible variance components of Book -> Methods; no fixed effect.
"""

from __future__ import annotations

import os

# one BLAS thread per process: the matrices are small, and on a shared machine threads that
# spin for each other make a factorisation hundreds of times slower
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from stilts_core import logs
from stilts_core.analysis import prediction  # noqa: E402
from stilts_core.analysis import robustness as rb  # noqa: E402
from stilts_core.analysis import statistics as st  # noqa: E402
from stilts_core.analysis.morphology import read_indices, wide_view  # noqa: E402
from stilts_core.paths import atomic_write_text  # noqa: E402
from stilts_core.tasks.languages import read_languages_table  # noqa: E402

ALPHA = 0.05
TEST_TARGET = (0.03, 0.08)
COVERAGE_TARGET = (0.92, 0.98)
NOISY = "sst2"
# residual distribution of each null setting: Student t df (None: normal), the intermediate
# task with a larger residual SD and by how much
SETTINGS = {
    "normal, one residual variance (reference)": {"residual_df": None, "noisy": None,
                                                  "noise_ratio": 1.0},
    "t(3) residuals": {"residual_df": 3.0, "noisy": None, "noise_ratio": 1.0},
    f"t(3) residuals, {NOISY} with 3x the residual SD": {"residual_df": 3.0, "noisy": NOISY,
                                                         "noise_ratio": 3.0},
}
TESTS = {
    "lrt": "likelihood-ratio test of the morphology terms (pre-registered; chi2, 3 df)",
    "wald": "Wald test of the average slope",
    "lrt_residual_by_task": "likelihood-ratio test of the morphology terms, residual variance "
                            "per intermediate task",
    "residual_variance": "test of a residual variance per intermediate task against one "
                         "(REML, chi2, 2 df; the null holds only where the residuals are equal)",
    "residual_spread": "Kruskal-Wallis test of the cells' seed-to-seed SD across intermediate "
                       "tasks (the null holds only where the residuals are equal)",
    "fits_better": "the page's verdict that a residual variance per intermediate task fits "
                   "better: both tests above reject and its AIC is lower",
}
# the tests whose null hypothesis is equal residual variances, not a slope of 0
RESIDUAL_TESTS = ("residual_variance", "residual_spread", "fits_better")
# the predictive check's claim that the index predicts held-out units better (the whole paired
# bootstrap interval of the RMSE difference below 0), per hold-out: one-sided, 0.025 nominal
PREDICTION_TARGET = (0.0, 0.05)
HOLD_OUTS = ("language", "family")
# the parametric bootstrap as the page shows it: withheld where the residual check finds a
# residual variance per intermediate task fits better
SHOWN_PARAMETRIC = "parametric bootstrap, as the page shows it"
# intervals measured to show why the book does not report them (the parametric bootstrap
# unconditionally: the page withholds it where the residual variances differ)
NOT_REPORTED = {
    "Wald, residual variance per intermediate task": "the page shows its estimates only",
    "parametric bootstrap": "in every set, also where the page withholds it",
    "parametric bootstrap, percentile": "too narrow with few replicates",
    "language case bootstrap-t": "too narrow with heavy tails",
    "language case bootstrap, percentile": "too narrow with heavy tails",
    "language case bootstrap, t quantile x SD": "too wide with normal residuals",
}


def null_design() -> tuple[st.Design, pd.DataFrame]:
    covariates = st.simulation_covariates(read_languages_table(), wide_view(read_indices()),
                                          "mattr_over_english").iloc[:16]
    design = st.Design(tasks={task: tuple(covariates.index) for task in ("xnli", "panx", "tatoeba")},
                       intermediate_tasks=("mnli", NOISY, "multi"), seeds=(1, 2, 3))
    return design, covariates


def _covers(low, high, truth=0.0) -> list[bool]:
    return [bool(lo <= truth <= hi) for lo, hi in zip(low, high, strict=True)]


def null_set(design, covariates, setting: dict, state: int) -> pd.DataFrame:
    return rb.null_gains(design, covariates, st.PLAUSIBLE_VARIANCES, np.random.default_rng(state),
                         **setting)


def tests_and_intervals(frame: pd.DataFrame) -> dict:
    """Every test's p value and the hit of every interval that needs no bootstrap, on one set."""
    _, report = st.fit(frame)
    slopes = report.slopes
    test = st.likelihood_ratio_test(frame)
    apart = st.likelihood_ratio_test(frame, residual_by=rb.RESIDUAL_FACTOR)
    check = rb.residual_variance_check(frame)
    apart_slopes = check["reports"][1].slopes
    means = rb.mean_gain_intervals(frame).merge(
        frame.groupby(["target_task", "intermediate_task"], as_index=False)["true_mean"].first())
    held_out = prediction.held_out_predictions(frame, read_languages_table(), st.MAIN_FORMULA,
                                               HOLD_OUTS, refit=False)
    predicts = prediction.prediction_error(held_out).query("metric == 'rmse'")
    return {
        "index_predicts_better": {row.hold_out: bool(row.difference_high < 0)
                                  for row in predicts.itertuples()},
        "p": {"lrt": test["p_value"], "wald": float(slopes.loc[st.AVERAGE_SLOPE, "p_value"]),
              "lrt_residual_by_task": apart["p_value"], "residual_variance": check["p_value"]},
        "aic_prefers_residual_by_task": bool(check["models"]["aic"].iloc[1]
                                             < check["models"]["aic"].iloc[0]),
        "slopes": list(slopes.index),
        "hits": {"Wald": _covers(slopes["wald_low"], slopes["wald_high"]),
                 "Wald, residual variance per intermediate task":
                     _covers(apart_slopes["wald_low"], apart_slopes["wald_high"])},
        "mean_gains": {
            "intermediate_task": means["intermediate_task"].tolist(),
            "t-interval": [bool(lo <= m <= hi) for lo, hi, m
                           in zip(means["low"], means["high"], means["true_mean"], strict=True)],
            "language bootstrap-t": [bool(lo <= m <= hi) for lo, hi, m
                                   in zip(means["bootstrap_low"], means["bootstrap_high"],
                                          means["true_mean"], strict=True)]},
    }


def bootstraps(frame: pd.DataFrame, state: int, reps: int) -> dict:
    """The hits of the parametric and the language case bootstrap's intervals (the book's and
    the percentile intervals it does not use), and their raw figures per slope, on one set."""
    result, report = st.fit(frame)
    names = [f"slope: {name}" for name in report.slopes.index]
    seeds = np.random.SeedSequence(state).generate_state(2)
    parametric = st.parametric_bootstrap(result, frame, reps=reps, seed=int(seeds[0])).loc[names]
    case = rb.case_bootstrap(result, frame, reps=reps, seed=int(seeds[1])).loc[names]
    languages = frame["language"].nunique()
    t_spread = stats.t.ppf(0.975, languages - 1) * np.sqrt(languages / (languages - 1))
    return {"slopes": list(report.slopes.index),
            "hits": {"parametric bootstrap": _covers(parametric["bootstrap_low"],
                                                     parametric["bootstrap_high"]),
                     "parametric bootstrap, percentile": _covers(parametric["percentile_low"],
                                                                 parametric["percentile_high"]),
                     "language case bootstrap": _covers(case["case_low"], case["case_high"]),
                     "language case bootstrap-t": _covers(case["bootstrap_t_low"],
                                                          case["bootstrap_t_high"]),
                     "language case bootstrap, percentile": _covers(case["percentile_low"],
                                                                    case["percentile_high"]),
                     "language case bootstrap, t quantile x SD": _covers(
                         case["estimate"] - t_spread * case["case_sd"],
                         case["estimate"] + t_spread * case["case_sd"])},
            "raw": {"estimate": case["estimate"].tolist(), "wald_se": case["std_error"].tolist(),
                    "parametric_sd": parametric["bootstrap_sd"].tolist(),
                    "case_sd": case["case_sd"].tolist(),
                    "bootstrap_t_low": case["bootstrap_t_low"].tolist(),
                    "bootstrap_t_high": case["bootstrap_t_high"].tolist()},
            "case_redrawn": int(case["redrawn"].iloc[0])}


def _chunk(args) -> list[dict]:
    """One chunk of (setting, kind, index, state) jobs; each outcome carries its job's key."""
    design, covariates, boot_reps, jobs = args
    outcomes = []
    for name, kind, index, state in jobs:
        start = time.process_time()
        frame = null_set(design, covariates, SETTINGS[name], state)
        found = (tests_and_intervals(frame) if kind == "tests"
                 else bootstraps(frame, state, boot_reps))
        outcomes.append({"setting": name, "kind": kind, "index": index, **found,
                         "cpu_seconds": time.process_time() - start})
    return outcomes


def rate(hits, target) -> dict:
    hits = np.asarray(hits, dtype=float)
    low, high = st.wilson(hits.sum(), len(hits))
    value = float(hits.mean())
    return {"rate": value, "low": float(low), "high": float(high), "n": len(hits),
            "within_target": bool(target[0] <= value <= target[1])}


def summarise(tests: list[dict], boots: list[dict], setting: dict) -> dict:
    """Rejection rates of the tests and coverage of each interval, each with a Wilson 95%
    interval. The mean gains pool the nine target x intermediate quantities of a set; their
    Wilson interval counts sets, not quantities (the quantities of a set share its languages)."""
    for o in tests:
        o["p"]["fits_better"] = (0.0 if max(o["p"]["residual_variance"], o["p"]["residual_spread"])
                                 < ALPHA and o["aic_prefers_residual_by_task"] else 1.0)
    rates = {name: rate([o["p"][name] < ALPHA for o in tests], TEST_TARGET) for name in TESTS}
    for name in RESIDUAL_TESTS:
        rates[name]["null_true"] = setting["noisy"] is None
    rates["aic_prefers_residual_by_task"] = rate(
        [o["aic_prefers_residual_by_task"] for o in tests], (0, 1))
    slopes = tests[0]["slopes"]
    intervals = {}
    for outcomes in (tests, boots):
        for method in (outcomes[0]["hits"] if outcomes else {}):
            intervals[method] = {slope: rate([o["hits"][method][k] for o in outcomes],
                                             COVERAGE_TARGET) for k, slope in enumerate(slopes)}
    # the page withholds the parametric bootstrap where the residual check finds the residual
    # variances unequal: its coverage as shown counts the other sets only
    unequal = {o["index"] for o in tests if o["p"]["fits_better"] < ALPHA}
    shown = [o for o in boots if o["index"] not in unequal]
    withheld = {"withheld": len(boots) - len(shown), "of": len(boots)}
    if boots:
        intervals[SHOWN_PARAMETRIC] = {
            slope: {**rate([o["hits"]["parametric bootstrap"][k] for o in shown],
                           COVERAGE_TARGET), **withheld} if shown else {"rate": None, **withheld}
            for k, slope in enumerate(slopes)}
    predicts = {hold_out: rate([o["index_predicts_better"][hold_out] for o in tests],
                               PREDICTION_TARGET) for hold_out in HOLD_OUTS}
    means = {}
    for method in ("t-interval", "language bootstrap-t"):
        for which, keep in (("all", lambda task: True),
                            (f"{NOISY} (noisy where the setting says)", lambda task: task == NOISY),
                            ("the other intermediate tasks", lambda task: task != NOISY)):
            shares = [np.mean([hit for hit, task in zip(o["mean_gains"][method],
                                                        o["mean_gains"]["intermediate_task"],
                                                        strict=True) if keep(task)])
                      for o in tests]
            low, high = st.wilson(np.sum(shares), len(shares))
            value = float(np.mean(shares))
            means[f"{method}: {which}"] = {
                "rate": value, "low": float(low), "high": float(high), "n": len(shares),
                "within_target": bool(COVERAGE_TARGET[0] <= value <= COVERAGE_TARGET[1])}
    return {"tests": rates, "slope_intervals": intervals, "mean_gain_intervals": means,
            "index_predicts_better": predicts,
            "case_bootstrap_redrawn": int(sum(o["case_redrawn"] for o in boots))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="null sets per setting")
    parser.add_argument("--boot-sets", type=int, default=40,
                        help="of which this many (per setting in --boot-settings) also get the "
                             "two bootstraps")
    parser.add_argument("--boot-reps", type=int, default=49, help="refits per bootstrap")
    parser.add_argument("--boot-settings", nargs="*", choices=list(SETTINGS),
                        default=[name for name in SETTINGS if name != "t(3) residuals"])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2027)
    parser.add_argument("--batch", type=int, default=8, help="sets between two saves")
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "robust_calibration.outcomes.jsonl",
                        help="every set's outcome, one JSON line each; a rerun with the same "
                             "numbers continues from it")
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).parent / "results" / "robust_calibration.json")
    parser.add_argument("--table", action="store_true",
                        help="print the figures of --output as Markdown tables and stop")
    args = parser.parse_args()
    logs.configure()  # the library's progress lines and notes
    if args.table:
        print(markdown(json.loads(args.output.read_text())))
        return

    design, covariates = null_design()
    numbers = {"reps": args.reps, "boot_sets": min(args.boot_sets, args.reps),
               "boot_reps": args.boot_reps, "seed": args.seed}
    print(f"null design: {len(covariates)} languages x {len(design.tasks)} target tasks x "
          f"{len(design.intermediate_tasks)} intermediate tasks x {len(design.seeds)} seeds; "
          f"{numbers['reps']} sets per setting; {numbers['boot_sets']} of them with "
          f"{args.boot_reps} parametric and {args.boot_reps} language case bootstrap refits in "
          f"{args.boot_settings}")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPU(s), {args.n_jobs} worker(s)")
    # the settings and the two parts take turns, in proportion to their numbers of sets, so
    # that a stopped run has figures for each
    states = {name: np.random.SeedSequence(args.seed + number).generate_state(args.reps)
              for number, name in enumerate(SETTINGS)}
    jobs = sorted([(k / args.reps, name, "tests", k) for k in range(args.reps) for name in SETTINGS]
                  + [(k / numbers["boot_sets"], name, "bootstrap", k)
                     for k in range(numbers["boot_sets"]) for name in args.boot_settings],
                  key=lambda job: job[0])
    jobs = [(name, kind, k, int(states[name][k])) for _, name, kind, k in jobs]
    cached = read_cache(args.cache, numbers)
    todo = [job for job in jobs if (job[0], job[1], job[2]) not in cached]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} sets from {args.cache}")
    start = time.perf_counter()
    for first in range(0, len(todo), args.batch):
        batch = todo[first:first + args.batch]
        outcomes = st.in_chunks(_chunk, lambda chunk: (design, covariates, args.boot_reps, chunk),
                                batch, args.n_jobs, f"sets {first}-{first + len(batch)}")
        with args.cache.open("a") as cache:
            for outcome in outcomes:
                cache.write(json.dumps({**numbers, **outcome}) + "\n")
                cached[(outcome["setting"], outcome["kind"], outcome["index"])] = outcome
        print(f"{first + len(batch)}/{len(todo)} sets, {time.perf_counter() - start:.0f} s",
              flush=True)
    rows = []
    wanted = {(name, kind, index) for name, kind, index, _ in jobs}
    for name in SETTINGS:
        tests = [o for key, o in sorted(cached.items()) if key in wanted
                 and key[:2] == (name, "tests")]
        boots = [o for key, o in sorted(cached.items()) if key in wanted
                 and key[:2] == (name, "bootstrap")]
        for outcome in tests:  # the rank test needs no fit: from the set itself, not the cache
            frame = null_set(design, covariates, SETTINGS[name], int(states[name][outcome["index"]]))
            outcome["p"]["residual_spread"] = rb.spread_test(frame)["p_value"]
        if tests:
            rows.append({"setting": name, **SETTINGS[name], **numbers,
                         "boot_sets": len(boots), "sets": len(tests),
                         "cpu_seconds": {"tests": sum(o["cpu_seconds"] for o in tests),
                                         "bootstraps": sum(o["cpu_seconds"] for o in boots)},
                         **summarise(tests, boots, SETTINGS[name])})
            report(rows[-1])
    summary = write(args.output, rows, time.perf_counter() - start)
    print(f"written to {args.output}; every rate within its target: {summary['all_within_target']}")


def read_cache(path: Path, numbers: dict) -> dict:
    """The outcomes already computed from the same seed (a set's data depend on the seed and its
    number only), a bootstrap's with as many refits, by (setting, kind, index)."""
    if not path.exists():
        return {}
    found = {}
    for line in path.read_text().splitlines():
        outcome = json.loads(line)
        if outcome["seed"] == numbers["seed"] and (
                outcome["kind"] == "tests" or outcome["boot_reps"] == numbers["boot_reps"]):
            found[(outcome["setting"], outcome["kind"], outcome["index"])] = outcome
    return found


def report(row: dict) -> None:
    print(f"\n== {row['setting']} ({row['sets']} sets, {row['boot_sets']} with bootstraps)")
    for name, value in row["tests"].items():
        print(f"  test {name:<32} {value['rate']:.3f} ({value['low']:.3f}-{value['high']:.3f}, "
              f"n {value['n']})")
    for method, slopes in row["slope_intervals"].items():
        for slope, value in slopes.items():
            print(f"  {method:<48} {slope:<22} {_shown(value)}")
    for name, value in row["mean_gain_intervals"].items():
        print(f"  mean gain {name:<58} {value['rate']:.3f} ({value['low']:.3f}-"
              f"{value['high']:.3f}, n {value['n']})")
    for hold_out, value in row["index_predicts_better"].items():
        print(f"  index predicts better, one {hold_out} held out at a time {value['rate']:.3f} "
              f"({value['low']:.3f}-{value['high']:.3f}, n {value['n']})")


def _shown(value: dict) -> str:
    """A coverage with its Wilson interval and number of sets, and how many sets withheld it."""
    withheld = (f"; withheld in {value['withheld']} of {value['of']} sets"
                if "withheld" in value else "")
    if value["rate"] is None:
        return f"withheld in all {value['of']} sets"
    return (f"{value['rate']:.3f} ({value['low']:.3f}–{value['high']:.3f}; {value['n']}"
            f"{withheld})")


def markdown(summary: dict) -> str:
    """The figures as a Markdown table, one column per setting: each rate with its Wilson 95%
    interval and number of sets; a rate outside its target is marked, a rate of a test whose
    null is false there is power, not an error rate."""
    rows = summary["settings"]

    def cell(value: dict, judged: bool = True) -> str:
        off = judged and value["rate"] is not None and not value["within_target"]
        return _shown(value) + (" **(off target)**" if off else "")

    lines = ["| measure | " + " | ".join(row["setting"] for row in rows) + " |",
             "|---" * (len(rows) + 1) + "|"]
    for name, what in TESTS.items():
        cells = [cell(row["tests"][name], row["tests"][name].get("null_true", True))
                 + ("" if row["tests"][name].get("null_true", True) else " (power)")
                 for row in rows]
        lines.append(f"| test: {what} | " + " | ".join(cells) + " |")
    methods = list(dict.fromkeys(m for row in rows for m in row["slope_intervals"]))
    for method in methods:
        for slope in rows[0]["slope_intervals"]["Wald"]:
            cells = [cell(row["slope_intervals"][method][slope], method not in NOT_REPORTED)
                     if method in row["slope_intervals"] else "not run" for row in rows]
            why = f" (not reported: {NOT_REPORTED[method]})" if method in NOT_REPORTED else ""
            lines.append(f"| 95% coverage: {method}, {slope} slope{why} | "
                         + " | ".join(cells) + " |")
    for name in rows[0]["mean_gain_intervals"]:
        cells = [cell(row["mean_gain_intervals"][name]) for row in rows]
        lines.append(f"| 95% coverage: mean gain, {name} | " + " | ".join(cells) + " |")
    for hold_out in HOLD_OUTS:
        cells = [cell(row["index_predicts_better"][hold_out]) for row in rows]
        lines.append(f"| predictive check, leave one {hold_out} out: says the index predicts "
                     f"better (target at most {PREDICTION_TARGET[1]}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _judged(row: dict) -> list[bool]:
    """The rates held to a target: tests whose null is true, and every interval."""
    tests = [value["within_target"] for name, value in row["tests"].items()
             if name in TESTS and value.get("null_true", True)]
    intervals = [value["within_target"] for method, slopes in row["slope_intervals"].items()
                 if method not in NOT_REPORTED for value in slopes.values()
                 if value["rate"] is not None]
    return (tests + intervals
            + [value["within_target"] for value in row["mean_gain_intervals"].values()]
            + [value["within_target"] for value in row["index_predicts_better"].values()])


def write(path: Path, rows: list[dict], seconds: float) -> dict:
    """Every setting's figures, written atomically."""
    design, covariates = null_design()
    summary = {"alpha": ALPHA, "test_target": TEST_TARGET, "coverage_target": COVERAGE_TARGET,
               "formula": st.MAIN_FORMULA, "tests": TESTS,
               "design": f"{len(covariates)} languages ({', '.join(covariates.index)}) x target "
                         f"tasks {', '.join(design.tasks)} x intermediate tasks "
                         f"{', '.join(design.intermediate_tasks)} x {len(design.seeds)} seeds; "
                         "real mattr_over_english values and covariates; no fixed effects; "
                         f"variance components {st.PLAUSIBLE_VARIANCES}",
               "python": platform.python_version(), "cpus": os.cpu_count(),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "seconds_this_run": seconds,
               "settings": rows,
               "all_within_target": all(all(_judged(row)) for row in rows) if rows else None}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(summary, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    main()
