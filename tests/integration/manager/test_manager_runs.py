"""Manager runs end to end: moto for SQS, DynamoDB and EventBridge; in-memory fakes with a
controllable clock for the model lifecycle and the labeler's trigger (moto has neither)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local.emulator import consumed_events
from local.fakes.faults import client_error
from local.fakes.model_lifecycle import FakeEventSourceMappings, FakeModelLifecycle, create_manager_resources
from local.outage_sim import sqs_follows
from manager.config import ManagerConfig
from manager.handler import Manager
from tests.unit.manager.test_logic import PROJECT_ARN, VERSION_ARN


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


class World:
    def __init__(self, *, status: str = "STOPPED", fails_to_start: bool = False, trigger: bool = True) -> None:
        self.clock = Clock()
        self.sqs, ddb, events = boto3.client("sqs"), boto3.client("dynamodb"), boto3.client("events")
        self.queue_url = create_manager_resources(self.sqs, ddb, events).queue_url
        self.consumer = self.sqs.create_queue(QueueName="consumer")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.consumer, AttributeNames=["QueueArn"])["Attributes"]
        events.put_rule(Name="all", EventBusName="bus", EventPattern=json.dumps({"source": ["autolabel"]}))
        events.put_targets(Rule="all", EventBusName="bus", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])
        self.model = FakeModelLifecycle(
            lambda: self.clock().timestamp(), status=status, start_minutes=8, fails_to_start=fails_to_start
        )
        self.trigger = FakeEventSourceMappings(enabled=trigger)
        self.config = ManagerConfig(
            VERSION_ARN,
            PROJECT_ARN,
            self.queue_url,
            "esm-uuid",
            "manager-state",
            "bus",
            min_inference_units=2,
            max_inference_units=3,
        )
        self.manager = self.build()

    def build(self, *, dynamodb: Any = None, rekognition: Any = None) -> Manager:
        return Manager.from_clients(
            self.config,
            rekognition=rekognition or self.model,
            sqs=self.sqs,
            lambda_client=self.trigger,
            dynamodb=dynamodb or boto3.client("dynamodb"),
            events=boto3.client("events"),
            clock=self.clock,
        )

    def upload(self, n: int) -> None:
        for i in range(n):
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=f"image {i}")

    def process_all(self) -> None:
        """The labeler consuming the queue (only legal while its trigger is enabled)."""
        assert self.trigger.enabled and self.model.status == "RUNNING"
        while messages := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def every_minute(self, minutes: int) -> None:
        for _ in range(minutes):
            self.clock.advance(1)
            self.manager.run_once()

    def changes(self) -> list[tuple[str, str]]:
        return [
            (e["detail"]["previousStatus"], e["detail"]["status"])
            for e in consumed_events(self.sqs, self.consumer)
            if e["detail-type"] == "Model State Changed"
        ]


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        yield World()


def test_full_cycle_start_on_work_resume_trigger_then_stop_when_idle(world: World) -> None:
    world.manager.run_once()
    assert world.model.starts == [] and world.trigger.enabled is False  # idle: trigger paused, model off
    world.upload(25)
    world.every_minute(1)
    assert world.model.starts == [{"ProjectVersionArn": VERSION_ARN, "MinInferenceUnits": 2, "MaxInferenceUnits": 3}]
    assert world.changes() == [("STOPPED", "STARTING")]
    world.every_minute(7)  # still starting: messages wait, untouched
    assert world.trigger.enabled is False and len(world.model.starts) == 1
    world.every_minute(2)  # RUNNING now
    assert world.trigger.enabled is True
    world.process_all()
    world.every_minute(14)
    assert world.model.stops == 0
    world.every_minute(2)
    assert world.model.stops == 1 and world.trigger.enabled is False
    assert world.changes() == [("RUNNING", "STOPPING")]
    world.every_minute(5)
    assert world.model.status == "STOPPED" and world.model.stops == 1 and world.changes() == []


def test_messages_never_see_a_model_that_is_not_running(world: World) -> None:
    world.upload(3)
    for _ in range(12):
        world.every_minute(1)
        assert not world.trigger.enabled or world.model.status == "RUNNING"
    attributes = world.sqs.get_queue_attributes(QueueUrl=world.queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "3"  # all still waiting, none received
    assert world.trigger.updates == [False, True]


def test_concurrent_runs_do_not_start_twice(world: World) -> None:
    world.upload(1)
    other = world.build()
    assert world.manager.store.acquire("someone-else", 50) is not None  # another run holds the lease
    assert other.run_once() is None and world.model.starts == []
    world.clock.advance(1)  # lease expired
    plans = [world.manager.run_once("a"), other.run_once("b")]
    assert len(world.model.starts) == 1
    assert sum(bool(p and p.start) for p in plans) == 1


def test_model_already_starting_is_not_started_again(world: World) -> None:
    world.upload(1)
    world.every_minute(1)
    world.model.start_minutes = 60
    world.every_minute(10)
    assert len(world.model.starts) == 1


def test_model_that_fails_to_start_keeps_the_trigger_paused_and_is_alarmed(
    capsys: pytest.CaptureFixture[str], lambda_context: Any
) -> None:
    from manager import handler

    with mock_aws():
        world = World(fails_to_start=True)
        world.upload(2)
        world.every_minute(1)
        world.clock.advance(10)
        handler.use_manager(world.manager)
        try:
            assert handler.handler({}, lambda_context)["triggerEnabled"] is False  # the scheduled entry point
        finally:
            handler.use_manager(None)
        assert world.model.status == "FAILED"
        assert world.trigger.enabled is False and len(world.model.starts) == 1  # no start loop
        emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
        assert emf[-1]["ModelFailed"] == [1.0] and emf[-1]["ModelRunning"] == [0.0]
        assert emf[-1]["ModelKeptOn"] == [0.0]  # not running idle on purpose: the cost guard stays armed
        assert emf[-1]["WorkWaitingOnUnusableModel"] == [1.0]  # the WorkWaitsOnUnusableModel alarm's metric
        assert emf[-1]["WorkWaitingMinutes"] == [10.0] and emf[-1]["MessagesMovedToDeadLetterQueue"] == [0.0]


def test_an_always_on_model_says_so_to_silence_the_cost_guard(
    capsys: pytest.CaptureFixture[str], lambda_context: Any
) -> None:
    from dataclasses import replace

    from manager import handler

    with mock_aws():
        world = World(status="RUNNING")
        world.config = replace(world.config, always_on=True)
        world.manager = world.build()
        handler.use_manager(world.manager)
        try:
            handler.handler({}, lambda_context)
        finally:
            handler.use_manager(None)
        emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
        assert emf[-1]["ModelKeptOn"] == [1.0] and emf[-1]["ModelRunning"] == [1.0]


def test_model_started_elsewhere_is_used_and_not_stopped() -> None:
    with mock_aws():
        world = World(status="RUNNING", trigger=False)
        world.every_minute(60)
        assert world.trigger.enabled is True and world.model.stops == 0 and world.model.starts == []


def test_always_on_keeps_it_running(world: World) -> None:
    from dataclasses import replace

    world.config = replace(world.config, always_on=True)
    world.manager = world.build()
    world.every_minute(120)
    assert len(world.model.starts) == 1 and world.model.stops == 0 and world.trigger.enabled


def test_state_survives_between_runs(world: World) -> None:
    world.upload(1)
    world.every_minute(1)
    stored = boto3.client("dynamodb").get_item(TableName="manager-state", Key={"pk": {"S": VERSION_ARN}})["Item"]
    state: dict[str, Any] = json.loads(stored["state"]["S"])
    assert state["started_by_us"] is True and "leaseUntil" not in stored


def test_project_arn_is_looked_up_once_when_not_configured() -> None:
    from dataclasses import replace

    with mock_aws():
        world = World()
        world.config = replace(world.config, project_arn=None)
        world.manager = world.build()
        world.upload(1)
        world.every_minute(3)
        assert world.model.project_lookups == 1 and len(world.model.starts) == 1


class Killed(BaseException):
    """The Lambda instance dies (timeout, out of memory): nothing after this point runs."""


class StateSaveFaults:
    """The state table's client, with a save that fails (or a process that dies) right after a start."""

    def __init__(self, real: Any, model: FakeModelLifecycle) -> None:
        self._real = real
        self._model = model
        self.fail_save_after_start = False
        self.dead = False
        self.failed_saves = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def update_item(self, **request: Any) -> Any:
        if self.dead:
            raise Killed
        releasing = "REMOVE leaseUntil" in request["UpdateExpression"]
        if releasing and self.fail_save_after_start and self._model.starts and not self.failed_saves:
            self.failed_saves += 1
            raise client_error("InternalServerError", "injected: state save failed", 500, "UpdateItem")
        return self._real.update_item(**request)


