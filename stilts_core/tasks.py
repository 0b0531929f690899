"""The task registry: each task is one declared, validated object.

In the spirit of MTEB task metadata and lm-evaluation-harness task configs, a task says what it
*is* (format, languages, metric, where its data comes from); the data loaders, heads, metrics,
the grid and the book's task tables all read it from here instead of switching on task names.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TaskRole = Literal["intermediate", "target", "retrieval"]
TaskFormat = Literal["pair_classification", "bitext_retrieval"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HubSource(_Frozen):
    """Where a task's data lives on the Hugging Face hub.

    ``config`` may contain ``{lang}`` (the ISO 639-1 code) or ``{code}`` (the task's own code for
    the language, from :attr:`TaskSpec.language_codes`). ``splits`` maps our split names
    (train/validation/test) to the hub's.
    """

    path: str
    config: str | None = None
    revision: str = "main"
    splits: dict[str, str]


class TaskSpec(_Frozen):
    """One task: what it is, where its data comes from, how it is scored."""

    name: str
    role: TaskRole
    format: TaskFormat
    description: str
    languages: tuple[str, ...] = Field(min_length=1)
    language_codes: dict[str, str] = Field(default_factory=dict)
    hub: HubSource
    text_fields: tuple[str, ...] = Field(min_length=1)
    label_field: str | None = None
    labels: tuple[str, ...] = ()
    metric: str
    train_language: str = "en"
    citation: str

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        if self.format == "pair_classification":
            if len(self.text_fields) != 2 or not self.labels or not self.label_field:
                raise ValueError(
                    f"task {self.name!r}: pair_classification needs two text_fields, a "
                    "label_field and labels"
                )
        unknown = set(self.language_codes) - set(self.languages)
        if unknown:
            raise ValueError(f"task {self.name!r}: language_codes for undeclared {sorted(unknown)}")
        return self

    def hub_config(self, language: str) -> str | None:
        if self.hub.config is None:
            return None
        code = self.language_codes.get(language, language)
        return self.hub.config.format(lang=language, code=code)

    @property
    def evaluation_languages(self) -> tuple[str, ...]:
        """Languages scored zero-shot; retrieval tasks pair every language with English."""
        return self.languages


_NLI_LABELS = ("entailment", "neutral", "contradiction")

TASKS: dict[str, TaskSpec] = {}


def register(task: TaskSpec) -> TaskSpec:
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} is registered twice")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; registered tasks: {', '.join(sorted(TASKS))}") from None


register(
    TaskSpec(
        name="mnli",
        role="intermediate",
        format="pair_classification",
        description="Multi-Genre NLI, English (GLUE).",
        languages=("en",),
        hub=HubSource(
            path="nyu-mll/glue",
            config="mnli",
            splits={"train": "train", "validation": "validation_matched", "test": "validation_matched"},
        ),
        text_fields=("premise", "hypothesis"),
        label_field="label",
        labels=_NLI_LABELS,
        metric="accuracy",
        citation="williams-etal-2018-broad",
    )
)

register(
    TaskSpec(
        name="xnli",
        role="target",
        format="pair_classification",
        description="Cross-lingual NLI; English training data is MNLI (as XNLI's 'en' train split).",
        languages=(
            "en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh",
        ),
        hub=HubSource(
            path="facebook/xnli",
            config="{lang}",
            splits={"train": "train", "validation": "validation", "test": "test"},
        ),
        text_fields=("premise", "hypothesis"),
        label_field="label",
        labels=_NLI_LABELS,
        metric="accuracy",
        citation="conneau-etal-2018-xnli",
    )
)

register(
    TaskSpec(
        name="tatoeba",
        role="retrieval",
        format="bitext_retrieval",
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
        hub=HubSource(path="google/xtreme", config="tatoeba.{code}", splits={"test": "validation"}),
        text_fields=("source_sentence", "target_sentence"),
        metric="accuracy",
        citation="artetxe-schwenk-2019-massively",
    )
)
