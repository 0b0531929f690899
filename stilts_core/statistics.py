"""Mixed-effects models relating STILTs gains to the morphological complexity of the language.

The analysis data are paired gains (STILTs minus direct target fine-tuning, same model, task,
language and seed; retrieval: phase-(ii) encoder minus the base encoder) joined with one
morphological index and the language covariates. The main model

    gain ~ morph + morph:task_group + log_pretraining_size + latin_script + indo_european
           + (1 | language) + (1 | target_task) + (1 | intermediate_task)

is fitted with statsmodels ``MixedLM``: crossed random intercepts are variance components of a
single all-rows group (the statsmodels idiom for crossed effects). REML gives the estimates; ML
fits give likelihood-ratio tests of the morphology terms and AIC across indices. Every fit
reports its optimiser, convergence, warnings and any variance component at zero.
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .results import NO_INTERMEDIATE, headline_scores, paired_gains, setting
from .tasks import TASK_GROUPS, get_mixture, get_task

MAIN_FORMULA = ("gain ~ morph + morph:task_group + log_pretraining_size + latin_script "
                "+ indo_european")
RANDOM_INTERCEPTS = ("language", "target_task", "intermediate_task")
LME4_FORMULA = (MAIN_FORMULA + " + (1 | language) + (1 | target_task) + (1 | intermediate_task)")
MORPH = "morph"
OPTIMISERS = ("lbfgs", "bfgs", "powell", "nm")
# a variance component below this share of the residual variance counts as zero (singular fit)
SINGULAR_SHARE = 1e-6


class AnalysisError(ValueError):
    """The analysis data break the schema; the message names the offending rows or languages."""


# --- the analysis data ----------------------------------------------------------------------------

def gains_table(results: pd.DataFrame, split: str = "test",
                protocol: str = "encoder") -> pd.DataFrame:
    """Paired gains on each task's headline score, one row per model x intermediate task x
    target task x language x seed, with the task group. A STILTs cell without its baseline or a
    cell given twice is an error naming the rows, never a silent drop."""
    scores = headline_scores(results, split)
    if scores.empty:
        raise AnalysisError(f"the results have no headline scores on the {split!r} split")
    scores = scores[setting(scores, "protocol").isin([None, protocol])]
    cell = ["model", "intermediate_task", "target_task", "language", "seed", "settings"]
    duplicated = scores[scores.duplicated(cell, keep=False)]
    if not duplicated.empty:
        raise AnalysisError("the same cell appears more than once (several runs or settings; "
                            "select one first):\n"
                            + duplicated[[*cell, "run_id", "value"]].to_string(index=False))
    gains = paired_gains(scores)
    stilts = scores[scores["intermediate_task"] != NO_INTERMEDIATE]
    unpaired = stilts.merge(gains[cell], on=cell, how="left", indicator=True)
    unpaired = unpaired[unpaired["_merge"] == "left_only"]
    if not unpaired.empty:
        raise AnalysisError("STILTs cells without a direct fine-tuning baseline (same model, "
                            "target task, language and seed):\n"
                            + unpaired[[*cell, "run_id"]].to_string(index=False))
    gains["task_group"] = gains["target_task"].map(task_group)
    return gains.reset_index(drop=True)


def task_group(task: str) -> str:
    """XTREME-R's category of a task (classification, structured prediction, QA, retrieval);
    a task outside XTREME-R (PAWS-X, BUCC) by the group of its format."""
    from .tasks import get_benchmark

    for group, tasks in get_benchmark("xtreme-r").groups.items():
        if task in tasks:
            return group
    return TASK_GROUPS[get_task(task).format]


def language_covariates(languages: pd.DataFrame) -> pd.DataFrame:
    """Per language: log10(1 + CC-100 tokens in millions) (0 for a language XLM-R was not
    pretrained on), whether the script is Latin and whether the language is Indo-European."""
    table = languages.set_index("iso639_1")
    return pd.DataFrame({
        "log_pretraining_size": np.log10(1 + table["cc100_tokens_m"].fillna(0).astype(float)),
        "latin_script": table["latin_script"].astype(bool).astype(int),
        "indo_european": (table["family"] == "Indo-European").astype(int),
    })


def analysis_frame(gains: pd.DataFrame, indices_wide: pd.DataFrame, languages: pd.DataFrame,
                   index: str, missing: str = "error",
                   only_languages: list[str] | None = None) -> pd.DataFrame:
    """Gains joined with one morphological index (standardised over the languages analysed,
    each language counted once) and the language covariates; English is excluded (its rows
    are in ``attrs['english']``). A language without the index is an error unless
    ``missing='exclude'``, which drops it and lists it in ``attrs['excluded_languages']``."""
    if index not in indices_wide.columns:
        raise AnalysisError(f"no index {index!r} in the morphology table; one of "
                            f"{sorted(indices_wide.columns)}")
    if missing not in ("error", "exclude"):
        raise AnalysisError(f"missing must be 'error' or 'exclude', not {missing!r}")
    covariates = language_covariates(languages)
    unknown = sorted(set(gains["language"]) - set(covariates.index))
    if unknown:
        raise AnalysisError(f"languages {unknown} are not in data/languages.csv "
                            f"({(gains['language'].isin(unknown)).sum()} rows)")
    frame = gains[gains["language"] != "en"]
    if only_languages is not None:
        frame = frame[frame["language"].isin(only_languages)]
    values = indices_wide[index]
    lacking = sorted(set(frame["language"]) - set(values.dropna().index))
    excluded = {}
    if lacking:
        counts = frame[frame["language"].isin(lacking)]["language"].value_counts().to_dict()
        if missing == "error":
            raise AnalysisError(
                f"index {index!r} has no value for {len(lacking)} language(s) with gains "
                f"(rows per language: {counts}); see the notes in data/morphology/indices.csv. "
                "Pass missing='exclude' to drop them (they are then listed), or choose other "
                "languages or another index.")
        excluded = counts
        frame = frame[~frame["language"].isin(lacking)]
    if frame.empty:
        raise AnalysisError("no non-English rows with the index are left to analyse")
    per_language = values.loc[sorted(frame["language"].unique())]
    standardised = (per_language - per_language.mean()) / per_language.std()
    frame = frame.join(covariates, on="language").assign(
        morph=frame["language"].map(standardised), morph_raw=frame["language"].map(values),
        index=index)
    frame = frame.reset_index(drop=True)
    frame.attrs.update(english=gains[gains["language"] == "en"].reset_index(drop=True),
                       excluded_languages=excluded, index=index,
                       index_mean=float(per_language.mean()), index_sd=float(per_language.std()))
    return frame


# --- fitting --------------------------------------------------------------------------------------

@dataclass
class FitReport:
    """What a reader needs to trust (or distrust) one fit."""

    formula: str
    reml: bool
    optimiser: str | None
    converged: bool
    singular: list[str]
    warnings: list[str]
    loglike: float
    aic: float | None
    n_obs: int
    n_groups: dict[str, int]
    params: pd.DataFrame
    variance_components: dict[str, float]
    attempts: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-ready: the numbers and the diagnostics, for ``stilts stats export``."""
        return {
            "formula": self.formula, "lme4_formula": lme4_formula(self.formula),
            "reml": self.reml, "optimiser": self.optimiser, "converged": self.converged,
            "singular_components": self.singular, "warnings": self.warnings,
            "loglike": self.loglike, "aic": self.aic, "n_obs": self.n_obs,
            "n_groups": self.n_groups,
            "fixed_effects": self.params.reset_index(names="term").to_dict("records"),
            "variance_components": self.variance_components,
        }


