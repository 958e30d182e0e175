"""Validators of configuration values, shared by both functions and the CDK app.

The stack (``infra/settings.py``, ``autolabel/cdk/settings.py``) and the functions parse with the same code,
so a value the stack accepts is exactly a value the function accepts. Each
error names the setting it is about.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from shared.names import DEFAULT_EVENT_SOURCE

# Same shape as the ProjectVersionArn pattern of the DetectCustomLabels API.
PROJECT_VERSION_ARN_PATTERN = re.compile(
    r"^arn:[a-z\d-]+:rekognition:[a-z\d-]+:\d{12}:project/[a-zA-Z0-9_.\-]{1,255}"
    r"/version/[a-zA-Z0-9_.\-]{1,255}/[0-9]+$"
)
# EventBridge Source: 1-256 chars, no "aws." prefix (reserved for AWS services).
EVENT_SOURCE_PATTERN = re.compile(r"^[A-Za-z0-9_.\-/]{1,256}$")


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names it."""


def parse_bool(raw: str | bool | None, name: str) -> bool:
    if isinstance(raw, bool):
        return raw
    value = (raw or "").strip().lower()
    if value in ("", "false", "0", "no"):
        return False
    if value in ("true", "1", "yes"):
        return True
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


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


def required(environ: Mapping[str, str], name: str, owner: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is required (environment variable of {owner})")
    return value
