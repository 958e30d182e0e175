"""Phase 4, publish: account for the records that end here, announce the rest, record what was accepted.

Events go out in PutEvents requests of up to 10 entries. Once EventBridge has
accepted an event, nothing puts its record back on the queue: the mark
(a publication item) is retried in-process within the remaining time, and a
mark that still fails is only counted.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools import Logger

from labeler.domain.label_result import LABELED
from labeler.domain.result_event import build_entry, build_removed_entry
from labeler.domain.stored_state import Publication
from labeler.logic.batch import BatchContext, BatchReport, Outcome, Task
from labeler.logic.decisions import Action
from labeler.logic.settle import retry_record
from labeler.phase_budgets import PUBLISH_SECONDS, STORE_SECONDS
from shared.event_entry import EventEntry, PublishOutcome
from shared.names import LABELER_SERVICE

logger = Logger(service=LABELER_SERVICE, child=True)

# Marking published, after PutEvents accepted: retried with a growing,
# jittered backoff while the invocation has time, at most this often.
MARK_ATTEMPTS = 10
MARK_BACKOFF_SECONDS = (0.05, 1.0)  # first, cap

# The records acknowledged without an event: the BatchReport counter each adds to, and what is logged.
ACKNOWLEDGED: dict[Action, tuple[str, str]] = {
    Action.DUPLICATE: ("duplicates", "Duplicate delivery; already labeled and published"),
    Action.STALE: ("stale", "Older event than the stored result; acknowledged"),
    Action.UNRELATED: ("ignored_events", "Deleted version is not the labeled one; acknowledged"),
    Action.RECORD_DELETION: (
        "deletions_not_announced",
        "Deletion recorded; nothing to announce (no result, or already announced removed)",
    ),
}


class Publishing:
    def __init__(self, ctx: BatchContext) -> None:
        self._ctx = ctx

    def publish(self, tasks: Sequence[Task], outcomes: Sequence[Outcome], report: BatchReport) -> None:
        ready = self._ready_to_publish(tasks, outcomes, report)
        if not ready:
            return
        if not self._ctx.deadline.allows(PUBLISH_SECONDS):
            for task, _, _ in ready:  # stored, unpublished, unclaimed: the retry publishes it
                logger.warning("Out of time before publishing; retrying record", extra={"objectKey": task.obj.key})
                retry_record(self._ctx, task, "not enough time left to publish", report)
                report.out_of_time += 1
            return
        self._announce(ready, report)

    def _ready_to_publish(
        self, tasks: Sequence[Task], outcomes: Sequence[Outcome], report: BatchReport
    ) -> list[tuple[Task, Outcome, EventEntry]]:
        """Account for the records that end here; the rest have an event to publish."""
        ready: list[tuple[Task, Outcome, EventEntry]] = []
        for task, outcome in zip(tasks, outcomes, strict=True):
            if outcome.latency_ms is not None:
                report.rekognition_latencies_ms.append(outcome.latency_ms)
            report.labels_discarded += int(outcome.discarded_label)
            if outcome.retry_reason is not None:
                self._retry(task, outcome, outcome.retry_reason, report)
            elif outcome.action in ACKNOWLEDGED:
                counter, message = ACKNOWLEDGED[outcome.action]
                setattr(report, counter, getattr(report, counter) + 1)
                logger.info(message, extra={"objectKey": task.obj.key, "messageId": ",".join(task.message_ids)})
            elif outcome.removal is not None:
                ready.append((task, outcome, build_removed_entry(outcome.removal, self._ctx.config.event_source)))
            elif outcome.result is not None:
                ready.append((task, outcome, build_entry(outcome.result, self._ctx.config.event_source)))
        return ready

    def _retry(self, task: Task, outcome: Outcome, reason: str, report: BatchReport) -> None:
        """A record an earlier phase gave back: retried, and counted by why."""
        # A wrong deployment waits for its fix: no hurry.
        soon = not outcome.deployment_fault
        retry_record(self._ctx, task, reason, report, soon=soon, not_before=outcome.retry_not_before)
        report.throttles += int(outcome.throttled)
        report.out_of_time += int(outcome.out_of_time)
        report.deployment_faults += int(outcome.deployment_fault)

    def _announce(self, ready: list[tuple[Task, Outcome, EventEntry]], report: BatchReport) -> None:
        entries = [entry for _, _, entry in ready]
        try:
            sent = self._ctx.publisher.publish(entries)
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
                self._refused(task, refusal, unknown, extra, report)
                continue
            published.append((task.ref, task.write_id or task.token, task.result_id))
            _count_accepted(outcome, extra, report)
        if published:
            self._mark_published(published, report)

    def _refused(self, task: Task, refusal: str, unknown: bool, extra: dict[str, Any], report: BatchReport) -> None:
        if unknown:
            logger.warning("PutEvents outcome unknown; the retry may announce this result twice", extra=extra)
            task.uncertain = True  # kept on the result by the release: its next publication counts
        logger.warning("Event not accepted by EventBridge; retrying record", extra={**extra, "error": refusal})
        retry_record(self._ctx, task, refusal, report)

    def _mark_published(self, published: list[Publication], report: BatchReport) -> None:
        """Record the accepted events, retrying within the invocation; never raises.

        A mark that never lands leaves the result unpublished: only a later
        redelivery of its notification (after the claim expires) would
        announce it again. That takes an outage longer than the invocation.
        """
        delay, cap = MARK_BACKOFF_SECONDS
        for attempt in range(1, MARK_ATTEMPTS + 1):
            try:
                self._ctx.ledger.mark_published(published)
                return
            except Exception as error:  # StoreError, or a bug: either way the events are out
                wait = random.uniform(delay / 2, delay)
                if attempt == MARK_ATTEMPTS or not self._ctx.deadline.allows(wait + STORE_SECONDS - PUBLISH_SECONDS):
                    report.publish_marks_failed += len(published)
                    logger.error(
                        "Could not mark results published; a redelivery may announce them again",
                        extra={"error": str(error), "attempts": attempt, "resultIds": [p[2] for p in published]},
                    )
                    return
                logger.warning("Mark published failed; retrying", extra={"error": str(error), "attempt": attempt})
                self._ctx.sleep(wait)
                delay = min(delay * 2, cap)


def _count_accepted(outcome: Outcome, extra: dict[str, Any], report: BatchReport) -> None:
    """An accepted event: a removal, or a result labeled or failed."""
    if outcome.removal is not None:
        report.removed += 1
        logger.info("Deletion stored and published", extra={**extra, "removedResultId": outcome.removal.result_id})
        return
    result = outcome.result
    assert result is not None  # _ready_to_publish: a removal or a result
    if result.status == LABELED:
        report.labeled += 1
        report.labels_per_image.append(result.label_count)
    else:
        report.failed_images += 1
    logger.info(
        "Result stored and published",
        extra={**extra, "status": result.status, "labelCount": result.label_count},
    )
