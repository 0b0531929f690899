"""``stilts grid check``: before a grid spends a GPU-hour, resolve where every input comes from
and check it.

Every task x split x language the grid's runs read, and every model, is resolved to its source
(hub id, config and revision; a release file; a local file) and checked: local files fully
(they are read, and English training splits counted against the registry's declared sizes),
hub sources without downloading data (the repo's file listing: no loading script, which
datasets 5.x refuses; the config and split names its card declares; data files for them; a
model's config and tokenizer files). Hub checks go through a :class:`HubListing`: the hub
itself, or a folder laid out like hub repos (``<folder>/datasets/<id>/...``,
``<folder>/models/<id>/...``) for air-gapped mirrors and tests. Without either, hub items are
reported as not checked, plainly.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from stilts_core.data import pack
from stilts_core.data.loading import load_split
from stilts_core.data.releases import BUCC_SPLITS, load_mining_corpus, load_ranking_set
from stilts_core.data.sources import (
    DataSourceError,
    DataSources,
    hub_unreachable,
    local_release_paths,
    local_split_path,
    release_names,
)
from stilts_core.grid.config import GridConfig
from stilts_core.grid.plan import plan
from stilts_core.models.registry import MODEL_ROOT_VARIABLE, get_model_spec
from stilts_core.paths import fixtures_dir
from stilts_core.phases.intermediate import intermediate_reads
from stilts_core.phases.params import PARAMS
from stilts_core.tasks.registry import get_task
from stilts_core.tasks.spec import TaskSpec

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "sentencepiece.bpe.model", "vocab.txt")


@dataclass(frozen=True)
class Need:
    """One input of the grid: a split of a task in a language, read from ``sources``."""

    task: str
    split: str
    language: str
    sources: DataSources
    smoke: bool = False
    optional: bool = False  # an evaluation language not named in the config: runs skip it locally


@dataclass(frozen=True)
class Finding:
    status: str  # ok, problem, not checked
    item: str
    source: str
    detail: str


class HubListing:
    """File listings and cards of hub repos (the hub through ``huggingface_hub``)."""

    def files(self, kind: str, repo: str, revision: str) -> list[str] | None:
        """The repo's files at ``revision`` (``None``: no such repo or revision)."""
        from huggingface_hub import HfApi
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        try:
            return HfApi().list_repo_files(repo, repo_type=kind.rstrip("s"), revision=revision)
        except (RepositoryNotFoundError, RevisionNotFoundError):
            return None

    def text(self, kind: str, repo: str, revision: str, name: str) -> str:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(repo, name, repo_type=kind.rstrip("s"), revision=revision)
        return Path(path).read_text(encoding="utf-8")


class FolderListing(HubListing):
    """A folder laid out like hub repos: ``<root>/datasets/<owner>/<name>/<files>``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def files(self, kind: str, repo: str, revision: str) -> list[str] | None:
        folder = self.root / kind / repo
        if not folder.is_dir():
            return None
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

    def text(self, kind: str, repo: str, revision: str, name: str) -> str:
        return (self.root / kind / repo / name).read_text(encoding="utf-8")


# --- what the grid reads -------------------------------------------------------------------------

def grid_needs(config: GridConfig) -> tuple[list[Need], list[str]]:
    """Every (task, split, language, sources) the grid's runs read, and its models."""
    runs = plan(config)
    by_id = {run.run_id: run for run in runs}
    needs: dict[tuple, Need] = {}

    def need(task: str, split: str, language: str, params, optional: bool = False) -> None:
        sources = params.sources()
        key = (task, split, language, sources.root_for(get_task(task)),
               sources.revisions.get(task))
        needs.setdefault(key, Need(task, split, language, sources, params.smoke, optional))

    for run in runs:
        params = PARAMS[run.phase](**run.params)
        if run.phase == "intermediate":  # exactly what the run reads (its mixture, its sets)
            for task, split, language in intermediate_reads(params):
                need(task.name, split, language, params)
        elif run.phase == "target":
            for stage in get_task(params.task).training:
                need(stage.train.task, stage.train.split, stage.train.language, params)
                need(stage.dev.task, stage.dev.split, stage.dev.language, params)
        elif run.phase == "zero_shot_eval":
            task = get_task(by_id[params.target_run].params["task"])
            for language in params.languages or task.languages:
                need(task.name, task.evaluation_split, language, params, not params.languages)
        else:  # retrieval and alignment read the task's test data per language
            task = get_task(params.task)
            for language in params.languages or task.languages:
                need(task.name, "test", language, params, not params.languages)
    return list(needs.values()), list(config.models)


# --- checks --------------------------------------------------------------------------------------

