"""One outbound EventBridge entry, and how PutEvents counts its size: a value, no AWS client.

The labeler's domain builds entries (``labeler.domain.result_event``), the
manager builds its own, and ``event_publisher`` sends them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# PutEvents accepts 256 KB per request; we plan each entry to fit alone.
MAX_ENTRY_BYTES = 256 * 1024
_TIME_FIELD_BYTES = 14  # how EventBridge counts the Time field of an entry


@dataclass(frozen=True)
class EventEntry:
    detail_type: str
    detail: dict[str, Any]
    detail_json: str
    result_id: str

    def size(self, source: str) -> int:
        return entry_size(source, self.detail_type, self.detail_json)


def entry_size(source: str, detail_type: str, detail_json: str) -> int:
    return _TIME_FIELD_BYTES + len(source.encode()) + len(detail_type.encode()) + len(detail_json.encode())


@dataclass
class PublishOutcome:
    """Entries not accepted ({resultId: error}); of those, the ones that may have been accepted."""

    failures: dict[str, str] = field(default_factory=dict)
    ambiguous: set[str] = field(default_factory=set)
