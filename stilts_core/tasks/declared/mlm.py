"""The text of the continued-MLM variant."""

from __future__ import annotations

from stilts_core.tasks.declared import retrieval, target
from stilts_core.tasks.declared.common import (
    AUDITED,
)
from stilts_core.tasks.spec import (
    Fields,
    HubSource,
    TaskSpec,
)

DECLARED: list[TaskSpec] = []

DECLARED.append(TaskSpec(
    name="wikipedia", role="source", format="masked_lm",
    description="Wikipedia text in the XTREME-R languages, for continuing multilingual MLM during "
                "intermediate training (the MLM variant of Phang et al. 2020).",
    languages=tuple(sorted({lang for t in (*target.DECLARED, *retrieval.DECLARED)
                            for lang in t.languages})),
    hub=HubSource(path="wikimedia/wikipedia", config="20231101.{lang}", splits={"train": "train"},
                  evidence=AUDITED),
    fields=Fields(text=("text",)), metric="none", dev_metric="none",
    citation="wikimedia-wikipedia",
))
