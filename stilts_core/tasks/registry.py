"""The task registry: each task is one declared, validated object.

In the spirit of MTEB task metadata and lm-evaluation-harness task configs, a task says what it
*is* (format, languages, where its data comes from and under which field names, how it is
trained and scored); the data loaders, heads, metrics, the grid and the book's task tables all
read it from here instead of switching on task names.

Hub revisions: ``HubSource.revision`` is the branch or commit that is loaded. Every run records
the commit it resolved to (``data_sources.json``), and a run can pin any task to a commit with
the ``data_revisions`` parameter, which is part of the run's identity.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stilts_core.tasks.metrics import METRICS, get_metric

TaskRole = Literal["intermediate", "target", "source", "retrieval"]
TaskFormat = Literal["classification", "multiple_choice", "token_classification", "extractive_qa",
                     "bitext_retrieval", "bitext_mining", "ranking", "masked_lm"]
# The task groups of the analysis: one per kind of task, so that every target task is in one.
TASK_GROUPS = {
    "classification": "classification", "multiple_choice": "multiple_choice",
    "token_classification": "structured_prediction", "extractive_qa": "qa",
    "bitext_retrieval": "retrieval", "bitext_mining": "retrieval", "ranking": "retrieval",
}
JIANT_XTREME = "jiant XTREME pipeline defaults (Phang et al. 2020, Appendix; jiant guides/xtreme)"
# Why a hub source is believed to load under datasets 5.2.0 (issue 23's audit of the registry
# against each dataset's card and file listing: data files, no loading script on the revision).
AUDITED = "issue 23 audit: data files on main, no loading script; loads under datasets 5.2.0"
LM_EVAL_NAMESPACED = ("lm-evaluation-harness PR 3852 (2026-06) checked the config names of "
                      "facebook/xnli, cambridgeltl/xcopa, google-research-datasets/paws-x and "
                      "google/xquad against the hub")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HubSource(_Frozen):
    """Where a task's data lives on the Hugging Face hub.

    ``config`` may contain ``{lang}`` (the ISO 639-1 code) or ``{code}`` (the task's own code for
    the language, :attr:`TaskSpec.language_codes`). ``splits`` maps our split names
    (train/validation/test) to the hub's (``datasets`` split arithmetic such as ``a+b`` works).
    ``languages`` lists the languages the hub copy has when it is not all of the task's; the
    others need a local file. ``language_filter`` selects one language's rows from a config that
    holds all of them: ``(field, prefix)``, the prefix formatted like ``config``.
    """

    path: str
    config: str | None = None
    revision: str = "main"
    splits: dict[str, str]
    languages: tuple[str, ...] | None = None
    language_filter: tuple[str, str] | None = None
    evidence: str
    uncertainty: str | None = None


DATASETS_LOADER = "datasets 5.2.0 load.py: a hub repo whose revision holds <name>.py is refused"


class ReleaseFiles(_Frozen):
    """The original release files of the languages a task's hub copy lacks: line-aligned text
    files, one per text field, fetched from ``url`` (``{revision}``, ``{name}``) at a pinned
    commit, or read from ``<root>/<task>/<name>`` (the release's own file names)."""

    url: str
    revision: str
    files: dict[str, tuple[str, ...]]
    languages: tuple[str, ...]
    source: str

    def names(self, split: str, code: str) -> tuple[str, ...]:
        return tuple(name.format(code=code) for name in self.files[split])


class Fields(_Frozen):
    """Where the canonical inputs of the task's format are found in a source row.

    Dotted names reach into nested fields (``choices.text``). Classification: ``text`` (one or
    two fields), ``label``. Multiple choice: ``context`` (joined), ``question`` (optionally
    rewritten by ``question_templates``), ``choices`` (one field per choice, or one list-valued
    field), ``label``. Token classification: ``tokens``, ``tags``. Extractive QA: the SQuAD
    schema (``id``, ``context``, ``question``, ``answers``). Retrieval: ``text`` = (source, target).
    """

    text: tuple[str, ...] = ()
    label: str | None = None
    context: tuple[str, ...] = ()
    question: str | None = None
    question_templates: dict[str, str] = Field(default_factory=dict)
    choices: tuple[str, ...] = ()
    tokens: str | None = None
    tags: str | None = None
    id: str | None = None
    answers: str | None = None


class DataRef(_Frozen):
    """One split of one task in one language."""

    task: str
    split: str
    language: str = "en"


class TrainingStage(_Frozen):
    """English training data of a target task and the dev set used for early stopping."""

    train: DataRef
    dev: DataRef


class TrainingDefaults(_Frozen):
    """Published per-task training settings; ``source`` says where they come from."""

    epochs: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    max_length: int = Field(ge=8)
    doc_stride: int = Field(128, ge=1)
    source: str = JIANT_XTREME


class RetrievalDefaults(_Frozen):
    """Published settings of a retrieval task: the sequence lengths of its two sides and, for
    ranking tasks, XTREME-R's dual-encoder recipe; ``source`` says where they come from."""

    query_max_length: int = Field(ge=2)
    candidate_max_length: int = Field(ge=2)
    learning_rate: float | None = None
    batch_size: int | None = None
    epochs: float | None = None
    source: str


class SplitSizes(_Frozen):
    """Examples in the English splits that training reads, with where the counts come from; the
    grid projects GPU-hours from them (``None``: no citable count, so no projection)."""

    train: int | None = Field(None, ge=1)
    validation: int | None = Field(None, ge=1)
    source: str


TFDS_CATALOG = "tensorflow/datasets docs/community_catalog/huggingface/{}.md (Split | Examples)"


def _catalog(name: str, note: str = "") -> str:
    return TFDS_CATALOG.format(name) + (f"; {note}" if note else "")


class TaskSpec(_Frozen):
    """One task: what it is, where its data comes from, how it is trained and scored."""

    name: str
    role: TaskRole
    format: TaskFormat
    description: str
    languages: tuple[str, ...] = Field(min_length=1)
    language_codes: dict[str, str] = Field(default_factory=dict)
    hub: HubSource | None
    local_only_reason: str | None = None
    release: ReleaseFiles | None = None
    fields: Fields
    labels: tuple[str, ...] = ()
    submission_labels: tuple[str, ...] = ()
    label_aliases: dict[str, str] = Field(default_factory=dict)
    drop_labels: tuple = ()
    choice_labels: tuple[str, ...] = ()
    version_2_with_negative: bool = False
    metric: str
    extra_metrics: tuple[str, ...] = ()
    dev_metric: str
    evaluation_split: str = "test"
    training: tuple[TrainingStage, ...] = ()
    combined_with: tuple[str, ...] = ()
    defaults: TrainingDefaults | None = None
    retrieval: RetrievalDefaults | None = None
    sizes: SplitSizes | None = None
    local_aliases: dict[str, str] = Field(default_factory=dict)
    citation: str

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        problem = _format_problem(self)
        if problem:
            raise ValueError(f"task {self.name!r}: {problem}")
        unknown = set(self.language_codes) - set(self.languages)
        if unknown:
            raise ValueError(f"task {self.name!r}: language_codes for undeclared {sorted(unknown)}")
        if (self.hub is None) == (self.local_only_reason is None):
            raise ValueError(f"task {self.name!r}: declare a hub source or a local_only_reason")
        if self.release is not None:
            hub_languages = set(self.hub.languages or self.languages) if self.hub else set()
            stray = sorted(set(self.release.languages) - set(self.languages))
            overlap = sorted(set(self.release.languages) & hub_languages)
            if stray or overlap or len(self.release.files.get("test", ())) != len(self.fields.text):
                raise ValueError(f"task {self.name!r}: release files must cover declared languages "
                                 f"the hub copy lacks (undeclared {stray}, also on the hub "
                                 f"{overlap}), one file per text field")
        if self.role in ("intermediate", "target") and self.defaults is None:
            raise ValueError(f"task {self.name!r}: {self.role} tasks need training defaults")
        if self.role == "target" and not self.training:
            raise ValueError(f"task {self.name!r}: a target task needs its English training stages")
        unknown = [m for m in (self.metric, self.dev_metric, *self.extra_metrics)
                   if m != "none" and m not in METRICS]
        if unknown:
            raise ValueError(f"task {self.name!r}: unknown metric(s) {unknown}; registered: "
                             f"{', '.join(METRICS)}")
        if self.submission_labels and len(self.submission_labels) != len(self.labels):
            raise ValueError(f"task {self.name!r}: submission_labels must match labels one to one")
        return self

    @property
    def group(self) -> str | None:
        """The analysis group of the task (classification, multiple_choice,
        structured_prediction, qa, retrieval)."""
        return TASK_GROUPS.get(self.format)

    @property
    def label_names(self) -> tuple[str, ...]:
        """Class names as submission files write them (XTREME's PAWS-X uses 0/1)."""
        return self.submission_labels or self.labels

    def hub_config(self, language: str) -> str | None:
        if self.hub is None or self.hub.config is None:
            return None
        return self._format(self.hub.config, language)

    def _format(self, template: str, language: str) -> str:
        return template.format(lang=language, code=self.language_codes.get(language, language))

    def language_prefix(self, language: str) -> tuple[str, str] | None:
        if self.hub is None or self.hub.language_filter is None:
            return None
        field, prefix = self.hub.language_filter
        return field, self._format(prefix, language)

    @property
    def labels_from_data(self) -> bool:
        """Tag sets too large to declare (CCG supertags) are read from the training data."""
        return self.format == "token_classification" and not self.labels

    @property
    def evaluation_languages(self) -> tuple[str, ...]:
        """Languages scored zero-shot; retrieval tasks pair every language with English."""
        return self.languages


def _format_problem(task: TaskSpec) -> str | None:
    f = task.fields
    if task.format == "classification":
        if len(f.text) not in (1, 2) or not f.label or not task.labels:
            return "classification needs one or two text fields, a label field and labels"
    elif task.format == "multiple_choice":
        if not f.choices or not f.label:
            return "multiple_choice needs choices and a label field"
    elif task.format == "token_classification":
        if not f.tokens or not f.tags:
            return "token_classification needs tokens and tags fields"
    elif task.format == "extractive_qa":
        if not (f.id and len(f.context) == 1 and f.question and f.answers):
            return "extractive_qa needs id, context, question and answers fields"
    elif task.format == "masked_lm":
        if len(f.text) != 1:
            return "masked_lm needs one text field"
    elif task.format == "bitext_retrieval" and len(f.text) != 2:
        return "bitext_retrieval needs two text fields (source, target)"
    return None


class Mixture(_Frozen):
    """Multi-task intermediate training: one shared encoder, one head per task.

    Batches are drawn per task with probability proportional to ``min(n, cap) ** (1 / T)``
    (examples-proportional mixing when ``temperature`` is 1 and there is no cap).
    """

    name: str
    description: str
    tasks: tuple[str, ...] = Field(min_length=1)
    temperature: float = Field(1.0, gt=0)
    cap: int | None = Field(None, ge=1)
    defaults: TrainingDefaults
    citation: str


TASKS: dict[str, TaskSpec] = {}
MIXTURES: dict[str, Mixture] = {}


def register(task: TaskSpec) -> TaskSpec:
    if task.name in TASKS or task.name in MIXTURES:
        raise ValueError(f"task {task.name!r} is registered twice")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; registered tasks: {', '.join(sorted(TASKS))}") from None


def get_mixture(name: str) -> Mixture:
    try:
        return MIXTURES[name]
    except KeyError:
        raise KeyError(f"unknown mixture {name!r}; registered: {', '.join(sorted(MIXTURES))}") from None


def intermediate_choices() -> list[str]:
    """What phase (ii) can train: every intermediate task and every mixture."""
    return sorted([n for n, t in TASKS.items() if t.role == "intermediate"] + list(MIXTURES))


# --- shared declarations -------------------------------------------------------------------------

_STANDARD_SPLITS = {"train": "train", "validation": "validation", "test": "test"}
_NLI_LABELS = ("entailment", "neutral", "contradiction")
_NLI_FIELDS = Fields(text=("premise", "hypothesis"), label="label")
_SQUAD_FIELDS = Fields(id="id", context=("context",), question="question", answers="answers")
_INTERMEDIATE = TrainingDefaults(epochs=3, batch_size=32, max_length=256)
_INTERMEDIATE_QA = TrainingDefaults(epochs=3, batch_size=16, max_length=384)
_UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
         "PUNCT", "SCONJ", "SYM", "VERB", "X")
