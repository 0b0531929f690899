"""What a task is: the declared, validated objects of the task registry (a task's format, roles,
languages, data sources and field names, training and scoring; a mixture of tasks), in the spirit
of MTEB task metadata and lm-evaluation-harness task configs. The tasks themselves are declared
in :mod:`stilts_core.tasks.declared`; :mod:`stilts_core.tasks.registry` looks them up."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stilts_core.formats import Format, get_format
from stilts_core.tasks.metrics import METRICS

TaskRole = Literal["intermediate", "target", "source", "retrieval"]
# where the published training defaults come from, unless a task says otherwise
JIANT_XTREME = "jiant XTREME pipeline defaults (Phang et al. 2020, Appendix; jiant guides/xtreme)"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HubSource(Frozen):
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


class ReleaseFiles(Frozen):
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


class Fields(Frozen):
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


class DataRef(Frozen):
    """One split of one task in one language."""

    task: str
    split: str
    language: str = "en"


class TrainingStage(Frozen):
    """English training data of a target task and the dev set used for early stopping."""

    train: DataRef
    dev: DataRef


class TrainingDefaults(Frozen):
    """Published per-task training settings; ``source`` says where they come from."""

    epochs: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    max_length: int = Field(ge=8)
    doc_stride: int = Field(128, ge=1)
    source: str = JIANT_XTREME


class RetrievalDefaults(Frozen):
    """Published settings of a retrieval task: the sequence lengths of its two sides and, for
    ranking tasks, XTREME-R's dual-encoder recipe; ``source`` says where they come from."""

    query_max_length: int = Field(ge=2)
    candidate_max_length: int = Field(ge=2)
    learning_rate: float | None = None
    batch_size: int | None = None
    epochs: float | None = None
    source: str


class SplitSizes(Frozen):
    """Examples in the English splits that training reads, with where the counts come from; the
    grid projects GPU-hours from them (``None``: no citable count, so no projection)."""

    train: int | None = Field(None, ge=1)
    validation: int | None = Field(None, ge=1)
    source: str


TFDS_CATALOG = "tensorflow/datasets docs/community_catalog/huggingface/{}.md (Split | Examples)"


def catalog(name: str, note: str = "") -> str:
    return TFDS_CATALOG.format(name) + (f"; {note}" if note else "")


class TaskSpec(Frozen):
    """One task: what it is, where its data comes from, how it is trained and scored."""

    name: str
    role: TaskRole
    format: str  # a declared format (:mod:`stilts_core.formats`)
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
        try:
            problem = get_format(self.format).problem(self)
        except KeyError as error:
            problem = error.args[0]
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
    def declared_format(self) -> Format:
        return get_format(self.format)

    @property
    def group(self) -> str | None:
        """The analysis group of the task's format (classification, multiple_choice,
        structured_prediction, qa, retrieval)."""
        return self.declared_format.group

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
        return self.declared_format.labels_from_data and not self.labels

    @property
    def evaluation_languages(self) -> tuple[str, ...]:
        """Languages scored zero-shot; retrieval tasks pair every language with English."""
        return self.languages


class Mixture(Frozen):
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
