"""Alignment as a route to transfer: does a language whose alignment with English gains more
from intermediate training also gain more in zero-shot transfer?

One point per language x intermediate task and target task: the alignment gain at the retrieval
layer (Tatoeba accuracy of the phase-(ii) encoder minus the pretrained one) and the transfer gain
(STILTs minus direct fine-tuning), each averaged over the seeds the two share (seeds are
replicates of a cell, not further points). The association is estimated within language and
intermediate task: a repeated-measures correlation (Bakdash and Marusich 2017) with both as fixed
blocking factors. A language's level (its script, data, morphology) moves both gains in all its
points, and an intermediate task's level moves them in every language; a pooled correlation
counts either as evidence, and blocking on language alone still counts each intermediate task's
shift once per language. What is left is whether, where a task raised a language's alignment
more than that task and that language usually do, transfer rose more too. It is association,
not mediation: nothing here shows that alignment carries the effect on transfer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from stilts_core.analysis.estimates import (
    ALIGNMENT_TASK,
    LEVEL,
    RETRIEVAL_MEASURE,
    TRAINING_LANGUAGE,
    fine_tuning_alignment_changes,
)
from stilts_core.analysis.statistics import wilson
from stilts_core.evaluation.alignment import METRIC_PREFIX
from stilts_core.runs.results import (
    NO_INTERMEDIATE,
    headline_scores,
    paired_gains,
    setting,
)
from stilts_core.tasks.metrics import get_metric
from stilts_core.tasks.registry import get_task

ALIGNMENT_GAIN, ALIGNMENT_CHANGE, TRANSFER_GAIN = "alignment_gain", "alignment_change", "transfer_gain"
# the encoder as it is, which a row that names no protocol used: XTREME-R's dual encoder is
# trained further on retrieval pairs, and its retrieval is not the phase-(ii) encoder's alignment
ALIGNMENT_PROTOCOL = "encoder"
GROUP = ["provenance", "model", "target_task"]  # never pooled: one estimate per group
CELL = [*GROUP, "intermediate_task", "language"]
BLOCKS = ("language", "intermediate_task")
VARIANCE_BY = "intermediate_task"  # one residual variance per intermediate task
PRIOR_RESIDUALS = 3  # the pooled residual variance counts as this many residuals of each task
MIN_DF = 4  # Fisher's z interval has standard error 1 / sqrt(df - 3)
ASSOCIATION = ["points", "languages", "intermediate_tasks", "df", "r", "r_low", "r_high", "slope",
               "slope_low", "slope_high", "p", "pooled_r", "note"]


def _non_english_gains(table: pd.DataFrame, split: str) -> pd.DataFrame:
    """Paired headline gains of the encoders before any target fine-tuning of their own, English
    (the training language) left out."""
    gains = paired_gains(headline_scores(table, split))
    return gains[gains["language"] != TRAINING_LANGUAGE]


def _one_per_seed(frame: pd.DataFrame, keys: list[str], what: str) -> pd.DataFrame:
    """Refuse two rows of one cell and seed (two settings of the same score) rather than average
    or multiply them in a merge."""
    repeated = frame.duplicated([*keys, "seed"], keep=False)
    if repeated.any():
        raise ValueError(f"several {what} for one language and seed; select one setting per "
                         "score first (e.g. by results.setting(table, 'layer')):\n"
                         + frame.loc[repeated, [*keys, "seed", "settings"]].head()
                         .to_string(index=False))
    return frame


def transfer_gains(table: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Zero-shot transfer gains per language and seed: every target task's headline score,
    STILTs minus direct fine-tuning, in the non-English languages."""
    gains = _non_english_gains(table, split)
    gains = gains[[get_task(task).role == "target" for task in gains["target_task"]]]
    gains = _one_per_seed(gains, CELL, "transfer gains")
    return gains[[*CELL, "seed"]].assign(transfer_gain=gains["gain"])


