"""A model that cannot run for days: simulated against moto with a scaled clock.

    python -m local.outage_sim
    python -m local.outage_sim --outage-days 10 --grace-hours 48 --scale 48

The real manager (``manager.handler.Manager``) runs once a simulated minute
against moto (ingest queue + DLQ with the stack's redrive, state table, bus) and
the model lifecycle fake. Images arrive all along. The model runs, then its
version FAILS (or is deleted) for ``outage_days``, then an operator repairs it
and redrives the DLQ (``autolabel.operations.redrive_by_copy``, the real command); the labeler
drains the queue whenever its trigger is enabled and the model is RUNNING.

Scaled clock: moto's SQS reads the simulated clock (so visibility timeouts and
message expiry follow it), and every duration of the scenario - retention,
grace, outage - is divided by ``scale`` while the manager still runs every
simulated minute: with ``scale=48`` a 14.5-day outage against a 14-day retention
and a 24-hour grace takes about 7 simulated hours (about 500 manager runs,
seconds of real time). The claim checked: every image ends labeled or in the
DLQ, none expires. (A message moved to the DLQ is a new message there, kept 14
days from the move: an outage longer than grace + 14 days loses the oldest
ones from the DLQ too, after two weeks of alarms; try ``--outage-days 16``.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import boto3
from moto import mock_aws

from autolabel.operations import StackOutputs, redrive_by_copy
from local.fakes.model_lifecycle import FakeEventSourceMappings, FakeModelLifecycle, create_manager_resources
from manager.config import ManagerConfig
from manager.handler import Manager
from manager.handler import logger as manager_logger

VERSION_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/sim/version/sim.1/1700000000000"
PROJECT_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/sim/1690000000000"
DAY_MINUTES = 24 * 60
RUNNABLE = frozenset({"RUNNING", "STARTING", "STOPPING", "STOPPED", "TRAINING_COMPLETED"})


@dataclass
class OutageResult:
    uploaded: int = 0
    labeled: set[int] = field(default_factory=set)  # images with a result
    duplicates: int = 0  # deliveries of an image already labeled (the labeler dedupes them)
    dead_lettered: set[int] = field(default_factory=set)  # images found in the DLQ when the model was repaired
    moved_by_manager: int = 0  # messages the manager moved to the DLQ
    longest_wait_before_dlq_minutes: float = 0.0  # upload -> arrival in the DLQ, simulated (scaled) minutes
    minutes_waiting_on_unusable_model: int = 0  # what the WorkWaitsOnUnusableModel alarm watches
    receives_while_not_running: int = 0

    @property
    def lost(self) -> int:
        """Images neither labeled nor in the DLQ: expired from the ingest queue."""
        return self.uploaded - len(self.labeled | self.dead_lettered)


@contextmanager
def sqs_follows(clock: Callable[[], datetime]) -> Iterator[None]:
    """moto's SQS reads the simulated clock: visibility timeouts and retention expiry follow it."""

    def seconds() -> float:
        return clock().timestamp()

    with (
        mock.patch("moto.sqs.models.unix_time", lambda _dt=None: seconds()),
        mock.patch("moto.sqs.models.unix_time_millis", lambda _dt=None: seconds() * 1000.0),
    ):
        yield


def simulate_outage(
    *,
    outage_days: float = 14.5,
    grace_hours: float = 24.0,
    retention_seconds: int = 14 * 24 * 3600,
    scale: float = 48.0,
    images_per_hour: float = 12.0,
    start_minutes: float = 5.0,
    images_per_minute: int = 200,
    redrive_after_repair: bool = True,
    status_during_outage: str = "FAILED",
) -> OutageResult:
    """Run the scenario; durations are real-world ones, divided by ``scale`` in the simulation."""
    began = datetime(2026, 11, 2, tzinfo=UTC)
    clock = [began]
    os.environ.update(AWS_ACCESS_KEY_ID="sim", AWS_SECRET_ACCESS_KEY="sim", AWS_DEFAULT_REGION="us-east-1")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    scaled_retention = max(60, round(retention_seconds / scale))  # SQS's minimum is 60 s
    grace_minutes = max(1, round(grace_hours * 60 / scale))
    outage_minutes = round(outage_days * DAY_MINUTES / scale)
    result = OutageResult()
    uploaded_at: dict[int, datetime] = {}
    with mock_aws(), sqs_follows(lambda: clock[0]):
        sqs, ddb, events = boto3.client("sqs"), boto3.client("dynamodb"), boto3.client("events")
        world = create_manager_resources(sqs, ddb, events, retention_seconds=scaled_retention)
        model = FakeModelLifecycle(lambda: clock[0].timestamp(), start_minutes=start_minutes)  # noqa: PLW0108 (reads the moving clock)
        trigger = FakeEventSourceMappings(enabled=False)
        config = ManagerConfig(
            VERSION_ARN,
            PROJECT_ARN,
            world.queue_url,
            "esm",
            world.state_table,
            world.bus,
            dead_letter_queue_url=world.dead_letter_queue_url,
            outage_grace_minutes=grace_minutes,
        )
        manager = Manager.from_clients(
            config,
            rekognition=model,
            sqs=sqs,
            lambda_client=trigger,
            dynamodb=ddb,
            events=events,
            clock=lambda: clock[0],
        )
        outputs = StackOutputs(VERSION_ARN, PROJECT_ARN, world.queue_url, world.dead_letter_queue_url, "esm", True)
        fails_at, repaired_at = 60, 60 + outage_minutes  # an hour of normal work first
        uploads_until = repaired_at + 60
        every = max(1, round(60 / images_per_hour))
        minute = 0
        while True:
            if minute == fails_at:
                model.set_status(status_during_outage)
            if minute == repaired_at:
                model.set_status("STOPPED")  # the operator fixed the version; the manager starts it on work
                _collect_dead_letters(sqs, world.dead_letter_queue_url, uploaded_at, result)
            if minute == repaired_at + 1 and redrive_after_repair:
                redrive_by_copy(outputs, sqs=sqs)  # the operator, a minute later (the DLQ's messages are visible again)
            if minute < uploads_until and minute % every == 0:
                image = result.uploaded
                sqs.send_message(QueueUrl=world.queue_url, MessageBody=json.dumps({"image": image}))
                uploaded_at[image] = clock[0]
                result.uploaded += 1
            manager.run_once()
            observation = manager.last_observation
            if observation is not None and observation.work and observation.status not in RUNNABLE:
                result.minutes_waiting_on_unusable_model += 1
            result.moved_by_manager += manager.last_moved
            if trigger.enabled:
                _label(sqs, world.queue_url, model, images_per_minute, result)
            minute += 1
            clock[0] += timedelta(minutes=1)
            if minute > uploads_until and (minute > repaired_at + 6 * 60 or _drained(sqs, world.queue_url)):
                break
        if not redrive_after_repair:
            _collect_dead_letters(sqs, world.dead_letter_queue_url, uploaded_at, result)
    return result