_BIO = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")


def _glue(name: str, config: str, description: str, fields: Fields, labels: tuple[str, ...],
          citation: str, sizes: SplitSizes, role: TaskRole = "intermediate",
          validation: str = "validation") -> TaskSpec:
    """GLUE tasks: the hub test splits have no labels, so the dev set serves as test."""
    return TaskSpec(
        name=name, role=role, format="classification", description=description, languages=("en",),
        hub=HubSource(path="nyu-mll/glue", config=config,
                      splits={"train": "train", "validation": validation, "test": validation},
                      evidence=AUDITED),
        fields=fields, labels=labels, metric="accuracy", dev_metric="accuracy",
        defaults=_INTERMEDIATE if role == "intermediate" else None, citation=citation,
        sizes=sizes,
    )


def _stage(train_task: str, dev_task: str, dev_split: str = "validation") -> tuple[TrainingStage]:
    return (TrainingStage(train=DataRef(task=train_task, split="train"),
                          dev=DataRef(task=dev_task, split=dev_split)),)


# --- English training sources that are not intermediate tasks themselves ------------------------

register(TaskSpec(
    name="anli", role="source", format="classification",
    description="Adversarial NLI, rounds 1-3 combined.",
    languages=("en",),
    hub=HubSource(path="facebook/anli", splits={
        "train": "train_r1+train_r2+train_r3", "validation": "dev_r1+dev_r2+dev_r3",
        "test": "test_r1+test_r2+test_r3"}, evidence=AUDITED),
    fields=_NLI_FIELDS, labels=_NLI_LABELS, label_aliases={"e": "entailment", "n": "neutral",
                                                            "c": "contradiction"},
    local_aliases={"context": "premise", "statement": "hypothesis", "gold_label": "label"},
    metric="accuracy", dev_metric="accuracy", citation="nie-etal-2020-adversarial",
    sizes=SplitSizes(train=16946 + 45460 + 100459, validation=1000 + 1000 + 1200,
                     source=_catalog("anli", "rounds r1+r2+r3")),
))
register(TaskSpec(
    name="snli", role="source", format="classification",
    description="Stanford NLI; examples without a gold label (-1) are dropped.",
    languages=("en",),
    hub=HubSource(path="stanfordnlp/snli", splits=_STANDARD_SPLITS, evidence=AUDITED),
    fields=_NLI_FIELDS, labels=_NLI_LABELS, drop_labels=(-1,), metric="accuracy",
    dev_metric="accuracy", citation="bowman-etal-2015-large",
    sizes=SplitSizes(train=550152 - 785, validation=10000 - 158,
                     source=_catalog("snli", "less the rows without a gold label (-1), which are "
                                     "dropped: 785 in train (huggingface/datasets issue 296), "
                                     "158 in validation (line counts in princeton-nlp/LM-BFF "
                                     "issue 8)")),
))
register(TaskSpec(
    name="squad_v1", role="intermediate", format="extractive_qa",
    description="SQuAD 1.1; also the English training data of XQuAD and MLQA.",
    languages=("en",),
    hub=HubSource(path="rajpurkar/squad", splits={"train": "train", "validation": "validation",
                                                   "test": "validation"}, evidence=AUDITED),
    fields=_SQUAD_FIELDS, metric="squad", dev_metric="squad_f1", defaults=_INTERMEDIATE_QA,
    citation="rajpurkar-etal-2016-squad",
    sizes=SplitSizes(train=87599, validation=10570, source=_catalog("squad")),
))
register(TaskSpec(
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
    sizes=SplitSizes(train=33410, validation=1954, source=_catalog("social_i_qa")),
))
_COPA_FIELDS = Fields(context=("premise",), question="question",
                      question_templates={"cause": "What was the cause?",
                                          "effect": "What happened as a result?"},
                      choices=("choice1", "choice2"), label="label")
