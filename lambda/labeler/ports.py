"""What the batch logic needs of the world, as ports: the AWS adapters implement them, and so do the fakes.

The logic (``labeler.logic``) imports these protocols and the values and
errors they speak in, never an adapter; the wiring (``labeler.wiring``) picks
the implementations. Each port says what a failure means to the caller:

- a store port raises ``StoreError`` when DynamoDB did not take a read or a
  write (or its answer was lost: the write may have gone in), and
  ``ResultConflict`` when a conditional write found the result changed;
- the detector raises ``PermanentImageError`` (a FAILED result, never
  retried) or ``RetryableDetectionError`` (retry the record later);
- the publisher and the retry queue never raise for a refusal: they report it.

Under the detector and the publisher, the clients they wrap are ports too
(``CustomLabelsClient``, ``EventsClient``): a boto3 client, moto, or one of the
fakes in ``local/fakes``, which declare the protocol they fill so that mypy
checks them against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from labeler.domain.label_result import LabelResult
from labeler.domain.removal import Deletion
from labeler.domain.s3_notification import S3ObjectEvent
from labeler.domain.stored_state import Claim, ObjectRef, Publication, StoredState
from shared.event_entry import EventEntry, PublishOutcome

# (result, the state it replaces, the writing attempt's token)
ResultWrite = tuple[LabelResult, StoredState | None, str]


class StoreError(Exception):
    """DynamoDB did not take the write or read; the record is retried."""


class ResultConflict(Exception):
    """The current result changed since it was read (a concurrent writer)."""


class PermanentImageError(Exception):
    """Rekognition (or our pre-check) refuses this image for good."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RetryableDetectionError(Exception):
    """Throttling, model not running, service or deployment fault: retry later.

    ``throttle``: the service asked us to slow down (counted); ``deployment_fault``: a wrong
    deployment (permissions, model ARN), which alarms and waits for its fix.
    """

    def __init__(self, code: str, message: str, *, throttle: bool = False, deployment_fault: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.is_throttle = throttle
        self.is_deployment_fault = deployment_fault


@dataclass(frozen=True)
class Detection:
    custom_labels: list[dict[str, Any]]
    latency_ms: float


@dataclass(frozen=True)
class RetryDelay:
    """Bring one received message back after ``seconds`` instead of the queue's visibility timeout."""

    queue_arn: str
    receipt_handle: str
    seconds: int


class Detector(Protocol):
    def detect(self, obj: S3ObjectEvent, project_version_arn: str | None = None) -> Detection: ...


class ResultRepository(Protocol):
    """The current result of each object and model version: batch reads and conditional writes."""

    def current_states(self, refs: Sequence[ObjectRef]) -> dict[ObjectRef, StoredState | None]: ...

    def current_state(self, ref: ObjectRef) -> StoredState | None: ...

    def load(self, ref: ObjectRef) -> LabelResult | None: ...

    def model_versions(self, bucket: str, key: str) -> list[str]: ...

    def save_many(self, writes: Sequence[ResultWrite]) -> list[Exception | None]: ...

    def save(self, result: LabelResult, previous: StoredState | None, token: str) -> None: ...

    def finish_write(self, result: LabelResult, previous: StoredState | None, token: str) -> None: ...

    def save_removal(
        self, ref: ObjectRef, deletion: Deletion, previous: StoredState | None, token: str, *, announce: bool
    ) -> None: ...

    def advance_sequencer(self, ref: ObjectRef, previous: StoredState, sequencer: str) -> bool: ...


class LabelIndex(Protocol):
    """The label-index entries of the current results (what ``find_by_label`` reads)."""

    def clear(self, ref: ObjectRef) -> None: ...

    def sync(self, ref: ObjectRef, result: LabelResult, index_id: str | None) -> None: ...


class PublicationLedger(Protocol):
    """Who may publish a stored result (claims), and which events were accepted (publication items)."""

    def claim(
        self, ref: ObjectRef, result_id: str, token: str, *, claim_ttl_seconds: float, removal: bool
    ) -> Claim | None: ...

    def release(self, ref: ObjectRef, result_id: str, token: str, *, uncertain: bool, removal: bool) -> None: ...

    def mark_published(self, published: Sequence[Publication]) -> None: ...


class Publisher(Protocol):
    def publish(self, entries: Sequence[EventEntry]) -> PublishOutcome: ...


class RetryQueue(Protocol):
    """The queue the batch came from: shortens the wait of retried messages (best effort)."""

    def delay(self, delays: Sequence[RetryDelay]) -> int: ...


class CustomLabelsClient(Protocol):
    """What ``CustomLabelsDetector`` calls: Rekognition's DetectCustomLabels (a boto3 client or a fake model)."""

    def detect_custom_labels(self, **request: Any) -> dict[str, Any]: ...


class EventsClient(Protocol):
    """What the publisher calls: EventBridge's PutEvents (a boto3 client or a recording fake)."""

    def put_events(self, *, Entries: Sequence[dict[str, Any]]) -> dict[str, Any]: ...