def _label(sqs: Any, queue_url: str, model: FakeModelLifecycle, budget: int, result: OutageResult) -> None:
    """The labeler's event source mapping: receive, label while RUNNING, delete."""
    while budget > 0 and (
        messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=min(10, budget)).get("Messages")
    ):
        if model.status != "RUNNING":
            result.receives_while_not_running += len(messages)
            return  # ResourceNotReady: retried after the visibility timeout
        for message in messages:
            image = int(json.loads(message["Body"])["image"])
            if image in result.labeled:
                result.duplicates += 1  # the labeler's dedupe: no second call, no second event
            result.labeled.add(image)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        budget -= len(messages)


def _collect_dead_letters(sqs: Any, dlq_url: str, uploaded_at: dict[int, datetime], result: OutageResult) -> None:
    """Note which images are in the DLQ and how long each waited before getting there (they are
    visible again 30 simulated seconds later)."""
    seen: list[dict[str, Any]] = []
    while messages := sqs.receive_message(
        QueueUrl=dlq_url, MaxNumberOfMessages=10, AttributeNames=["SentTimestamp"], VisibilityTimeout=30
    ).get("Messages"):
        seen.extend(messages)
    for message in seen:
        image = int(json.loads(message["Body"])["image"])
        result.dead_lettered.add(image)
        arrived = datetime.fromtimestamp(int(message["Attributes"]["SentTimestamp"]) / 1000, UTC)
        waited = (arrived - uploaded_at[image]).total_seconds() / 60
        result.longest_wait_before_dlq_minutes = max(result.longest_wait_before_dlq_minutes, waited)


def _drained(sqs: Any, queue_url: str) -> bool:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 0
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outage-days", type=float, default=14.5, help="how long the model version is FAILED")
    parser.add_argument("--grace-hours", type=float, default=24.0, help="modelOutageGraceHours")
    parser.add_argument("--retention-days", type=float, default=14.0, help="the ingest queue's retention")
    parser.add_argument("--scale", type=float, default=48.0, help="every duration is divided by this")
    parser.add_argument("--images-per-hour", type=float, default=12.0)
    args = parser.parse_args(argv)
    manager_logger.setLevel("ERROR")  # one warning per move is too much for two weeks
    r = simulate_outage(
        outage_days=args.outage_days,
        grace_hours=args.grace_hours,
        retention_seconds=round(args.retention_days * 86400),
        scale=args.scale,
        images_per_hour=args.images_per_hour,
    )
    print(
        f"Model FAILED for {args.outage_days:g} days, ingest retention {args.retention_days:g} days, grace "
        f"{args.grace_hours:g} h (simulated at 1/{args.scale:g} scale; the manager runs every simulated minute)"
    )
    print(
        f"Images: {r.uploaded} uploaded, {len(r.labeled)} labeled, {len(r.dead_lettered)} were in the DLQ at the "
        f"repair (moved there by the manager: {r.moved_by_manager}), {r.lost} expired/lost; "
        f"{r.duplicates} duplicate deliveries (deduped)"
    )
    print(
        f"Longest wait before the DLQ: {r.longest_wait_before_dlq_minutes * args.scale / 60:.1f} h (real-world); "
        f"minutes with work waiting on an unusable model (alarmed): {r.minutes_waiting_on_unusable_model}"
    )
    return 0 if r.lost == 0 and len(r.labeled) == r.uploaded else 1


if __name__ == "__main__":
    sys.exit(main())
