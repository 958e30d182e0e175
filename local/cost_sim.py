"""Cost simulation of the model manager over a bursty day (figures in docs/cost.md).

    python -m local.cost_sim
    python -m local.cost_sim --bursts 09:00,13:00,17:00 --burst-size 200 --start-minutes 10

The real manager (``manager.handler.Manager``: lease, observation, decision,
actions) runs once a simulated minute against moto (queue, state table, bus)
and the model lifecycle fake; the labeler drains the queue at a fixed rate
whenever its trigger is enabled. A fake clock makes a day take seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import boto3
from moto import mock_aws

from local.fakes.model_lifecycle import FakeEventSourceMappings, FakeModelLifecycle, create_manager_resources
from manager.config import ManagerConfig
from manager.handler import Manager
from manager.handler import logger as manager_logger

VERSION_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/sim/version/sim.1/1700000000000"
PROJECT_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/sim/1690000000000"
PRICE_PER_INFERENCE_UNIT_HOUR = 4.0
BILLED = frozenset({"STARTING", "RUNNING", "STOPPING"})  # pessimistic: billed from the start request


@dataclass(frozen=True)
class Result:
    billed_hours: float
    always_on_hours: float
    worst_first_image_wait_minutes: float
    images: int
    labeled: int
    receives_while_not_running: int
    starts: int
    stops: int

    @property
    def share(self) -> float:
        return self.billed_hours / self.always_on_hours


def simulate(
    bursts: list[str],
    *,
    burst_size: int,
    start_minutes: float,
    idle_minutes: int,
    images_per_minute: int,
    units: int = 1,
    hours: float = 24.0,
) -> Result:
    day = datetime(2026, 11, 24, tzinfo=UTC)
    now = [day]
    os.environ.update(AWS_ACCESS_KEY_ID="sim", AWS_SECRET_ACCESS_KEY="sim", AWS_DEFAULT_REGION="us-east-1")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        sqs, ddb, events = boto3.client("sqs"), boto3.client("dynamodb"), boto3.client("events")
        world = create_manager_resources(sqs, ddb, events)
        queue = world.queue_url
        model = FakeModelLifecycle(lambda: now[0].timestamp(), start_minutes=start_minutes)  # noqa: PLW0108 (reads the moving clock)
        trigger = FakeEventSourceMappings(enabled=False)
        config = ManagerConfig(
            VERSION_ARN,
            PROJECT_ARN,
            queue,
            "esm",
            world.state_table,
            world.bus,
            idle_minutes=idle_minutes,
            min_inference_units=units,
        )
        manager = Manager.from_clients(
            config, rekognition=model, sqs=sqs, lambda_client=trigger, dynamodb=ddb, events=events, clock=lambda: now[0]
        )
        arrivals = {day + timedelta(hours=int(b[:2]), minutes=int(b[3:])) for b in bursts}
        billed_minutes = 0
        labeled = burned = 0
        first_waits: list[float] = []
        waiting_since: datetime | None = None
        for _minute in range(int(hours * 60)):
            manager.run_once()  # the scheduled run; a burst arriving this minute waits for the next one
            if now[0] in arrivals:
                for start in range(0, burst_size, 10):
                    sqs.send_message_batch(
                        QueueUrl=queue,
                        Entries=[
                            {"Id": str(i), "MessageBody": json.dumps({"image": start + i})}
                            for i in range(min(10, burst_size - start))
                        ],
                    )
                waiting_since = now[0]
            if model.status in BILLED:
                billed_minutes += 1
            if trigger.enabled:  # the labeler's event source mapping polls
                budget = images_per_minute
                while budget and (
                    messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=min(10, budget)).get("Messages")
                ):
                    if model.status != "RUNNING":
                        burned += len(messages)  # ResourceNotReady: a receive spent for nothing
                        break
                    if waiting_since is not None:
                        first_waits.append((now[0] - waiting_since).total_seconds() / 60)
                        waiting_since = None
                    sqs.delete_message_batch(
                        QueueUrl=queue,
                        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                    )
                    labeled += len(messages)
                    budget -= len(messages)
            now[0] += timedelta(minutes=1)
        return Result(
            billed_hours=billed_minutes * units / 60,
            always_on_hours=hours * units,
            worst_first_image_wait_minutes=max(first_waits, default=float("nan")),
            images=burst_size * len(arrivals),
            labeled=labeled,
            receives_while_not_running=burned,
            starts=len(model.starts),
            stops=model.stops,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bursts", default="09:00,13:00,17:00", help="arrival times (UTC, HH:MM)")
    parser.add_argument("--burst-size", type=int, default=200)
    parser.add_argument("--start-minutes", type=float, default=10.0, help="time the model takes to start")
    parser.add_argument("--idle-minutes", type=int, default=15)
    parser.add_argument("--images-per-minute", type=int, default=300, help="what the running model labels")
    args = parser.parse_args(argv)
    manager_logger.setLevel("WARNING")  # one line per decision is too much for a day
    r = simulate(
        args.bursts.split(","),
        burst_size=args.burst_size,
        start_minutes=args.start_minutes,
        idle_minutes=args.idle_minutes,
        images_per_minute=args.images_per_minute,
    )
    lost = r.images - r.labeled
    print(
        f"Bursty day: {len(args.bursts.split(','))} bursts of {args.burst_size} images at {args.bursts} UTC; "
        f"model start {args.start_minutes:.0f} min, idle stop after {args.idle_minutes} min, "
        f"manager every minute"
    )
    print(
        f"Billed model-hours with the manager: {r.billed_hours:.2f} h (${r.billed_hours * 4:.2f}) vs always on: "
        f"{r.always_on_hours:.0f} h (${r.always_on_hours * 4:.0f}) = {100 * r.share:.1f}% (target <= 20%)"
    )
    print(
        f"Worst added latency for the first image of a burst: {r.worst_first_image_wait_minutes:.0f} min "
        f"(manager tick + model start)"
    )
    print(
        f"Images: {r.images} uploaded, {r.labeled} labeled, {lost} not labeled; receives spent on a model that "
        f"was not RUNNING: {r.receives_while_not_running} (so none can reach the DLQ); "
        f"{r.starts} starts, {r.stops} stops"
    )
    return 0 if lost == 0 and r.receives_while_not_running == 0 and r.share <= 0.2 else 1


if __name__ == "__main__":
    sys.exit(main())
