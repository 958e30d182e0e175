"""Configuration of the labeler, parsed and validated once into a typed object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.names import DEFAULT_EVENT_SOURCE
from shared.validation import (
    parse_bool,
    parse_event_source,
    parse_min_confidence,
    parse_positive_int,
    parse_project_version_arn,
    required,
)

OWNER = "the labeler Lambda"


@dataclass(frozen=True)
class LabelerConfig:
    project_version_arn: str
    results_table_name: str
    event_bus_name: str
    event_source: str = DEFAULT_EVENT_SOURCE
    min_confidence: float | None = None
    max_results: int | None = None
    # docs/behaviour.md#deletions: ObjectRemoved events mark results deleted; off: they are ignored.
    deletions: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> LabelerConfig:
        return cls(
            project_version_arn=parse_project_version_arn(environ.get("PROJECT_VERSION_ARN"), "PROJECT_VERSION_ARN"),
            results_table_name=required(environ, "RESULTS_TABLE_NAME", OWNER),
            event_bus_name=required(environ, "EVENT_BUS_NAME", OWNER),
            event_source=parse_event_source(environ.get("EVENT_SOURCE"), "EVENT_SOURCE"),
            min_confidence=parse_min_confidence(environ.get("MIN_CONFIDENCE"), "MIN_CONFIDENCE"),
            max_results=parse_positive_int(environ.get("MAX_RESULTS"), "MAX_RESULTS"),
            deletions=parse_bool(environ.get("DELETIONS"), "DELETIONS"),
        )