def lme4_formula(formula: str) -> str:
    """The same model in R's lme4 syntax (for ``lmer(..., REML = TRUE)``)."""
    return formula + "".join(f" + (1 | {name})" for name in RANDOM_INTERCEPTS)


def _model(frame: pd.DataFrame, formula: str):
    import statsmodels.formula.api as smf

    levels = {name: frame[name].nunique() for name in RANDOM_INTERCEPTS}
    if min(levels.values()) < 2:
        raise AnalysisError(f"crossed random intercepts need at least two levels each; the data "
                            f"have {levels}")
    data = frame.assign(_all_rows=1)
    return smf.mixedlm(formula, data, groups="_all_rows", re_formula="0",
                       vc_formula={name: f"0 + C({name})" for name in RANDOM_INTERCEPTS})


def fit(frame: pd.DataFrame, formula: str = MAIN_FORMULA, reml: bool = True,
        optimisers: tuple[str, ...] = OPTIMISERS):
    """Fit with each optimiser in turn until one converges; returns the statsmodels result and
    a :class:`FitReport`. Warnings are recorded, never silenced: a boundary warning (a
    variance at zero) is kept and reported as a singular fit, a failure to converge moves on to
    the next optimiser. If none converges, the attempt with the highest likelihood is kept and
    the report says it did not converge."""
    model = _model(frame, formula)
    attempts, fits = [], []
    for optimiser in optimisers:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = model.fit(reml=reml, method=[optimiser])
            except (np.linalg.LinAlgError, ValueError) as error:
                attempts.append({"optimiser": optimiser, "error": str(error)})
                continue
        messages = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
        failed = not result.converged or any("failed to converge" in m for m in messages)
        attempts.append({"optimiser": optimiser, "converged": not failed, "warnings": messages})
        fits.append((not failed, result.llf, optimiser, result, messages))
        if not failed:
            break
    if not fits:
        raise AnalysisError(f"every optimiser failed for {formula!r}: {attempts}")
    converged, _, optimiser, result, messages = max(fits, key=lambda f: (f[0], f[1]))
    report = _report(result, formula, reml, optimiser, messages, attempts, frame)
    report.converged = converged
    return result, report