class DiesAfterStart:
    """Rekognition whose StartProjectVersion succeeds, then the calling process dies."""

    def __init__(self, model: FakeModelLifecycle, faults: StateSaveFaults) -> None:
        self._model = model
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def start_project_version(self, **request: Any) -> dict[str, Any]:
        self._model.start_project_version(**request)  # the model starts (and is billed) ...
        self._faults.dead = True  # ... and this process dies before saving anything
        raise Killed


def run_model_through_a_burst(world: World) -> None:
    """From a start already asked for: RUNNING, the work labeled, then idle past idleMinutes."""
    world.every_minute(9)
    assert world.model.status == "RUNNING" and world.trigger.enabled
    world.process_all()
    world.every_minute(17)


def test_model_started_just_before_a_failed_state_save_is_still_stopped_when_idle(world: World) -> None:
    faults = StateSaveFaults(boto3.client("dynamodb"), world.model)
    faults.fail_save_after_start = True
    world.manager = world.build(dynamodb=faults)
    world.upload(5)
    world.clock.advance(1)
    with pytest.raises(ClientError):
        world.manager.run_once()  # started the model, then could not save and release
    assert len(world.model.starts) == 1 and faults.failed_saves == 1
    run_model_through_a_burst(world)
    assert world.model.stops == 1, "a model this manager started must not be left running (about $4/h per unit)"
    assert world.trigger.enabled is False


