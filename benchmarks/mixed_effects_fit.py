"""Fit time of the main mixed-effects model on a full-grid-sized analysis table: 10 intermediate
settings x 10 target tasks x 50 languages x 3 seeds = 15,000 gains. Prints figures; asserts
nothing about speed (the target here is under 10 s per fit on 2 CPU cores).

    python benchmarks/mixed_effects_fit.py [--repeats 3] [--languages 50]

The gains are drawn from the model's own generating process (:func:`stilts_core.statistics.
simulate_gains`) with a standardised index and covariates drawn per language, so the fit is the
one the book runs, at the size of the full grid.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd
import statsmodels

from stilts_core import statistics as st

TARGETS = ("xnli", "xcopa", "udpos", "panx", "xquad", "mlqa", "tydiqa", "tatoeba", "mewslix",
           "lareqa")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--languages", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    names = [f"l{i:02d}" for i in range(args.languages)]
    covariates = pd.DataFrame({"morph": rng.normal(size=len(names)),
                               "log_pretraining_size": rng.normal(3, 1, len(names)),
                               "latin_script": rng.integers(0, 2, len(names)),
                               "indo_european": rng.integers(0, 2, len(names))}, index=names)
    design = st.Design(tasks={task: tuple(names) for task in TARGETS},
                       intermediate_tasks=st.xtreme_r_design().intermediate_tasks,
                       seeds=(1, 2, 3))
    frame = st.simulate_gains(design, covariates, 1.0, st.PLAUSIBLE_VARIANCES, rng)
    print(f"analysis table: {len(frame)} gains ({len(design.intermediate_tasks)} intermediate x "
          f"{len(TARGETS)} target tasks x {len(names)} languages x {len(design.seeds)} seeds)")
    print(f"python {platform.python_version()}, statsmodels {statsmodels.__version__}, "
          f"{os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}")
    for reml in (True, False):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            _, report = st.fit(frame, reml=reml)
            times.append(time.perf_counter() - start)
        print(f"{'REML' if reml else 'ML  '} fit: median {np.median(times):.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f}; {report.optimiser}, converged "
              f"{report.converged}, morph {report.params.loc['morph', 'estimate']:.3f} "
              f"± {report.params.loc['morph', 'std_error']:.3f})")


if __name__ == "__main__":
    main()