def _report(result, formula, reml, optimiser, messages, attempts, frame) -> FitReport:
    names = list(result.model.exog_names)
    interval = result.conf_int().loc[names]
    params = pd.DataFrame({"estimate": result.fe_params, "std_error": result.bse_fe,
                           "z": result.fe_params / result.bse_fe,
                           "p_value": 2 * stats.norm.sf(np.abs(result.fe_params / result.bse_fe)),
                           "wald_low": interval[0], "wald_high": interval[1]})
    components = dict(zip(result.model.exog_vc.names, map(float, result.vcomp), strict=True))
    components["residual"] = float(result.scale)
    singular = [name for name, value in components.items()
                if name != "residual" and value < SINGULAR_SHARE * result.scale]
    return FitReport(
        formula=formula, reml=reml, optimiser=optimiser, converged=bool(result.converged),
        singular=singular, warnings=messages, loglike=float(result.llf),
        aic=None if reml else float(result.aic), n_obs=int(result.nobs),
        n_groups={name: int(frame[name].nunique()) for name in RANDOM_INTERCEPTS},
        params=params, variance_components=components, attempts=attempts)


def morph_terms(formula: str) -> list[str]:
    """The right-hand-side terms of ``formula`` that involve the index."""
    rhs = formula.split("~", 1)[1]
    return [t.strip() for t in rhs.split("+") if MORPH in [p.strip() for p in t.split(":")]]


def without_morph(formula: str) -> str:
    lhs, rhs = formula.split("~", 1)
    kept = [t.strip() for t in rhs.split("+") if t.strip() not in morph_terms(formula)]
    return f"{lhs.strip()} ~ {' + '.join(kept) or '1'}"


def likelihood_ratio_test(frame: pd.DataFrame, formula: str = MAIN_FORMULA) -> dict:
    """ML fits with and without the morphology terms: chi-square statistic, df and p value."""
    full, full_report = fit(frame, formula, reml=False)
    reduced, reduced_report = fit(frame, without_morph(formula), reml=False)
    statistic = max(0.0, 2 * (full.llf - reduced.llf))
    df = len(full.fe_params) - len(reduced.fe_params)
    return {"statistic": statistic, "df": df, "p_value": float(stats.chi2.sf(statistic, df)),
            "aic": full_report.aic, "reports": (full_report, reduced_report)}


def leave_one_out(frame: pd.DataFrame, formula: str = MAIN_FORMULA, factor: str = "language",
                  term: str = MORPH, reml: bool = True) -> pd.DataFrame:
    """The ``term`` estimate with each level of ``factor`` left out in turn, beside the full
    fit: whether one language (or task) carries the slope. The index keeps the standardisation
    of the full frame, so the estimates are on one scale."""
    full, _ = fit(frame, formula, reml=reml)
    rows = []
    for level in sorted(frame[factor].unique()):
        result, report = fit(frame[frame[factor] != level], formula, reml=reml)
        rows.append({factor: level, "estimate": float(result.fe_params[term]),
                     "se": float(result.bse_fe[term]), "converged": report.converged})
    table = pd.DataFrame(rows)
    table["shift"] = table["estimate"] - float(full.fe_params[term])
    table.attrs["full_estimate"] = float(full.fe_params[term])
    return table.sort_values("shift", key=abs, ascending=False, ignore_index=True)


