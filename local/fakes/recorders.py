"""Fakes that record what the labeler did: its clock, its events, its retry delays.

``RecordingEventBus`` fills the publisher's client port
(``labeler.ports.EventsClient``) and ``RecordedDelays`` the retry queue's
(``labeler.ports.RetryQueue``), declared so that mypy checks them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from labeler.ports import EventsClient, RetryDelay, RetryQueue


class FakeClock:
    """Seconds since the epoch, moved only by ``advance``."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@dataclass(frozen=True)
class Announcement:
    """One event EventBridge accepted."""

    invocation: int
    detail_type: str
    detail: dict[str, Any]

    @property
    def result_id(self) -> str:
        return str(self.detail["resultId"])


class RecordingEventBus(EventsClient):
    """PutEvents accepting every entry; ``announcements`` is what consumers received."""

    def __init__(self) -> None:
        self.announcements: list[Announcement] = []
        self.invocation = 0
        self._lock = threading.Lock()

    def put_events(self, Entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
        answers = []
        with self._lock:
            for entry in Entries:
                self.announcements.append(
                    Announcement(self.invocation, entry["DetailType"], json.loads(entry["Detail"]))
                )
                answers.append({"EventId": f"event-{len(self.announcements)}"})
        return {"FailedEntryCount": 0, "Entries": answers}


class RecordedDelays(RetryQueue):
    """An ingest queue that records the visibility timeouts the pipeline sets."""

    def __init__(self) -> None:
        self.seconds: list[int] = []

    def delay(self, delays: Sequence[RetryDelay]) -> int:
        self.seconds.extend(d.seconds for d in delays)
        return 0
