"""Phase 1, intake and collapse: the batch's messages become one task per object key and model version.

Parse each message (S3, SNS-wrapped, EventBridge or backfill format), sort
every record (``decisions.intake``), keep the newest version of each key
(``decisions.collapse``), and give each deletion one task more per other model
version that has a result for the object (docs/behaviour.md#deletions).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_lambda_powertools import Logger

from labeler.config import LabelerConfig
from labeler.domain.backfill_request import forced_result_id, parse_backfill_body
from labeler.domain.s3_notification import InvalidMessageError, parse_message_body
from labeler.logic.batch import BatchReport, InboundMessage, Task
from labeler.logic.decisions import Delivery, Intake, ObjectWork, collapse, intake
from labeler.ports import ResultRepository, StoreError
from shared.names import LABELER_SERVICE

logger = Logger(service=LABELER_SERVICE, child=True)


def collect(messages: Sequence[InboundMessage], report: BatchReport, config: LabelerConfig) -> list[Task]:
    """Parse messages; one task per object key (its newest version in the batch)."""
    deliveries: list[Delivery] = []
    for message in messages:
        deliveries.extend(_deliveries(message, report, config, first_position=len(deliveries)))
    tasks: list[Task] = []
    for work in collapse(deliveries):
        for message_id in work.superseded:
            report.stale += 1
            logger.info(
                "Superseded by a newer version in the same batch",
                extra={"messageId": message_id, "objectKey": work.newest.key},
            )
        arn = config.model_for(work.newest.key)
        if arn is None:
            _unrouted(work, report)
            continue
        tasks.append(_task(work, arn))
    return tasks


def _unrouted(work: ObjectWork, report: BatchReport) -> None:
    """A key under no model route (a notification wider than the routes): to the DLQ, alarmed, never dropped."""
    reason = f"the key {work.newest.key!r} is under no model route's prefix"
    logger.error(
        "No model route for this key: the message goes to the DLQ; fix the routes or the notification, then redrive",
        extra={"objectKey": work.newest.key, "messageIds": work.message_ids, "error": reason},
    )
    for message_id in work.message_ids:
        report.fail_for_good(message_id, reason)
    report.deployment_faults += 1


def _deliveries(
    message: InboundMessage, report: BatchReport, config: LabelerConfig, *, first_position: int
) -> list[Delivery]:
    """The image records of one message; the rest are counted (and an invalid message failed for good)."""
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
        return []
    if not records:
        report.test_events += 1
        logger.info("Acknowledged s3:TestEvent", extra={"messageId": message.message_id})
    deliveries: list[Delivery] = []
    for obj in records:
        kind = intake(obj, deletions=config.deletions)
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
            deliveries.append(Delivery(first_position + len(deliveries), message.message_id, obj, backfill))
    return deliveries


def _task(work: ObjectWork, arn: str) -> Task:
    """The task of an object's newest version, with the id of what it will announce."""
    newest, backfill = work.newest, work.backfill
    removal = newest.is_object_removed
    if removal:
        ident = newest.removal_id(arn)
    elif backfill is not None and backfill.force:
        ident = forced_result_id(newest, arn, backfill.run_id)
    else:
        ident = newest.result_id(arn)
    return Task(newest, (newest.bucket, newest.key, arn), ident, work.message_ids, removal=removal, backfill=backfill)


def with_other_model_versions(tasks: list[Task], report: BatchReport, results: ResultRepository) -> list[Task]:
    """Add, for each deletion, one task per other model version that has a result for the object.

    docs/behaviour.md#deletions: a deletion marks every model version's
    current result deleted (results of an earlier model version stay, and
    answer find_by_label, until the object is deleted).
    """
    extended: list[Task] = []
    for task in tasks:
        extended.append(task)
        if not task.removal:
            continue
        bucket, key, arn = task.ref
        try:
            others = [other for other in results.model_versions(bucket, key) if other != arn]
        except StoreError as error:
            logger.warning("Could not list the results of a deleted object; retrying", extra={"error": str(error)})
            report.fail(task.message_ids, str(error))
            report.retries += 1
            extended.pop()
            continue
        extended.extend(
            Task(task.obj, (bucket, key, other), task.obj.removal_id(other), task.message_ids, removal=True)
            for other in others
        )
    return extended