def holm(p_values: pd.Series) -> pd.Series:
    """Holm's step-down adjustment (family-wise error over the indices compared)."""
    from statsmodels.stats.multitest import multipletests

    return pd.Series(multipletests(p_values.to_numpy(), method="holm")[1], index=p_values.index)


def compare_indices(gains: pd.DataFrame, indices_wide: pd.DataFrame, languages: pd.DataFrame,
                    indices: list[str], formula: str = MAIN_FORMULA,
                    only_languages: list[str] | None = None) -> pd.DataFrame:
    """The main model with each index in turn, on the languages that have *all* of them (AIC
    is only comparable on the same rows): REML slope with its Wald interval, the ML
    likelihood-ratio test of the morphology terms, AIC, and Holm-adjusted p values."""
    frame_languages = set(gains["language"]) - {"en"}
    if only_languages is not None:
        frame_languages &= set(only_languages)
    common = sorted(lang for lang in frame_languages
                    if all(pd.notna(indices_wide.get(i, pd.Series(dtype=float)).get(lang))
                           for i in indices))
    unknown = [i for i in indices if i not in indices_wide.columns]
    if unknown:
        raise AnalysisError(f"no index {unknown} in the morphology table; one of "
                            f"{sorted(indices_wide.columns)}")
    if len(common) < 3:
        raise AnalysisError(f"only {len(common)} language(s) have all of {indices}; compare "
                            "fewer indices or more languages")
    rows = []
    for index in indices:
        frame = analysis_frame(gains, indices_wide, languages, index, only_languages=common)
        _, report = fit(frame, formula, reml=True)
        test = likelihood_ratio_test(frame, formula)
        slope = report.params.loc[MORPH]
        rows.append({"index": index, "slope": slope["estimate"],
                     "wald_low": slope["wald_low"], "wald_high": slope["wald_high"],
                     "lrt_statistic": test["statistic"], "lrt_df": test["df"],
                     "p_value": test["p_value"], "aic": test["aic"],
                     "converged": report.converged, "singular": ", ".join(report.singular),
                     "n_languages": len(common), "n_obs": report.n_obs})
    table = pd.DataFrame(rows).set_index("index")
    table["p_holm"] = holm(table["p_value"])
    table["delta_aic"] = table["aic"] - table["aic"].min()
    table.attrs["languages"] = common
    return table.reset_index()


# --- parametric bootstrap -------------------------------------------------------------------------

def _in_chunks(function, arguments, items: list, n_jobs: int, what: str, log) -> list:
    """``function(arguments(chunk))`` over small chunks of ``items`` in ``n_jobs`` processes,
    telling ``log`` how many items are done; every item's outputs, in completion order (each
    item carries its own seed, so the results do not depend on the order)."""
    workers = max(n_jobs, 1)
    size = max(1, math.ceil(len(items) / (4 * workers)))
    chunks = [items[start:start + size] for start in range(0, len(items), size)]
    outputs = []

    def record(part: list) -> None:
        outputs.extend(part)
        if log:
            log(f"[stats] {what}: {len(outputs)}/{len(items)}")

    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for future in as_completed([pool.submit(function, arguments(c)) for c in chunks]):
                record(future.result())
    else:
        for chunk in chunks:
            record(function(arguments(chunk)))
    return outputs


def simulate_response(result, rng: np.random.Generator) -> np.ndarray:
    """A new response from a fitted model: fixed part + a draw of every random intercept from
    its estimated variance + residual noise."""
    model = result.model
    response = model.exog @ result.fe_params.to_numpy()
    # one all-rows group: mats[component][0] is each component's design matrix
    for matrices, variance in zip(model.exog_vc.mats, result.vcomp, strict=True):
        design = matrices[0]
        response = response + design @ rng.normal(0, math.sqrt(max(variance, 0)),
                                                   design.shape[1])
    return response + rng.normal(0, math.sqrt(result.scale), len(response))


def _bootstrap_chunk(args) -> list[np.ndarray]:
    frame, formula, reml, fe_params, vcomp, scale, seeds = args
    model = _model(frame, formula)
    template = _Fitted(model, fe_params, vcomp, scale)
    draws = []
    for seed in seeds:
        simulated = frame.assign(gain=simulate_response(template, np.random.default_rng(seed)))
        with warnings.catch_warnings():
            # a replicate's convergence is judged by its estimates, collected as they are
            warnings.simplefilter("ignore")
            result = _model(simulated, formula).fit(reml=reml, method=list(OPTIMISERS[:2]))
        draws.append(result.fe_params.to_numpy())
    return draws