def alignment_gains(table: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """The alignment gain at the retrieval layer per language and seed: Tatoeba accuracy of
    each phase-(ii) encoder, as it is, minus the pretrained encoder's."""
    gains = _non_english_gains(table, split)
    gains = gains[(gains["target_task"] == ALIGNMENT_TASK)
                  & (setting(gains, "protocol").fillna(ALIGNMENT_PROTOCOL) == ALIGNMENT_PROTOCOL)]
    keys = ["provenance", "model", "intermediate_task", "language"]
    gains = _one_per_seed(gains, keys, f"{ALIGNMENT_TASK} retrieval gains")
    return gains[[*keys, "seed"]].assign(alignment_gain=gains["gain"])


def _cell_means(paired: pd.DataFrame, alignment: str) -> pd.DataFrame:
    """One point per cell: both gains averaged over the seeds they share, with that number."""
    return (paired.groupby(CELL, sort=True)
            .agg(**{alignment: (alignment, "mean"), TRANSFER_GAIN: (TRANSFER_GAIN, "mean"),
                    "n_seeds": ("seed", "nunique")})
            .reset_index())


def gain_pairs(table: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Per provenance class, model, target task, intermediate task and non-English language:
    the alignment gain from intermediate training at the retrieval layer and the transfer gain,
    each the mean over the seeds both were measured in (``n_seeds``). Empty when the table lacks
    either gain, or they share no language, intermediate task and seed."""
    paired = transfer_gains(table, split).merge(
        alignment_gains(table, split),
        on=["provenance", "model", "intermediate_task", "language", "seed"])
    return _cell_means(paired, ALIGNMENT_GAIN)


def retrieval_layers(table: pd.DataFrame) -> pd.DataFrame:
    """Per provenance class and model: the layer (``hidden_states`` index, 0 the embeddings)
    its Tatoeba retrieval rows were scored at, a negative index counted from the top layer its
    alignment rows measured; the top layer where the table has no retrieval rows."""
    layers = setting(table, "layer")
    by_model = [table["provenance"], table["model"]]
    top = layers[table["metric"].str.startswith(METRIC_PREFIX) & layers.notna()].groupby(
        by_model).max().astype(float)
    headline = get_metric(get_task(ALIGNMENT_TASK).metric).headline
    retrieval = layers[(table["target_task"] == ALIGNMENT_TASK) & table["metric"].isin(headline)
                       & (setting(table, "protocol").fillna(ALIGNMENT_PROTOCOL)
                          == ALIGNMENT_PROTOCOL) & layers.notna()]
    several = retrieval.groupby(by_model).nunique()
    if (several > 1).any():
        raise ValueError(f"{ALIGNMENT_TASK} retrieval was scored at several layers for "
                         f"{list(several[several > 1].index)}; select the rows of one layer first")
    chosen = retrieval.groupby(by_model).first().astype(float).reindex(top.index)
    layer = chosen.where(chosen >= 0, top + 1 + chosen).fillna(top)
    return layer.rename("layer").reset_index()


def fine_tuning_pairs(table: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Per provenance class, model, target task, intermediate task and non-English language:
    the change target fine-tuning on that task made to retrieval accuracy at the retrieval
    layer (the encoder after fine-tuning minus the same phase-(ii) encoder before it) and the
    transfer gain on that task, each the mean over the seeds both were measured in. Direct
    fine-tuning has no transfer gain and no point. Empty when the table has no alignment after
    target fine-tuning."""
    changes = fine_tuning_alignment_changes(table)
    changes = changes[(changes["measure"] == RETRIEVAL_MEASURE)
                      & (changes["language"] != TRAINING_LANGUAGE)
                      & (changes["intermediate_task"] != NO_INTERMEDIATE)]
    changes = changes.astype({"layer": float}).merge(retrieval_layers(table),
                                                     on=["provenance", "model", "layer"])
    changes = changes.drop(columns="target_task").rename(columns={"fine_tuned_on": "target_task"})
    changes = _one_per_seed(changes, CELL, "alignment changes")
    paired = transfer_gains(table, split).merge(
        changes[[*CELL, "seed"]].assign(alignment_change=changes["gain"]), on=[*CELL, "seed"])
    return _cell_means(paired, ALIGNMENT_CHANGE)


def fisher_interval(r: float, df: int, level: float = LEVEL,
                    widen: float = 1.0) -> tuple[float, float]:
    """The interval of a (repeated-measures) correlation by Fisher's z with standard error
    1 / sqrt(df - 3), ``df`` the residual degrees of freedom (Bakdash and Marusich 2017), times
    ``widen`` (the slope's standard error over its model-based one, so both intervals agree)."""
    half = widen * stats.norm.ppf((1 + level) / 2) / np.sqrt(df - 3)
    return float(np.tanh(np.arctanh(r) - half)), float(np.tanh(np.arctanh(r) + half))


def _blocks_design(points: pd.DataFrame, blocks) -> np.ndarray:
    """An intercept and treatment-coded indicators of each block's levels."""
    indicators = [np.eye(codes.max() + 1)[codes][:, 1:]
                  for codes in (pd.factorize(points[block])[0] for block in blocks)]
    return np.column_stack([np.ones(len(points)), *indicators])


def _why_not(points: pd.DataFrame, blocks, df: int, identified: bool) -> str:
    if not identified:
        if "intermediate_task" in blocks and (points.groupby("language")["intermediate_task"]
                                              .nunique().max() < 2):
            return ("not identified: every language has one intermediate task here, so the "
                    "gains vary only between languages and a within-language association cannot "
                    "be told from what differs between languages (it needs two or more "
                    "intermediate tasks per language)")
        return ("not identified: language and intermediate task explain the alignment values "
                "exactly, leaving no variation within them")
    return (f"too few points: {len(points)} points leave {df} residual degrees of freedom after "
            f"the blocks ({', '.join(blocks)}) and the variances; an interval needs {MIN_DF}")


def _within(design: np.ndarray, values: np.ndarray, weights: np.ndarray):
    """Both columns of ``values`` less their (weighted) least-squares fit on the blocks, in the
    weighted scale (Frisch-Waugh-Lovell: the slope on these is the slope in the full model),
    and an orthonormal basis of the weighted blocks' columns (its width is their rank)."""
    scale = np.sqrt(weights)[:, None]
    u, singular, _ = np.linalg.svd(design * scale, full_matrices=False)
    basis = u[:, singular > singular.max() * 1e-10]
    scaled = values * scale
    return (scaled - basis @ (basis.T @ scaled)).T, basis


def _task_weights(basis: np.ndarray, within_x: np.ndarray, residual: np.ndarray, df: int,
                  groups: np.ndarray) -> np.ndarray:
    """One inverse residual variance per group, from the unweighted fit: each group's squared
    residuals over its share of the residual degrees of freedom (one minus each point's
    leverage), with the pooled variance counted as :data:`PRIOR_RESIDUALS` more residuals, so a
    group of few points or with no residual spread gets a finite weight."""
    leverage = (basis ** 2).sum(axis=1) + within_x ** 2 / float(within_x @ within_x)
    pooled = float(residual @ residual) / df
    variances = ((np.bincount(groups, residual ** 2) + PRIOR_RESIDUALS * pooled)
                 / (np.bincount(groups, 1 - leverage) + PRIOR_RESIDUALS))
    relative = np.divide(variances, pooled, out=np.ones_like(variances), where=pooled > 0)
    return 1 / np.maximum(relative, 1e-12)[groups]


def _robust_se(within_x: np.ndarray, residual: np.ndarray, basis: np.ndarray) -> float:
    """HC2, the heteroscedasticity-consistent standard error of the slope: each squared
    residual over one minus its point's leverage (a point of leverage 1 has no residual)."""
    leverage = (basis ** 2).sum(axis=1) + within_x ** 2 / float(within_x @ within_x)
    share = 1 - leverage
    squares = np.divide(residual ** 2, share, out=np.zeros_like(share), where=share > 1e-10)
    return float(np.sqrt(within_x ** 2 @ squares)) / float(within_x @ within_x)


def within_association(points: pd.DataFrame, x: str = ALIGNMENT_GAIN, y: str = TRANSFER_GAIN,
                       blocks=BLOCKS, variance_by: str | None = VARIANCE_BY,
                       robust: bool = True, level: float = LEVEL) -> dict:
    """The association of ``x`` and ``y`` within ``blocks`` (columns of ``points``, one row per
    point): the slope of ``y`` on ``x`` with every block a fixed factor, its t-interval and p
    value, and the repeated-measures correlation ``r`` (the partial correlation given the
    blocks, ``sign(slope) * sqrt(SS_x / (SS_x + SS_residual))``) with Fisher's z interval on the
    residual degrees of freedom ``df``. With ``variance_by`` (a column), each of its levels has
    its own residual variance (weighted least squares, the weights from the unweighted fit:
    :func:`_task_weights`), and ``df`` is one less per extra variance; with ``robust``, the
    slope's standard error is the larger of the model-based one and HC2 (:func:`_robust_se`),
    which keeps the level where residuals are heavy-tailed or their variance differs in ways
    the weights miss, and r's interval widens in proportion. ``variance_by=None,
    robust=False`` is Bakdash and Marusich's (2017) fit. ``pooled_r``, the Pearson correlation of
    all points as if independent, is for contrast only. Where the design leaves no variation of
    ``x`` within the blocks, or under :data:`MIN_DF` residual degrees of freedom, every estimate
    is NaN and ``note`` says why."""
    design = _blocks_design(points, blocks)
    values = points[[x, y]].to_numpy(dtype=float)
    (within_x, within_y), basis = _within(design, values, np.ones(len(points)))
    groups = pd.factorize(points[variance_by])[0] if variance_by else np.zeros(len(points), int)
    df = len(points) - basis.shape[1] - 1 - groups.max()
    spread = float(((values[:, 0] - values[:, 0].mean()) ** 2).sum())
    identified = float(within_x @ within_x) > 1e-10 * spread and spread > 0
    found = {"points": len(points), "languages": points["language"].nunique(),
             "intermediate_tasks": points["intermediate_task"].nunique(), "df": int(df),
             **dict.fromkeys(ASSOCIATION[4:11], float("nan")),
             "pooled_r": float(np.corrcoef(values.T)[0, 1])
             if len(points) > 2 and np.ptp(values, axis=0).all() else float("nan"), "note": ""}
    if not identified or df < MIN_DF:
        return {**found, "note": _why_not(points, blocks, df, identified)}
    slope = float(within_x @ within_y) / float(within_x @ within_x)
    weights = _task_weights(basis, within_x, within_y - slope * within_x,
                            df + groups.max(), groups)
    (within_x, within_y), basis = _within(design, values, weights)
    ss_x, cross, ss_y = (float(a @ b) for a, b in ((within_x, within_x), (within_x, within_y),
                                                  (within_y, within_y)))
    slope = cross / ss_x
    model_se = np.sqrt(max(ss_y - slope * cross, 0.0) / df / ss_x)
    se = max(model_se, _robust_se(within_x, within_y - slope * within_x, basis) if robust else 0.0)
    half = stats.t.ppf((1 + level) / 2, df) * se
    r = cross / np.sqrt(ss_x * ss_y) if ss_y > 0 else 0.0
    r_low, r_high = fisher_interval(min(max(r, -1 + 1e-12), 1 - 1e-12), df, level,
                                    se / model_se if model_se > 0 else 1.0)
    return {**found, "r": r, "r_low": r_low, "r_high": r_high, "slope": slope,
            "slope_low": slope - half, "slope_high": slope + half,
            "p": float(2 * stats.t.sf(abs(slope / se), df)) if se > 0 else 0.0}


def associations(pairs: pd.DataFrame, x: str = ALIGNMENT_GAIN, blocks=BLOCKS) -> pd.DataFrame:
    """:func:`within_association` of ``x`` and the transfer gain per provenance class, model and
    target task (never pooled across them), one row each."""
    records = [{**dict(zip(GROUP, key, strict=True)), "alignment": x,
                **within_association(points, x, blocks=blocks)}
               for key, points in pairs.groupby(GROUP, sort=True)]
    return pd.DataFrame(records, columns=[*GROUP, "alignment", *ASSOCIATION])


# --- calibration by simulation with a known truth -------------------------------------------------

def simulate_points(rng: np.random.Generator, languages: int = 15, intermediate_tasks: int = 3,
                    slope: float = 0.0, language_link: float = 1.5, task_sd: float = 0.0,
                    noise: str = "normal", noisy_task_scale: float = 1.0) -> pd.DataFrame:
    """One simulated target task, a point per language x intermediate task, with a known
    within-language-and-task slope. Alignment gain = language effect (SD 2) + task effect
    (``task_sd``) + within part (SD 1); transfer gain = ``language_link`` x the language effect
    + its own noise (language-level confounding: a pooled correlation sees it) + an independent
    task effect (``task_sd``: shared by every language, so blocking on language alone counts it
    once per language) + ``slope`` x the within part + noise (SD 1; ``t3``: Student's t with 3 df
    scaled to SD 1). The first task's within parts and noise are ``noisy_task_scale`` times larger."""
    def draw(size):
        if noise == "t3":
            return rng.standard_t(3, size) / np.sqrt(3.0)
        return rng.normal(0, 1, size)

    language = rng.normal(0, 2, (languages, 1))
    scale = np.ones((1, intermediate_tasks))
    scale[0, 0] = noisy_task_scale
    within = draw((languages, intermediate_tasks)) * scale
    alignment = language + rng.normal(0, task_sd, (1, intermediate_tasks)) + within
    transfer = (language_link * language + rng.normal(0, 1, (languages, 1))
                + rng.normal(0, task_sd, (1, intermediate_tasks)) + slope * within
                + draw((languages, intermediate_tasks)) * scale)
    return pd.DataFrame({
        "language": np.repeat([f"l{i}" for i in range(languages)], intermediate_tasks),
        "intermediate_task": np.tile([f"t{j}" for j in range(intermediate_tasks)], languages),
        ALIGNMENT_GAIN: alignment.ravel(), TRANSFER_GAIN: transfer.ravel()})


BOOK_METHOD = "within language and intermediate task, a residual variance per task"
METHODS = {  # the book's estimate, and what each of its parts guards against when left out
    BOOK_METHOD: within_association,
    "within language and intermediate task, one residual variance":
        lambda points: within_association(points, variance_by=None, robust=False),
    "within language, one residual variance (Bakdash and Marusich)":
        lambda points: within_association(points, blocks=("language",), variance_by=None,
                                          robust=False),
    "pooled Pearson correlation": lambda points: {"p": float(stats.pearsonr(
        points[ALIGNMENT_GAIN], points[TRANSFER_GAIN])[1])},
}


def calibration(settings: dict[str, dict], reps: int, seed: int = 0, alpha: float = 0.05,
                methods: tuple[str, ...] = tuple(METHODS)) -> pd.DataFrame:
    """Per simulation setting (keyword arguments of :func:`simulate_points`) and each of
    ``methods`` (names in :data:`METHODS`): the share of ``reps`` simulated sets whose test
    rejects at ``alpha`` (the type-I error where the setting's slope is 0, the power otherwise)
    with its Wilson interval, and for the methods with a slope its mean and the coverage of its
    interval."""
    records = []
    for number, (name, arguments) in enumerate(settings.items()):
        rng = np.random.default_rng([seed, number])
        sets = [simulate_points(rng, **arguments) for _ in range(reps)]
        truth = arguments.get("slope", 0.0)
        for method in methods:
            found = pd.DataFrame([METHODS[method](points) for points in sets])
            rejected = int((found["p"] < alpha).sum())
            low, high = wilson(rejected, reps)
            records.append({
                "setting": name, "method": method, "true_slope": truth,
                "rejection_rate": rejected / reps, "wilson_low": float(low),
                "wilson_high": float(high), "sets": reps,
                "mean_slope": found["slope"].mean() if "slope" in found else float("nan"),
                "coverage": ((found["slope_low"] <= truth) & (truth <= found["slope_high"])).mean()
                if "slope" in found else float("nan")})
    return pd.DataFrame(records)
