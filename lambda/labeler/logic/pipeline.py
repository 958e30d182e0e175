"""The labeling logic for one SQS batch: no AWS client is created here.

For each batch: parse messages, skip what is not an image, collapse repeats,
read the current results in one BatchGetItem, label the new object versions
concurrently (bounded), store each result conditionally, publish all events
in PutEvents requests of up to 10 entries, then record them published (one small item each, in
one BatchWriteItem). Every record ends acknowledged or named as a batch item failure.

Faults between the steps (docs/behaviour.md#delivery-guarantee, docs/reliability.md): no phase starts that could not
finish before the invocation ends; a record that runs out of time is failed
with nothing half-done (a stored result keeps no publish claim, so the retry
publishes it without relabeling). Once EventBridge has accepted an event,
nothing puts its record back on the queue: the mark is retried in-process
within the remaining time, and a mark that still fails is only counted.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from labeler.config import LabelerConfig
from labeler.domain.backfill_request import BackfillRequest, forced_result_id, parse_backfill_body
from labeler.domain.label_result import LABELED, LabelResult
from labeler.domain.removal import Deletion, Removal
from labeler.domain.result_event import build_entry, build_removed_entry
from labeler.domain.s3_notification import (
    InvalidMessageError,
    S3ObjectEvent,
    parse_message_body,
    sequencer_is_newer,
)
from labeler.domain.stored_state import Claim, ObjectRef, Publication, StoredState
from labeler.logic.decisions import (
    Action,
    Delivery,
    Intake,
    claim_expires_in,
    collapse,
    decide,
    decide_backfill,
    decide_removal,
    intake,
    is_own_write,
    publication_uncertain,
    retry_delay_seconds,
)
from labeler.phase_budgets import LABEL_SECONDS, PUBLISH_SECONDS, STORE_SECONDS
from labeler.ports import (
    Detector,
    LabelIndex,
    PermanentImageError,
    PublicationLedger,
    Publisher,
    ResultConflict,
    ResultRepository,
    RetryableDetectionError,
    RetryDelay,
    RetryQueue,
    StoreError,
)
from shared.deadline import InvocationDeadline, RemainingMillis
from shared.event_entry import EventEntry, PublishOutcome
from shared.names import LABELER_SERVICE

logger = Logger(service=LABELER_SERVICE, child=True)

# A result stored but not yet published is left to the worker that stored it
# for this long; must stay well under the ingest queue's visibility timeout.
DEFAULT_CLAIM_TTL_SECONDS = 120.0
MAX_CONFLICT_ROUNDS = 3
# Marking published, after PutEvents accepted: retried with a growing,
# jittered backoff while the invocation has time, at most this often.
MARK_ATTEMPTS = 10
MARK_BACKOFF_SECONDS = (0.05, 1.0)  # first, cap


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
class _Task:
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
class _Outcome:
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


def _raise(_task: _Task, error: Exception) -> _Outcome:
    raise error


def _ordering_sequencer(sequencer: str | None, state: StoredState | None, object_version: str) -> str | None:
    """The sequencer a new result of ``object_version`` is stored with: its event's, or the stored
    result's of the same version when that is newer or the event has none.

    A forced relabel (a listing: no sequencer) keeps the version's sequencer, so notifications are
    still ordered against it, including one recorded by an ADVANCE after the relabel read the result.
    The same bytes labeled again after a deletion keep their own, newer event's sequencer: the deleted
    result's would order the key before the deletion (docs/behaviour.md#ordering).
    """
    if state is None or state.object_version != object_version:
        return sequencer
    return state.sequencer if not sequencer or sequencer_is_newer(state.sequencer, sequencer) else sequencer


class LabelingPipeline:
    def __init__(
        self,
        config: LabelerConfig,
        *,
        detector: Detector,
        results: ResultRepository,
        index: LabelIndex,
        ledger: PublicationLedger,
        publisher: Publisher,
        max_workers: int = 10,
        claim_ttl_seconds: float = DEFAULT_CLAIM_TTL_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        deadline: InvocationDeadline | None = None,
        sleep: Callable[[float], None] = time.sleep,
        ingest_queue: RetryQueue | None = None,
        draw: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._config = config
        self._detector = detector
        self._results = results
        self._index = index
        self._ledger = ledger
        self._publisher = publisher
        self._max_workers = max_workers
        self._claim_ttl = claim_ttl_seconds
        self._clock = clock
        self._deadline = deadline or InvocationDeadline()
        self._sleep = sleep
        self._ingest_queue = ingest_queue
        self._draw = draw
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    # -- entry point ---------------------------------------------------------

    def process(self, messages: Sequence[InboundMessage], remaining_ms: RemainingMillis | None = None) -> BatchReport:
        """Process one batch; ``remaining_ms`` is the Lambda context's clock (None: unbounded)."""
        self._deadline.start(remaining_ms)
        report = BatchReport()
        self._process(messages, report)
        self._delay_retries(messages, report)
        return report

    def _process(self, messages: Sequence[InboundMessage], report: BatchReport) -> None:
        tasks = self._with_other_model_versions(self._collect(messages, report), report)
        if not tasks:
            return
        try:
            states = self._results.current_states([task.ref for task in tasks])
        except StoreError as error:
            logger.error("Could not read current results; retrying the batch", extra={"error": str(error)})
            for task in tasks:
                report.fail(task.message_ids, str(error))
            report.retries += len(tasks)
            return
        # Label concurrently (bounded), then store each new result conditionally
        # and their label indexes in shared batches, then publish in PutEvents calls of 10.
        outcomes = list(self._pool().map(lambda task: self._guarded(task, self._prepare, states[task.ref]), tasks))
        self._save(tasks, outcomes)
        self._publish(tasks, outcomes, report)
        report.unexpected_errors += sum(1 for outcome in outcomes if outcome.unexpected)

    def _delay_retries(self, messages: Sequence[InboundMessage], report: BatchReport) -> None:
        """Bring transient failures back after a short delay instead of the queue's visibility timeout."""
        if self._ingest_queue is None or not (report.retry_soon or report.retry_at_once):
            return
        delays: list[RetryDelay] = []
        for message in messages:
            if not message.receipt_handle or not message.queue_arn:
                continue
            if message.message_id in report.retry_at_once:
                seconds = 0
            elif message.message_id in report.retry_soon:
                seconds = retry_delay_seconds(
                    message.receive_count, self._draw, not_before=report.retry_soon[message.message_id]
                )
            else:
                continue
            delays.append(RetryDelay(message.queue_arn, message.receipt_handle, seconds))
        if not delays:
            return
        try:
            report.retry_delays_not_set = self._ingest_queue.delay(delays)
        except Exception:  # best effort: the queue's visibility timeout still brings them back
            logger.exception("Could not shorten the retry delay")
            report.retry_delays_not_set = len(delays)

    # -- steps -----------------------------------------------------------------

    def _collect(self, messages: Sequence[InboundMessage], report: BatchReport) -> list[_Task]:
        """Parse messages; one task per object key (its newest version in the batch)."""
        deliveries: list[Delivery] = []
        for message in messages:
            try:
                backfill = parse_backfill_body(message.body)
                records = [backfill.obj] if backfill is not None else parse_message_body(message.body)
            except InvalidMessageError as error:
                logger.error(
                    "Invalid message; it will be retried and end in the DLQ",
                    extra={"messageId": message.message_id, "error": str(error)},
                )
                report.fail_for_good(message.message_id, str(error))  # it can only end in the DLQ
                report.invalid_messages += 1
                continue
            if not records:
                report.test_events += 1
                logger.info("Acknowledged s3:TestEvent", extra={"messageId": message.message_id})
            for obj in records:
                kind = intake(obj, deletions=self._config.deletions)
                if kind is Intake.NOT_CREATED:
                    report.ignored_events += 1
                    logger.info(
                        "Ignored event that is neither ObjectCreated nor a handled ObjectRemoved",
                        extra={"messageId": message.message_id, "objectKey": obj.key, "eventName": obj.event_name},
                    )
                elif kind is Intake.NOT_AN_IMAGE:
                    report.skipped += 1
                    logger.info(
                        "Skipped object without a .jpg/.jpeg/.png key",
                        extra={"messageId": message.message_id, "objectKey": obj.key},
                    )
                else:
                    deliveries.append(Delivery(len(deliveries), message.message_id, obj, backfill))
        tasks: list[_Task] = []
        arn = self._config.project_version_arn
        for work in collapse(deliveries):
            for message_id in work.superseded:
                report.stale += 1
                logger.info(
                    "Superseded by a newer version in the same batch",
                    extra={"messageId": message_id, "objectKey": work.newest.key},
                )
            newest, backfill = work.newest, work.backfill
            removal = newest.is_object_removed
            if removal:
                ident = newest.removal_id(arn)
            elif backfill is not None and backfill.force:
                ident = forced_result_id(newest, arn, backfill.run_id)
            else:
                ident = newest.result_id(arn)
            tasks.append(
                _Task(
                    newest,
                    (newest.bucket, newest.key, arn),
                    ident,
                    work.message_ids,
                    removal=removal,
                    backfill=backfill,
                )
            )
        return tasks

    def _with_other_model_versions(self, tasks: list[_Task], report: BatchReport) -> list[_Task]:
        """Add, for each deletion, one task per other model version that has a result for the object.

        docs/behaviour.md#deletions: a deletion marks every model version's
        current result deleted (results of an earlier model version stay, and
        answer find_by_label, until the object is deleted).
        """
        arn = self._config.project_version_arn
        extended: list[_Task] = []
        for task in tasks:
            extended.append(task)
            if not task.removal:
                continue
            bucket, key, _ = task.ref
            try:
                others = [other for other in self._results.model_versions(bucket, key) if other != arn]
            except StoreError as error:
                logger.warning("Could not list the results of a deleted object; retrying", extra={"error": str(error)})
                report.fail(task.message_ids, str(error))
                report.retries += 1
                extended.pop()
                continue
            extended.extend(
                _Task(task.obj, (bucket, key, other), task.obj.removal_id(other), task.message_ids, removal=True)
                for other in others
            )
        return extended

    def _guarded(self, task: _Task, step: Callable[..., _Outcome], *args: Any) -> _Outcome:
        """Run a step for a task; any failure becomes a retry of that task's messages."""
        extra = {"objectKey": task.obj.key, "messageId": ",".join(task.message_ids), "resultId": task.result_id}
        try:
            return step(task, *args)
        except OutOfTimeError as error:
            logger.warning("Out of time; retrying record", extra={**extra, "error": str(error)})
            return _Outcome(Action.LABEL, retry_reason=str(error), out_of_time=True)
        except (StoreError, RetryableDetectionError) as error:
            detection = error if isinstance(error, RetryableDetectionError) else None
            logger.warning("Retrying record", extra={**extra, "error": str(error)})
            return _Outcome(
                Action.LABEL,
                retry_reason=str(error),
                throttled=detection is not None and detection.is_throttle,
                deployment_fault=detection is not None and detection.is_deployment_fault,
            )
        except Exception as error:  # a bug must not lose the record: retry it
            logger.exception("Unexpected error; retrying record", extra=extra)
            return _Outcome(Action.LABEL, retry_reason=f"{type(error).__name__}: {error}", unexpected=True)

    def _prepare(self, task: _Task, state: StoredState | None, labeled: _Outcome | None = None) -> _Outcome:
        """Decide against the current state; label (once) when a new result is needed."""
        if task.removal:
            return self._prepare_removal(task, state, labeled)
        if labeled is not None and labeled.result is not None and is_own_write(state, task.token):
            # Our result went in although the write failed (a lost answer, or an
            # index write after it): finish what it left, then publish it.
            task.holds_claim = True  # the write took the claim for this token
            task.write_id = task.token
            self._results.finish_write(labeled.result, labeled.previous, task.token)
            return _Outcome(Action.LABEL, result=labeled.result, latency_ms=labeled.latency_ms)
        version = task.obj.object_identity[2]
        for _ in range(MAX_CONFLICT_ROUNDS):
            action = self._decide(task, state)
            if action is not Action.ADVANCE:
                break
            state = self._advance(task, state)
        else:
            return _Outcome(Action.LABEL, retry_reason="the result kept changing concurrently")
        if action in (Action.DUPLICATE, Action.STALE):
            return _Outcome(action)
        if action is Action.IN_PROGRESS:
            return _Outcome(
                action,
                retry_reason="another worker is publishing this result",
                retry_not_before=claim_expires_in(
                    state, now=self._clock().timestamp(), claim_ttl_seconds=self._claim_ttl
                ),
            )
        if action is Action.PUBLISH_STORED:
            return self._recover_stored(task, state)
        if labeled is not None and labeled.result is not None:
            # Decided again after a conflict: the state read now may carry a newer sequencer (an ADVANCE).
            result = replace(labeled.result, sequencer=_ordering_sequencer(labeled.result.sequencer, state, version))
            return _Outcome(Action.LABEL, result=result, latency_ms=labeled.latency_ms, unsaved=True, previous=state)
        if not self._deadline.allows(LABEL_SECONDS):
            raise OutOfTimeError("not enough time left to label, store and publish")
        obj = replace(task.obj, sequencer=_ordering_sequencer(task.obj.sequencer, state, version))
        result, latency_ms = self._label(obj)
        if result.result_id != task.result_id:  # a forced relabel: its own resultId
            result = replace(result, result_id=task.result_id)
        return _Outcome(Action.LABEL, result=result, latency_ms=latency_ms, unsaved=True, previous=state)

    def _decide(self, task: _Task, state: StoredState | None) -> Action:
        now = self._clock().timestamp()
        version = task.obj.object_identity[2]
        if task.backfill is not None:
            return decide_backfill(
                state,
                task.result_id,
                version,
                force=task.backfill.force,
                now=now,
                claim_ttl_seconds=self._claim_ttl,
                replaces=task.backfill.replaces,
            )
        return decide(
            state,
            task.result_id,
            task.obj.sequencer,
            now=now,
            claim_ttl_seconds=self._claim_ttl,
            object_version=version,
        )

    def _advance(self, task: _Task, state: StoredState | None) -> StoredState | None:
        """Record the task's newer sequencer on the stored result of the same bytes; the state to decide on next.

        The write's answer lost, or the process dead after it: the record is
        retried, reads the advanced sequencer and is a duplicate. The condition
        failed: the result changed meanwhile, so it is read again.
        """
        sequencer = task.obj.sequencer
        assert state is not None and sequencer is not None  # decide() returns ADVANCE only then
        if self._results.advance_sequencer(task.ref, state, sequencer):
            logger.info(
                "Same bytes in a newer event; recorded its sequencer",
                extra={"objectKey": task.obj.key, "resultId": state.result_id, "sequencer": sequencer},
            )
            return replace(state, sequencer=sequencer)
        return self._results.current_state(task.ref)

    def _prepare_removal(self, task: _Task, state: StoredState | None, written: _Outcome | None) -> _Outcome:
        """Decide a deletion against the current state (docs/behaviour.md#deletions)."""
        if written is not None and written.deletion is not None and is_own_write(state, task.token):
            # Our deletion went in although the write failed: finish the index, then announce it.
            task.holds_claim = True
            task.write_id = task.token
            self._index.clear(task.ref)
            return _Outcome(Action.REMOVE, removal=written.removal)
        now = self._clock().timestamp()
        action = decide_removal(state, task.obj, task.result_id, now=now, claim_ttl_seconds=self._claim_ttl)
        if action in (Action.DUPLICATE, Action.STALE, Action.UNRELATED):
            return _Outcome(action)
        if action is Action.IN_PROGRESS:
            return _Outcome(
                action,
                retry_reason="another worker is publishing this result",
                retry_not_before=claim_expires_in(state, now=now, claim_ttl_seconds=self._claim_ttl),
            )
        if action is Action.PUBLISH_STORED:
            return self._recover_removal(task, state)
        # The same deletion (same deletedAt) on every round of a conflict.
        deletion = (
            written.deletion
            if written is not None and written.deletion is not None
            else Deletion.of(task.obj, task.ref[2], self._clock())
        )
        removal = self._removal(task, state, deletion) if action is Action.REMOVE else None
        if action is Action.REMOVE and state is not None and state.deleted:
            # A newer deletion of a deleted object whose Removed was never recorded as accepted: an
            # earlier attempt may have sent it (unknown outcome, or a claim that expired), so this
            # Removed of the same result may repeat it, and is counted.
            task.uncertain = publication_uncertain(False, state, task.token)
        return _Outcome(action, unsaved=True, previous=state, deletion=deletion, removal=removal)

    def _removal(self, task: _Task, state: StoredState | None, deletion: Deletion) -> Removal:
        if state is None:
            raise StoreError("the deleted result disappeared")
        bucket, key, project_version_arn = task.ref
        return Removal(
            state.result_id, bucket, key, state.version_id, project_version_arn, list(state.label_names), deletion
        )

    def _recover_removal(self, task: _Task, state: StoredState | None) -> _Outcome:
        """A deletion stored but never announced: finish its index, then announce it (as ``_recover_stored``)."""
        if not self._deadline.allows(STORE_SECONDS):
            raise OutOfTimeError("not enough time left to publish the stored deletion")
        if state is None or state.deletion is None:
            raise StoreError("stored deletion disappeared before it was published")
        claim = self._claim(task)
        if claim is None:
            return _Outcome(Action.PUBLISH_STORED, retry_reason="deletion was claimed or replaced meanwhile")
        task.holds_claim = True
        task.write_id = claim.write_id
        task.uncertain = publication_uncertain(claim.uncertain, state, task.token)
        self._index.clear(task.ref)
        return _Outcome(Action.PUBLISH_STORED, removal=self._removal(task, state, state.deletion))

    def _recover_stored(self, task: _Task, state: StoredState | None) -> _Outcome:
        """A stored result was never marked published: repair its index, then publish it (no relabel)."""
        if not self._deadline.allows(STORE_SECONDS):
            raise OutOfTimeError("not enough time left to publish the stored result")
        claim = self._claim(task)
        if claim is None:
            return _Outcome(Action.PUBLISH_STORED, retry_reason="result was claimed or replaced meanwhile")
        task.holds_claim = True
        task.write_id = claim.write_id
        task.uncertain = publication_uncertain(claim.uncertain, state, task.token)
        result = self._results.load(task.ref)
        if result is None or result.result_id != task.result_id:
            raise StoreError("stored result disappeared before it was published")
        # The write that stored it may have failed before the whole index was in.
        self._index.sync(task.ref, result, claim.index_id)
        return _Outcome(Action.PUBLISH_STORED, result=result)

    def _claim(self, task: _Task) -> Claim | None:
        """Claim the result for this attempt; a lost answer is retried once (idempotent for our token)."""
        try:
            return self._ledger.claim(
                task.ref, task.result_id, task.token, claim_ttl_seconds=self._claim_ttl, removal=task.removal
            )
        except StoreError:
            return self._ledger.claim(
                task.ref, task.result_id, task.token, claim_ttl_seconds=self._claim_ttl, removal=task.removal
            )

    def _save(self, tasks: Sequence[_Task], outcomes: list[_Outcome]) -> None:
        pending = [i for i, outcome in enumerate(outcomes) if outcome.unsaved and outcome.retry_reason is None]
        if not pending:
            return
        if not self._deadline.allows(STORE_SECONDS):
            for index in pending:
                outcomes[index] = self._guarded(tasks[index], _raise, OutOfTimeError("not enough time left to store"))
            return
        results = [i for i in pending if outcomes[i].deletion is None]
        pairs = [(outcomes[i].result, outcomes[i].previous, tasks[i].token) for i in results]
        try:
            errors = self._results.save_many(pairs)  # type: ignore[arg-type]
        except Exception as failure:  # e.g. a bug in packing: retry these records
            logger.exception("Could not store results; retrying them")
            errors = [StoreError(str(failure))] * len(results)
        by_index: dict[int, Exception | None] = dict(zip(results, errors, strict=True))
        for index in pending:
            if index not in by_index:  # deletions: one conditional write each
                by_index[index] = self._try_store(tasks[index], outcomes[index])
        for index in pending:
            task, outcome, error = tasks[index], outcomes[index], by_index[index]
            if error is None:
                outcome.unsaved = False
                task.holds_claim = outcome.action is not Action.RECORD_DELETION  # a tombstone has no claim
                task.write_id = task.token
            else:
                # A conflict, or an error whose write may still have gone in: decide again.
                outcomes[index] = self._guarded(task, self._resolve_conflict, outcome, error)
                outcomes[index].discarded_label = outcome.deletion is None and outcomes[index].action in (
                    Action.DUPLICATE,
                    Action.PUBLISH_STORED,
                    Action.IN_PROGRESS,
                )

    def _resolve_conflict(self, task: _Task, labeled: _Outcome, error: Exception) -> _Outcome:
        """The write failed: another writer changed the result, or the answer was lost. Decide again."""
        for _ in range(MAX_CONFLICT_ROUNDS):
            outcome = self._prepare(task, self._results.current_state(task.ref), labeled)
            if not outcome.unsaved:
                return outcome
            if not isinstance(error, ResultConflict):
                raise error  # it did not go in: retry the record (nothing half-done)
            failure = self._try_store(task, outcome)
            if failure is None:
                outcome.unsaved = False
                task.holds_claim = outcome.action is not Action.RECORD_DELETION
                task.write_id = task.token
                return outcome
            if not isinstance(failure, ResultConflict):
                raise failure
            error = failure
        return _Outcome(
            Action.LABEL, retry_reason="the result kept changing concurrently", latency_ms=labeled.latency_ms
        )

    def _try_store(self, task: _Task, outcome: _Outcome) -> Exception | None:
        """Store the outcome's new result or deletion; the ResultConflict or StoreError, or None."""
        try:
            if outcome.deletion is not None:
                self._results.save_removal(
                    task.ref,
                    outcome.deletion,
                    outcome.previous,
                    task.token,
                    announce=outcome.action is Action.REMOVE,
                )
            else:
                self._results.save(outcome.result, outcome.previous, task.token)  # type: ignore[arg-type]
        except (ResultConflict, StoreError) as error:
            return error
        return None

    def _label(self, obj: S3ObjectEvent) -> tuple[LabelResult, float | None]:
        try:
            detection = self._detector.detect(obj)
        except PermanentImageError as error:
            return LabelResult.failed(obj, self._config, error.code, error.message, self._clock()), None
        return LabelResult.labeled(obj, self._config, detection.custom_labels, self._clock()), detection.latency_ms

    def _publish(self, tasks: Sequence[_Task], outcomes: Sequence[_Outcome], report: BatchReport) -> None:
        ready = self._ready_to_publish(tasks, outcomes, report)
        if not ready:
            return
        if not self._deadline.allows(PUBLISH_SECONDS):
            for task, _, _ in ready:  # stored, unpublished, unclaimed: the retry publishes it
                logger.warning("Out of time before publishing; retrying record", extra={"objectKey": task.obj.key})
                self._retry_record(task, "not enough time left to publish", report)
                report.out_of_time += 1
            return
        self._announce(ready, report)

    def _ready_to_publish(
        self, tasks: Sequence[_Task], outcomes: Sequence[_Outcome], report: BatchReport
    ) -> list[tuple[_Task, _Outcome, EventEntry]]:
        """Account for the records that end here; the rest have an event to publish."""
        ready: list[tuple[_Task, _Outcome, EventEntry]] = []
        for task, outcome in zip(tasks, outcomes, strict=True):
            if outcome.latency_ms is not None:
                report.rekognition_latencies_ms.append(outcome.latency_ms)
            report.labels_discarded += int(outcome.discarded_label)
            if outcome.retry_reason is not None:
                self._retry_record(
                    task,
                    outcome.retry_reason,
                    report,
                    soon=not outcome.deployment_fault,  # a wrong deployment waits for its fix: no hurry
                    not_before=outcome.retry_not_before,
                )
                report.throttles += int(outcome.throttled)
                report.out_of_time += int(outcome.out_of_time)
                report.deployment_faults += int(outcome.deployment_fault)
            elif outcome.action is Action.DUPLICATE:
                report.duplicates += 1
                logger.info(
                    "Duplicate delivery; already labeled and published",
                    extra={"objectKey": task.obj.key, "messageId": ",".join(task.message_ids)},
                )
            elif outcome.action is Action.STALE:
                report.stale += 1
                logger.info(
                    "Older event than the stored result; acknowledged",
                    extra={"objectKey": task.obj.key, "messageId": ",".join(task.message_ids)},
                )
            elif outcome.action is Action.UNRELATED:
                report.ignored_events += 1
                logger.info(
                    "Deleted version is not the labeled one; acknowledged",
                    extra={"objectKey": task.obj.key, "messageId": ",".join(task.message_ids)},
                )
            elif outcome.action is Action.RECORD_DELETION:
                report.deletions_not_announced += 1
                logger.info(
                    "Deletion recorded; nothing to announce (no result, or already announced removed)",
                    extra={"objectKey": task.obj.key, "messageId": ",".join(task.message_ids)},
                )
            elif outcome.removal is not None:
                ready.append((task, outcome, build_removed_entry(outcome.removal, self._config.event_source)))
            elif outcome.result is not None:
                ready.append((task, outcome, build_entry(outcome.result, self._config.event_source)))
        return ready

    def _announce(self, ready: list[tuple[_Task, _Outcome, EventEntry]], report: BatchReport) -> None:
        entries = [entry for _, _, entry in ready]
        try:
            sent = self._publisher.publish(entries)
        except Exception as error:  # a bug in the adapter: nothing known to be accepted
            logger.exception("Publishing failed; retrying records")
            sent = PublishOutcome({task.result_id: f"{type(error).__name__}: {error}" for task, _, _ in ready})
            report.unexpected_errors += 1
        # From here on events may have been accepted: nothing below may raise or
        # put an accepted record back on the queue.
        published: list[Publication] = []
        for task, outcome, _ in ready:
            refusal = sent.failures.get(task.result_id)
            unknown = task.result_id in sent.ambiguous
            extra = {"objectKey": task.obj.key, "messageId": ",".join(task.message_ids), "resultId": task.result_id}
            # A publication that may repeat an accepted one is counted once,
            # when it is made: accepted, or with an unknown outcome itself.
            if task.uncertain and (refusal is None or unknown):
                report.ambiguous_publishes += 1
                logger.warning("Published a result that may already have been announced", extra=extra)
            if refusal is not None:
                if unknown:
                    logger.warning("PutEvents outcome unknown; the retry may announce this result twice", extra=extra)
                    task.uncertain = True  # kept on the result by the release: its next publication counts
                logger.warning("Event not accepted by EventBridge; retrying record", extra={**extra, "error": refusal})
                self._retry_record(task, refusal, report)
                continue
            if outcome.removal is not None:
                published.append((task.ref, task.write_id or task.token, task.result_id))
                report.removed += 1
                logger.info(
                    "Deletion stored and published", extra={**extra, "removedResultId": outcome.removal.result_id}
                )
                continue
            result = outcome.result
            assert result is not None  # _ready_to_publish: a removal or a result
            published.append((task.ref, task.write_id or task.token, task.result_id))
            if result.status == LABELED:
                report.labeled += 1
                report.labels_per_image.append(result.label_count)
            else:
                report.failed_images += 1
            logger.info(
                "Result stored and published",
                extra={**extra, "status": result.status, "labelCount": result.label_count},
            )
        if published:
            self._mark_published(published, report)

    def _mark_published(self, published: list[Publication], report: BatchReport) -> None:
        """Record the accepted events, retrying within the invocation; never raises.

        A mark that never lands leaves the result unpublished: only a later
        redelivery of its notification (after the claim expires) would
        announce it again. That takes an outage longer than the invocation.
        """
        delay, cap = MARK_BACKOFF_SECONDS
        for attempt in range(1, MARK_ATTEMPTS + 1):
            try:
                self._ledger.mark_published(published)
                return
            except Exception as error:  # StoreError, or a bug: either way the events are out
                wait = random.uniform(delay / 2, delay)
                if attempt == MARK_ATTEMPTS or not self._deadline.allows(wait + STORE_SECONDS - PUBLISH_SECONDS):
                    report.publish_marks_failed += len(published)
                    logger.error(
                        "Could not mark results published; a redelivery may announce them again",
                        extra={"error": str(error), "attempts": attempt, "resultIds": [p[2] for p in published]},
                    )
                    return
                logger.warning("Mark published failed; retrying", extra={"error": str(error), "attempt": attempt})
                self._sleep(wait)
                delay = min(delay * 2, cap)

    def _retry_record(
        self, task: _Task, reason: str, report: BatchReport, *, soon: bool = True, not_before: float = 0.0
    ) -> None:
        """Name the task's messages as batch item failures and release any claim it holds."""
        report.fail(task.message_ids, reason, soon=soon, not_before=not_before)
        report.retries += 1
        self._release_claim(task)

    def _release_claim(self, task: _Task) -> None:
        """Release the claim this attempt holds (keeping any uncertainty on the result)."""
        if not task.holds_claim:
            return
        task.holds_claim = False
        try:
            self._ledger.release(task.ref, task.result_id, task.token, uncertain=task.uncertain, removal=task.removal)
        except Exception as error:  # the claim then expires; its taker counts the uncertainty
            logger.warning("Could not release publish claim", extra={"objectKey": task.obj.key, "error": str(error)})

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="labeler")
            return self._executor
