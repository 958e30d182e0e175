"""Operator commands against moto (SQS) and the lifecycle/trigger fakes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from autolabel.errors import ParameterError, ServiceError
from autolabel.operations import (
    StackOutputs,
    cancel_redrive,
    model_start,
    model_status,
    model_stop,
    redrive,
    redrive_by_copy,
)
from local.fakes.model_lifecycle import FakeEventSourceMappings, FakeModelLifecycle
from tests.support.cli import RunCli
from tests.unit.manager.test_logic import PROJECT_ARN, VERSION_ARN


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
    moved: list[str] = []
    while messages := sqs.receive_message(QueueUrl=outputs.queue_url, MaxNumberOfMessages=10).get("Messages"):
        moved.extend(m["Body"] for m in messages)
        sqs.delete_message_batch(
            QueueUrl=outputs.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
    assert sorted(moved) == sorted(bodies)
    assert redrive_by_copy(outputs, sqs=sqs) == 0


def test_outputs_are_read_from_the_stack() -> None:  # kept from `python -m ops`
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


# --- dlq redrive with SQS's message move task (moto has none: botocore's Stubber, the real model) ----

DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:dlq"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:ingest"
STUB_OUTPUTS = StackOutputs(
    VERSION_ARN,
    PROJECT_ARN,
    "https://sqs.us-east-1.amazonaws.com/123456789012/ingest",
    "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
    "esm",
    model_manager=True,
)


@pytest.fixture
def stubbed_sqs() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("sqs", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _never_sleep(seconds: float) -> None:
    raise AssertionError(f"slept {seconds}s")


def _arns(stubber: Stubber) -> None:
    for url, arn in ((STUB_OUTPUTS.dead_letter_queue_url, DLQ_ARN), (STUB_OUTPUTS.queue_url, QUEUE_ARN)):
        stubber.add_response(
            "get_queue_attributes", {"Attributes": {"QueueArn": arn}}, {"QueueUrl": url, "AttributeNames": ["QueueArn"]}
        )


def _tasks(stubber: Stubber, *tasks: dict[str, Any]) -> None:
    stubber.add_response("list_message_move_tasks", {"Results": list(tasks)}, {"SourceArn": DLQ_ARN, "MaxResults": 10})


def _task(status: str, moved: int, handle: str = "h1", **extra: Any) -> dict[str, Any]:
    return {
        "TaskHandle": handle,
        "Status": status,
        "SourceArn": DLQ_ARN,
        "DestinationArn": QUEUE_ARN,
        "ApproximateNumberOfMessagesMoved": moved,
        "ApproximateNumberOfMessagesToMove": 30,
        **extra,
    }


def test_redrive_starts_a_move_task_and_follows_it(stubbed_sqs: tuple[Any, Stubber]) -> None:
    sqs, stubber = stubbed_sqs
    _arns(stubber)
    _tasks(stubber, _task("COMPLETED", 5, handle="old"))  # an earlier, finished task does not block
    stubber.add_response(
        "start_message_move_task",
        {"TaskHandle": "h1"},
        {"SourceArn": DLQ_ARN, "DestinationArn": QUEUE_ARN, "MaxNumberOfMessagesPerSecond": 50},
    )
    _tasks(stubber, _task("RUNNING", 0), _task("COMPLETED", 5, handle="old"))
    _tasks(stubber, _task("RUNNING", 12))
    _tasks(stubber, _task("COMPLETED", 30))
    lines: list[str] = []
    sleeps: list[float] = []
    task = redrive(STUB_OUTPUTS, sqs=sqs, max_per_second=50, progress=lines.append, sleep=sleeps.append, poll_seconds=2)
    assert task["Status"] == "COMPLETED"
    assert lines == [
        "redrive RUNNING: 0 of 30 message(s) moved",
        "redrive RUNNING: 12 of 30 message(s) moved",
        "redrive COMPLETED: 30 of 30 message(s) moved",
    ]
    assert sleeps == [2, 2]


def test_redrive_refuses_while_one_runs(stubbed_sqs: tuple[Any, Stubber]) -> None:
    sqs, stubber = stubbed_sqs
    _arns(stubber)
    _tasks(stubber, _task("RUNNING", 3))
    with pytest.raises(ParameterError, match="already running"):
        redrive(STUB_OUTPUTS, sqs=sqs, sleep=_never_sleep)


def test_a_failed_task_is_a_service_error_with_its_reason(stubbed_sqs: tuple[Any, Stubber]) -> None:
    sqs, stubber = stubbed_sqs
    _arns(stubber)
    _tasks(stubber)
    stubber.add_response("start_message_move_task", {"TaskHandle": "h1"})
    _tasks(stubber, _task("FAILED", 3, FailureReason="AWS.SimpleQueueService.NonExistentQueue"))
    with pytest.raises(ServiceError, match="NonExistentQueue"):
        redrive(STUB_OUTPUTS, sqs=sqs, sleep=_never_sleep)


def test_cancel(stubbed_sqs: tuple[Any, Stubber]) -> None:
    sqs, stubber = stubbed_sqs
    stubber.add_response("get_queue_attributes", {"Attributes": {"QueueArn": DLQ_ARN}})
    _tasks(stubber, _task("RUNNING", 7))
    stubber.add_response("cancel_message_move_task", {"ApproximateNumberOfMessagesMoved": 7}, {"TaskHandle": "h1"})
    assert cancel_redrive(STUB_OUTPUTS, sqs=sqs) == "cancelling the redrive; 7 message(s) were moved"


def test_the_cli_shows_progress_and_the_result(
    stubbed_sqs: tuple[Any, Stubber], cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs, stubber = stubbed_sqs
    monkeypatch.setenv("AUTOLABEL_QUEUE_URL", STUB_OUTPUTS.queue_url)
    monkeypatch.setenv("AUTOLABEL_DLQ_URL", STUB_OUTPUTS.dead_letter_queue_url)
    _arns(stubber)
    _tasks(stubber)
    stubber.add_response("start_message_move_task", {"TaskHandle": "h1"})
    _tasks(stubber, _task("COMPLETED", 30))
    run = cli("dlq", "redrive", clients={"sqs": sqs})
    assert (run.code, run.out, run.err) == (
        0,
        "redrive COMPLETED: 30 of 30 message(s) moved\n",
        "redrive COMPLETED: 30 of 30 message(s) moved\n",
    )


def test_the_cli_suggests_by_copy_where_move_tasks_do_not_exist(
    stubbed_sqs: tuple[Any, Stubber], cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs, stubber = stubbed_sqs
    monkeypatch.setenv("AUTOLABEL_QUEUE_URL", STUB_OUTPUTS.queue_url)
    monkeypatch.setenv("AUTOLABEL_DLQ_URL", STUB_OUTPUTS.dead_letter_queue_url)
    _arns(stubber)
    stubber.add_client_error("list_message_move_tasks", "InternalFailure", "<html>500</html>", http_status_code=500)
    run = cli("dlq", "redrive", clients={"sqs": sqs})
    assert (run.code, run.err) == (
        254,
        "autolabel: this endpoint does not implement ListMessageMoveTasks (HTTP 500): use --by-copy\n",
    )


def test_the_cli_redrives_by_copy_in_moto(
    aws: tuple[Any, StackOutputs], cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs, outputs = aws
    monkeypatch.setenv("AUTOLABEL_QUEUE_URL", outputs.queue_url)
    monkeypatch.setenv("AUTOLABEL_DLQ_URL", outputs.dead_letter_queue_url)
    for n in range(3):
        sqs.send_message(QueueUrl=outputs.dead_letter_queue_url, MessageBody=str(n))
    assert cli("dlq", "redrive", "--by-copy", "--limit", "2").out == "moved 2 message(s) back\n"
    assert cli("dlq", "redrive", "--limit", "2").code == 252  # --limit only means something by copy


def test_model_commands_through_the_cli(
    cli: RunCli, monkeypatch: pytest.MonkeyPatch, aws: tuple[Any, StackOutputs]
) -> None:
    sqs, outputs = aws
    for variable, value in {
        "AUTOLABEL_PROJECT_VERSION_ARN": VERSION_ARN,
        "AUTOLABEL_PROJECT_ARN": PROJECT_ARN,
        "AUTOLABEL_QUEUE_URL": outputs.queue_url,
        "AUTOLABEL_DLQ_URL": outputs.dead_letter_queue_url,
        "AUTOLABEL_EVENT_SOURCE_MAPPING_ID": "esm-uuid",
    }.items():
        monkeypatch.setenv(variable, value)
    model = FakeModelLifecycle(time.time)
    trigger = FakeEventSourceMappings(enabled=True)
    # No stack in this account: the variables alone configure it; ModelManagerFunctionName is absent.
    clients = {"rekognition": model, "sqs": sqs, "lambda": trigger, "cloudformation": boto3.client("cloudformation")}
    status = cli("model", "status", "--output", "json", clients=clients)
    assert json.loads(status.out)["status"] == "STOPPED"
    assert json.loads(status.out)["modelManager"] == "off"
    assert "status" in cli("model", "status", clients=clients).out.split()
    assert cli("model", "start", "--min-units", "2", clients=clients).out.startswith("starting with 2")
    assert model.starts == [{"ProjectVersionArn": VERSION_ARN, "MinInferenceUnits": 2}]
    assert cli("model", "start", "--min-units", "0", clients=clients).code == 252
    assert cli("model", "stop", clients=clients).code == 0 and trigger.updates == [False]


def test_a_redrive_by_copy_answers_in_the_output_asked_for(cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        ingest = sqs.create_queue(QueueName="ingest")["QueueUrl"]
        sqs.send_message(QueueUrl=dlq, MessageBody="{}")
        monkeypatch.setenv("AUTOLABEL_DLQ_URL", dlq)
        monkeypatch.setenv("AUTOLABEL_QUEUE_URL", ingest)
        assert json.loads(cli("dlq", "redrive", "--by-copy", "--output", "json").out) == {"moved": 1}
        assert cli("dlq", "redrive", "--by-copy").out == "moved 0 message(s) back\n"