def test_model_started_by_a_run_that_died_before_saving_is_still_stopped_when_idle(world: World) -> None:
    faults = StateSaveFaults(boto3.client("dynamodb"), world.model)
    world.manager = world.build(dynamodb=faults, rekognition=DiesAfterStart(world.model, faults))
    world.upload(5)
    world.clock.advance(1)
    with pytest.raises(Killed):
        world.manager.run_once()
    assert len(world.model.starts) == 1
    faults.dead = False  # the next scheduled run is a fresh instance
    world.manager = world.build()
    run_model_through_a_burst(world)
    assert world.model.stops == 1 and world.trigger.enabled is False


class SqsFaults:
    """The manager's SQS client with a DLQ that refuses one message, or a delete that fails."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.refuse_first_entry = False
        self.fail_deletes = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if not self.refuse_first_entry:
            return dict(self._real.send_message_batch(QueueUrl=QueueUrl, Entries=Entries))
        sent = self._real.send_message_batch(QueueUrl=QueueUrl, Entries=Entries[1:])
        refused = {"Id": Entries[0]["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected"}
        return {"Successful": sent.get("Successful", []), "Failed": [refused]}

    def delete_message_batch(self, **request: Any) -> dict[str, Any]:
        if self.fail_deletes:
            raise client_error("InternalError", "injected: delete failed", 500, "DeleteMessageBatch")
        return dict(self._real.delete_message_batch(**request))


@pytest.fixture
def outage() -> Iterator[tuple[World, SqsFaults, str]]:
    """A FAILED model, a 60-minute grace, and moto's SQS on the world's clock (visibility timeouts follow it)."""
    with mock_aws():
        world = World(status="FAILED", trigger=False)
        with sqs_follows(world.clock):
            yield outage_world(world)


def outage_world(world: World, grace_minutes: int = 60) -> tuple[World, SqsFaults, str]:
    from dataclasses import replace

    dlq = world.sqs.get_queue_url(QueueName="ingest-dlq")["QueueUrl"]
    world.config = replace(world.config, dead_letter_queue_url=dlq, outage_grace_minutes=grace_minutes)
    faults = SqsFaults(world.sqs)
    world.manager = Manager.from_clients(
        world.config,
        rekognition=world.model,
        sqs=faults,
        lambda_client=world.trigger,
        dynamodb=boto3.client("dynamodb"),
        events=boto3.client("events"),
        clock=world.clock,
    )
    return world, faults, dlq


def bodies(sqs: Any, url: str) -> list[str]:
    found: list[str] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600).get("Messages"):
        found.extend(m["Body"] for m in messages)
    return sorted(found)


def test_after_the_grace_waiting_work_moves_to_the_dlq_with_its_body_and_a_reason(
    outage: tuple[World, SqsFaults, str],
) -> None:
    world, _faults, dlq = outage
    world.upload(25)
    world.every_minute(60)  # the first run starts the clock: 59 minutes waited
    assert world.manager.last_moved == 0 and bodies(world.sqs, dlq) == []
    world.every_minute(1)
    assert world.manager.last_moved == 25
    (message,) = world.sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"], VisibilityTimeout=3600)[
        "Messages"
    ]
    assert "FAILED" in message["MessageAttributes"]["autolabelDeadLetteredBecause"]["StringValue"]
    world.clock.advance(30)
    assert sorted([message["Body"], *bodies(world.sqs, dlq)]) == sorted(f"image {i}" for i in range(25))
    assert bodies(world.sqs, world.queue_url) == [] and world.model.starts == []


def test_a_move_sends_before_it_deletes_so_a_failure_duplicates_and_never_loses(
    outage: tuple[World, SqsFaults, str],
) -> None:
    world, faults, dlq = outage
    world.upload(3)
    world.every_minute(60)  # the first run starts the clock: 59 minutes waited
    faults.fail_deletes = True
    with pytest.raises(ClientError):
        world.every_minute(1)  # sent to the DLQ, then the delete failed
    faults.fail_deletes = False
    world.every_minute(2)  # the originals are visible again after the move's 60 s: moved again
    assert bodies(world.sqs, world.queue_url) == []
    assert bodies(world.sqs, dlq) == sorted(["image 0", "image 1", "image 2"] * 2)  # duplicates, none lost


def test_a_message_the_dlq_refuses_stays_in_the_ingest_queue(outage: tuple[World, SqsFaults, str]) -> None:
    world, faults, dlq = outage
    world.upload(3)
    world.every_minute(60)  # the first run starts the clock: 59 minutes waited
    faults.refuse_first_entry = True
    world.every_minute(1)
    assert world.manager.last_moved == 2
    world.clock.advance(2)
    assert len(bodies(world.sqs, world.queue_url)) == 1 and len(bodies(world.sqs, dlq)) == 2
