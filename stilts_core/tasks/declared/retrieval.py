"""The retrieval tasks: scored with the phase-(ii) encoder, no target training of their own."""

from __future__ import annotations

from stilts_core.tasks.spec import (
    Fields,
    HubSource,
    ReleaseFiles,
    RetrievalDefaults,
    TaskSpec,
)

DECLARED: list[TaskSpec] = []

_TATOEBA_ON_HUB = ("af", "ar", "bg", "bn", "de", "el", "es", "et", "eu", "fa", "fi", "fr", "he",
                   "hi", "hu", "id", "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "nl", "pt",
                   "ru", "sw", "ta", "te", "th", "tl", "tr", "ur", "vi", "zh")
DECLARED.append(TaskSpec(
    name="tatoeba", role="retrieval", format="bitext_retrieval",
    description="Tatoeba sentence retrieval: find the English translation of each sentence.",
    languages=(
        "af", "ar", "bg", "bn", "de", "el", "es", "et", "eu", "fa", "fi", "fr", "he", "hi",
        "hu", "id", "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "nl", "pt", "ru", "sw",
        "ta", "te", "th", "tl", "tr", "ur", "vi", "zh", "az", "lt", "pl", "uk", "ro",
    ),
    language_codes={
        "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell",
        "es": "spa", "et": "est", "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra",
        "he": "heb", "hi": "hin", "hu": "hun", "id": "ind", "it": "ita", "ja": "jpn",
        "jv": "jav", "ka": "kat", "kk": "kaz", "ko": "kor", "ml": "mal", "mr": "mar",
        "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh", "ta": "tam", "te": "tel",
        "th": "tha", "tl": "tgl", "tr": "tur", "ur": "urd", "vi": "vie", "zh": "cmn",
        "az": "aze", "lt": "lit", "pl": "pol", "uk": "ukr", "ro": "ron",
    },
    hub=HubSource(path="google/xtreme", config="tatoeba.{code}", splits={"test": "validation"},
                  languages=_TATOEBA_ON_HUB,
                  evidence="google/xtreme has 36 tatoeba.<code> configs (XTREME's languages); "
                           "XTREME-R's az, lt, pl, uk and ro are not among them (its card, "
                           "audited)"),
    release=ReleaseFiles(
        url="https://raw.githubusercontent.com/facebookresearch/LASER/{revision}/data/tatoeba/v1/"
            "{name}",
        revision="74bc6ae7ffb7cba670fe0f428d0ede9f666fb821",
        files={"test": ("tatoeba.{code}-eng.{code}", "tatoeba.{code}-eng.eng")},
        languages=("az", "lt", "pl", "uk", "ro"),
        source="LASER data/tatoeba/v1 (line-aligned test pairs, 1,000 per language), the files "
               "XTREME's download script reads; the commit of the shared data pack"),
    fields=Fields(text=("source_sentence", "target_sentence")),
    retrieval=RetrievalDefaults(query_max_length=512, candidate_max_length=512,
                                source="google-research/xtreme scripts/run_tatoeba.sh (MAXL=512)"),
    metric="accuracy", dev_metric="accuracy", citation="artetxe-schwenk-2019-massively",
))

DECLARED.append(TaskSpec(
    name="bucc2018", role="retrieval", format="bitext_mining",
    description="BUCC 2018 parallel-sentence mining from comparable corpora (XTREME; replaced "
                "in XTREME-R): find the translation pairs among two monolingual sets; P/R/F1.",
    languages=("de", "fr", "ru", "zh"),
    hub=None,
    local_only_reason="The BUCC 2018 shared-task corpora are distributed by the workshop "
                      "(comparable.limsi.fr/bucc2018) under their own terms, not on the hub.",
    fields=Fields(), metric="bucc_f1", dev_metric="bucc_f1", citation="zweigenbaum-etal-2018-bucc",
    retrieval=RetrievalDefaults(query_max_length=512, candidate_max_length=512,
                                source="google-research/xtreme scripts/run_bucc2018.sh (MAXL=512)"),
))
DECLARED.append(TaskSpec(
    name="mewslix", role="retrieval", format="ranking",
    description="Mewsli-X (XTREME-R): retrieve the Wikidata entity a news mention refers to, "
                "from a pool of English entity descriptions shared by all languages; mAP@20.",
    languages=("ar", "de", "en", "es", "fa", "ja", "pl", "ro", "ta", "tr", "uk"),
    hub=None,
    local_only_reason="Mewsli-X is built from WikiNews and Wikipedia dumps with the "
                      "google-research dense_representations_for_entity_retrieval scripts.",
    fields=Fields(), metric="map_at_20", dev_metric="map_at_20", citation="botha-etal-2020-entity",
    retrieval=RetrievalDefaults(
        query_max_length=64, candidate_max_length=64, learning_rate=2e-5, batch_size=32, epochs=2,
        source="google-research/xtreme scripts/train_mewslix.sh (lengths 64, 2 epochs, 8 x 4 "
               "accumulated per step; learning rate 2e-5 is its mBERT value: its XLM-R value, "
               "1e-4, is noted there to score near zero); training data "
               "wikipedia_pairs-train.jsonl"),
))
DECLARED.append(TaskSpec(
    name="lareqa", role="retrieval", format="ranking",
    description="LAReQA on XQuAD-R (XTREME-R): retrieve answer sentences for a question from a "
                "pool in all 11 languages at once; mAP@20 per question language.",
    languages=("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"),
    hub=None,
    local_only_reason="XQuAD-R is released in the google-research-datasets/lareqa repository.",
    fields=Fields(), metric="map_at_20", dev_metric="map_at_20", citation="roy-etal-2020-lareqa",
    retrieval=RetrievalDefaults(
        query_max_length=96, candidate_max_length=256, learning_rate=2e-5, batch_size=16, epochs=3,
        source="google-research/xtreme scripts/train_lareqa.sh (query 96, answer 256, 3 epochs, "
               "4 x 4 accumulated per step); training data SQuAD v1.1 train, each question "
               "paired with its answer sentence"),
))
