"""The intermediate tasks of phase (ii) that Phang et al. 2020 train, and their multi-task mixture."""

from __future__ import annotations

from stilts_core.tasks.declared.common import (
    AUDITED,
    INTERMEDIATE,
    INTERMEDIATE_QA,
    NLI_FIELDS,
    NLI_LABELS,
    SQUAD_FIELDS,
    glue,
)
from stilts_core.tasks.declared.english import ANLI
from stilts_core.tasks.spec import (
    Fields,
    HubSource,
    Mixture,
    SplitSizes,
    TaskSpec,
    catalog,
)

DECLARED: list[TaskSpec] = []

DECLARED.append(glue("mnli", "mnli", "Multi-Genre NLI, English (GLUE).", NLI_FIELDS, NLI_LABELS,
               "williams-etal-2018-broad", SplitSizes(train=392702, validation=9815,
                                                      source=catalog("glue", "mnli")),
               validation="validation_matched"))
DECLARED.append(glue("qqp", "qqp", "Quora Question Pairs: are two questions paraphrases (GLUE).",
               Fields(text=("question1", "question2"), label="label"),
               ("not_duplicate", "duplicate"), "iyer-etal-2017-qqp",
               SplitSizes(train=363846, validation=40430, source=catalog("glue", "qqp"))))
DECLARED.append(glue("sst2", "sst2", "Stanford Sentiment Treebank, binary (GLUE).",
               Fields(text=("sentence",), label="label"), ("negative", "positive"),
               "socher-etal-2013-recursive",
               SplitSizes(train=67349, validation=872, source=catalog("glue", "sst2"))))