register(TaskSpec(
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
    fields=_COPA_FIELDS, metric="accuracy", dev_metric="accuracy",
    citation="roemmele-etal-2011-choice",
    sizes=SplitSizes(train=400, validation=100, source=_catalog("super_glue", "copa")),
))

# --- intermediate tasks (phase ii), Phang et al. 2020 --------------------------------------------

register(_glue("mnli", "mnli", "Multi-Genre NLI, English (GLUE).", _NLI_FIELDS, _NLI_LABELS,
               "williams-etal-2018-broad", SplitSizes(train=392702, validation=9815,
                                                      source=_catalog("glue", "mnli")),
               validation="validation_matched"))
register(_glue("qqp", "qqp", "Quora Question Pairs: are two questions paraphrases (GLUE).",
               Fields(text=("question1", "question2"), label="label"),
               ("not_duplicate", "duplicate"), "iyer-etal-2017-qqp",
               SplitSizes(train=363846, validation=40430, source=_catalog("glue", "qqp"))))
register(_glue("sst2", "sst2", "Stanford Sentiment Treebank, binary (GLUE).",
               Fields(text=("sentence",), label="label"), ("negative", "positive"),
               "socher-etal-2013-recursive",
               SplitSizes(train=67349, validation=872, source=_catalog("glue", "sst2"))))
