"""The target tasks of phase (iii): XTREME and XTREME-R."""

from __future__ import annotations

from stilts_core.tasks.declared.common import (
    AUDITED,
    BIO,
    COPA_FIELDS,
    LM_EVAL_NAMESPACED,
    NLI_FIELDS,
    NLI_LABELS,
    SQUAD_FIELDS,
    STANDARD_SPLITS,
    UPOS,
    stage,
)
from stilts_core.tasks.spec import (
    DataRef,
    Fields,
    HubSource,
    SplitSizes,
    TaskSpec,
    TrainingDefaults,
    TrainingStage,
    catalog,
)

DECLARED: list[TaskSpec] = []

DECLARED.append(TaskSpec(
    name="xnli", role="target", format="classification",
    description="Cross-lingual NLI; trained on MNLI, early stopping on XNLI English dev.",
    languages=("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi",
               "zh"),
    hub=HubSource(path="facebook/xnli", config="{lang}", splits=STANDARD_SPLITS,
                  evidence=f"{AUDITED}; {LM_EVAL_NAMESPACED}"),
    fields=NLI_FIELDS, labels=NLI_LABELS, metric="accuracy", dev_metric="accuracy",
    training=stage("mnli", "xnli"),
    defaults=TrainingDefaults(epochs=2, batch_size=32, max_length=256),
    citation="conneau-etal-2018-xnli",
    sizes=SplitSizes(validation=2490, source=catalog("xnli", "en")),
))
DECLARED.append(TaskSpec(
    name="pawsx", role="target", format="classification",
    description="PAWS-X paraphrase identification (XTREME; replaced by XCOPA etc. in XTREME-R).",
    languages=("en", "de", "es", "fr", "ja", "ko", "zh"),
    hub=HubSource(path="google-research-datasets/paws-x", config="{lang}",
                  splits=STANDARD_SPLITS, evidence=f"{AUDITED}; {LM_EVAL_NAMESPACED}"),
    fields=Fields(text=("sentence1", "sentence2"), label="label"),
    labels=("not_paraphrase", "paraphrase"), submission_labels=("0", "1"), metric="accuracy",
    dev_metric="accuracy", training=stage("pawsx", "pawsx"),
    defaults=TrainingDefaults(epochs=5, batch_size=32, max_length=256),
    citation="yang-etal-2019-paws",
    sizes=SplitSizes(train=49401, validation=2000, source=catalog("paws-x", "en")),
))
_UDPOS_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "kk": "Kazakh", "ko": "Korean",
    "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian", "ta": "Tamil",
    "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu", "vi": "Vietnamese",
    "yo": "Yoruba", "zh": "Chinese",
}
DECLARED.append(TaskSpec(
    name="udpos", role="target", format="token_classification",
    description="Universal Dependencies part-of-speech tagging (17 UPOS tags). The hub copy "
                "(XTREME) lacks XTREME-R's lt, pl, ro, uk and wo: read UD .conllu files for them.",
    languages=("af", "ar", "bg", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi",
               "hu", "id", "it", "ja", "kk", "ko", "lt", "mr", "nl", "pl", "pt", "ro", "ru", "ta",
               "te", "th", "tl", "tr", "uk", "ur", "vi", "wo", "yo", "zh"),
    language_codes=_UDPOS_NAMES,
    hub=HubSource(path="google/xtreme", config="udpos.{code}",
                  splits=STANDARD_SPLITS,
                  languages=tuple(_UDPOS_NAMES), evidence=AUDITED),
    fields=Fields(tokens="tokens", tags="pos_tags"), labels=UPOS, metric="seqeval",
    extra_metrics=("token_accuracy",),
    dev_metric="token_accuracy", training=stage("udpos", "udpos"),
    defaults=TrainingDefaults(epochs=10, batch_size=32, max_length=256),
    citation="nivre-etal-2020-universal",
    sizes=SplitSizes(train=21253, validation=3974, source=catalog("xtreme", "udpos.English")),
))
DECLARED.append(TaskSpec(
    name="panx", role="target", format="token_classification",
    description="PAN-X / WikiANN named entities (PER, ORG, LOC; IOB2), XTREME-R languages.",
    languages=("af", "ar", "az", "bg", "bn", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr",
               "gu", "he", "hi", "hu", "id", "it", "ja", "jv", "ka", "kk", "ko", "lt", "ml", "mr",
               "ms", "my", "nl", "pa", "pl", "pt", "qu", "ro", "ru", "sw", "ta", "te", "th", "tl",
               "tr", "uk", "ur", "vi", "yo", "zh"),
    hub=HubSource(path="unimelb-nlp/wikiann", config="{lang}", splits=STANDARD_SPLITS,
                  evidence=AUDITED),
    fields=Fields(tokens="tokens", tags="ner_tags"), labels=BIO, metric="seqeval",
    dev_metric="seqeval", training=stage("panx", "panx"),
    defaults=TrainingDefaults(epochs=10, batch_size=32, max_length=256),
    citation="pan-etal-2017-cross",
    sizes=SplitSizes(train=20000, validation=10000, source=catalog("wikiann", "en")),
))
_QA_TARGET = TrainingDefaults(epochs=2, batch_size=16, max_length=384)
DECLARED.append(TaskSpec(
    name="xquad", role="target", format="extractive_qa",
    description="XQuAD: SQuAD 1.1 dev translated into 11 languages; trained on SQuAD 1.1.",
    languages=("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh"),
    hub=HubSource(path="google/xquad", config="xquad.{lang}", splits={"test": "validation"},
                  evidence=f"{AUDITED}; {LM_EVAL_NAMESPACED}"),
    fields=SQUAD_FIELDS, metric="squad", dev_metric="squad_f1",
    training=stage("squad_v1", "squad_v1"), defaults=_QA_TARGET,
    citation="artetxe-etal-2020-cross",
))
DECLARED.append(TaskSpec(
    name="mlqa", role="target", format="extractive_qa",
    description="MLQA (context and question in the same language); trained on SQuAD 1.1. Read "
                "from google/xtreme's MLQA configs: facebook/mlqa holds only its loading script.",
    languages=("ar", "de", "en", "es", "hi", "vi", "zh"),
    hub=HubSource(path="google/xtreme", config="MLQA.{lang}.{lang}",
                  splits={"validation": "validation", "test": "test"},
                  evidence="facebook/mlqa is script-only (mlqa.py), refused by datasets 5.x; "
                           "google/xtreme holds the same data as parquet, configs "
                           "MLQA.<context lang>.<question lang> with splits validation and test "
                           "and the SQuAD fields plus title (its card, audited; the repo the "
                           "udpos and tatoeba tasks read too)"),
    fields=SQUAD_FIELDS, metric="mlqa", dev_metric="squad_f1",
    training=stage("squad_v1", "squad_v1"), defaults=_QA_TARGET,
    citation="lewis-etal-2020-mlqa",
))
DECLARED.append(TaskSpec(
    name="tydiqa", role="target", format="extractive_qa",
    description="TyDiQA-GoldP; trained on its English training set. The hub keeps every language "
                "in one config (ids start with the language name); its dev set is XTREME's test. "
                "Early stopping uses the SQuAD 1.1 dev set, which is not evaluated.",
    languages=("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te"),
    language_codes={"ar": "arabic", "bn": "bengali", "en": "english", "fi": "finnish",
                    "id": "indonesian", "ko": "korean", "ru": "russian", "sw": "swahili",
                    "te": "telugu"},
    hub=HubSource(path="google-research-datasets/tydiqa", config="secondary_task",
                  splits={"train": "train", "test": "validation"},
                  language_filter=("id", "{code}-"), evidence=AUDITED),
    fields=SQUAD_FIELDS, metric="squad", dev_metric="squad_f1",
    training=(TrainingStage(train=DataRef(task="tydiqa", split="train"),
                            dev=DataRef(task="squad_v1", split="validation")),),
    defaults=_QA_TARGET, citation="clark-etal-2020-tydi",
))
DECLARED.append(TaskSpec(
    name="xcopa", role="target", format="multiple_choice",
    description="XCOPA (XTREME-R): trained on English SIQA, then on English COPA, as XTREME-R does.",
    languages=("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh"),
    hub=HubSource(path="cambridgeltl/xcopa", config="{lang}",
                  splits={"validation": "validation", "test": "test"},
                  evidence=f"{AUDITED}; {LM_EVAL_NAMESPACED}"),
    fields=COPA_FIELDS, metric="accuracy", dev_metric="accuracy",
    training=stage("siqa", "siqa") + stage("copa", "copa"),
    defaults=TrainingDefaults(epochs=2, batch_size=32, max_length=256,
                              source="not fixed by the papers; MC defaults of the intermediate "
                                     "recipe with the XNLI epoch count"),
    citation="ponti-etal-2020-xcopa",
))
