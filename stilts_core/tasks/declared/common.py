"""What several task declarations share: the evidence behind their data sources and
defaults, label sets, field layouts, training defaults and the GLUE pattern."""

from __future__ import annotations

from stilts_core.tasks.spec import (
    DataRef,
    Fields,
    HubSource,
    SplitSizes,
    TaskRole,
    TaskSpec,
    TrainingDefaults,
    TrainingStage,
)

# Why a hub source is believed to load under datasets 5.2.0 (an audit of the registry against
# each dataset's card and file listing: data files, no loading script on the revision).
AUDITED = "audited: data files on main, no loading script; loads under datasets 5.2.0"
LM_EVAL_NAMESPACED = ("lm-evaluation-harness PR 3852 (2026-06) checked the config names of "
                      "facebook/xnli, cambridgeltl/xcopa, google-research-datasets/paws-x and "
                      "google/xquad against the hub")

STANDARD_SPLITS = {"train": "train", "validation": "validation", "test": "test"}
NLI_LABELS = ("entailment", "neutral", "contradiction")
NLI_FIELDS = Fields(text=("premise", "hypothesis"), label="label")
SQUAD_FIELDS = Fields(id="id", context=("context",), question="question", answers="answers")
INTERMEDIATE = TrainingDefaults(epochs=3, batch_size=32, max_length=256)
INTERMEDIATE_QA = TrainingDefaults(epochs=3, batch_size=16, max_length=384)
UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
         "PUNCT", "SCONJ", "SYM", "VERB", "X")
BIO = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
COPA_FIELDS = Fields(context=("premise",), question="question",
                     question_templates={"cause": "What was the cause?",
                                         "effect": "What happened as a result?"},
                     choices=("choice1", "choice2"), label="label")


def glue(name: str, config: str, description: str, fields: Fields, labels: tuple[str, ...],
          citation: str, sizes: SplitSizes, role: TaskRole = "intermediate",
          validation: str = "validation") -> TaskSpec:
    """GLUE tasks: the hub test splits have no labels, so the dev set serves as test."""
    return TaskSpec(
        name=name, role=role, format="classification", description=description, languages=("en",),
        hub=HubSource(path="nyu-mll/glue", config=config,
                      splits={"train": "train", "validation": validation, "test": validation},
                      evidence=AUDITED),
        fields=fields, labels=labels, metric="accuracy", dev_metric="accuracy",
        defaults=INTERMEDIATE if role == "intermediate" else None, citation=citation,
        sizes=sizes,
    )


def stage(train_task: str, dev_task: str, dev_split: str = "validation") -> tuple[TrainingStage]:
    return (TrainingStage(train=DataRef(task=train_task, split="train"),
                          dev=DataRef(task=dev_task, split=dev_split)),)
