"""Fit time of the main mixed-effects model (every crossed variance component and the cell) on
the full XTREME-R design: every XTREME-R target task with its own non-English languages, Phang et
al.'s nine intermediate tasks and the multi-task mixture, three seeds. Prints the median time of
one REML fit and of the likelihood-ratio test (two ML fits); targets on 2 CPU cores: <= 30 s and
<= 60 s. Asserts nothing about speed.

    python benchmarks/mixed_effects_fit.py [--repeats 3] [--baseline-languages 8]

Baseline, in the same run: statsmodels ``MixedLM`` with the same variance components (one
all-rows group, a dense design per component) against this package's cell-means REML on a
smaller slice of the design (``--baseline-languages`` languages x 3 target tasks x 3
intermediate tasks x 2 seeds), where ``MixedLM`` finishes; the ratio is printed with the
difference in log-likelihood (the two fit the same model).
"""

from __future__ import annotations

import os

# one BLAS thread: the factorised matrices are small, and threads that spin for each other on a
# shared machine make each factorisation far slower
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import statsmodels  # noqa: E402

from stilts_core.analysis import statistics as st  # noqa: E402
from stilts_core.tasks.languages import read_languages_table  # noqa: E402


def timed(function, repeats: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), value


def mixedlm_fit(frame, formula: str):
    """The same model in statsmodels MixedLM: one variance component per crossing and the cell."""
    import statsmodels.formula.api as smf

    data = frame.assign(_all_rows=1, _cell=frame["language"] + "/" + frame["target_task"] + "/"
                        + frame["intermediate_task"])
    components = {c.name: "0 + " + ":".join(f"C({factor})" for factor in c.factors)
                  for c in st.RANDOM_EFFECTS}
    components[st.CELL_COMPONENT] = "0 + C(_cell)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # boundary warnings are not what is timed
        return smf.mixedlm(formula, data, groups="_all_rows", re_formula="0",
                           vc_formula=components).fit(reml=True, method=["lbfgs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-languages", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    design = st.xtreme_r_design()
    names = sorted({lang for langs in design.tasks.values() for lang in langs})
    # every design language, with its real covariates and a drawn standardised index
    covariates = st.language_covariates(read_languages_table()).loc[names].assign(
        morph=rng.normal(size=len(names)))
    frame = st.simulate_gains(design, covariates, 1.0, st.PLAUSIBLE_VARIANCES, rng)
    cells = frame.groupby(list(st.CELL[1:])).ngroups
    print(f"full XTREME-R design: {len(frame)} gains in {cells} cells ({len(design.tasks)} target "
          f"tasks with {len(names)} languages, {len(design.intermediate_tasks)} intermediate "
          f"settings, {len(design.seeds)} seeds)")
    print(f"python {platform.python_version()}, statsmodels {statsmodels.__version__}, "
          f"{os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}")
    seconds, (_, report) = timed(lambda: st.fit(frame, reml=True), args.repeats)
    average = report.slopes.loc[st.AVERAGE_SLOPE]
    print(f"REML fit: median {seconds:.2f} s over {args.repeats} (target <= 30 s; "
          f"{report.optimiser}, converged {report.converged}, average slope "
          f"{average['estimate']:.3f} ± {average['std_error']:.3f}, truth 1.0; "
          f"{sum(report.n_groups.values())} random intercepts)")
    seconds, test = timed(lambda: st.likelihood_ratio_test(frame), args.repeats)
    print(f"likelihood-ratio test (two ML fits): median {seconds:.2f} s (target <= 60 s; "
          f"chi2 {test['statistic']:.1f} on {test['df']} df)")

    small_design = st.Design(tasks={task: tuple(names[:args.baseline_languages])
                                    for task in ("xnli", "udpos", "xquad")},
                             intermediate_tasks=("mnli", "squad", "multi"), seeds=(1, 2))
    small = st.simulate_gains(small_design, covariates, 1.0, st.PLAUSIBLE_VARIANCES, rng)
    formula = "gain ~ morph + log_pretraining_size"
    ours, (fitted, _) = timed(lambda: st.fit(small, formula, reml=True), args.repeats)
    baseline, reference = timed(lambda: mixedlm_fit(small, formula), 1)
    print(f"baseline on {len(small)} gains ({args.baseline_languages} languages x 3 x 3 x 2): "
          f"statsmodels MixedLM {baseline:.2f} s, cell-means REML {ours:.3f} s, ratio "
          f"{baseline / ours:.1f}x; REML log-likelihoods {reference.llf:.4f} vs {fitted.llf:.4f}")


if __name__ == "__main__":
    main()
