"""What one batch carries from phase to phase: the messages, a task per object, its outcome, the report.

``BatchContext`` holds what every phase works with: the configuration, the
ports, the deadline and the clocks. ``guarded`` runs a step of one task and
turns any failure into a retry of that task's messages: a fault never loses a
record, and a bug is counted so that it alarms.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from labeler.config import LabelerConfig
from labeler.domain.backfill_request import BackfillRequest
from labeler.domain.label_result import LabelResult
from labeler.domain.removal import Deletion, Removal
from labeler.domain.s3_notification import S3ObjectEvent
from labeler.domain.stored_state import ObjectRef, StoredState
from labeler.logic.decisions import Action
from labeler.ports import (
    Detector,
    LabelIndex,
    PublicationLedger,
    Publisher,
    ResultRepository,
    RetryableDetectionError,
    RetryQueue,
    StoreError,
)
from shared.deadline import InvocationDeadline
from shared.names import LABELER_SERVICE

logger = Logger(service=LABELER_SERVICE, child=True)

# A result stored but not yet published is left to the worker that stored it
# for this long; must stay well under the ingest queue's visibility timeout.
DEFAULT_CLAIM_TTL_SECONDS = 120.0
MAX_CONFLICT_ROUNDS = 3


class OutOfTimeError(Exception):
    """The invocation has no time left for this step: retry the record, nothing half-done."""


@dataclass(frozen=True)
class InboundMessage:
    message_id: str
    body: str
    # Where it came from, to bring it back sooner when it is retried.
    receipt_handle: str = ""
    receive_count: int = 1
    queue_arn: str = ""


@dataclass
class BatchReport:
    """What happened to one batch: the failures to report and the figures to emit."""

    failed_messages: dict[str, str] = field(default_factory=dict)  # messageId -> reason
    labeled: int = 0
    failed_images: int = 0
    skipped: int = 0
    ignored_events: int = 0
    test_events: int = 0
    invalid_messages: int = 0
    duplicates: int = 0
    stale: int = 0
    retries: int = 0
    throttles: int = 0
    out_of_time: int = 0
    unexpected_errors: int = 0
    deployment_faults: int = 0
    publish_marks_failed: int = 0
    ambiguous_publishes: int = 0
    removed: int = 0  # Custom Labels Removed events accepted
    deletions_not_announced: int = 0  # deletions recorded without a Removed event (tombstones, repeats)
    # Model answers thrown away: another attempt (a concurrent delivery of the same version) stored the
    # same result first. docs/performance.md measures how often (a claim before labeling would cost a write).
    labels_discarded: int = 0
    labels_per_image: list[int] = field(default_factory=list)
    rekognition_latencies_ms: list[float] = field(default_factory=list)

    # Failed messages to bring back before the queue's visibility timeout:
    # messageId -> the fewest seconds to wait (a claim that must expire first).
    retry_soon: dict[str, float] = field(default_factory=dict)
    retry_delays_not_set: int = 0

    # Failed messages that must wait the queue's timeout (one of their records does).
    keep_queue_timeout: set[str] = field(default_factory=set)

    # Failed messages that can never succeed (not a notification): back at once, so
    # they spend their receives in seconds and reach the DLQ (and its alarm) quickly.
    retry_at_once: set[str] = field(default_factory=set)

    def fail_for_good(self, message_id: str, reason: str) -> None:
        self.failed_messages.setdefault(message_id, reason)
        self.retry_at_once.add(message_id)

    def fail(self, message_ids: Sequence[str], reason: str, *, soon: bool = True, not_before: float = 0.0) -> None:
        """Name messages as batch item failures; ``soon``: a transient fault, retried after a short delay.

        A message carrying several records waits as long as its slowest record
        needs: the queue's timeout wins over a short delay, whatever the order.
        """
        for message_id in message_ids:
            self.failed_messages.setdefault(message_id, reason)
            if not soon:
                self.keep_queue_timeout.add(message_id)
                self.retry_soon.pop(message_id, None)
            elif message_id not in self.keep_queue_timeout:
                self.retry_soon[message_id] = max(self.retry_soon.get(message_id, 0.0), not_before)


@dataclass
class Task:
    obj: S3ObjectEvent
    ref: ObjectRef
    # The id of what this task announces: the resultId, or for a deletion its removalId.
    result_id: str
    message_ids: list[str]
    removal: bool = False  # obj is a deletion (docs/behaviour.md#deletions)
    # Identifies this attempt: the writeId of the result it writes and the
    # owner of the publish claim it takes (new for every invocation).
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    holds_claim: bool = False  # released when the record fails, so its retry need not wait
    # The writeId of the stored result (or deletion) it announces: its publication item's key.
    write_id: str | None = None
    # An earlier PutEvents of the result may have been accepted: publishing it
    # again may announce it twice, and is counted (AmbiguousPublishes).
    uncertain: bool = False
    backfill: BackfillRequest | None = None  # a listed object (the backfill queue), decided by its own rule


@dataclass
class Outcome:
    action: Action
    result: LabelResult | None = None
    retry_reason: str | None = None
    throttled: bool = False
    out_of_time: bool = False
    deployment_fault: bool = False  # AccessDenied, model not found: alarms
    retry_not_before: float = 0.0  # seconds before a retry can succeed (another attempt's claim)
    unexpected: bool = False  # a bug, not a fault: counted so that it alarms
    latency_ms: float | None = None
    unsaved: bool = False  # a new result (or deletion) still to be stored
    previous: StoredState | None = None  # the state it was decided against
    deletion: Deletion | None = None  # the deletion to store (REMOVE, RECORD_DELETION)
    removal: Removal | None = None  # the Removed event to announce
    discarded_label: bool = False  # labeled, but the same result was stored by another attempt meanwhile


@dataclass
class BatchContext:
    """What the phases of a batch work with; one per pipeline (its fields may be replaced between batches)."""

    config: LabelerConfig
    detector: Detector
    results: ResultRepository
    index: LabelIndex
    ledger: PublicationLedger
    publisher: Publisher
    deadline: InvocationDeadline
    clock: Callable[[], datetime]
    sleep: Callable[[float], None]
    draw: Callable[[float, float], float]
    claim_ttl: float = DEFAULT_CLAIM_TTL_SECONDS
    retry_queue: RetryQueue | None = None

    def now(self) -> float:
        return self.clock().timestamp()


def raise_error(_task: Task, error: Exception) -> Outcome:
    """A step that fails the task with ``error`` (through ``guarded``: a retry of its messages)."""
    raise error


def guarded(task: Task, step: Callable[..., Outcome], *args: Any) -> Outcome:
    """Run a step for a task; any failure becomes a retry of that task's messages."""
    extra = {"objectKey": task.obj.key, "messageId": ",".join(task.message_ids), "resultId": task.result_id}
    try:
        return step(task, *args)
    except OutOfTimeError as error:
        logger.warning("Out of time; retrying record", extra={**extra, "error": str(error)})
        return Outcome(Action.LABEL, retry_reason=str(error), out_of_time=True)
    except (StoreError, RetryableDetectionError) as error:
        detection = error if isinstance(error, RetryableDetectionError) else None
        logger.warning("Retrying record", extra={**extra, "error": str(error)})
        return Outcome(
            Action.LABEL,
            retry_reason=str(error),
            throttled=detection is not None and detection.is_throttle,
            deployment_fault=detection is not None and detection.is_deployment_fault,
        )
    except Exception as error:  # a bug must not lose the record: retry it
        logger.exception("Unexpected error; retrying record", extra=extra)
        return Outcome(Action.LABEL, retry_reason=f"{type(error).__name__}: {error}", unexpected=True)
