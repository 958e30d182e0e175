"""Two models, two lanes, one bucket: model A stays down while model B's images are labeled and announced.

``make local MODELS=2`` (``python -m local.two_models``). The stack is the
repository's app synthesized with two routes (the `models` context key, whose
labeler environment gives the routes); in moto: the bucket
notifies ``line-1/`` to lane A's queue and ``line-2/`` to lane B's; the real
labeler handler reads each lane through its own trigger (an event source
mapping poller that runs only while the manager has it enabled); the real
model manager (``ModelFleet``) runs both models, with fakes for the model
lifecycle (model A takes ``--a-start-minutes`` to start, B is running) on a
simulated one-minute clock. The transcript shows, minute by minute, each
model's status, its lane's trigger and what its queue holds.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from moto import mock_aws

from labeler.config import KeyRoute
from local.emulator import LocalResources, consumed_events, drain_queue, labeler_config
from local.fakes.fake_model import FakeCustomLabelsModel
from local.fakes.faults import client_error
from local.fakes.model_lifecycle import FakeModelLifecycle
from local.poller import EventSourceMappingPoller
from local.samples import make_image
from local.stack_template import (
    PLACEHOLDER_PROJECT_VERSION_ARN,
    StackFacts,
    facts_from_template,
    synthesize_template,
)
from local.wiring import deploy, install_labeler
from manager.adapters import STATE_KEY
from manager.config import ManagerConfig, ModelLane
from manager.handler import ModelFleet

MODEL_A = PLACEHOLDER_PROJECT_VERSION_ARN
MODEL_B = "arn:aws:rekognition:us-east-1:123456789012:project/line-2/version/line-2.1/1700000000001"
PREFIX_A, PREFIX_B = "line-1/", "line-2/"
IMAGE = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})


class SimulatedClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


class FakeModels:
    """The Rekognition client of both the manager and the labeler, for several model versions.

    Lifecycle calls go to each version's ``FakeModelLifecycle``; DetectCustomLabels
    answers (with the fake model) only while that version is RUNNING, else
    Rekognition's ``ResourceNotReadyException``.
    """

    def __init__(self, lifecycles: dict[str, FakeModelLifecycle], detector: FakeCustomLabelsModel) -> None:
        self.lifecycles = lifecycles
        self.detector = detector

    def _by_version_name(self, version_name: str) -> FakeModelLifecycle:
        return next(
            life for arn, life in self.lifecycles.items() if arn.split("/version/")[1].split("/")[0] == version_name
        )

    def describe_projects(self, ProjectNames: list[str]) -> dict[str, Any]:
        arn = f"arn:aws:rekognition:us-east-1:123456789012:project/{ProjectNames[0]}/1690000000000"
        return {"ProjectDescriptions": [{"ProjectArn": arn}]}

    def describe_project_versions(self, ProjectArn: str, VersionNames: list[str]) -> dict[str, Any]:
        return self._by_version_name(VersionNames[0]).describe_project_versions(ProjectArn, VersionNames)

    def start_project_version(self, **request: Any) -> dict[str, Any]:
        return self.lifecycles[request["ProjectVersionArn"]].start_project_version(**request)

    def stop_project_version(self, **request: Any) -> dict[str, Any]:
        return self.lifecycles[request["ProjectVersionArn"]].stop_project_version(**request)

    def detect_custom_labels(self, **request: Any) -> dict[str, Any]:
        status = self.lifecycles[request["ProjectVersionArn"]].status
        if status != "RUNNING":
            raise client_error("ResourceNotReadyException", f"model is {status}", operation="DetectCustomLabels")
        return self.detector.detect_custom_labels(**request)


class FakeTriggers:
    """GetEventSourceMapping / UpdateEventSourceMapping, one switch per mapping UUID."""

    def __init__(self, uuids: list[str]) -> None:
        self.enabled = dict.fromkeys(uuids, False)  # created paused, as with the manager

    def get_event_source_mapping(self, UUID: str) -> dict[str, Any]:
        return {"UUID": UUID, "State": "Enabled" if self.enabled[UUID] else "Disabled"}

    def update_event_source_mapping(self, UUID: str, Enabled: bool) -> dict[str, Any]:
        self.enabled[UUID] = Enabled
        return {"UUID": UUID, "State": "Enabling" if Enabled else "Disabling"}


@dataclass
class Lane:
    name: str
    prefix: str
    model: str
    queue_url: str
    dead_letter_queue_url: str
    trigger_id: str
    poller: EventSourceMappingPoller


@dataclass
class TwoModels:
    resources: LocalResources
    lanes: list[Lane]
    models: FakeModels
    triggers: FakeTriggers
    fleet: ModelFleet
    clock: SimulatedClock
    announced: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def upload(self, key: str) -> None:
        boto3.client("s3").put_object(Bucket=self.resources.bucket, Key=key, Body=IMAGE)

    def minute(self) -> None:
        """One manager run, then each enabled lane's trigger reads its queue until it is empty."""
        self.fleet.run_once()
        for lane in self.lanes:
            if self.triggers.enabled[lane.trigger_id]:
                while lane.poller.poll_once():
                    pass
        self.announced.extend(consumed_events(boto3.client("sqs"), self.resources.consumer_queue_url))

    def waiting(self, lane: Lane) -> int:
        attributes = boto3.client("sqs").get_queue_attributes(
            QueueUrl=lane.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def labeled(self, lane: Lane) -> list[str]:
        return sorted(
            e["detail"]["key"]
            for e in self.announced
            if e["detail-type"] == "Custom Labels Detected" and e["detail"]["projectVersionArn"] == lane.model
        )

    def line(self, minute: int) -> str:
        parts = []
        for lane in self.lanes:
            status = self.models.lifecycles[lane.model].status
            trigger = "on " if self.triggers.enabled[lane.trigger_id] else "off"
            parts.append(
                f"{lane.name} {status:<8} trigger {trigger} waiting {self.waiting(lane)} "
                f"announced {len(self.labeled(lane))}"
            )
        return f"min {minute:>2} | " + " | ".join(parts)


def _lane_queue(sqs: Any, name: str, facts_visibility: int, max_receive_count: int) -> tuple[str, str, str]:
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(facts_visibility),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn, dlq_url


@functools.cache
def two_model_facts() -> StackFacts:
    """The repository's app synthesized with two routes (the `models` context key)."""
    routes = [{"prefix": PREFIX_A, "projectVersionArn": MODEL_A}, {"prefix": PREFIX_B, "projectVersionArn": MODEL_B}]
    return facts_from_template(
        synthesize_template({"models": json.dumps(routes), "projectVersionArn": "", "projectArn": ""})
    )


def build(*, a_start_minutes: float) -> TwoModels:
    """Call inside ``mock_aws()``: two lanes on one bucket, the labeler and the manager wired to them."""
    facts = two_model_facts()
    resources = deploy(facts, visibility_timeout=2)
    sqs, s3 = boto3.client("sqs"), boto3.client("s3")
    # Lane A is the deployment's first lane (its queue); lane B gets its own queue and DLQ.
    b_url, b_arn, b_dlq = _lane_queue(sqs, "autolabel-ingest-line-2", 2, facts.max_receive_count)
    s3.put_bucket_notification_configuration(
        Bucket=resources.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": facts.notification_events,
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
                }
                for arn, prefix in ((resources.queue_arn, PREFIX_A), (b_arn, PREFIX_B))
            ]
        },
    )
    for url in (resources.queue_url, b_url):
        drain_queue(sqs, url)  # the s3:TestEvents of the configuration above
    clock = SimulatedClock()
    seconds = lambda: clock().timestamp()  # noqa: E731
    models = FakeModels(
        {
            MODEL_A: FakeModelLifecycle(seconds, status="STOPPED", start_minutes=a_start_minutes),
            MODEL_B: FakeModelLifecycle(seconds, status="RUNNING"),
        },
        FakeCustomLabelsModel(s3),
    )
    # The labeler as deployed with two routes (its MODEL_ROUTES from the template): each record's model is its key's.
    config = labeler_config(facts, resources)
    assert config.routes == (KeyRoute(PREFIX_A, MODEL_A), KeyRoute(PREFIX_B, MODEL_B)), config.routes
    invoke = install_labeler(config, models)
    lanes = [
        Lane(
            "A",
            PREFIX_A,
            MODEL_A,
            resources.queue_url,
            resources.dead_letter_queue_url,
            "esm-a",
            _poller(resources.queue_url, resources.queue_arn, invoke),
        ),
        Lane("B", PREFIX_B, MODEL_B, b_url, b_dlq, "esm-b", _poller(b_url, b_arn, invoke)),
    ]
    triggers = FakeTriggers([lane.trigger_id for lane in lanes])
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="autolabel-manager-state",
        KeySchema=[{"AttributeName": STATE_KEY, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": STATE_KEY, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    manager_config = ManagerConfig(
        MODEL_A,
        None,
        resources.queue_url,
        "esm-a",
        "autolabel-manager-state",
        resources.event_bus_name,
        dead_letter_queue_url=resources.dead_letter_queue_url,
        other_lanes=(ModelLane(MODEL_B, None, b_url, b_dlq, "esm-b"),),
    )
    fleet = ModelFleet.from_clients(
        manager_config,
        rekognition=models,
        sqs=sqs,
        lambda_client=triggers,
        dynamodb=dynamodb,
        events=boto3.client("events"),
        clock=clock,
    )
    return TwoModels(resources, lanes, models, triggers, fleet, clock)


def _poller(url: str, arn: str, invoke: Callable[..., Any]) -> EventSourceMappingPoller:
    return EventSourceMappingPoller(boto3.client("sqs"), url, arn, invoke, batch_size=10, retry_delay_seconds=0)


@contextmanager
def quiet_lambda_output() -> Iterator[None]:
    """The handler's JSON logs and EMF lines to nowhere: the transcript is the minute lines."""
    from local.wiring import lambda_output_to
    from manager import handler as manager_handler

    with open(os.devnull, "w") as sink, lambda_output_to(sink):
        manager_log = manager_handler.logger.registered_handler
        previous = manager_log.setStream(sink)  # type: ignore[attr-defined]
        try:
            yield
        finally:
            manager_log.setStream(previous)  # type: ignore[attr-defined]


def run(*, images: int, a_start_minutes: float, minutes: int, out: Any = sys.stdout) -> TwoModels:
    with mock_aws():
        world = build(a_start_minutes=a_start_minutes)
        for i in range(images):
            world.upload(f"{PREFIX_A}part-{i}.png")
            world.upload(f"{PREFIX_B}part-{i}.png")
        print(
            f"{images} images under {PREFIX_A} (model A: STOPPED, starts in {a_start_minutes:g} min) and "
            f"{images} under {PREFIX_B} (model B: RUNNING)",
            file=out,
        )
        with quiet_lambda_output():
            for minute in range(minutes):
                world.minute()
                print(world.line(minute), file=out)
                world.clock.advance(1)
        for lane in world.lanes:
            print(f"lane {lane.name}: announced {world.labeled(lane)}", file=out)
        return world


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3, help="images per prefix")
    parser.add_argument("--a-start-minutes", type=float, default=6, help="how long model A takes to start")
    parser.add_argument("--minutes", type=int, default=9, help="simulated minutes (manager runs)")
    args = parser.parse_args(argv)
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")  # the synth's banner
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    run(images=args.images, a_start_minutes=args.a_start_minutes, minutes=args.minutes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
