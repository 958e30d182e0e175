"""How the labeler writes a moment: in stored items and in events alike."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and 'Z', e.g. 2026-11-24T10:00:00.123Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
