"""The release formats of the retrieval tasks that are not on the hub (BUCC 2018, Mewsli-X,
LAReQA), read as the original releases ship them, and the dual-encoder training pairs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import datasets

from stilts_core.data.loading import load_split
from stilts_core.data.readers import read_jsonl
from stilts_core.data.sources import DataSourceError, DataSources, local_root
from stilts_core.formats.base import dotted_value
from stilts_core.tasks.registry import get_task
from stilts_core.tasks.spec import TaskSpec

# --- release formats of the retrieval tasks -----------------------------------------------------
# BUCC 2018, Mewsli-X and LAReQA are not on the hub. Their readers take the files as the
# original releases ship them (XTREME's download scripts keep these names) and return the
# searches' inputs: two monolingual sets with gold pairs, or queries with a candidate pool.

@dataclass(frozen=True)
class MiningCorpus:
    """BUCC: two monolingual sets of ``(id, sentence)`` and the gold translation pairs (ids)."""

    source_ids: list[str]
    source_texts: list[str]
    target_ids: list[str]
    target_texts: list[str]
    gold: set[tuple[str, str]]
    origin: str


@dataclass(frozen=True)
class RankingSet:
    """Queries (with their language and the ids of their relevant candidates) and the one
    candidate pool they are all searched against."""

    query_ids: list[str]
    query_texts: list[str]
    query_languages: list[str]
    relevant: list[set[str]]
    candidate_ids: list[str]
    candidate_texts: list[str]
    origin: str

    def for_language(self, language: str) -> list[int]:
        return [i for i, lang in enumerate(self.query_languages) if lang == language]


@dataclass(frozen=True)
class TrainingPairs:
    """English (query, relevant candidate) texts for dual-encoder training."""

    queries: list[str]
    candidates: list[str]
    origin: str


# XTREME renames the BUCC "sample" split to dev and "training" (public gold) to test.
BUCC_SPLITS = {"validation": ("dev", "sample"), "test": ("test", "training")}


def _release_file(root: Path, task: str, names: list[str], what: str) -> Path:
    for name in names:
        path = Path(root) / task / name
        if path.is_file():
            return path
    raise DataSourceError(f"{Path(root) / task / names[0]}: no {what} (also looked for "
                          f"{', '.join(names[1:]) or 'nothing else'}). Put the release files "
                          f"there, or point data_root / data_roots at a directory that has them.")


def _id_lines(path: Path, columns: int) -> list[list[str]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != columns or not all(p.strip() for p in parts[:columns - 1]):
            raise DataSourceError(f"{path}, line {number}: expected {columns} tab-separated "
                                  f"fields, found {len(parts)}: {line[:80]!r}")
        rows.append(parts)
    if not rows:
        raise DataSourceError(f"{path}: empty")
    return rows


def load_mining_corpus(task: TaskSpec, split: str, language: str, root: Path) -> MiningCorpus:
    """``<root>/bucc2018/<lang>-en.<split>.{<lang>,en,gold}``, split ``sample``/``dev`` for
    validation and ``training``/``test`` for test; lines ``id<TAB>sentence`` and gold lines
    ``source id<TAB>English id``."""
    if split not in BUCC_SPLITS:
        raise DataSourceError(f"task {task.name!r} has splits {list(BUCC_SPLITS)}, not {split!r}")
    if language not in task.languages:
        raise DataSourceError(f"task {task.name!r} has no language {language!r}; declared: "
                              f"{', '.join(task.languages)}")
    names = BUCC_SPLITS[split]

    def find(suffix: str, what: str) -> Path:
        return _release_file(root, task.name, [f"{language}-en.{n}.{suffix}" for n in names], what)

    source = _id_lines(find(language, f"{language} sentences"), 2)
    target = _id_lines(find("en", "English sentences"), 2)
    gold_path = find("gold", "gold pairs")
    gold = {(s, t) for s, t in _id_lines(gold_path, 2)}
    known_source, known_target = {r[0] for r in source}, {r[0] for r in target}
    stray = [pair for pair in sorted(gold) if pair[0] not in known_source
             or pair[1] not in known_target]
    if stray:
        raise DataSourceError(f"{gold_path}: {len(stray)} gold pair(s) name sentence ids that "
                              f"are not in the sentence files, e.g. {stray[0]}")
    return MiningCorpus([r[0] for r in source], [r[1].strip() for r in source],
                        [r[0] for r in target], [r[1].strip() for r in target], gold,
                        str(gold_path.parent))


def _field(row: dict, dotted: str, path: Path, number: int):
    try:
        return dotted_value(row, dotted)
    except (KeyError, TypeError):
        raise DataSourceError(f"{path}, record {number}: missing field {dotted!r}") from None


def _clean(text: str) -> str:
    """Mewsli-X's normalisation: newlines to spaces, double spaces to one, stripped."""
    return text.replace("\n", " ").replace("  ", " ").strip()