@dataclass
class _Fitted:
    """The parts of a fitted model :func:`simulate_response` needs, picklable for workers."""

    model: object
    fe_params: pd.Series
    vcomp: np.ndarray
    scale: float


def parametric_bootstrap(result, frame: pd.DataFrame, formula: str = MAIN_FORMULA,
                         reps: int = 200, n_jobs: int = 1, seed: int = 0,
                         reml: bool = True, level: float = 0.95, log=None) -> pd.DataFrame:
    """Percentile intervals for the morphology terms from ``reps`` refits to responses
    simulated from ``result``; ``n_jobs`` worker processes share the replicates and ``log``
    (e.g. ``print``) hears how many are done."""
    seeds = np.random.SeedSequence(seed).generate_state(reps).tolist()
    fitted = (frame, formula, reml, result.fe_params, np.asarray(result.vcomp),
              float(result.scale))
    draws = _in_chunks(_bootstrap_chunk, lambda chunk: (*fitted, chunk), seeds, n_jobs,
                       "bootstrap replicates", log)
    draws = pd.DataFrame(draws, columns=result.fe_params.index)
    tail = (1 - level) / 2
    terms = [name for name in draws.columns if MORPH in name.split(":")]
    return pd.DataFrame({"estimate": result.fe_params[terms],
                         "bootstrap_low": draws[terms].quantile(tail),
                         "bootstrap_high": draws[terms].quantile(1 - tail),
                         "bootstrap_sd": draws[terms].std(), "reps": len(draws)})


# --- simulation: power and parameter recovery -------------------------------------------------------

# The nine English intermediate tasks of Phang et al. (2020) and their multi-task mixture.
PHANG_INTERMEDIATE = (*get_mixture("multi").tasks, "multi")


@dataclass(frozen=True)
class Design:
    """Which cells a result set has: target tasks with their languages, intermediate tasks,
    seeds. :func:`xtreme_r_design` gives the full X-STILTs grid on XTREME-R."""

    tasks: dict[str, tuple[str, ...]]
    intermediate_tasks: tuple[str, ...]
    seeds: tuple[int, ...]


def xtreme_r_design(languages: list[str] | None = None, seeds: int = 3) -> Design:
    from .tasks import get_benchmark

    intermediate = PHANG_INTERMEDIATE
    tasks = {task: tuple(lang for lang in langs if lang != "en"
                         and (languages is None or lang in languages))
             for task, langs in get_benchmark("xtreme-r").tasks.items()}
    return Design(tasks={t: langs for t, langs in tasks.items() if langs},
                  intermediate_tasks=intermediate, seeds=tuple(range(1, seeds + 1)))


# Plausible variance components (gain points^2) where no fitted model is at hand; documented in
# the book's power chapter: language and task differences of a few points, seed noise ~1 point.
PLAUSIBLE_VARIANCES = {"language": 1.0, "target_task": 4.0, "intermediate_task": 2.0,
                       "residual": 1.0}


def simulate_gains(design: Design, covariates: pd.DataFrame, slope: float,
                   variances: dict[str, float], rng: np.random.Generator,
                   fixed: dict[str, float] | None = None) -> pd.DataFrame:
    """Gains drawn from the main model's generating process: the fixed effects (``slope`` for
    the standardised index; ``fixed`` for the others, default 0), one random intercept per
    language, target task and intermediate task, and residual noise. ``covariates`` holds,
    per language, ``morph`` (standardised) and the language covariates."""
    fixed = {"Intercept": 0.0, **(fixed or {})}
    rows = [(t, lang, i, s) for t, langs in design.tasks.items() for lang in langs
            for i in design.intermediate_tasks for s in design.seeds]
    frame = pd.DataFrame(rows, columns=["target_task", "language", "intermediate_task", "seed"])
    frame = frame.join(covariates, on="language")
    frame["task_group"] = frame["target_task"].map(task_group)
    effects = {name: dict(zip(levels := sorted(frame[name].unique()),
                              rng.normal(0, math.sqrt(variances[name]), len(levels)),
                              strict=True))
               for name in RANDOM_INTERCEPTS}
    gain = fixed["Intercept"] + slope * frame["morph"]
    for name, value in fixed.items():
        if name != "Intercept":
            gain = gain + value * frame[name]
    for name in RANDOM_INTERCEPTS:
        gain = gain + frame[name].map(effects[name])
    frame["gain"] = gain + rng.normal(0, math.sqrt(variances["residual"]), len(frame))
    frame["model"] = "simulated"
    return frame


