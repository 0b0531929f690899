"""The leaderboards: which tasks and languages a benchmark score averages, and its task groups,
as each official scorer declares them."""

from __future__ import annotations

from pydantic import model_validator

from stilts_core.lookup import lookup
from stilts_core.tasks.metrics import get_metric
from stilts_core.tasks.registry import TASKS, get_task
from stilts_core.tasks.spec import Frozen


class Benchmark(Frozen):
    """A leaderboard's task list, the languages scored per task and its task groups, as its
    official scorer declares them. The overall score is the mean of the task averages and
    exists only when every task is present; a group score only when all its tasks are."""

    name: str
    tasks: dict[str, tuple[str, ...]]
    groups: dict[str, tuple[str, ...]]
    source: str

    @model_validator(mode="after")
    def _known(self) -> Benchmark:
        for task, languages in self.tasks.items():
            spec = get_task(task)
            extra = sorted(set(languages) - set(spec.languages))
            if extra:
                raise ValueError(f"benchmark {self.name!r}: {task} has no language(s) {extra}")
        grouped = [t for tasks in self.groups.values() for t in tasks]
        if sorted(grouped) != sorted(self.tasks):
            raise ValueError(f"benchmark {self.name!r}: every task must be in exactly one group")
        return self

    def summarise(self, scores: dict[str, dict[str, dict[str, float]]],
                  missing: dict[str, list[str]] | None = None) -> dict:
        """Task averages, group scores and the overall score, as the official ``evaluate.py``.

        ``scores``: per task present, ``{score: {language: value}}`` over the benchmark's languages
        (in its order). Each task gets ``avg_<score>`` (the mean over its languages) and
        ``avg_metric`` (the headline: the mean of exact match and F1 for QA, else F1, accuracy or
        mAP@20). A group score is the mean of its tasks' ``avg_metric`` and exists only when all
        its tasks are present and complete; ``all_task``, the XTREME / XTREME-R score, only when
        every task is. ``missing`` lists the languages a task lacks (a partial task).
        """
        missing = missing or {}
        summary: dict = {}
        tasks = {}
        for name, values in scores.items():
            averages = {f"avg_{score}": sum(by_language.values()) / len(by_language)
                        for score, by_language in values.items()}
            metric = get_metric(get_task(name).metric)
            averages["avg_metric"] = metric.headline_value(
                {score: averages[f"avg_{score}"] for score in metric.headline})
            tasks[name] = {**values, **averages}
        complete = {name for name in tasks if not missing.get(name)}
        for group, members in self.groups.items():
            if set(members) <= complete:
                summary[group] = sum(tasks[t]["avg_metric"] for t in members) / len(members)
        if complete >= set(self.tasks):
            summary["all_task"] = (sum(tasks[t]["avg_metric"] for t in self.tasks)
                                   / len(self.tasks))
        summary.update(tasks)
        return summary


def _split(languages: str) -> tuple[str, ...]:
    return tuple(languages.split(","))


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark(
        name="xtreme",
        tasks={
            "pawsx": _split("de,en,es,fr,ja,ko,zh"),
            "xnli": _split("ar,bg,de,el,en,es,fr,hi,ru,sw,th,tr,ur,vi,zh"),
            "panx": _split("ar,he,vi,id,jv,ms,tl,eu,ml,ta,te,af,nl,en,de,el,bn,hi,mr,ur,fa,fr,"
                           "it,pt,es,bg,ru,ja,ka,ko,th,sw,yo,my,zh,kk,tr,et,fi,hu"),
            "udpos": _split("af,ar,bg,de,el,en,es,et,eu,fa,fi,fr,he,hi,hu,id,it,ja,kk,ko,mr,nl,"
                            "pt,ru,ta,te,th,tl,tr,ur,vi,yo,zh"),
            "bucc2018": _split("de,fr,ru,zh"),
            "tatoeba": _split("ar,he,vi,id,jv,tl,eu,ml,ta,te,af,nl,de,el,bn,hi,mr,ur,fa,fr,it,"
                              "pt,es,bg,ru,ja,ka,ko,th,sw,zh,kk,tr,et,fi,hu"),
            "xquad": _split("en,es,de,el,ru,tr,ar,vi,th,zh,hi"),
            "mlqa": _split("en,es,de,ar,hi,vi,zh"),
            "tydiqa": _split("en,ar,bn,fi,id,ko,ru,sw,te"),
        },
        groups={"classification": ("pawsx", "xnli"), "tagging": ("udpos", "panx"),
                "qa": ("xquad", "mlqa", "tydiqa"), "retrieval": ("bucc2018", "tatoeba")},
        source="google-research/xtreme evaluate.py (TASK2LANGS, GROUP2TASK)",
    ),
    Benchmark(
        name="xtreme-r",
        tasks={name: TASKS[name].languages for name in (
            "xnli", "xcopa", "udpos", "panx", "xquad", "mlqa", "tydiqa", "tatoeba", "mewslix",
            "lareqa")},
        groups={"classification": ("xnli", "xcopa"), "structured_prediction": ("udpos", "panx"),
                "qa": ("xquad", "mlqa", "tydiqa"), "retrieval": ("tatoeba", "mewslix", "lareqa")},
        source="Ruder et al. 2021, Table 1 (tasks, languages and task categories of XTREME-R); "
               "LAReQA is scored per question language (see stilts_core.evaluation.submission)",
    ),
)}


def get_benchmark(name: str) -> Benchmark:
    return lookup(BENCHMARKS, name, "benchmark")
