"""Calibration of the secondary tests (morphology beyond fertility): the rejection rates at
alpha = 0.05 of both orders of the nested likelihood-ratio test
(:func:`stilts_core.analysis.collinearity.nested_tests`) on data with a known truth, with the real
languages' index and fertility values (correlated about 0.88). Under a null, the order whose
added terms have no effect should reject in about 5% of the sets (target [0.03, 0.08]); the other
order's rate is its power. Each statistic is referred to chi-square and to F with the
between-within denominator (the test's ``p_value`` and ``p_value_f``). Prints every rate with a
Wilson 95% interval and writes them to ``benchmarks/results/fertility_calibration.json``,
rewritten after each setting; ``--resume`` keeps the settings already there with the same
number of sets.

    python benchmarks/fertility_calibration.py [--reps 200] [--n-jobs 2] [--resume] [--table]

Design: the calibration benchmark's (``type_one_error.py``): 24 real languages with
``mattr_over_english`` and ``subword_fertility`` x 4 target tasks (one per XTREME-R group) x 3
intermediate tasks x 2 seeds, the plausible variance components of Methods, the main formula.
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
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from stilts_core.analysis import collinearity as co  # noqa: E402
from stilts_core.analysis import statistics as st  # noqa: E402
from stilts_core.analysis.morphology import read_indices, wide_view  # noqa: E402
from stilts_core.paths import atomic_write_text  # noqa: E402
from stilts_core.tasks.languages import read_languages_table  # noqa: E402

ALPHA = 0.05
TARGET = (0.03, 0.08)
INDEX = "mattr_over_english"
# true effects in gain points per SD of the index and of fertility (the same in every task group)
SETTINGS = {
    "gain follows fertility (1 per SD), not the index": {"slope": 0.0, "fertility": 1.0},
    "gain follows the index (1 per SD), not fertility": {"slope": 1.0, "fertility": 0.0},
    "neither (no fixed effect)": {"slope": 0.0, "fertility": 0.0},
}
# per setting, the orders whose added terms have no effect (their rate is a type-I error)
NULL_ORDERS = {
    "gain follows fertility (1 per SD), not the index": ["index beyond fertility"],
    "gain follows the index (1 per SD), not fertility": ["fertility beyond index"],
    "neither (no fixed effect)": ["index beyond fertility", "fertility beyond index"],
}


def null_design() -> tuple[st.Design, object]:
    """The 24 first real languages that have the index and fertility, both standardised."""
    indices = wide_view(read_indices())
    covariates = st.simulation_covariates(read_languages_table(), indices, INDEX)
    fertility = indices[co.FERTILITY].reindex(covariates.index).dropna()
    covariates = covariates.loc[fertility.index].iloc[:24]
    fertility = fertility.loc[covariates.index]
    covariates = covariates.assign(fertility=(fertility - fertility.mean()) / fertility.std())
    design = st.Design(tasks={task: tuple(covariates.index)
                              for task in ("xnli", "udpos", "xquad", "tatoeba")},
                       intermediate_tasks=("mnli", "squad", "multi"), seeds=(1, 2))
    return design, covariates


# the reference distributions of the statistic: chi-square, and F with the between-within
# denominator (nested_tests' p_value and p_value_f)
REFERENCES = {"chi-square": "p_value", "F (between-within df)": "p_value_f"}


def p_values(arguments) -> list[float]:
    """Per order, then per reference distribution, one set's p value."""
    design, covariates, effects, state = arguments
    frame = st.simulate_gains(design, covariates, effects["slope"], st.PLAUSIBLE_VARIANCES,
                              np.random.default_rng(state), fixed={"fertility": effects["fertility"]})
    tests = co.nested_tests(frame).set_index("test")
    return [float(tests.loc[order, column]) for order, *_ in co.ORDERS
            for column in REFERENCES.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2031)
    parser.add_argument("--resume", action="store_true",
                        help="keep the settings already in --output with the same --reps")
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).parent / "results" / "fertility_calibration.json")
    parser.add_argument("--table", action="store_true",
                        help="print the figures of --output as a Markdown table and stop")
    args = parser.parse_args()
    if args.table:
        print(markdown(json.loads(args.output.read_text())))
        return
    design, covariates = null_design()
    correlation = float(np.corrcoef(covariates["morph"], covariates["fertility"])[0, 1])
    print(f"design: {len(covariates)} languages x {len(design.tasks)} target tasks x "
          f"{len(design.intermediate_tasks)} intermediate tasks x {len(design.seeds)} seeds; "
          f"index-fertility correlation {correlation:.2f}; {args.reps} sets per setting")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPU(s), {args.n_jobs} worker(s)")
    saved = (json.loads(args.output.read_text())["rows"]
             if args.resume and args.output.exists() else [])
    rows = [row for row in saved if row["reps"] == args.reps and "reference" in row]
    with ProcessPoolExecutor(args.n_jobs) as pool:
        for number, (name, effects) in enumerate(SETTINGS.items()):
            if any(row["setting"] == name for row in rows):
                print(f"{name}: from {args.output.name}")
                continue
            start = time.perf_counter()
            states = np.random.SeedSequence(args.seed + number).generate_state(args.reps).tolist()
            p = np.array(list(pool.map(p_values, [(design, covariates, effects, s) for s in states],
                                       chunksize=4)))
            pairs = [(order, reference) for order, *_ in co.ORDERS for reference in REFERENCES]
            for column, (order, reference) in enumerate(pairs):
                rejected = int((p[:, column] < ALPHA).sum())
                low, high = st.wilson(rejected, args.reps)
                null = order in NULL_ORDERS[name]
                rows.append({"setting": name, "effects": effects, "order": order,
                             "reference": reference, "kind": "type-I error" if null else "power",
                             "rate": rejected / args.reps, "low": float(low), "high": float(high),
                             "reps": args.reps,
                             "within_target": bool(TARGET[0] <= rejected / args.reps <= TARGET[1])
                             if null else None,
                             "seconds": time.perf_counter() - start})
                print(f"{name:<50} {order:<23} {reference:<22} {rows[-1]['kind']:<12} "
                      f"{rejected / args.reps:.3f} (Wilson 95% {low:.3f}-{high:.3f})", flush=True)
            write(args.output, rows, correlation)
    summary = write(args.output, rows, correlation)
    print(f"all type-I errors within {TARGET}: {summary['all_nulls_within_target']}; "
          f"written to {args.output}")