def mewslix_mention_text(context: dict, mention: dict) -> str:
    """The query text of a Mewsli-X mention, as XTREME-R's ``preprocess_mention``: the sentence
    that contains the mention, the mention marked with braces and repeated in front:
    ``"{mention}: {left} { {mention} } {right}"``."""
    text, start, end = context["text"], mention["mention_span"]["start"], mention["mention_span"]["end"]
    spans = context.get("sentence_spans") or [{"start": 0, "end": len(text)}]
    sentence = next((s for s in spans if s["start"] <= start and end <= s["end"]), None)
    if sentence is None:
        raise ValueError(f"mention {mention.get('example_id')!r} crosses a sentence boundary")
    left = text[sentence["start"]:start].replace("{", "(").replace("}", ")")
    right = text[end:sentence["end"]].replace("{", "(").replace("}", ")")
    surface = text[start:end]
    return _clean(f"{surface}: {left} {{ {surface} }} {right}")


def mewslix_entity_text(entity: dict) -> str:
    """An entity's description, the candidate text (the title is not used)."""
    description = entity["description"]
    spans = entity.get("sentence_spans") or [{"start": 0, "end": len(description)}]
    return _clean(" ".join(description[s["start"]:s["end"]] for s in spans))


def load_mewslix(task: TaskSpec, split: str, root: Path) -> RankingSet:
    """``candidate_set_entities.jsonl`` (the pool) and ``wikinews_mentions-<dev|test>.jsonl``
    (one document per line with its mentions), as the Mewsli-X release ships them."""
    names = {"validation": "dev", "test": "test"}
    if split not in names:
        raise DataSourceError(f"task {task.name!r} has splits {list(names)}, not {split!r}")
    pool_path = _release_file(root, task.name, ["candidate_set_entities.jsonl"], "entity pool")
    mentions_path = _release_file(root, task.name, [f"wikinews_mentions-{names[split]}.jsonl"],
                                  f"{split} mentions")
    candidate_ids, candidate_texts = [], []
    for number, entity in enumerate(read_jsonl(pool_path), start=1):
        candidate_ids.append(str(_field(entity, "entity_id", pool_path, number)))
        _field(entity, "description", pool_path, number)
        candidate_texts.append(mewslix_entity_text(entity))
    known = set(candidate_ids)
    ids, texts, languages, relevant = [], [], [], []
    for number, document in enumerate(read_jsonl(mentions_path), start=1):
        context = _field(document, "context", mentions_path, number)
        language = _field(document, "context.language", mentions_path, number)
        for mention in _field(document, "mentions", mentions_path, number):
            entity = str(mention["entity_id"])
            if entity not in known:
                raise DataSourceError(f"{mentions_path}, record {number}: entity {entity!r} of "
                                      f"mention {mention.get('example_id')!r} is not in {pool_path}")
            try:
                texts.append(mewslix_mention_text(context, mention))
            except (KeyError, ValueError) as error:
                raise DataSourceError(f"{mentions_path}, record {number}: {error}") from None
            ids.append(str(mention["example_id"]))
            languages.append(language)
            relevant.append({entity})
    return RankingSet(ids, texts, languages, relevant, candidate_ids, candidate_texts,
                      str(mentions_path))


def load_mewslix_training(task: TaskSpec, root: Path) -> TrainingPairs:
    """``wikipedia_pairs-train.jsonl``: (contextual mention, entity) pairs from Wikipedia."""
    path = _release_file(root, task.name, ["wikipedia_pairs-train.jsonl"], "training pairs")
    queries, candidates = [], []
    for number, pair in enumerate(read_jsonl(path), start=1):
        mention = _field(pair, "contextual_mention", path, number)
        try:
            queries.append(mewslix_mention_text(mention["context"], mention["mention"]))
            candidates.append(mewslix_entity_text(pair["entity"]))
        except (KeyError, ValueError) as error:
            raise DataSourceError(f"{path}, record {number}: {error}") from None
    return TrainingPairs(queries, candidates, str(path))


def lareqa_candidate_text(sentence: str, context: str) -> str:
    """What XTREME-R encodes for a LAReQA candidate: the sentence immediately followed by its
    whole paragraph (no separator), newlines removed."""
    return (sentence + context).replace("\n", "")


def _answer_sentence(breaks: list, answer_start: int) -> int | None:
    return next((i for i, (start, end) in enumerate(breaks) if start <= answer_start < end), None)


