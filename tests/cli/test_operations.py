"""Operator commands against moto (SQS) and the lifecycle/trigger fakes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from autolabel.operations import StackOutputs, model_start, model_status, model_stop, redrive_by_copy
from local.model_lifecycle import FakeEventSourceMappings, FakeModelLifecycle
from tests.manager.test_logic import PROJECT_ARN, VERSION_ARN


@pytest.fixture
def aws() -> Iterator[tuple[Any, StackOutputs]]:
    with mock_aws():
        sqs = boto3.client("sqs")
        queue = sqs.create_queue(QueueName="ingest")["QueueUrl"]
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        yield sqs, StackOutputs(VERSION_ARN, PROJECT_ARN, queue, dlq, "esm-uuid", model_manager=True)


def test_status_reports_model_trigger_and_queues(aws: tuple[Any, StackOutputs]) -> None:
    sqs, outputs = aws
    sqs.send_message(QueueUrl=outputs.queue_url, MessageBody="waiting")
    sqs.send_message(QueueUrl=outputs.dead_letter_queue_url, MessageBody="dead")
    status = model_status(
        outputs,
        rekognition=FakeModelLifecycle(time.time),
        sqs=sqs,
        lambda_client=FakeEventSourceMappings(enabled=False),
    )
    assert status == {
        "model": VERSION_ARN,
        "status": "STOPPED",
        "labelerTrigger": "paused",
        "waiting": 1,
        "inFlight": 0,
        "deadLetters": 1,
        "modelManager": "on",
    }


def test_start_then_stop_pauses_the_trigger_first(aws: tuple[Any, StackOutputs]) -> None:
    _sqs, outputs = aws
    now = [1000.0]
    model = FakeModelLifecycle(lambda: now[0], start_minutes=1)
    trigger = FakeEventSourceMappings(enabled=True)
    assert "starting with 2" in model_start(outputs, rekognition=model, min_units=2, max_units=None)
    assert model.starts == [{"ProjectVersionArn": VERSION_ARN, "MinInferenceUnits": 2}]
    assert "already under way" in model_start(outputs, rekognition=model, min_units=2, max_units=None)
    now[0] += 120
    assert "stopping" in model_stop(outputs, rekognition=model, lambda_client=trigger)
    assert trigger.updates == [False] and model.stops == 1


def test_redrive_moves_every_dead_letter_back_unchanged(aws: tuple[Any, StackOutputs]) -> None:
    sqs, outputs = aws
    bodies = [f'{{"Records": [{{"n": {n}}}]}}' for n in range(23)]
    for body in bodies:
        sqs.send_message(QueueUrl=outputs.dead_letter_queue_url, MessageBody=body)
    assert redrive_by_copy(outputs, sqs=sqs, limit=5) == 5
    assert redrive_by_copy(outputs, sqs=sqs) == 18
    moved = []
    while messages := sqs.receive_message(QueueUrl=outputs.queue_url, MaxNumberOfMessages=10).get("Messages"):
        moved.extend(m["Body"] for m in messages)
        sqs.delete_message_batch(
            QueueUrl=outputs.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
    assert sorted(moved) == sorted(bodies)
    assert redrive_by_copy(outputs, sqs=sqs) == 0


def test_outputs_are_read_from_the_stack() -> None:
    class FakeCloudFormation:
        def describe_stacks(self, StackName: str) -> dict[str, Any]:
            keys = {
                "ProjectVersionArn": VERSION_ARN,
                "ProjectArn": PROJECT_ARN,
                "IngestQueueUrl": "q",
                "DeadLetterQueueUrl": "d",
                "EventSourceMappingId": "e",
                "ModelManagerFunctionName": "f",
            }
            return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in keys.items()]}]}

    outputs = StackOutputs.from_cloudformation(FakeCloudFormation(), "Autolabel")
    assert outputs == StackOutputs(VERSION_ARN, PROJECT_ARN, "q", "d", "e", model_manager=True)
