"""Test doubles for driving the real labeler pipeline step by step.

- ``FakeClock``: the pipeline's and the store's time, advanced by the test.
- ``ScriptedRekognition``: DetectCustomLabels answering the label list chosen
  for each object version.
- ``RecordingEventBus``: PutEvents that records every entry it accepts.
- ``objects_concerned``: which objects a DynamoDB or PutEvents request is
  about, for ``local.fakes.faults.FaultPlan`` to fail the same call on every
  run, whatever the pipeline's threads interleave.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local.fakes.faults import Concerns, client_error

DYNAMODB_ENDPOINT = "https://dynamodb.us-east-1.amazonaws.com"
EVENTS_ENDPOINT = "https://events.us-east-1.amazonaws.com"


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


class ScriptedRekognition:
    """DetectCustomLabels returning, for each (bucket, key, version), the labels set with ``script``."""

    def __init__(self) -> None:
        self._answers: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        # Called with (bucket, key, version) before answering; may raise AssertionError.
        self.on_call: Callable[[str, str, str], None] | None = None

    def script(self, bucket: str, key: str, version_id: str, labels: list[dict[str, Any]]) -> None:
        self._answers[(bucket, key, version_id)] = copy.deepcopy(labels)

    def detect_custom_labels(self, **request: Any) -> dict[str, Any]:
        s3_object = request["Image"]["S3Object"]
        target = (s3_object["Bucket"], s3_object["Name"], s3_object.get("Version", ""))
        with self._lock:
            self.calls.append(target)
        if self.on_call is not None:
            self.on_call(*target)
        if target not in self._answers:
            raise client_error("InvalidS3ObjectException", f"no such object version {target}")
        return {"CustomLabels": copy.deepcopy(self._answers[target])}


@dataclass(frozen=True)
class Announcement:
    """One event EventBridge accepted."""

    invocation: int
    detail_type: str
    detail: dict[str, Any]

    @property
    def result_id(self) -> str:
        return str(self.detail["resultId"])


class RecordingEventBus:
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


def objects_concerned(bucket: str, keys: Sequence[str]) -> Concerns:
    """Which of ``keys`` (by index) a DynamoDB request or a PutEvents request concerns."""
    partitions = [json.dumps(f"{bucket}/{key}") for key in keys]
    key_attributes = [f'"key": {json.dumps({"S": key})}' for key in keys]

    def concerns(operation: str, kwargs: dict[str, Any]) -> list[int]:
        if operation == "put_events":
            details = [json.loads(entry["Detail"]) for entry in kwargs.get("Entries", [])]
            return [
                index
                for index, key in enumerate(keys)
                if any(d.get("bucket") == bucket and d.get("key") == key for d in details)
            ]
        text = json.dumps(kwargs, default=str)
        # An object's own partition, or a label-index entry naming it (in its label's partition).
        return [
            index
            for index, (partition, attribute) in enumerate(zip(partitions, key_attributes, strict=True))
            if partition in text or attribute in text
        ]

    return concerns
