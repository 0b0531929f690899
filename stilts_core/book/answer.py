"""The answer on the question page: what each finding of a build found, as estimates with
intervals, and what its data can and cannot decide.

The statistics pages leave a small record each (the morphology slopes of a mixed-effects page,
the detectable slope of a power page) and the build assembles them, with the mean gains of
:func:`stilts_core.analysis.estimates.answer_table`, into ``generated/answer.md``, which
``book/question.md`` includes. No model is fitted twice, and every number names the page and the
table it comes from. Findings only: smoke runs and simulations answer nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from stilts_core.analysis import estimates
from stilts_core.analysis.result_sets import ResultSet
from stilts_core.analysis.statistics import AVERAGE_SLOPE
from stilts_core.book.badges import badge_label
from stilts_core.book.chapters.results import learning_runs
from stilts_core.paths import atomic_write_text
from stilts_core.runs.results import NO_INTERMEDIATE, read_results
from stilts_core.tasks.registry import get_task

FERTILITY = "subword_fertility"  # what the model sees of morphology, beside the main index
PAGE = "answer.md"
RECORDS = "records"
RETRIEVAL_LAYER_MEASURE = estimates.RETRIEVAL_MEASURE


def _slope(report) -> dict:
    row = report.slopes.loc[AVERAGE_SLOPE]
    return {"estimate": float(row["estimate"]), "low": float(row["wald_low"]),
            "high": float(row["wald_high"]), "converged": bool(report.converged)}


def slope_table(index: str, report, fertility_report=None) -> pd.DataFrame:
    """The average slopes the question page states, as the mixed-effects page shows them."""
    slopes = {index: _slope(report)}
    if fertility_report is not None:
        slopes[FERTILITY] = _slope(fertility_report)
    return pd.DataFrame.from_dict(slopes, orient="index").rename_axis("index").round(4)


def record_morphology(path: str, index: str, report, test: dict, fertility_report=None) -> None:
    """What a mixed-effects page found: the average slope on the main index (REML, Wald 95%),
    the pre-registered likelihood-ratio test, and the same model's slope on tokenizer
    fertility. Nothing is written when ``path`` is empty (a page run by hand)."""
    if not path:
        return
    record = {"index": index, "slope": _slope(report), "lrt_p": float(test["p_value"]),
              "lrt_df": int(test["df"]),
              "fertility": _slope(fertility_report) if fertility_report is not None else None}
    _write(path, record)


def record_power(path: str, detectable: float | None, reps: int, planned_reps: int,
                 test: str, largest_slope: float) -> None:
    """What a power page found: the slope detectable with 80% power (``None``: none of the
    simulated slopes, up to ``largest_slope``, reached it) and the simulations it rests on."""
    if not path:
        return
    _write(path, {"detectable_slope": detectable, "reps": reps, "planned_reps": planned_reps,
                  "test": test, "largest_slope": largest_slope})


def _write(path: str, record: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(path), json.dumps(record, indent=1, sort_keys=True) + "\n")


def _read(folder: Path, page: str) -> dict | None:
    path = folder / RECORDS / f"{page}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _interval(low: float, high: float) -> str:
    return f"{low:.2f} to {high:.2f}" if math.isfinite(low) else "none"


def _learned_seeds(runs: pd.DataFrame, model: str, intermediate: str, task: str,
                   fine_tuned_on: str) -> tuple[int, int]:
    """In how many seeds every training run behind a quantity learned, of its seeds: the
    intermediate run (none for the pretrained encoder); for a transfer gain, the STILTs and
    the baseline target runs; for the change that fine-tuning makes, the fine-tuning run."""
    runs = runs[runs["model"] == model]
    needed = []  # per training run behind the quantity: learned, by seed
    if intermediate != NO_INTERMEDIATE:
        needed.append(runs[(runs["phase"] == "intermediate")
                           & (runs["intermediate_task"] == intermediate)])
    tuned_on = fine_tuned_on or (task if get_task(task).role == "target" else "")
    if tuned_on:
        starts = [intermediate] if fine_tuned_on else [intermediate, NO_INTERMEDIATE]
        needed += [runs[(runs["phase"] == "target") & (runs["intermediate_task"] == start)
                        & (runs["target_task"] == tuned_on)] for start in starts]
    by_seed = [rows.groupby("seed")["learned"].all() for rows in needed]
    seeds = sorted(set().union(*(set(learned.index) for learned in by_seed)))
    return sum(all(learned.get(seed, False) for learned in by_seed) for seed in seeds), len(seeds)


def answer_with_learning(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`~stilts_core.analysis.estimates.answer_table` with ``runs_learned`` (in how many
    seeds every training run behind the quantity learned); a quantity whose runs did not all
    learn is not read: its ``decides`` says so, whatever its interval."""
    answer = estimates.answer_table(table)
    runs = learning_runs(table)
    counts = [_learned_seeds(runs, row.model, row.intermediate_task, row.target_task,
                             row.fine_tuned_on) if not runs.empty else (0, 0)
              for row in answer.itertuples()]
    answer["runs_learned"] = [f"{k} of {n} seeds" if n else "not checked" for k, n in counts]
    unread = [not n or k < n for k, n in counts]
    answer["decides"] = answer["decides"].where(~pd.Series(unread, index=answer.index),
                                                "not read: its runs did not all learn")
    return answer.drop(columns=["target_task", "intermediate_task", "fine_tuned_on"])