def markdown(summary: dict) -> str:
    """One row per setting and order: the rejection rate under each reference with its Wilson
    95% interval, marked as a type-I error (judged against the target) or as power."""
    rows = summary["rows"]
    lines = ["| true effect | order | what the rate is | " + " | ".join(REFERENCES) + " |",
             "|---" * (3 + len(REFERENCES)) + "|"]
    for setting in dict.fromkeys(row["setting"] for row in rows):
        for order, *_ in co.ORDERS:
            found = {row["reference"]: row for row in rows
                     if row["setting"] == setting and row["order"] == order}
            kind = next(iter(found.values()))["kind"]
            cells = []
            for reference in REFERENCES:
                row = found[reference]
                mark = " **(off target)**" if row["within_target"] is False else ""
                cells.append(f"{row['rate']:.3f} ({row['low']:.3f}–{row['high']:.3f}){mark}")
            lines.append(f"| {setting} | {order} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write(path: Path, rows: list[dict], correlation: float) -> dict:
    """The figures so far, written atomically after each setting so a stopped run keeps them."""
    summary = {"alpha": ALPHA, "target": TARGET, "formula": st.MAIN_FORMULA,
               "nested_formulas": co.nested_formulas(st.MAIN_FORMULA),
               "design": f"24 languages with {INDEX} and {co.FERTILITY} (correlation "
                         f"{correlation:.2f}) x 4 target tasks (xnli, udpos, xquad, tatoeba) x 3 "
                         "intermediate tasks (mnli, squad, multi) x 2 seeds; plausible variances",
               "rows": rows,
               "all_nulls_within_target": {
                   reference: all(r["within_target"] for r in rows
                                  if r["kind"] == "type-I error" and r["reference"] == reference)
                   for reference in REFERENCES}}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(summary, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    main()