def _power_chunk(args) -> list[tuple[float, bool]]:
    design, covariates, variances, formula, alpha, test, jobs = args
    outcomes = []
    for slope, seed in jobs:
        frame = simulate_gains(design, covariates, slope, variances, np.random.default_rng(seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # replicate fits are judged by their p values
            if test == "lrt":
                p = likelihood_ratio_test(frame, formula)["p_value"]
            else:
                p = fit(frame, formula, reml=True, optimisers=OPTIMISERS[:2])[1].params.loc[
                    MORPH, "p_value"]
        outcomes.append((slope, p < alpha))
    return outcomes


def power_curve(design: Design, covariates: pd.DataFrame, slopes: list[float],
                variances: dict[str, float], reps: int = 100, formula: str = MAIN_FORMULA,
                alpha: float = 0.05, test: str = "lrt", n_jobs: int = 1,
                seed: int = 0, log=None) -> pd.DataFrame:
    """For each true slope (gain points per standard deviation of the index), the share of
    ``reps`` simulated result sets in which the test of the morphology terms rejects at
    ``alpha``, with a Wilson 95% interval. ``test``: ``lrt`` (the main test) or ``wald``;
    ``log`` (e.g. ``print``) hears how many sets are done."""
    seeds = np.random.SeedSequence(seed).generate_state(len(slopes) * reps).tolist()
    jobs = [(slope, seeds[k * reps + r]) for k, slope in enumerate(slopes) for r in range(reps)]
    setting = (design, covariates, variances, formula, alpha, test)
    outcomes = _in_chunks(_power_chunk, lambda chunk: (*setting, chunk), jobs, n_jobs,
                          "simulated result sets", log)
    table = pd.DataFrame(outcomes, columns=["slope", "rejected"]).groupby("slope")["rejected"]
    curve = table.agg(["mean", "count"]).rename(columns={"mean": "power", "count": "reps"})
    low, high = _wilson(curve["power"] * curve["reps"], curve["reps"])
    return curve.assign(power_low=low, power_high=high).reset_index()


def _wilson(successes, n, z: float = 1.959964):
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def detectable_slope(curve: pd.DataFrame, target: float = 0.8) -> float | None:
    """The smallest slope whose power reaches ``target``, linearly interpolated between the
    simulated slopes; None when no simulated slope reaches it."""
    ordered = curve.sort_values("slope")
    above = ordered[ordered["power"] >= target]
    if above.empty:
        return None
    first = above.index[0]
    position = ordered.index.get_loc(first)
    if position == 0:
        return float(ordered.loc[first, "slope"])
    before = ordered.iloc[position - 1]
    after = ordered.loc[first]
    share = (target - before["power"]) / (after["power"] - before["power"])
    return float(before["slope"] + share * (after["slope"] - before["slope"]))


def variances_of(report: FitReport) -> dict[str, float]:
    """A fitted model's variance components in the form :func:`simulate_gains` takes."""
    return {name: report.variance_components[name] for name in (*RANDOM_INTERCEPTS, "residual")}


def simulation_covariates(languages: pd.DataFrame, indices_wide: pd.DataFrame,
                          index: str) -> pd.DataFrame:
    """The real non-English XTREME-R languages that have ``index``, with the index
    standardised over them (``morph``) and the language covariates: the population the power
    analysis and the simulated result set draw on."""
    values = indices_wide[index].dropna().drop("en", errors="ignore")
    covariates = language_covariates(languages).loc[values.index]
    return covariates.assign(morph=(values - values.mean()) / values.std(), morph_raw=values)


def simulated_results(design: Design, covariates: pd.DataFrame, slope: float,
                      variances: dict[str, float], seed: int = 0,
                      baseline_mean: float = 60.0, baseline_sd: float = 10.0) -> pd.DataFrame:
    """A results table (the schema of ``stilts_core.results``, provenance ``simulation``) whose
    paired gains follow :func:`simulate_gains`: direct fine-tuning scores drawn around
    ``baseline_mean`` and each STILTs score the baseline plus a simulated gain. It exercises the
    analysis end to end where no full-scale run exists; it is never a finding."""
    from .metrics import get_metric
    from .results import make_frame

    rng = np.random.default_rng(seed)
    gains = simulate_gains(design, covariates, slope, variances, rng)
    baseline = gains[["target_task", "language", "seed"]].drop_duplicates()
    baseline["baseline"] = rng.normal(baseline_mean, baseline_sd, len(baseline))
    gains = gains.merge(baseline, on=["target_task", "language", "seed"])
    cells = pd.concat([
        baseline.assign(intermediate_task=NO_INTERMEDIATE, value=baseline["baseline"]),
        gains.assign(value=gains["baseline"] + gains["gain"]),
    ], ignore_index=True)
    rows = []
    for task, part in cells.groupby("target_task"):
        for metric in get_metric(get_task(task).metric).headline:
            rows += [{"model": "simulated", "intermediate_task": r.intermediate_task,
                      "target_task": task, "language": r.language, "seed": int(r.seed),
                      "split": "test", "metric": metric, "value": float(r.value),
                      "provenance": "simulation", "run_id": f"simulation-{seed}",
                      "settings": "{}"} for r in part.itertuples()]
    return make_frame(rows)


# --- export for a cross-check in R ------------------------------------------------------------------

ANALYSIS_COLUMNS = ["model", "intermediate_task", "target_task", "task_group", "language", "seed",
                    "gain", "index", "morph", "morph_raw", "log_pretraining_size", "latin_script",
                    "indo_european", "value", "value_baseline", "settings"]


def export_analysis(frame: pd.DataFrame, output_dir, formula: str = MAIN_FORMULA) -> list:
    """Write the analysis data (CSV) and the REML and ML fits (JSON) so the same model can be
    refitted elsewhere, e.g. ``lme4::lmer(<lme4_formula>, data, REML = TRUE)`` in R."""
    import json
    from pathlib import Path

    from .paths import atomic_write_text

    output_dir = Path(output_dir)
    index = frame.attrs["index"]
    _, reml = fit(frame, formula, reml=True)
    test = likelihood_ratio_test(frame, formula)
    summary = {
        "index": index, "standardisation": {"mean": frame.attrs["index_mean"],
                                            "sd": frame.attrs["index_sd"]},
        "excluded_languages": frame.attrs["excluded_languages"],
        "reml_fit": reml.summary(), "ml_fit": test["reports"][0].summary(),
        "likelihood_ratio_test": {k: test[k] for k in ("statistic", "df", "p_value")},
        "lme4": {"formula": lme4_formula(formula),
                 "call": f"lmer({lme4_formula(formula)}, data = read.csv('analysis_{index}.csv'), "
                         "REML = TRUE)",
                 "note": "task_group is a factor with treatment coding; its first level "
                         "(alphabetical) is the reference, as in patsy"},
    }
    data_path = output_dir / f"analysis_{index}.csv"
    fit_path = output_dir / f"fit_{index}.json"
    atomic_write_text(data_path, frame[ANALYSIS_COLUMNS].to_csv(index=False, lineterminator="\n"))
    atomic_write_text(fit_path, json.dumps(summary, indent=1, default=float) + "\n")
    return [data_path, fit_path]


# The simulated result set the book analyses when there is no full-scale run: the generating
# model of the power analysis over the real languages and the real index, with a stated truth.
BOOK_SIMULATION = {"index": "mattr_over_english", "slope": 1.0, "seed": 0,
                   "variances": PLAUSIBLE_VARIANCES}


def write_simulation(path, languages: pd.DataFrame, indices_wide: pd.DataFrame,
                     index: str, slope: float, variances: dict[str, float],
                     seed: int = 0) -> pd.DataFrame:
    """Write :func:`simulated_results` on the full XTREME-R design to ``path`` (parquet), and
    its truth beside it (``<path>.truth.json``), both atomically."""
    import json
    import os
    from pathlib import Path

    from .paths import atomic_write_text

    path = Path(path)
    covariates = simulation_covariates(languages, indices_wide, index)
    table = simulated_results(xtreme_r_design(list(covariates.index)), covariates, slope,
                              variances, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    table.to_parquet(partial, index=False)
    os.replace(partial, path)
    truth = {"index": index, "slope": slope, "variances": variances, "seed": seed,
             "other_fixed_effects": 0.0, "design": "xtreme_r_design: every XTREME-R target task "
             "with its own languages that have the index, 10 intermediate settings, 3 seeds"}
    atomic_write_text(path.with_name(path.name + ".truth.json"), json.dumps(truth, indent=1) + "\n")
    return table