def _card_configs(card: str) -> tuple[dict[str, dict[str, list[str]]] | None, str | None]:
    """``{config: {split: [file patterns]}}`` from a dataset card's YAML ``configs``, and the
    config ``load_dataset`` picks when none is named (marked ``default``, or the only one)."""
    if not card.startswith("---"):
        return None, None
    header = yaml.safe_load(card.split("---", 2)[1]) or {}
    configs, default = {}, None
    for entry in header.get("configs") or []:
        if entry.get("default"):
            default = entry.get("config_name", "default")
        files = entry.get("data_files") or []
        if isinstance(files, str | dict):
            files = [files]
        splits = {}
        for item in files:
            if isinstance(item, dict):
                paths = item.get("path")
                splits[item.get("split", "train")] = [paths] if isinstance(paths, str) else paths
            else:
                splits["train"] = [item]
        configs[entry.get("config_name", "default")] = splits
    if default is None and len(configs) == 1:
        default = next(iter(configs))
    return configs or None, default


def check_hub_dataset(task: TaskSpec, split: str, language: str, revision: str,
                      listing: HubListing) -> tuple[str, str]:
    """``(status, detail)`` of one hub split, from the repo's listing and card alone."""
    hub = task.hub
    override = (f"fix: data_revisions={{'{task.name}': <commit that loads>}} or "
                f"data_roots={{'{task.name}': <root>}}")
    files = listing.files("datasets", hub.path, revision)
    if files is None:
        return "problem", f"no dataset repo {hub.path!r} at revision {revision!r}; {override}"
    script = f"{hub.path.split('/')[-1]}.py"
    if script in files:
        return "problem", (f"the repo holds {script}, a loading script that datasets 5.x refuses "
                           f"('Dataset scripts are no longer supported'); {override}")
    configs, default = _card_configs(listing.text("datasets", hub.path, revision, "README.md")
                                     if "README.md" in files else "")
    config = task.hub_config(language) or default or "default"
    if configs is None:
        data = [f for f in files if f.endswith((".parquet", ".jsonl", ".json", ".csv", ".arrow"))]
        return (("ok", f"{len(data)} data files, no card configs (inferred layout)") if data else
                ("problem", f"no data files and no configs in the card; {override}"))
    if config not in configs:
        return "problem", (f"no config {config!r} in the card ({len(configs)} configs, e.g. "
                           f"{', '.join(sorted(configs)[:3])}); {override}")
    wanted = [part.strip() for part in hub.splits[split].split("+")]
    missing = [name for name in wanted if name not in configs[config]]
    if missing:
        return "problem", (f"config {config!r} has no split(s) {missing} (it has "
                           f"{', '.join(configs[config])}); {override}")
    empty = [name for name in wanted if not any(
        fnmatch.fnmatch(f, pattern) for pattern in configs[config][name] for f in files)]
    if empty:
        return "problem", f"split(s) {empty} of config {config!r} match no file; {override}"
    return "ok", f"config {config!r}, split {hub.splits[split]!r}: data files listed"


def check_local(need: Need, root: Path) -> tuple[str, str, str]:
    """``(status, source, detail)`` of one split from a local root, read in full."""
    task = get_task(need.task)
    if task.declared_format.converter is None:  # read as released (data.releases)
        return _check_release(task, need, root)
    entry = pack.pack_entry(task.name, need.split, need.language) if pack.is_pack(root) else None
    if pack.is_pack(root):
        path = release = None
        source = (str(root / entry.paths[0]).format(
            lang=need.language, code=task.language_codes.get(need.language, need.language))
            if entry else f"{root} (shared data pack)")
    else:
        path = local_split_path(root, task, need.split, need.language)
        release = local_release_paths(root, task, need.split, need.language)
        source = str(path or (release[0] if release else root / task.name /
                              f"{need.split}-{need.language}.jsonl"))
    if need.optional and path is None and release is None and entry is None:
        return "skipped", source, ("no local file: the run evaluates the languages its root has "
                                   "and records the others as skipped; name the task's languages "
                                   "in the config's 'languages' to require them")
    try:
        rows = len(load_split(task, need.split, need.language, need.sources,
                                      translated=need.language not in task.languages))
    except DataSourceError as error:
        return "problem", source, str(error)
    # the bundled fixtures and smoke runs are small on purpose: only real data is held to the
    # registry's sizes
    # and a pack split that stands in for another (serves_as) is not the registry's split
    stand_in = (need.smoke or Path(root).resolve() == fixtures_dir().resolve()
                or (entry is not None and (entry.serves_as is not None or entry.rows != "all")))
    declared = (getattr(task.sizes, need.split, None)
                if task.sizes and need.language == "en" and not stand_in else None)
    if declared is not None and rows != declared:
        return "problem", source, (f"{rows} examples, the registry declares {declared} "
                                   f"({task.sizes.source}); a truncated or different file?")
    served = f"; {entry.serves_as}" if entry is not None and entry.serves_as else ""
    return "ok", source, f"{rows} examples" + (" (= declared size)" if declared else "") + served


def _check_release(task: TaskSpec, need: Need, root: Path) -> tuple[str, str, str]:
    try:
        if task.format == "bitext_mining":
            for split in BUCC_SPLITS:
                corpus = load_mining_corpus(task, split, need.language, root)
            return "ok", corpus.origin, f"{len(corpus.gold)} gold pairs (test)"
        ranking = load_ranking_set(task, need.split, root)
    except DataSourceError as error:
        return "problem", str(root / task.name), str(error)
    return "ok", ranking.origin, f"{len(ranking.for_language(need.language))} queries"


