"""English training sources that are not intermediate tasks themselves: the data of some
intermediate and target tasks' training stages."""

from __future__ import annotations

from stilts_core.tasks.declared.common import (
    AUDITED,
    COPA_FIELDS,
    INTERMEDIATE_QA,
    NLI_FIELDS,
    NLI_LABELS,
    SQUAD_FIELDS,
    STANDARD_SPLITS,
)
from stilts_core.tasks.spec import (
    Fields,
    HubSource,
    SplitSizes,
    TaskSpec,
    catalog,
)

DECLARED: list[TaskSpec] = []

ANLI = TaskSpec(
    name="anli", role="source", format="classification",
    description="Adversarial NLI, rounds 1-3 combined.",
    languages=("en",),
    hub=HubSource(path="facebook/anli", splits={
        "train": "train_r1+train_r2+train_r3", "validation": "dev_r1+dev_r2+dev_r3",
        "test": "test_r1+test_r2+test_r3"}, evidence=AUDITED),
    fields=NLI_FIELDS, labels=NLI_LABELS, label_aliases={"e": "entailment", "n": "neutral",
                                                            "c": "contradiction"},
    local_aliases={"context": "premise", "statement": "hypothesis", "gold_label": "label"},
    metric="accuracy", dev_metric="accuracy", citation="nie-etal-2020-adversarial",
    sizes=SplitSizes(train=16946 + 45460 + 100459, validation=1000 + 1000 + 1200,
                     source=catalog("anli", "rounds r1+r2+r3")),
)
DECLARED.append(ANLI)
DECLARED.append(TaskSpec(
    name="snli", role="source", format="classification",
    description="Stanford NLI; examples without a gold label (-1) are dropped.",
    languages=("en",),
    hub=HubSource(path="stanfordnlp/snli", splits=STANDARD_SPLITS, evidence=AUDITED),
    fields=NLI_FIELDS, labels=NLI_LABELS, drop_labels=(-1,), metric="accuracy",
    dev_metric="accuracy", citation="bowman-etal-2015-large",
    sizes=SplitSizes(train=550152 - 785, validation=10000 - 158,
                     source=catalog("snli", "less the rows without a gold label (-1), which are "
                                     "dropped: 785 in train (huggingface/datasets issue 296), "
                                     "158 in validation (line counts in princeton-nlp/LM-BFF "
                                     "issue 8)")),
))
DECLARED.append(TaskSpec(
    name="squad_v1", role="intermediate", format="extractive_qa",
    description="SQuAD 1.1; also the English training data of XQuAD and MLQA.",
    languages=("en",),
    hub=HubSource(path="rajpurkar/squad", splits={"train": "train", "validation": "validation",
                                                   "test": "validation"}, evidence=AUDITED),
    fields=SQUAD_FIELDS, metric="squad", dev_metric="squad_f1", defaults=INTERMEDIATE_QA,
    citation="rajpurkar-etal-2016-squad",
    sizes=SplitSizes(train=87599, validation=10570, source=catalog("squad")),
))
DECLARED.append(TaskSpec(
    name="siqa", role="source", format="multiple_choice",
    description="Social IQa; XTREME-R trains XCOPA models on it before COPA. Read from the "
                "lighteval/siqa parquet copy: allenai/social_i_qa holds only its loading script.",
    languages=("en",),
    hub=HubSource(path="lighteval/siqa", splits={"train": "train", "validation": "validation"},
                  evidence="allenai/social_i_qa's main holds only social_i_qa.py (its parquet "
                           "conversion is the unmerged refs/pr/3), which datasets 5.x refuses; "
                           "lm-evaluation-harness moved its siqa task to lighteval/siqa (commit "
                           "7575f6e, issue 3171; PR 3943 md5-hashed every used column of train "
                           "33,410 and validation 1,954 rows: identical to allenai/social_i_qa). "
                           "Same fields: context, question, answerA/B/C, label ('1'-'3')"),
    fields=Fields(context=("context",), question="question",
                  choices=("answerA", "answerB", "answerC"), label="label"),
    choice_labels=("1", "2", "3"), metric="accuracy", dev_metric="accuracy",
    citation="sap-etal-2019-social",
    sizes=SplitSizes(train=33410, validation=1954, source=catalog("social_i_qa")),
))
DECLARED.append(TaskSpec(
    name="copa", role="source", format="multiple_choice",
    description="Choice of Plausible Alternatives (SuperGLUE), English.",
    languages=("en",),
    hub=HubSource(path="aps/super_glue", config="copa",
                  splits={"train": "train", "validation": "validation"},
                  evidence="lm-evaluation-harness's copa task reads aps/super_glue (config copa); "
                           "a 2026-10-02 survey sized aps/super_glue through datasets-server "
                           "(which cannot size script repos) and lists it beside Rowan/hellaswag "
                           "as loadable",
                  uncertainty="older snapshots of aps/super_glue held super_glue.py; main's "
                              "file listing could not be checked from here (no hub access)"),
    fields=COPA_FIELDS, metric="accuracy", dev_metric="accuracy",
    citation="roemmele-etal-2011-choice",
    sizes=SplitSizes(train=400, validation=100, source=catalog("super_glue", "copa")),
))
