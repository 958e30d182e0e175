"""Manager runs with the backfill lane (moto SQS; fakes for the model and the two triggers)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from moto import mock_aws

from local.fakes.model_lifecycle import FakeEventSourceMappings
from manager.adapters import LabelerTrigger, QueueBacklog
from manager.handler import Manager
from tests.integration.manager.test_manager_runs import World


class BackfillWorld(World):
    def __init__(self) -> None:
        super().__init__(trigger=False)
        self.backfill_url = self.sqs.create_queue(QueueName="backfill")["QueueUrl"]
        self.backfill_dlq = self.sqs.create_queue(QueueName="backfill-dlq")["QueueUrl"]
        self.backfill_trigger = FakeEventSourceMappings(enabled=True)  # a stray enabled trigger
        self.config = dataclasses.replace(
            self.config,
            dead_letter_queue_url=self.sqs.create_queue(QueueName="dlq")["QueueUrl"],
            backfill_queue_url=self.backfill_url,
            backfill_dead_letter_queue_url=self.backfill_dlq,
            backfill_event_source_mapping_id="backfill-esm",
            outage_grace_minutes=30,
        )
        self.manager = self.build()

    def build(self, **kwargs: object) -> Manager:
        manager = super().build(**kwargs)  # type: ignore[arg-type]
        if hasattr(self, "backfill_trigger"):
            manager.backfill_queue = QueueBacklog(self.sqs, self.backfill_url)
            manager.backfill_trigger = LabelerTrigger(self.backfill_trigger, "backfill-esm")
        return manager

    def backfill(self, n: int) -> None:
        for i in range(n):
            self.sqs.send_message(QueueUrl=self.backfill_url, MessageBody=f"listed {i}")

    def depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


@pytest.fixture
def world() -> Iterator[BackfillWorld]:
    with mock_aws():
        yield BackfillWorld()


def test_a_backfill_alone_starts_the_model_and_both_triggers_follow_it(world: BackfillWorld) -> None:
    world.manager.run_once()
    assert world.backfill_trigger.enabled is False  # paused: the model is not running
    world.backfill(12)
    world.every_minute(1)
    assert len(world.model.starts) == 1
    world.every_minute(9)  # RUNNING after 8 minutes
    assert world.model.status == "RUNNING"
    assert world.trigger.enabled is True and world.backfill_trigger.enabled is True
    world.every_minute(20)  # the backfill is still waiting: not idle
    assert world.model.stops == 0
    while messages := world.sqs.receive_message(QueueUrl=world.backfill_url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            world.sqs.delete_message(QueueUrl=world.backfill_url, ReceiptHandle=message["ReceiptHandle"])
    world.every_minute(17)
    assert world.model.stops == 1
    assert world.trigger.enabled is False and world.backfill_trigger.enabled is False


def test_backfill_work_waiting_past_the_grace_goes_to_the_backfill_dlq(world: BackfillWorld) -> None:
    world.model.set_status("FAILED")
    world.backfill(4)
    world.upload(2)
    world.every_minute(31)
    assert world.depth(world.backfill_url) == 0 and world.depth(world.backfill_dlq) == 4
    assert world.depth(world.queue_url) == 0 and world.depth(world.config.dead_letter_queue_url or "") == 2
