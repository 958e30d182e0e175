"""The labeling logic for one SQS batch: no AWS client is created here.

For each batch: parse messages, skip what is not an image, collapse repeats,
read the current results in one BatchGetItem, label the new object versions
concurrently (bounded), store each result conditionally, publish all events
in PutEvents requests of up to 10 entries, then mark them published in one
transaction. Every record ends acknowledged or named as a batch item failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from aws_lambda_powertools import Logger

from labeler.config import SERVICE_NAME, LabelerConfig
from labeler.detector import CustomLabelsDetector, PermanentImageError, RetryableDetectionError
from labeler.events import build_entry
from labeler.notifications import InvalidMessageError, S3ObjectEvent, parse_message_body, sequencer_is_newer
from labeler.publisher import EventPublisher
from labeler.results import LABELED, LabelResult
from labeler.store import ObjectRef, ResultConflict, ResultStore, StoredState, StoreError

logger = Logger(service=SERVICE_NAME, child=True)

# A result stored but not yet published is left to the worker that stored it
# for this long; must stay well under the ingest queue's visibility timeout.
DEFAULT_CLAIM_TTL_SECONDS = 120.0
MAX_CONFLICT_ROUNDS = 3


@dataclass(frozen=True)
class InboundMessage:
    message_id: str
    body: str


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
    publish_marks_failed: int = 0
    labels_per_image: list[int] = field(default_factory=list)
    rekognition_latencies_ms: list[float] = field(default_factory=list)

    def fail(self, message_ids: Sequence[str], reason: str) -> None:
        for message_id in message_ids:
            self.failed_messages.setdefault(message_id, reason)


class _Action(Enum):
    LABEL = "label"
    PUBLISH_STORED = "publish-stored"
    DUPLICATE = "duplicate"
    STALE = "stale"
    IN_PROGRESS = "in-progress"


@dataclass
class _Task:
    obj: S3ObjectEvent
    ref: ObjectRef
    result_id: str
    message_ids: list[str]


@dataclass
class _Outcome:
    action: _Action
    result: LabelResult | None = None
    retry_reason: str | None = None
    throttled: bool = False
    latency_ms: float | None = None
    unsaved: bool = False  # a new result still to be stored
    previous: StoredState | None = None  # the state it was decided against


def _raise(_task: _Task, error: Exception) -> _Outcome:
    raise error


class LabelingPipeline:
    def __init__(
        self,
        config: LabelerConfig,
        *,
        detector: CustomLabelsDetector,
        store: ResultStore,
        publisher: EventPublisher,
        max_workers: int = 10,
        claim_ttl_seconds: float = DEFAULT_CLAIM_TTL_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._config = config
        self._detector = detector
        self._store = store
        self._publisher = publisher
        self._max_workers = max_workers
        self._claim_ttl = claim_ttl_seconds
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    # -- entry point ---------------------------------------------------------

    def process(self, messages: Sequence[InboundMessage]) -> BatchReport:
        report = BatchReport()
        tasks = self._collect(messages, report)
        if not tasks:
            return report
        try:
            states = self._store.current_states([task.ref for task in tasks])
        except StoreError as error:
            logger.error("Could not read current results; retrying the batch", extra={"error": str(error)})
            for task in tasks:
                report.fail(task.message_ids, str(error))
            report.retries += len(tasks)
            return report
        # Label concurrently (bounded), then store all new results in as few
        # transactions as fit, then publish them in PutEvents calls of 10.
        outcomes = list(self._pool().map(lambda task: self._guarded(task, self._prepare, states[task.ref]), tasks))
        self._save(tasks, outcomes)
        self._publish(tasks, outcomes, report)
        return report

    # -- steps -----------------------------------------------------------------

    def _collect(self, messages: Sequence[InboundMessage], report: BatchReport) -> list[_Task]:
        """Parse messages; one task per object key (its newest version in the batch)."""
        by_object: dict[tuple[str, str], list[tuple[int, str, S3ObjectEvent]]] = {}
        position = 0
        for message in messages:
            try:
                records = parse_message_body(message.body)
            except InvalidMessageError as error:
                logger.error(
                    "Invalid message; it will be retried and end in the DLQ",
                    extra={"messageId": message.message_id, "error": str(error)},
                )
                report.fail([message.message_id], str(error))
                report.invalid_messages += 1
                continue
            if not records:
                report.test_events += 1
                logger.info("Acknowledged s3:TestEvent", extra={"messageId": message.message_id})
            for obj in records:
                if not obj.is_object_created:
                    report.ignored_events += 1
                    logger.info(
                        "Ignored non-ObjectCreated event",
                        extra={"messageId": message.message_id, "objectKey": obj.key, "eventName": obj.event_name},
                    )
                elif not obj.has_image_extension:
                    report.skipped += 1
                    logger.info(
                        "Skipped object without a .jpg/.jpeg/.png key",
                        extra={"messageId": message.message_id, "objectKey": obj.key},
                    )
                else:
                    by_object.setdefault((obj.bucket, obj.key), []).append((position, message.message_id, obj))
                    position += 1
        tasks: list[_Task] = []
        for candidates in by_object.values():
            # Newest by sequencer; without sequencers, the latest in the batch.
            newest = max(candidates, key=lambda c: (c[2].sequencer_order or "", c[0]))[2]
            task = _Task(
                newest,
                (newest.bucket, newest.key, self._config.project_version_arn),
                newest.result_id(self._config.project_version_arn),
                [],
            )
            for _, message_id, obj in candidates:
                if obj.object_identity == newest.object_identity:
                    if message_id not in task.message_ids:
                        task.message_ids.append(message_id)
                else:
                    report.stale += 1
                    logger.info(
                        "Superseded by a newer version in the same batch",
                        extra={"messageId": message_id, "objectKey": obj.key},
                    )
            tasks.append(task)
        return tasks

    def _decide(self, task: _Task, state: StoredState | None) -> _Action:
        if state is None:
            return _Action.LABEL
        if state.result_id == task.result_id:
            if state.published:
                return _Action.DUPLICATE
            claimed_at = state.publish_claimed_at
            now = self._clock().timestamp()
            if claimed_at is not None and now - claimed_at < self._claim_ttl:
                return _Action.IN_PROGRESS
            return _Action.PUBLISH_STORED
        if sequencer_is_newer(state.sequencer, task.obj.sequencer):
            return _Action.STALE
        return _Action.LABEL

    def _guarded(self, task: _Task, step: Callable[..., _Outcome], *args: Any) -> _Outcome:
        """Run a step for a task; any failure becomes a retry of that task's messages."""
        extra = {"objectKey": task.obj.key, "messageId": ",".join(task.message_ids), "resultId": task.result_id}
        try:
            return step(task, *args)
        except (StoreError, RetryableDetectionError) as error:
            throttled = isinstance(error, RetryableDetectionError) and error.is_throttle
            logger.warning("Retrying record", extra={**extra, "error": str(error)})
            return _Outcome(_Action.LABEL, retry_reason=str(error), throttled=throttled)
        except Exception as error:  # a bug must not lose the record: retry it
            logger.exception("Unexpected error; retrying record", extra=extra)
            return _Outcome(_Action.LABEL, retry_reason=f"{type(error).__name__}: {error}")

    def _prepare(self, task: _Task, state: StoredState | None, labeled: _Outcome | None = None) -> _Outcome:
        """Decide against the current state; label (once) when a new result is needed."""
        action = self._decide(task, state)
        if action in (_Action.DUPLICATE, _Action.STALE):
            return _Outcome(action)
        if action is _Action.IN_PROGRESS:
            return _Outcome(action, retry_reason="another worker is publishing this result")
        if action is _Action.PUBLISH_STORED:
            if not self._store.claim_publication(task.ref, task.result_id, claim_ttl_seconds=self._claim_ttl):
                return _Outcome(action, retry_reason="result was claimed or replaced meanwhile")
            return _Outcome(action, result=self._load_stored(task))
        if labeled is not None and labeled.result is not None:
            return _Outcome(
                _Action.LABEL, result=labeled.result, latency_ms=labeled.latency_ms, unsaved=True, previous=state
            )
        result, latency_ms = self._label(task.obj)
        return _Outcome(_Action.LABEL, result=result, latency_ms=latency_ms, unsaved=True, previous=state)

    def _save(self, tasks: Sequence[_Task], outcomes: list[_Outcome]) -> None:
        pending = [i for i, outcome in enumerate(outcomes) if outcome.unsaved and outcome.retry_reason is None]
        if not pending:
            return
        pairs = [(outcomes[i].result, outcomes[i].previous) for i in pending]
        try:
            errors = self._store.save_many(pairs)  # type: ignore[arg-type]
        except Exception as failure:  # e.g. a bug in packing: retry these records
            logger.exception("Could not store results; retrying them")
            errors = [StoreError(str(failure))] * len(pending)
        for index, error in zip(pending, errors, strict=True):
            task, outcome = tasks[index], outcomes[index]
            if error is None:
                outcome.unsaved = False
            elif isinstance(error, ResultConflict):
                outcomes[index] = self._guarded(task, self._resolve_conflict, outcome)
            else:
                outcomes[index] = self._guarded(task, _raise, error)

    def _resolve_conflict(self, task: _Task, labeled: _Outcome) -> _Outcome:
        """Another writer changed the result since the batch read it: decide again."""
        for _ in range(MAX_CONFLICT_ROUNDS):
            outcome = self._prepare(task, self._store.current_state(task.ref), labeled)
            if not outcome.unsaved:
                return outcome
            try:
                self._store.save(outcome.result, outcome.previous)  # type: ignore[arg-type]
                outcome.unsaved = False
                return outcome
            except ResultConflict:
                continue
        return _Outcome(
            _Action.LABEL, retry_reason="the result kept changing concurrently", latency_ms=labeled.latency_ms
        )

    def _label(self, obj: S3ObjectEvent) -> tuple[LabelResult, float | None]:
        try:
            detection = self._detector.detect(obj)
        except PermanentImageError as error:
            return LabelResult.failed(obj, self._config, error.code, error.message, self._clock()), None
        return LabelResult.labeled(obj, self._config, detection.custom_labels, self._clock()), detection.latency_ms

    def _load_stored(self, task: _Task) -> LabelResult:
        item = self._store.load(task.ref)
        if item is None or item.get("resultId") != task.result_id:
            raise StoreError("stored result disappeared before it was published")
        return LabelResult(
            result_id=item["resultId"],
            bucket=item["bucket"],
            key=item["key"],
            version_id=item.get("versionId"),
            etag=item.get("etag", ""),
            size=int(item.get("size", 0)),
            sequencer=item.get("sequencer"),
            project_version_arn=item["projectVersionArn"],
            min_confidence=item.get("minConfidence"),
            max_results=item.get("maxResults"),
            status=item["status"],
            processed_at=item["processedAt"],
            custom_labels=item.get("customLabels", []),
            error=item.get("error"),
        )

    def _publish(self, tasks: Sequence[_Task], outcomes: Sequence[_Outcome], report: BatchReport) -> None:
        ready: list[tuple[_Task, LabelResult]] = []
        for task, outcome in zip(tasks, outcomes, strict=True):
            if outcome.latency_ms is not None:
                report.rekognition_latencies_ms.append(outcome.latency_ms)
            if outcome.retry_reason is not None:
                report.fail(task.message_ids, outcome.retry_reason)
                report.retries += 1
                report.throttles += int(outcome.throttled)
            elif outcome.action is _Action.DUPLICATE:
                report.duplicates += 1
                logger.info(
                    "Duplicate delivery; already labeled and published",
                    extra={"objectKey": task.obj.key, "messageId": ",".join(task.message_ids)},
                )
            elif outcome.action is _Action.STALE:
                report.stale += 1
                logger.info(
                    "Older event than the stored result; acknowledged",
                    extra={"objectKey": task.obj.key, "messageId": ",".join(task.message_ids)},
                )
            elif outcome.result is not None:
                ready.append((task, outcome.result))
        if not ready:
            return
        entries = [build_entry(result, self._config.event_source) for _, result in ready]
        failures = self._publisher.publish(entries)
        published: list[tuple[ObjectRef, str]] = []
        for task, result in ready:
            error = failures.get(result.result_id)
            extra = {"objectKey": result.key, "messageId": ",".join(task.message_ids), "resultId": result.result_id}
            if error is not None:
                logger.warning("Event not accepted by EventBridge; retrying record", extra={**extra, "error": error})
                report.fail(task.message_ids, error)
                report.retries += 1
                self._release_claim(task)
                continue
            published.append((task.ref, result.result_id))
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
            try:
                self._store.mark_published(published)
            except StoreError as error:
                # Events went out: do not fail the records (that would publish
                # twice). A later duplicate delivery may re-publish; counted.
                report.publish_marks_failed += len(published)
                logger.warning("Could not mark results published", extra={"error": str(error)})

    def _release_claim(self, task: _Task) -> None:
        try:
            self._store.release_claim(task.ref, task.result_id)
        except StoreError as error:  # the claim then expires on its own
            logger.warning("Could not release publish claim", extra={"objectKey": task.obj.key, "error": str(error)})

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="labeler")
            return self._executor


def build_pipeline(config: LabelerConfig, clients: Any) -> LabelingPipeline:
    """Wire the adapters around the given clients (real, moto or fakes)."""
    return LabelingPipeline(
        config,
        detector=CustomLabelsDetector(clients.rekognition, config),
        store=ResultStore(clients.dynamodb, config.results_table_name),
        publisher=EventPublisher(clients.events, config.event_bus_name, config.event_source),
    )