def _gain_table(answer: pd.DataFrame) -> list[str]:
    lines = ["| quantity | estimate (points) | 95% interval over languages | language bootstrap-t "
             "| languages | runs learned | the interval says |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {row.quantity} | {row.estimate:.2f} | {row.interval} | {row.bootstrap_interval} "
              f"| {row.languages} | {row.runs_learned} | {row.decides} |"
              for row in answer.itertuples()]
    return lines


def _layer_summary(table: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """Per intermediate task, where in the network the retrieval-accuracy gain is decided."""
    layers = estimates.alignment_gains_by_layer(table)
    layers = layers[layers["measure"] == RETRIEVAL_LAYER_MEASURE]
    lines = []
    for (model, intermediate), rows in layers.groupby(["model", "intermediate_task"]):
        learned, seeds = (_learned_seeds(runs, model, intermediate, estimates.ALIGNMENT_TASK, "")
                          if not runs.empty else (0, 0))
        if not seeds or learned < seeds:
            lines.append(f"- {intermediate}: not read, its intermediate runs did not all learn "
                         f"({learned} of {seeds} seeds).")
            continue
        verdicts = {kind: sorted(int(layer) for layer, low, high in
                                 zip(rows["layer"], rows["low"], rows["high"], strict=True)
                                 if estimates.decides(low, high) == kind)
                    for kind in ("positive", "negative", "undecided")}
        said = "; ".join(f"{kind} at layer{'s' if len(found) > 1 else ''} "
                         f"{', '.join(map(str, found))}"
                         for kind, found in verdicts.items() if found)
        lines.append(f"- {intermediate}: {said}.")
    return lines


def _morphology_table(entries: list[tuple[str, str, dict | None, dict | None]],
                      every_run_learned: bool) -> list[str]:
    lines = ["| outcome | index | average slope (points per SD) | Wald 95% | the interval says "
             "| pre-registered test p | slope detectable with 80% power | pages |",
             "|---|---|---|---|---|---|---|---|"]
    for outcome, pages, morphology, power in entries:
        if morphology is None:
            continue
        detectable = "—"
        if power is not None:
            detectable = (f"{power['detectable_slope']:.2f} ({power['reps']} simulated sets per "
                          f"slope; planned {power['planned_reps']})"
                          if power["detectable_slope"] is not None else
                          f"none up to {power['largest_slope']:.2f} ({power['reps']} simulated "
                          f"sets per slope; planned {power['planned_reps']})")
        slopes = [(morphology["index"], morphology["slope"], f"{morphology['lrt_p']:.3f}")]
        if morphology.get("fertility"):
            slopes.append((FERTILITY, morphology["fertility"], "—"))
        for index, slope, p in slopes:
            said = (estimates.decides(slope["low"], slope["high"]) if every_run_learned
                    else "not read: its gains' runs did not all learn")
            if not slope["converged"]:
                said += " (fit did not converge)"
            lines.append(f"| {outcome} | `{index}` | {slope['estimate']:.2f} | "
                         f"{_interval(slope['low'], slope['high'])} | {said} | {p} | "
                         f"{detectable if index == morphology['index'] else '—'} | {pages} |")
    return lines


def _decided(answer: pd.DataFrame) -> list[str]:
    verdicts = {kind: answer.loc[answer["decides"].str.startswith(kind), "quantity"].tolist()
                for kind in ("positive", "negative", "undecided", "not read")}
    decided = verdicts["positive"] + verdicts["negative"]
    lines = [f"**The data decide the sign of** {len(decided)} of {len(answer)} mean gains"
             + (f": {'; '.join(decided)}." if decided else "."), ""]
    if verdicts["undecided"]:
        lines += [f"**They cannot decide** {len(verdicts['undecided'])}: "
                  f"{'; '.join(verdicts['undecided'])}. An interval that holds zero leaves the "
                  "sign open at this scale; it does not show that the effect is absent.", ""]
    if verdicts["not read"]:
        lines += [f"**Not read at all**, because a training run behind them did not learn: "
                  f"{len(verdicts['not read'])}.", ""]
    return lines


def _learning(runs: pd.DataFrame) -> str:
    if runs.empty:
        return "No training run's learning check is recorded in this table."
    learned = int(runs["learned"].sum())
    return (f"{learned} of {len(runs)} training runs (each seed, intermediate and target) "
            f"learned: their dev score's 95% interval clears the task's floor"
            + ("." if learned == len(runs) else
               "; gains resting on the others carry no information (see the results page)."))


def _section(result_set: ResultSet, entries, results_page: str) -> list[str]:
    table = read_results(result_set.path)
    answer, runs = answer_with_learning(table), learning_runs(table)
    lines = [f"### {badge_label(result_set.provenance)} {result_set.title}", "",
             f"{result_set.description}. Table `{result_set.as_parameter()['path']}`; learning "
             f"check, per-language gains and per-layer alignment on {{doc}}`/generated/"
             f"{results_page}`.", "", _learning(runs), "",
             "Mean paired gains over the non-English languages (seeds averaged within a "
             "language; the language is the unit of the interval):", "", *_gain_table(answer), ""]
    layers = _layer_summary(table, runs)
    if layers:
        lines += ["Gain in Tatoeba retrieval accuracy at each layer over the pretrained encoder "
                  "(95% interval over languages):", "", *layers, ""]
    morphology = _morphology_table(entries, not runs.empty and bool(runs["learned"].all()))
    if len(morphology) > 2:
        lines += ["The morphology slope (the pre-registered mixed model; the same model on "
                  "tokenizer fertility beside it) and the smallest slope this design detects:", "",
                  *morphology, ""]
    return lines + _decided(answer)


def write_answer(folder: Path, pages: list[tuple[str, str, ResultSet | None, object]]) -> Path:
    """``generated/answer.md`` from the pages a build executed: ``pages`` holds (chapter page,
    page, result set, outcome), as :func:`stilts_core.book.build.execute_chapters` lists them."""
    findings = list(dict.fromkeys(s for _, _, s, _ in pages if s is not None and s.analysed))
    lines = []
    if not findings:
        lines = ["No result set of this build is a finding (a full-scale or a reduced-scale real "
                 "run), so this build answers nothing; its pages check the pipeline and the "
                 "statistics.", ""]
    for result_set in findings:
        results_page = next(page for chapter, page, s, _ in pages
                            if chapter == "results" and s == result_set)
        entries = []
        for chapter, page, s, outcome in pages:
            if chapter != "mixed_effects" or s is None or s.name != result_set.name:
                continue
            power_page = page.replace("mixed_effects", "power", 1)
            entries.append((outcome.name, f"{{doc}}`/generated/{page}`, "
                            f"{{doc}}`/generated/{power_page}`",
                            _read(folder, page), _read(folder, power_page)))
        lines += _section(result_set, entries, results_page)
    lines += ["None of these is set beside the published full-scale numbers: a reduced-scale "
              "run answers the question for its own model and budget only."]
    path = folder / PAGE
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
