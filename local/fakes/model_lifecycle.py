"""In-memory fakes with a controllable clock for the model manager's tests and the
cost simulation: a Custom Labels model version's lifecycle (moto does not
implement these APIs) and the labeler's event source mapping switch."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local.fakes.faults import client_error
from manager.adapters import STATE_KEY

DELETED = "DELETED"  # not a Rekognition status: the fake answers "no such version"


class FakeModelLifecycle:
    """DescribeProjectVersions / StartProjectVersion / StopProjectVersion, boto3-shaped."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        status: str = "STOPPED",
        start_minutes: float = 10.0,
        stop_minutes: float = 1.0,
        fails_to_start: bool = False,
    ) -> None:
        self._clock = clock
        self._status = status
        self._changes_at: float | None = None
        self._next: str | None = None
        self.start_minutes = start_minutes
        self.stop_minutes = stop_minutes
        self.fails_to_start = fails_to_start
        self.starts: list[dict[str, Any]] = []
        self.stops = 0
        self.project_lookups = 0
        self._lock = threading.Lock()

    @property
    def status(self) -> str:
        with self._lock:
            if self._changes_at is not None and self._clock() >= self._changes_at:
                self._status, self._changes_at, self._next = self._next or self._status, None, None
            return self._status

    def set_status(self, status: str) -> None:
        """What happens outside the manager: the version FAILS or is deleted, an operator repairs it."""
        with self._lock:
            self._status, self._changes_at, self._next = status, None, None

    def describe_projects(self, ProjectNames: list[str]) -> dict[str, Any]:
        self.project_lookups += 1
        arn = f"arn:aws:rekognition:us-east-1:123456789012:project/{ProjectNames[0]}/1690000000000"
        return {"ProjectDescriptions": [{"ProjectArn": arn}]}

    def describe_project_versions(self, ProjectArn: str, VersionNames: list[str]) -> dict[str, Any]:
        if self.status == DELETED:
            return {"ProjectVersionDescriptions": []}
        return {"ProjectVersionDescriptions": [{"Status": self.status, "ProjectVersionArn": "fake"}]}

    def start_project_version(self, **request: Any) -> dict[str, Any]:
        if self.status not in ("STOPPED", "TRAINING_COMPLETED", "FAILED"):
            raise client_error("ResourceInUseException", f"model is {self.status}", operation="StartProjectVersion")
        with self._lock:
            self.starts.append(request)
            self._status = "STARTING"
            self._changes_at = self._clock() + self.start_minutes * 60
            self._next = "FAILED" if self.fails_to_start else "RUNNING"
        return {"Status": "STARTING"}

    def stop_project_version(self, **_request: Any) -> dict[str, Any]:
        if self.status != "RUNNING":
            raise client_error("ResourceInUseException", f"model is {self.status}", operation="StopProjectVersion")
        with self._lock:
            self.stops += 1
            self._status = "STOPPING"
            self._changes_at = self._clock() + self.stop_minutes * 60
            self._next = "STOPPED"
        return {"Status": "STOPPING"}


@dataclass(frozen=True)
class ManagerResources:
    queue_url: str
    state_table: str
    bus: str
    dead_letter_queue_url: str


def create_manager_resources(
    sqs: Any,
    dynamodb: Any,
    events: Any,
    *,
    state_table: str = "manager-state",
    retention_seconds: int = 14 * 24 * 3600,
    max_receive_count: int = 5,
    visibility_timeout: int = 360,
) -> ManagerResources:
    """What the model manager reads and writes besides the model: the ingest queue and its DLQ
    (redrive after ``max_receive_count`` receives, as in autolabel/cdk/ingest_queue.py), its
    state table (key ``pk``, as in autolabel/cdk/model_manager.py) and the bus."""
    retention = str(retention_seconds)
    dlq_url = sqs.create_queue(QueueName="ingest-dlq", Attributes={"MessageRetentionPeriod": retention})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName="ingest",
        Attributes={
            "MessageRetentionPeriod": retention,
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}),
        },
    )["QueueUrl"]
    dynamodb.create_table(
        TableName=state_table,
        KeySchema=[{"AttributeName": STATE_KEY, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": STATE_KEY, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    events.create_event_bus(Name="bus")
    return ManagerResources(queue_url, state_table, "bus", dlq_url)


class FakeEventSourceMappings:
    """GetEventSourceMapping / UpdateEventSourceMapping for the labeler's trigger."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.updates: list[bool] = []

    def get_event_source_mapping(self, UUID: str) -> dict[str, Any]:
        return {"UUID": UUID, "State": "Enabled" if self.enabled else "Disabled"}

    def update_event_source_mapping(self, UUID: str, Enabled: bool) -> dict[str, Any]:
        self.enabled = Enabled
        self.updates.append(Enabled)
        return self.get_event_source_mapping(UUID)
