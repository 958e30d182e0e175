"""Retried records come back after a short, growing, jittered delay, not the queue's visibility timeout.

The handler reads each record's receive count, receipt handle and queue ARN;
for a transient fault (throttling, a store or publish error) it sets the
message's visibility timeout with ChangeMessageVisibilityBatch (a model that
is not running too). A deployment fault keeps the queue's timeout; an invalid
message comes back at once (it can only end in the DLQ); a result another
attempt is publishing waits for that claim.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from labeler import handler
from labeler.adapters.clients import AwsClients
from labeler.logic.decisions import RETRY_CAP_SECONDS
from labeler.wiring import build_pipeline
from local.fakes.faults import FaultyClient, client_error
from local.samples import make_image
from tests.support.builders import notification_body
from tests.support.harness import Harness
from tests.support.metrics import emitted

IMAGE = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})


class RefusingModel:
    """A model that answers every call with one error code."""

    def __init__(self, code: str) -> None:
        self.code = code

    def detect_custom_labels(self, **_request: Any) -> dict[str, Any]:
        raise client_error(self.code, operation="DetectCustomLabels")


def received(harness: Harness, keys: list[str], receive_count: int) -> dict[str, Any]:
    """An SQS event of real messages received from the ingest queue, with the given receive count."""
    uploads = {key: harness.upload_quietly(key, IMAGE) for key in keys}  # each drains moto's own notifications
    for key, upload in uploads.items():
        harness.send(notification_body(harness.record_for(key, upload, sequencer=f"{len(key):02X}")))
    messages = harness.sqs.receive_message(
        QueueUrl=harness.resources.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
    )["Messages"]
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
                "eventSource": "aws:sqs",
                "eventSourceARN": harness.resources.queue_arn,
            }
            for m in messages
        ]
    }


def with_model(harness: Harness, model: Any) -> FaultyClient:
    sqs = FaultyClient(boto3.client("sqs"))
    pipeline = build_pipeline(harness.config, AwsClients(model, harness.dynamodb, harness.events, sqs=sqs))
    handler.use_pipeline(pipeline)
    return sqs


def visibility_changes(calls: list[dict[str, Any]]) -> list[int]:
    return [entry["VisibilityTimeout"] for call in calls for entry in call["Entries"]]


def record_changes(sqs: FaultyClient, calls: list[dict[str, Any]]) -> None:
    def spy(kwargs: dict[str, Any], call: Any) -> Any:
        calls.append(kwargs)
        response = call(**kwargs)
        assert not response.get("Failed"), response
        return response

    sqs.faults["change_message_visibility_batch"] = spy


def test_a_model_that_is_not_running_is_retried_like_any_transient_fault(harness: Harness, lambda_context: Any) -> None:
    # With the manager, the trigger is paused while the model starts: the record
    # comes back into a paused queue and spends no receive until the model runs.
    sqs = with_model(harness, RefusingModel("ResourceNotReadyException"))
    calls: list[dict[str, Any]] = []
    record_changes(sqs, calls)
    handler.handler(received(harness, ["a.png"], 1), lambda_context)
    (delay,) = visibility_changes(calls)
    assert 2 <= delay <= 5


@pytest.mark.parametrize(("receive_count", "low", "high"), [(1, 2.5, 5), (2, 5, 10), (4, 20, 40), (9, 150, 300)])
def test_throttled_records_come_back_after_a_short_growing_delay(
    harness: Harness, lambda_context: Any, receive_count: int, low: float, high: float
) -> None:
    sqs = with_model(harness, RefusingModel("ThrottlingException"))
    calls: list[dict[str, Any]] = []
    record_changes(sqs, calls)
    event = received(harness, ["a.png", "bb.png", "ccc.png"], receive_count)
    response = handler.handler(event, lambda_context)
    assert len(response["batchItemFailures"]) == 3
    delays = visibility_changes(calls)
    assert len(delays) == 3
    assert all(low - 1 <= d <= high for d in delays), delays
    assert max(delays) <= RETRY_CAP_SECONDS
    handles = {entry["ReceiptHandle"] for call in calls for entry in call["Entries"]}
    assert handles == {r["receiptHandle"] for r in event["Records"]}


@pytest.mark.parametrize("code", ["AccessDeniedException", "ResourceNotFoundException"])
def test_a_deployment_fault_keeps_the_queue_timeout(harness: Harness, lambda_context: Any, code: str) -> None:
    sqs = with_model(harness, RefusingModel(code))
    calls: list[dict[str, Any]] = []
    record_changes(sqs, calls)
    response = handler.handler(received(harness, ["a.png"], 1), lambda_context)
    assert len(response["batchItemFailures"]) == 1
    assert calls == []


def test_an_invalid_message_comes_back_at_once_to_reach_the_dlq_in_seconds(
    harness: Harness, lambda_context: Any
) -> None:
    sqs = with_model(harness, harness.model)
    calls: list[dict[str, Any]] = []
    record_changes(sqs, calls)
    harness.discard_notifications()  # moto's s3:TestEvent
    harness.send("not json")
    (message,) = harness.sqs.receive_message(QueueUrl=harness.resources.queue_url)["Messages"]
    event = {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "eventSourceARN": harness.resources.queue_arn,
            }
        ]
    }
    assert handler.handler(event, lambda_context)["batchItemFailures"] == [{"itemIdentifier": message["MessageId"]}]
    # It can never succeed: visible again at once, so its receives are spent in seconds, not 10 x 6 minutes.
    assert visibility_changes(calls) == [0]


def test_a_failed_visibility_change_loses_nothing_and_is_counted(
    harness: Harness, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = with_model(harness, RefusingModel("ThrottlingException"))

    def refuse(_kwargs: dict[str, Any], _call: Any) -> Any:
        raise client_error("AccessDenied", operation="ChangeMessageVisibilityBatch")

    sqs.faults["change_message_visibility_batch"] = refuse
    response = handler.handler(received(harness, ["a.png", "bb.png"], 1), lambda_context)
    assert len(response["batchItemFailures"]) == 2  # still retried, with the queue's timeout
    assert emitted(capsys.readouterr().out, "RetryDelaysNotSet") == 2


def test_a_result_another_attempt_is_publishing_waits_for_its_claim(harness: Harness, lambda_context: Any) -> None:
    # First attempt: labeled and stored, PutEvents refused: stored, unpublished, claim released.
    harness.events.faults["put_events"] = lambda _kwargs, _call: (_ for _ in ()).throw(
        client_error("InternalException", operation="PutEvents")
    )
    sqs = with_model(harness, harness.model)
    event = received(harness, ["a.png"], 1)
    assert len(handler.handler(event, lambda_context)["batchItemFailures"]) == 1
    # Another attempt claims it now.
    table = harness.resources.table_name
    ddb = boto3.client("dynamodb")
    (item,) = [i for i in ddb.scan(TableName=table)["Items"] if i["itemType"]["S"] == "RESULT"]
    ddb.update_item(
        TableName=table,
        Key={"pk": item["pk"], "sk": item["sk"]},
        UpdateExpression="SET publishClaimedAt = :now, publishClaimedBy = :other",
        ExpressionAttributeValues={":now": {"N": str(time.time())}, ":other": {"S": "another-attempt"}},
    )
    del harness.events.faults["put_events"]
    calls: list[dict[str, Any]] = []
    record_changes(sqs, calls)
    redelivered = dict(event)
    redelivered["Records"] = [{**event["Records"][0], "attributes": {"ApproximateReceiveCount": "2"}}]
    assert len(handler.handler(redelivered, lambda_context)["batchItemFailures"]) == 1
    (delay,) = visibility_changes(calls)
    # Not 5-10 s (the schedule for a second receive): no sooner than the claim expires (120 s).
    assert 115 <= delay <= 121
