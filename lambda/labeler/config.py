"""Configuration of the labeler, parsed and validated once into a typed object.

The parsers are shared with the CDK app (``infra/settings.py``) so that a value
the stack accepts is exactly a value the Lambda accepts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_EVENT_SOURCE = "autolabel"
# Logger service and the EMF "service" dimension the stack's dashboard reads.
SERVICE_NAME = "autolabel-labeler"
METRICS_NAMESPACE = "Autolabel"

# Same shape as the ProjectVersionArn pattern of the DetectCustomLabels API.
PROJECT_VERSION_ARN_PATTERN = re.compile(
    r"^arn:[a-z\d-]+:rekognition:[a-z\d-]+:\d{12}:project/[a-zA-Z0-9_.\-]{1,255}"
    r"/version/[a-zA-Z0-9_.\-]{1,255}/[0-9]+$"
)
# EventBridge Source: 1-256 chars, no "aws." prefix (reserved for AWS services).
EVENT_SOURCE_PATTERN = re.compile(r"^[A-Za-z0-9_.\-/]{1,256}$")


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names it."""


def parse_project_version_arn(raw: str | None, name: str) -> str:
    value = (raw or "").strip()
    if not value:
        raise ConfigError(f"{name} is required: the Custom Labels model version ARN")
    if not PROJECT_VERSION_ARN_PATTERN.match(value):
        raise ConfigError(
            f"{name} is not a Custom Labels model version ARN "
            f"(arn:<partition>:rekognition:<region>:<account>:project/<name>/version/<name>/<number>): {value!r}"
        )
    return value


def parse_min_confidence(raw: str | float | int | None, name: str) -> float | None:
    """0-100 inclusive; None or empty means 'use the model's own thresholds'."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool):
        raise ConfigError(f"{name} must be a number from 0 to 100, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number from 0 to 100, got {raw!r}") from None
    if math.isnan(value) or not 0 <= value <= 100:
        raise ConfigError(f"{name} must be a number from 0 to 100, got {raw!r}")
    return value


def parse_positive_int(raw: str | int | None, name: str, *, maximum: int | None = None) -> int | None:
    """An integer >= 1 (and <= maximum); None or empty means 'not set'."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, (bool, float)):
        raise ConfigError(f"{name} must be a whole number >= 1, got {raw!r}")
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number >= 1, got {raw!r}") from None
    if value < 1 or (maximum is not None and value > maximum):
        bound = f" and <= {maximum}" if maximum is not None else ""
        raise ConfigError(f"{name} must be a whole number >= 1{bound}, got {raw!r}")
    return value


def parse_event_source(raw: str | None, name: str) -> str:
    value = (raw or "").strip() or DEFAULT_EVENT_SOURCE
    if not EVENT_SOURCE_PATTERN.match(value) or value.startswith("aws."):
        raise ConfigError(
            f"{name} must be 1-256 characters of letters, digits, '.', '-', '_' or '/' "
            f"and must not start with 'aws.', got {value!r}"
        )
    return value


def required(environ: Mapping[str, str], name: str, owner: str = "the labeler Lambda") -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is required (environment variable of {owner})")
    return value


@dataclass(frozen=True)
class LabelerConfig:
    project_version_arn: str
    results_table_name: str
    event_bus_name: str
    event_source: str = DEFAULT_EVENT_SOURCE
    min_confidence: float | None = None
    max_results: int | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> LabelerConfig:
        return cls(
            project_version_arn=parse_project_version_arn(environ.get("PROJECT_VERSION_ARN"), "PROJECT_VERSION_ARN"),
            results_table_name=required(environ, "RESULTS_TABLE_NAME"),
            event_bus_name=required(environ, "EVENT_BUS_NAME"),
            event_source=parse_event_source(environ.get("EVENT_SOURCE"), "EVENT_SOURCE"),
            min_confidence=parse_min_confidence(environ.get("MIN_CONFIDENCE"), "MIN_CONFIDENCE"),
            max_results=parse_positive_int(environ.get("MAX_RESULTS"), "MAX_RESULTS"),
        )