register(TaskSpec(
    name="anli_plus", role="intermediate", format="classification",
    description="ANLI+: ANLI rounds 1-3 with the SNLI and MNLI training sets added (Phang et al. "
                "2020); the combination is the run parameter 'combined_with'. Dev: ANLI R1-R3.",
    languages=("en",), hub=get_task("anli").hub, fields=_NLI_FIELDS, labels=_NLI_LABELS,
    label_aliases=get_task("anli").label_aliases, local_aliases=get_task("anli").local_aliases,
    combined_with=("snli", "mnli"), metric="accuracy", dev_metric="accuracy",
    defaults=_INTERMEDIATE, citation="nie-etal-2020-adversarial",
    sizes=get_task("anli").sizes,
))
register(TaskSpec(
    name="ccg", role="intermediate", format="token_classification",
    description="CCG supertagging on CCGbank (one supertag per word; tag set read from the data).",
    languages=("en",), hub=None,
    local_only_reason="CCGbank is licensed by the LDC (LDC2005T13) and is not on the hub. Convert "
                      "it to JSON lines with fields 'tokens' (list of words) and 'tags' (list of "
                      "supertags), one file per split: <root>/ccg/train-en.jsonl, "
                      "<root>/ccg/validation-en.jsonl",
    fields=Fields(tokens="tokens", tags="tags"), metric="token_accuracy",
    dev_metric="token_accuracy", defaults=_INTERMEDIATE, citation="hockenmaier-steedman-2007-ccgbank",
))
register(TaskSpec(
    name="commonsense_qa", role="intermediate", format="multiple_choice",
    description="CommonsenseQA: five-way multiple-choice questions (the hub test has no labels).",
    languages=("en",),
    hub=HubSource(path="tau/commonsense_qa",
                  splits={"train": "train", "validation": "validation", "test": "validation"},
                  evidence=AUDITED),
    fields=Fields(question="question", choices=("choices.text",), label="answerKey"),
    choice_labels=("A", "B", "C", "D", "E"), metric="accuracy", dev_metric="accuracy",
    defaults=_INTERMEDIATE, citation="talmor-etal-2019-commonsenseqa",
    sizes=SplitSizes(train=9741, validation=1221, source=_catalog("commonsense_qa")),
))
register(TaskSpec(
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
    metric="accuracy", dev_metric="accuracy", defaults=_INTERMEDIATE,
    citation="huang-etal-2019-cosmos",
    sizes=SplitSizes(train=25262, validation=2985,
                     source="allenai/cosmos_qa dataset card (dataset_info splits)"),
))
register(TaskSpec(
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
    defaults=_INTERMEDIATE, citation="zellers-etal-2019-hellaswag",
    sizes=SplitSizes(train=39905, validation=10042, source=_catalog("hellaswag")),
))
register(TaskSpec(
    name="squad", role="intermediate", format="extractive_qa",
    description="SQuAD 2.0 (with unanswerable questions); 'squad_v1' selects SQuAD 1.1.",
    languages=("en",),
    hub=HubSource(path="rajpurkar/squad_v2", splits={"train": "train", "validation": "validation",
                                                      "test": "validation"}, evidence=AUDITED),
    fields=_SQUAD_FIELDS, version_2_with_negative=True, metric="squad_v2",
    dev_metric="squad_v2_f1",
    defaults=_INTERMEDIATE_QA, citation="rajpurkar-etal-2018-know",
    sizes=SplitSizes(train=130319, validation=11873, source=_catalog("squad_v2")),
))