def check_need(need: Need, listing: HubListing | None) -> Finding:
    task = get_task(need.task)
    item = f"{task.name} {need.split} {need.language}"
    root = need.sources.root_for(task)
    if root is not None:
        status, source, detail = check_local(need, Path(root))
        return Finding(status, item, source, detail)
    if task.hub is None:
        return Finding("problem", item, "local only",
                       f"{task.local_only_reason} fix: data_roots={{'{task.name}': <root>}}")
    names = release_names(task, need.split, need.language)
    if names:
        url = task.release.url.format(revision=task.release.revision, name=names[0])
        return Finding("not checked", item, url, "release file, fetched on first use (its "
                       f"server is not the hub); or data_roots={{'{task.name}': <root>}}")
    revision = need.sources.revisions.get(task.name, task.hub.revision)
    source = f"hub {task.hub.path} config {task.hub_config(need.language)} @ {revision}"
    if task.hub.languages is not None and need.language not in task.hub.languages:
        return Finding("problem", item, source, f"the hub copy has no {need.language!r}; fix: "
                       f"data_roots={{'{task.name}': <root>}}")
    if listing is None:
        return Finding("not checked", item, source, "hub unreachable")
    status, detail = check_hub_dataset(task, need.split, need.language, revision, listing)
    if status == "ok" and task.hub.uncertainty:
        detail += f"; declared uncertainty: {task.hub.uncertainty}"
    return Finding(status, item, source, detail)


def check_model(name: str, listing: HubListing | None) -> Finding:
    spec = get_model_spec(name)
    item = f"model {name}"
    local = Path(os.environ.get(MODEL_ROOT_VARIABLE, "")) / spec.name
    if spec.config_file:
        return Finding("ok", item, spec.config_file, "built locally from its config")
    if os.environ.get(MODEL_ROOT_VARIABLE) and local.is_dir():
        files = {p.name for p in local.iterdir()}
        return _model_files(item, str(local), files)
    source = f"hub {spec.hub_id}"
    if listing is None:
        return Finding("not checked", item, source, "hub unreachable")
    files = listing.files("models", spec.hub_id, "main")
    if files is None:
        return Finding("problem", item, source, f"no model repo {spec.hub_id!r}; fix: put a "
                       f"save_pretrained copy in ${MODEL_ROOT_VARIABLE}/{spec.name}")
    return _model_files(item, source, set(files))


def _model_files(item: str, source: str, files: set[str]) -> Finding:
    missing = [] if "config.json" in files else ["config.json"]
    if not files & set(TOKENIZER_FILES):
        missing.append(f"a tokenizer ({' or '.join(TOKENIZER_FILES)})")
    if missing:
        return Finding("problem", item, source, f"missing {', '.join(missing)}")
    return Finding("ok", item, source, "config and tokenizer files present")


def default_listing(folder: Path | None = None) -> tuple[HubListing | None, str]:
    """The listing to check hub sources with, and what it is."""
    if folder is not None:
        return FolderListing(folder), f"hub stand-in folder {folder}"
    unreachable = hub_unreachable()
    if unreachable:
        return None, f"hub unreachable ({unreachable}): hub sources are not checked"
    return HubListing(), "the Hugging Face hub"


def check_grid(config: GridConfig, listing: HubListing | None) -> pd.DataFrame:
    """One row per input of the grid: status (ok / problem / not checked / skipped), source
    and detail (what was found, or the problem and its fix)."""
    needs, models = grid_needs(config)
    logger.info(f"[stilts] checking {len(needs)} data inputs and {len(models)} model(s)")
    findings = [check_model(name, listing) for name in models]
    for number, need in enumerate(needs, start=1):
        findings.append(check_need(need, listing))
        if number % 50 == 0:
            logger.info(f"[stilts] {number}/{len(needs)} checked")
    return pd.DataFrame([vars(f) for f in findings], columns=["status", "item", "source", "detail"])


def format_check(table: pd.DataFrame, listing_name: str) -> str:
    """The table, left-aligned, one input per line, then the counts and what was not checked."""
    counts = table["status"].value_counts()
    widths = {column: min(max(len(column), *(len(v) for v in table[column])), 70)
              for column in ("status", "item", "source")}
    rows = [{c: c for c in table.columns}, *table.to_dict("records")]
    lines = ["  ".join([*(str(row[c]).ljust(w) for c, w in widths.items()), str(row["detail"])])
             for row in rows]
    lines += ["",
             f"hub checks: {listing_name}",
             ", ".join(f"{status}: {counts.get(status, 0)}"
                       for status in ("ok", "problem", "not checked", "skipped"))]
    if counts.get("not checked", 0):
        lines.append("not checked: existence of hub configs, splits and files, and of release "
                     "files fetched on first use; run again where the hub is reachable (or "
                     "with --hub-folder, a mirror laid out like hub repos)")
    return "\n".join(lines)


def exit_status(table: pd.DataFrame) -> int:
    """1 when anything is wrong, 3 when nothing is wrong but something was not checked."""
    if (table["status"] == "problem").any():
        return 1
    return 3 if (table["status"] == "not checked").any() else 0