def load_lareqa(task: TaskSpec, split: str, root: Path) -> RankingSet:
    """``<root>/lareqa/<lang>.json`` for all 11 languages (XQuAD-R: SQuAD JSON whose paragraphs
    carry ``sentence_breaks``). The pool is every sentence of every paragraph in every language;
    a question's relevant candidates are its answer sentence in each language (XTREME-R's
    ``utils_lareqa``). Questions whose answer lies in no sentence are skipped, as there."""
    if split != "test":
        raise DataSourceError(f"task {task.name!r} has only a test split (XQuAD-R), not {split!r}")
    candidate_ids, candidate_texts = [], []
    answers: dict[str, dict[str, str]] = {}  # SQuAD id -> language -> answer sentence
    by_text: dict[str, dict[str, list[str]]] = {}  # language -> sentence -> candidate ids
    questions = []
    for language in task.languages:
        path = _release_file(root, task.name, [f"{language}.json", f"xquad-r/{language}.json"],
                             f"XQuAD-R {language} file")
        try:
            articles = json.loads(path.read_text(encoding="utf-8"))["data"]
        except (json.JSONDecodeError, KeyError) as error:
            raise DataSourceError(f"{path}: not XQuAD-R JSON ({error})") from None
        sentences = by_text.setdefault(language, {})
        paragraphs = (p for article in articles for p in article["paragraphs"])
        for counter, paragraph in enumerate(paragraphs):
            if "sentence_breaks" not in paragraph:
                raise DataSourceError(f"{path}: a paragraph has no 'sentence_breaks'; this is "
                                      "SQuAD/XQuAD, not XQuAD-R")
            context, breaks = paragraph["context"], paragraph["sentence_breaks"]
            for position, (start, end) in enumerate(breaks):
                uid = f"{language}_{counter}_{position}"
                candidate_ids.append(uid)
                candidate_texts.append(lareqa_candidate_text(context[start:end], context))
                sentences.setdefault(context[start:end], []).append(uid)
            for qa in paragraph["qas"]:
                found = _answer_sentence(breaks, int(qa["answers"][0]["answer_start"]))
                if found is not None:
                    start, end = breaks[found]
                    answers.setdefault(qa["id"], {})[language] = context[start:end]
                    questions.append((qa["id"], qa["question"], language))
    ids, texts, languages, relevant = [], [], [], []
    for squad_id, question, language in questions:
        ids.append(f"{squad_id}_{language}")
        texts.append(question)
        languages.append(language)
        relevant.append({uid for lang, sentence in answers[squad_id].items()
                         for uid in by_text[lang][sentence]})
    return RankingSet(ids, texts, languages, relevant, candidate_ids, candidate_texts, str(root))


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def sentence_breaks(text: str) -> list[tuple[int, int]]:
    """Sentence spans of English text: a split after ``.``, ``!`` or ``?`` (and closing quotes)
    before whitespace and a capital or digit. A documented stand-in for the rule-based splitter
    XTREME-R applies to SQuAD (``sb_sed``); abbreviations such as "Dr. X" split too."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def squad_training_pairs(squad: datasets.Dataset) -> TrainingPairs:
    """LAReQA's English training data: SQuAD v1.1 questions paired with the sentence that holds
    their first answer (the candidate text as at evaluation); unplaceable answers are skipped."""
    queries, candidates = [], []
    for row in squad:
        if not row["answers"]["answer_start"]:
            continue
        breaks = sentence_breaks(row["context"])
        found = _answer_sentence(breaks, row["answers"]["answer_start"][0])
        if found is None:
            continue
        start, end = breaks[found]
        queries.append(row["question"])
        candidates.append(lareqa_candidate_text(row["context"][start:end], row["context"]))
    return TrainingPairs(queries, candidates, "squad_v1 train")


RANKING_READERS = {"mewslix": load_mewslix, "lareqa": load_lareqa}


def load_ranking_set(task: TaskSpec, split: str, root: Path) -> RankingSet:
    """A ranking task's queries and candidate pool from its release files under ``root``."""
    if task.name not in RANKING_READERS:
        raise DataSourceError(f"task {task.name!r} has no ranking reader; readers: "
                              f"{', '.join(RANKING_READERS)}")
    return RANKING_READERS[task.name](task, split, root)


def _lareqa_training(task: TaskSpec, sources: DataSources) -> TrainingPairs:
    return squad_training_pairs(load_split(get_task("squad_v1"), "train", "en", sources))


def _mewslix_training(task: TaskSpec, sources: DataSources) -> TrainingPairs:
    return load_mewslix_training(task, local_root(task, sources))


TRAINING_PAIR_READERS = {"mewslix": _mewslix_training, "lareqa": _lareqa_training}


def load_training_pairs(task: TaskSpec, sources: DataSources,
                        limit: int | None = None) -> TrainingPairs:
    """The English (query, candidate) pairs of a ranking task's dual-encoder protocol."""
    if task.name not in TRAINING_PAIR_READERS:
        raise DataSourceError(f"task {task.name!r} has no dual-encoder training data; tasks "
                              f"with one: {', '.join(TRAINING_PAIR_READERS)}")
    pairs = TRAINING_PAIR_READERS[task.name](task, sources)
    if limit is not None:
        pairs = TrainingPairs(pairs.queries[:limit], pairs.candidates[:limit], pairs.origin)
    return pairs