# The nine English intermediate tasks that Phang et al. 2020 name; "multi" trains all of them.
PHANG_INTERMEDIATE = ("anli_plus", "ccg", "commonsense_qa", "cosmos_qa", "hellaswag", "mnli", "qqp",
                      "squad", "sst2")
MULTI = "multi"

MIXTURES[MULTI] = Mixture(
    name=MULTI,
    description="All nine intermediate tasks of Phang et al. 2020, multi-task.",
    tasks=PHANG_INTERMEDIATE,
    defaults=_INTERMEDIATE, citation="phang-etal-2020-english",
)

# --- target tasks (phase iii): XTREME and XTREME-R ----------------------------------------------

register(TaskSpec(
    name="xnli", role="target", format="classification",
    description="Cross-lingual NLI; trained on MNLI, early stopping on XNLI English dev.",
    languages=("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi",
               "zh"),
    hub=HubSource(path="facebook/xnli", config="{lang}", splits=_STANDARD_SPLITS,
                  evidence=f"{AUDITED}; {LM_EVAL_NAMESPACED}"),
    fields=_NLI_FIELDS, labels=_NLI_LABELS, metric="accuracy", dev_metric="accuracy",
    training=_stage("mnli", "xnli"),
    defaults=TrainingDefaults(epochs=2, batch_size=32, max_length=256),
    citation="conneau-etal-2018-xnli",
    sizes=SplitSizes(validation=2490, source=_catalog("xnli", "en")),
))
register(TaskSpec(
    name="pawsx", role="target", format="classification",
    description="PAWS-X paraphrase identification (XTREME; replaced by XCOPA etc. in XTREME-R).",
    languages=("en", "de", "es", "fr", "ja", "ko", "zh"),
    hub=HubSource(path="google-research-datasets/paws-x", config="{lang}",
                  splits=_STANDARD_SPLITS, evidence=f"{AUDITED}; {LM_EVAL_NAMESPACED}"),
    fields=Fields(text=("sentence1", "sentence2"), label="label"),
    labels=("not_paraphrase", "paraphrase"), submission_labels=("0", "1"), metric="accuracy",
    dev_metric="accuracy", training=_stage("pawsx", "pawsx"),
    defaults=TrainingDefaults(epochs=5, batch_size=32, max_length=256),
    citation="yang-etal-2019-paws",
    sizes=SplitSizes(train=49401, validation=2000, source=_catalog("paws-x", "en")),
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
register(TaskSpec(
    name="udpos", role="target", format="token_classification",
    description="Universal Dependencies part-of-speech tagging (17 UPOS tags). The hub copy "
                "(XTREME) lacks XTREME-R's lt, pl, ro, uk and wo: read UD .conllu files for them.",
    languages=("af", "ar", "bg", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi",
               "hu", "id", "it", "ja", "kk", "ko", "lt", "mr", "nl", "pl", "pt", "ro", "ru", "ta",
               "te", "th", "tl", "tr", "uk", "ur", "vi", "wo", "yo", "zh"),
    language_codes=_UDPOS_NAMES,
    hub=HubSource(path="google/xtreme", config="udpos.{code}",
                  splits=_STANDARD_SPLITS,
                  languages=tuple(_UDPOS_NAMES), evidence=AUDITED),
    fields=Fields(tokens="tokens", tags="pos_tags"), labels=_UPOS, metric="seqeval",
    extra_metrics=("token_accuracy",),
    dev_metric="token_accuracy", training=_stage("udpos", "udpos"),
    defaults=TrainingDefaults(epochs=10, batch_size=32, max_length=256),
    citation="nivre-etal-2020-universal",
    sizes=SplitSizes(train=21253, validation=3974, source=_catalog("xtreme", "udpos.English")),
))
register(TaskSpec(
    name="panx", role="target", format="token_classification",
    description="PAN-X / WikiANN named entities (PER, ORG, LOC; IOB2), XTREME-R languages.",
    languages=("af", "ar", "az", "bg", "bn", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr",
               "gu", "he", "hi", "hu", "id", "it", "ja", "jv", "ka", "kk", "ko", "lt", "ml", "mr",
               "ms", "my", "nl", "pa", "pl", "pt", "qu", "ro", "ru", "sw", "ta", "te", "th", "tl",
               "tr", "uk", "ur", "vi", "yo", "zh"),
    hub=HubSource(path="unimelb-nlp/wikiann", config="{lang}", splits=_STANDARD_SPLITS,
                  evidence=AUDITED),
    fields=Fields(tokens="tokens", tags="ner_tags"), labels=_BIO, metric="seqeval",
    dev_metric="seqeval", training=_stage("panx", "panx"),
    defaults=TrainingDefaults(epochs=10, batch_size=32, max_length=256),
    citation="pan-etal-2017-cross",
    sizes=SplitSizes(train=20000, validation=10000, source=_catalog("wikiann", "en")),
))
_QA_TARGET = TrainingDefaults(epochs=2, batch_size=16, max_length=384)
register(TaskSpec(
    name="xquad", role="target", format="extractive_qa",
    description="XQuAD: SQuAD 1.1 dev translated into 11 languages; trained on SQuAD 1.1.",
    languages=("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh"),
    hub=HubSource(path="google/xquad", config="xquad.{lang}", splits={"test": "validation"},
                  evidence=f"{AUDITED}; {LM_EVAL_NAMESPACED}"),
    fields=_SQUAD_FIELDS, metric="squad", dev_metric="squad_f1",
    training=_stage("squad_v1", "squad_v1"), defaults=_QA_TARGET,
    citation="artetxe-etal-2020-cross",
))
register(TaskSpec(
    name="mlqa", role="target", format="extractive_qa",
    description="MLQA (context and question in the same language); trained on SQuAD 1.1. Read "
                "from google/xtreme's MLQA configs: facebook/mlqa holds only its loading script.",
    languages=("ar", "de", "en", "es", "hi", "vi", "zh"),
    hub=HubSource(path="google/xtreme", config="MLQA.{lang}.{lang}",
                  splits={"validation": "validation", "test": "test"},
                  evidence="facebook/mlqa is script-only (mlqa.py), refused by datasets 5.x; "
                           "google/xtreme holds the same data as parquet, configs "
                           "MLQA.<context lang>.<question lang> with splits validation and test "
                           "and the SQuAD fields plus title (issue 23 audit of its card; the "
                           "repo the udpos and tatoeba tasks already read)"),
    fields=_SQUAD_FIELDS, metric="mlqa", dev_metric="squad_f1",
    training=_stage("squad_v1", "squad_v1"), defaults=_QA_TARGET,
    citation="lewis-etal-2020-mlqa",
))
register(TaskSpec(
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
    fields=_SQUAD_FIELDS, metric="squad", dev_metric="squad_f1",
    training=(TrainingStage(train=DataRef(task="tydiqa", split="train"),
                            dev=DataRef(task="squad_v1", split="validation")),),
    defaults=_QA_TARGET, citation="clark-etal-2020-tydi",
))
register(TaskSpec(
    name="xcopa", role="target", format="multiple_choice",
    description="XCOPA (XTREME-R): trained on English SIQA, then on English COPA, as XTREME-R does.",
    languages=("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh"),
    hub=HubSource(path="cambridgeltl/xcopa", config="{lang}",
                  splits={"validation": "validation", "test": "test"},
                  evidence=f"{AUDITED}; {LM_EVAL_NAMESPACED}"),
    fields=_COPA_FIELDS, metric="accuracy", dev_metric="accuracy",
    training=_stage("siqa", "siqa") + _stage("copa", "copa"),
    defaults=TrainingDefaults(epochs=2, batch_size=32, max_length=256,
                              source="not fixed by the papers; MC defaults of the intermediate "
                                     "recipe with the XNLI epoch count"),
    citation="ponti-etal-2020-xcopa",
))

# --- retrieval (no target training; its own issue) ----------------------------------------------

_TATOEBA_ON_HUB = ("af", "ar", "bg", "bn", "de", "el", "es", "et", "eu", "fa", "fi", "fr", "he",
                   "hi", "hu", "id", "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "nl", "pt",
                   "ru", "sw", "ta", "te", "th", "tl", "tr", "ur", "vi", "zh")
register(TaskSpec(
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
                           "XTREME-R's az, lt, pl, uk and ro are not among them (issue 23 audit "
                           "of its card)"),
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

register(TaskSpec(
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
register(TaskSpec(
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
register(TaskSpec(
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


# --- text for the continued-MLM variant ---------------------------------------------------------

register(TaskSpec(
    name="wikipedia", role="source", format="masked_lm",
    description="Wikipedia text in the XTREME-R languages, for continuing multilingual MLM during "
                "intermediate training (the MLM variant of Phang et al. 2020).",
    languages=tuple(sorted({lang for t in TASKS.values() if t.role in ("target", "retrieval")
                            for lang in t.languages})),
    hub=HubSource(path="wikimedia/wikipedia", config="20231101.{lang}", splits={"train": "train"},
                  evidence=AUDITED),
    fields=Fields(text=("text",)), metric="none", dev_metric="none",
    citation="wikimedia-wikipedia",
))


# --- benchmarks: which tasks and languages a leaderboard score averages --------------------------

class Benchmark(_Frozen):
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
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; one of {', '.join(BENCHMARKS)}") from None