DECLARED.append(TaskSpec(
    name="anli_plus", role="intermediate", format="classification",
    description="ANLI+: ANLI rounds 1-3 with the SNLI and MNLI training sets added (Phang et al. "
                "2020); the combination is the run parameter 'combined_with'. Dev: ANLI R1-R3.",
    languages=("en",), hub=ANLI.hub, fields=NLI_FIELDS, labels=NLI_LABELS,
    label_aliases=ANLI.label_aliases, local_aliases=ANLI.local_aliases,
    combined_with=("snli", "mnli"), metric="accuracy", dev_metric="accuracy",
    defaults=INTERMEDIATE, citation="nie-etal-2020-adversarial",
    sizes=ANLI.sizes,
))
DECLARED.append(TaskSpec(
    name="ccg", role="intermediate", format="token_classification",
    description="CCG supertagging on CCGbank (one supertag per word; tag set read from the data).",
    languages=("en",), hub=None,
    local_only_reason="CCGbank is licensed by the LDC (LDC2005T13) and is not on the hub. Convert "
                      "it to JSON lines with fields 'tokens' (list of words) and 'tags' (list of "
                      "supertags), one file per split: <root>/ccg/train-en.jsonl, "
                      "<root>/ccg/validation-en.jsonl",
    fields=Fields(tokens="tokens", tags="tags"), metric="token_accuracy",
    dev_metric="token_accuracy", defaults=INTERMEDIATE, citation="hockenmaier-steedman-2007-ccgbank",
))
DECLARED.append(TaskSpec(
    name="commonsense_qa", role="intermediate", format="multiple_choice",
    description="CommonsenseQA: five-way multiple-choice questions (the hub test has no labels).",
    languages=("en",),
    hub=HubSource(path="tau/commonsense_qa",
                  splits={"train": "train", "validation": "validation", "test": "validation"},
                  evidence=AUDITED),
    fields=Fields(question="question", choices=("choices.text",), label="answerKey"),
    choice_labels=("A", "B", "C", "D", "E"), metric="accuracy", dev_metric="accuracy",
    defaults=INTERMEDIATE, citation="talmor-etal-2019-commonsenseqa",
    sizes=SplitSizes(train=9741, validation=1221, source=catalog("commonsense_qa")),
))
DECLARED.append(TaskSpec(
    name="cosmos_qa", role="intermediate", format="multiple_choice",
    description="Cosmos QA: reading comprehension requiring commonsense, four choices. Read "
                "from the Samsoup/cosmos_qa parquet copy: allenai/cosmos_qa holds only its "
                "loading script.",
    languages=("en",),
    hub=HubSource(path="Samsoup/cosmos_qa",
                  splits={"train": "train", "validation": "validation", "test": "validation"},
                  evidence="allenai/cosmos_qa has cosmos_qa.py in every stored snapshot and no "
                           "merged parquet conversion; a 2026-10-02 survey lists it as "
                           "script-based (datasets-server cannot size it). Samsoup/cosmos_qa is "
                           "used as its parquet copy by other projects ('Use the parquet version "
                           "to avoid deprecated loading scripts'; tasksource's table of mirrors "
                           "maps it to allenai/cosmos_qa), read there with splits train, "
                           "validation, test and fields context, question, answer0-3, label",
                  uncertainty="a third-party copy: its rows were not compared with the release "
                              "here. The release's own valid.csv (wilburOne/cosmosqa) loads as a "
                              "local file: data_roots={'cosmos_qa': <root>} with "
                              "<root>/cosmos_qa/validation-en.csv"),
    fields=Fields(context=("context",), question="question",
                  choices=("answer0", "answer1", "answer2", "answer3"), label="label"),
    metric="accuracy", dev_metric="accuracy", defaults=INTERMEDIATE,
    citation="huang-etal-2019-cosmos",
    sizes=SplitSizes(train=25262, validation=2985,
                     source="allenai/cosmos_qa dataset card (dataset_info splits)"),
))
DECLARED.append(TaskSpec(
    name="hellaswag", role="intermediate", format="multiple_choice",
    description="HellaSwag: pick the ending of a situation (the hub test has no labels).",
    languages=("en",),
    hub=HubSource(path="Rowan/hellaswag",
                  splits={"train": "train", "validation": "validation", "test": "validation"},
                  evidence="lm-evaluation-harness's hellaswag task reads Rowan/hellaswag; a "
                           "2026-10-02 survey sized its train split (39,905) through "
                           "datasets-server, which cannot size script repos",
                  uncertainty="older snapshots held hellaswag.py; main's file listing could not "
                              "be checked from here (no hub access)"),
    fields=Fields(context=("ctx_a",), question="ctx_b", choices=("endings",), label="label"),
    choice_labels=("0", "1", "2", "3"), metric="accuracy", dev_metric="accuracy",
    defaults=INTERMEDIATE, citation="zellers-etal-2019-hellaswag",
    sizes=SplitSizes(train=39905, validation=10042, source=catalog("hellaswag")),
))
DECLARED.append(TaskSpec(
    name="squad", role="intermediate", format="extractive_qa",
    description="SQuAD 2.0 (with unanswerable questions); 'squad_v1' selects SQuAD 1.1.",
    languages=("en",),
    hub=HubSource(path="rajpurkar/squad_v2", splits={"train": "train", "validation": "validation",
                                                      "test": "validation"}, evidence=AUDITED),
    fields=SQUAD_FIELDS, version_2_with_negative=True, metric="squad_v2",
    dev_metric="squad_v2_f1",
    defaults=INTERMEDIATE_QA, citation="rajpurkar-etal-2018-know",
    sizes=SplitSizes(train=130319, validation=11873, source=catalog("squad_v2")),
))

# The nine English intermediate tasks that Phang et al. 2020 name; "multi" trains all of them.
PHANG_INTERMEDIATE = ("anli_plus", "ccg", "commonsense_qa", "cosmos_qa", "hellaswag", "mnli", "qqp",
                      "squad", "sst2")
MULTI = "multi"

MIXTURES = (Mixture(
    name=MULTI,
    description="All nine intermediate tasks of Phang et al. 2020, multi-task.",
    tasks=PHANG_INTERMEDIATE,
    defaults=INTERMEDIATE, citation="phang-etal-2020-english",
),)
