"""The seed's ten claims about Phang et al. 2020 (``data/published/seed_claims.tsv``), each
checked by computing the quantity the claim states and setting it beside the published value.

Result claims are computed from the results table, from **full-scale runs of XLM-R Large only**:
rows of a smoke run or a simulation are counted and named but never compared with a published
number, and a claim whose cells have not all been run at full scale says so. Setup claims are
computed from the task registry, the phase registry and the full-scale grid config. Each claim
is a declared check function; :func:`check_claims` returns one tidy row per checked quantity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stilts_core.grid.config import FULL_SCALE_CONFIG
from stilts_core.grid.plan import load_config, plan
from stilts_core.paths import data_dir
from stilts_core.phases.params import VARIANT_SUFFIXES
from stilts_core.provenance import FULL_SCALE
from stilts_core.runs.results import NO_INTERMEDIATE, benchmark_scores
from stilts_core.tasks.benchmarks import get_benchmark
from stilts_core.tasks.declared.intermediate import MULTI, PHANG_INTERMEDIATE
from stilts_core.tasks.registry import get_mixture, get_task

SUPPORTED, CONTRADICTED, NOT_RUN = "supported", "contradicted", "not yet run at full scale"
CLAIMS_PATH = data_dir() / "published" / "seed_claims.tsv"
CLAIM_MODEL = "xlm-roberta-large"
BENCHMARK = "xtreme"  # Phang et al. report gains over the XTREME target tasks
# Published gains are single numbers from another code base and another release of the data;
# a replication within this many points (same sign) supports them, anything else contradicts.
TOLERANCE = 2.0
RETRIEVAL = ("bucc2018", "tatoeba")
COLUMNS = ["claim_id", "kind", "claim", "quantity", "published", "computed", "status", "criterion",
           "evidence"]


class ClaimsError(ValueError):
    """The claims table does not match the declared checks; the message names the file."""


@dataclass(frozen=True)
class Check:
    quantity: str
    published: str
    computed: str
    status: str
    criterion: str
    evidence: str


@dataclass(frozen=True)
class Gain:
    """A paired gain averaged over the XTREME target tasks (or one task): its mean over seeds,
    standard deviation over seeds and number of seeds."""

    mean: float
    sd: float
    seeds: int

    def __str__(self) -> str:
        spread = f" ± {self.sd:.2f} (sd over {self.seeds} seeds)" if self.seeds > 1 else " (1 seed)"
        return f"{self.mean:+.2f}{spread}"


class Evidence:
    """The full-scale rows of :data:`CLAIM_MODEL` as XTREME task averages per intermediate
    setting and seed, counting only tasks with every XTREME language."""

    def __init__(self, results: pd.DataFrame, config_path: Path = FULL_SCALE_CONFIG):
        self.config_path = Path(config_path)
        full = results[(results["provenance"] == FULL_SCALE) & (results["model"] == CLAIM_MODEL)]
        self.other_rows = results[results["provenance"] != FULL_SCALE]
        self.full_rows = len(full)
        self.tasks = tuple(get_benchmark(BENCHMARK).tasks)
        scores = benchmark_scores(full, BENCHMARK) if len(full) else pd.DataFrame(
            columns=["intermediate_task", "seed", "level", "name", "value", "complete"])
        scores = scores[(scores["level"] == "task") & scores["complete"]]
        # setting x seed -> task -> average over the task's languages
        self.averages = scores.pivot_table(index=["intermediate_task", "seed"], columns="name",
                                           values="value", aggfunc="first")

    def complete(self, setting: str) -> bool:
        return bool(self._seeds(setting))

    def _seeds(self, setting: str) -> list:
        """Seeds at which both ``setting`` and the baseline have every XTREME task."""
        def full_seeds(name):
            if name not in self.averages.index.get_level_values(0):
                return set()
            table = self.averages.loc[name].reindex(columns=list(self.tasks))
            return set(table.index[table.notna().all(axis=1)])
        return sorted(full_seeds(setting) & full_seeds(NO_INTERMEDIATE))

    def task_gains(self, setting: str) -> pd.DataFrame:
        """Seed x task gains (setting minus baseline at the same seed)."""
        seeds = self._seeds(setting)
        columns = list(self.tasks)
        return (self.averages.loc[setting].loc[seeds, columns]
                - self.averages.loc[NO_INTERMEDIATE].loc[seeds, columns])

    def gain(self, setting: str, tasks: tuple[str, ...] | None = None) -> Gain:
        per_seed = self.task_gains(setting)[list(tasks or self.tasks)].mean(axis=1)
        return Gain(float(per_seed.mean()), float(per_seed.std(ddof=1)) if len(per_seed) > 1
                    else float("nan"), len(per_seed))

    def missing(self, settings) -> list[str]:
        return [name for name in settings if not self.complete(name)]

    def not_run(self, settings) -> str:
        """Why a claim cannot be checked yet: which settings lack a full-scale run."""
        missing = [f"{name} (direct fine-tuning)" if name == NO_INTERMEDIATE else name
                   for name in self.missing([NO_INTERMEDIATE, *settings])]
        found = (f"{self.full_rows} full-scale rows of {CLAIM_MODEL}" if self.full_rows
                 else f"no full-scale rows of {CLAIM_MODEL}")
        others = ", ".join(f"{n} {p} rows" for p, n in
                           self.other_rows["provenance"].value_counts().sort_index().items())
        return (f"needs full-scale runs of {', '.join(missing)} on every XTREME task and language; "
                f"the results have {found}" + (f" ({others}: never compared)" if others else ""))


def _numeric(evidence: Evidence, setting: str, published: float, label: str) -> Check:
    criterion = f"same sign as and within {TOLERANCE} points of the published gain"
    if not evidence.complete(setting):
        return Check(label, f"{published:+.1f}", "", NOT_RUN, criterion,
                     evidence.not_run([setting]))
    gain = evidence.gain(setting)
    close = abs(gain.mean - published) <= TOLERANCE and np.sign(gain.mean) == np.sign(published)
    return Check(label, f"{published:+.1f}", str(gain), SUPPORTED if close else CONTRADICTED,
                 criterion, f"XTREME task averages of {len(evidence.tasks)} tasks")


def _status(holds: bool) -> str:
    return SUPPORTED if holds else CONTRADICTED


def _c3(evidence: Evidence) -> list[Check]:
    checks = []
    settings = [*PHANG_INTERMEDIATE, MULTI]
    criterion = ("mean gain over the intermediate settings is positive and larger than their "
                 "mean gain on the other XTREME tasks")
    run = [name for name in settings if evidence.complete(name)]
    others = tuple(task for task in evidence.tasks if task not in RETRIEVAL)
    for task in RETRIEVAL:
        label = f"{task}: phase-(ii) encoder minus base encoder, mean over intermediate settings"
        if not run:
            checks.append(Check(label, "large gains", "", NOT_RUN, criterion,
                                evidence.not_run(settings)))
            continue
        retrieval = np.mean([evidence.gain(name, (task,)).mean for name in run])
        rest = np.mean([evidence.gain(name, others).mean for name in run])
        checks.append(Check(label, "large gains", f"{retrieval:+.2f} (other tasks {rest:+.2f})",
                            _status(retrieval > 0 and retrieval > rest), criterion,
                            f"{len(run)} of {len(settings)} intermediate settings run"))
    return checks


def _c1(evidence):
    return [_numeric(evidence, name, value, f"mean gain over XTREME tasks, {label}")
            for name, label, value in (("squad", "SQuAD", 8.2), ("mnli", "MNLI", 7.5),
                                       ("hellaswag", "HellaSwag", 7.0))]


def _c2(evidence):
    checks = [_numeric(evidence, MULTI, 8.7, "mean gain over XTREME tasks, multi-task")]
    label, criterion = "is multi-task the largest gain", "multi-task ≥ every single intermediate task"
    settings = [*PHANG_INTERMEDIATE, MULTI]
    if evidence.missing(settings):
        return [*checks, Check(label, "the largest", "", NOT_RUN, criterion,
                               evidence.not_run(settings))]
    gains = {name: evidence.gain(name).mean for name in PHANG_INTERMEDIATE}
    best = max(gains, key=gains.get)
    multi = evidence.gain(MULTI).mean
    return [*checks, Check(label, "the largest", f"multi {multi:+.2f}; best single {best} "
                           f"{gains[best]:+.2f}", _status(multi >= gains[best]), criterion,
                           "all ten intermediate settings")]


def _share_positive(evidence, task: str) -> float:
    return float(np.mean([evidence.gain(name, (task,)).mean > 0 for name in PHANG_INTERMEDIATE]))


def _c4(evidence):
    rows = (("tydiqa", "consistent improvements", "> 1/2", lambda share: share > 0.5),
            ("xnli", "no benefit", "≤ 1/2", lambda share: share <= 0.5))
    checks = []
    for task, published, rule, holds in rows:
        label = f"{task}: share of the nine intermediate tasks with a positive mean gain"
        criterion = f"share {rule}"
        if evidence.missing(PHANG_INTERMEDIATE):
            checks.append(Check(label, published, "", NOT_RUN, criterion,
                                evidence.not_run(PHANG_INTERMEDIATE)))
            continue
        share = _share_positive(evidence, task)
        checks.append(Check(label, published, f"{share:.2f}", _status(holds(share)), criterion,
                            "means over seeds per intermediate task"))
    return checks


def _c5(evidence):
    label = "XTREME score of the best intermediate setting per task minus direct fine-tuning"
    criterion = f"same sign as and within {TOLERANCE} points of +5.4"
    settings = [*PHANG_INTERMEDIATE, MULTI]
    if evidence.missing(settings):
        return [Check(label, "+5.4", "", NOT_RUN, criterion, evidence.not_run(settings))]
    tasks = list(evidence.tasks)
    means = {name: evidence.averages.loc[name][tasks].mean() for name in
             [NO_INTERMEDIATE, *settings]}  # task averages, mean over seeds
    best = pd.concat([means[name] for name in settings], axis=1).max(axis=1)
    value = float(best.mean() - means[NO_INTERMEDIATE].mean())
    close = abs(value - 5.4) <= TOLERANCE and value > 0
    return [Check(label, "+5.4", f"{value:+.2f}", _status(close), criterion,
                  "best setting chosen per task on the test averages, as the leaderboard entry")]


def _c6(evidence):
    checks = []
    for variant, suffix in VARIANT_SUFFIXES.items():
        label = f"plain English intermediate training minus the {variant} variant"
        criterion = "mean over intermediate tasks run both ways is positive"
        pairs = [name for name in PHANG_INTERMEDIATE
                 if evidence.complete(name) and evidence.complete(name + suffix)]
        if not pairs:
            checks.append(Check(label, "plain is better", "", NOT_RUN, criterion,
                                evidence.not_run([f"<task>{suffix} with its plain <task>"])))
            continue
        difference = float(np.mean([evidence.gain(name).mean - evidence.gain(name + suffix).mean
                                    for name in pairs]))
        checks.append(Check(label, "plain is better", f"{difference:+.2f}",
                            _status(difference > 0), criterion, f"tasks: {', '.join(pairs)}"))
    return checks


def _c7(evidence):
    config = load_config(evidence.config_path)
    models = sorted(set(evidence.other_rows["model"]))
    return [Check("models of the full-scale grid config", "xlm-roberta-large",
                  ", ".join(config.models), _status(CLAIM_MODEL in config.models),
                  "the config trains xlm-roberta-large",
                  f"{evidence.config_path.name}; models of the rows that are not full-scale runs: "
                  f"{', '.join(models) or 'none'}")]


def _c8(evidence):
    runs = plan(load_config(evidence.config_path))
    phases = sorted({run.phase for run in runs})
    chained = any(run.phase == "target" and run.params.get("intermediate_run") for run in runs)
    holds = {"intermediate", "target", "zero_shot_eval"} <= set(phases) and chained
    return [Check("phases in the full-scale grid", "3 phases",
                  "3: (i) pretrained model, (ii) intermediate, (iii) target + zero-shot evaluation"
                  if holds else ", ".join(phases), _status(holds),
                  "phase (iii) runs start from phase-(ii) runs, which start from the pretrained model",
                  f"{len(runs)} planned runs ({', '.join(phases)})")]


def _c9(evidence):
    tasks = get_mixture(MULTI).tasks
    intermediate = [name for name in tasks if get_task(name).role == "intermediate"]
    return [Check("English intermediate tasks of the registry's multi-task mixture", "9 tasks",
                  f"{len(intermediate)}: {', '.join(intermediate)}",
                  _status(len(intermediate) == 9 and set(intermediate) == set(PHANG_INTERMEDIATE)),
                  "nine registered intermediate tasks, Phang et al.'s", "stilts_core.tasks.registry")]


def _c10(evidence):
    formats = sorted({get_task(name).format for name in PHANG_INTERMEDIATE})
    named = {"classification", "extractive_qa", "multiple_choice"}
    extra = sorted(set(formats) - named)
    return [Check("formats of the nine intermediate tasks", "3 formats",
                  f"{len(formats)}: {', '.join(formats)}", _status(named <= set(formats)),
                  "classification, question answering and multiple choice are all covered",
                  "stilts_core.tasks.registry" + (f"; also {', '.join(extra)} (CCG is tagging)" if extra
                                         else ""))]


CHECKS: dict[str, Callable[[Evidence], list[Check]]] = {
    "C1": _c1, "C2": _c2, "C3": _c3, "C4": _c4, "C5": _c5, "C6": _c6, "C7": _c7,
    "C8": _c8, "C9": _c9, "C10": _c10,
}


def read_claims(path: Path = CLAIMS_PATH) -> pd.DataFrame:
    try:
        claims = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except OSError as error:
        raise ClaimsError(f"{path}: cannot read the claims table: {error}") from None
    required = {"claim_id", "kind", "claim_as_extracted", "published_quantity"}
    if not required <= set(claims.columns):
        raise ClaimsError(f"{path}: needs columns {sorted(required)}; has {list(claims.columns)}")
    unknown = sorted(set(claims["claim_id"]) ^ set(CHECKS))
    if unknown:
        raise ClaimsError(f"{path}: claim ids {unknown} are not both in the table and declared "
                          "in stilts_core.analysis.claims.CHECKS; declare a check for every claim")
    return claims


def check_claims(results: pd.DataFrame, claims_path: Path = CLAIMS_PATH,
                 config_path: Path = FULL_SCALE_CONFIG) -> pd.DataFrame:
    """One row per checked quantity of every claim, in the claims table's order."""
    evidence = Evidence(results, config_path)
    rows = []
    for claim in read_claims(claims_path).itertuples():
        for check in CHECKS[claim.claim_id](evidence):
            rows.append({"claim_id": claim.claim_id, "kind": claim.kind,
                         "claim": claim.claim_as_extracted, **check.__dict__})
    return pd.DataFrame(rows, columns=COLUMNS)
