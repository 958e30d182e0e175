"""Adapters of the model manager, one per AWS service, each with an injected client."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from botocore.exceptions import ClientError

from manager.logic import ManagerState
from shared.dynamo_codec import deserialize_item, serialize
from shared.model_arn import project_name, version_name

STATE_KEY = "pk"
MAX_MESSAGE_ATTRIBUTES = 10  # SQS's limit per message
MOVED_REASON_ATTRIBUTE = "autolabelDeadLetteredBecause"


class CustomLabelsModel:
    """DescribeProjectVersions / StartProjectVersion / StopProjectVersion for one version.

    The project ARN (which DescribeProjectVersions needs) carries the project's
    creation time, which the version ARN does not: when it is not configured it
    is looked up once by project name.
    """

    def __init__(self, client: Any, project_arn: str | None, version_arn: str) -> None:
        self._client = client
        self._project_arn = project_arn
        self._version_arn = version_arn

    def _project(self) -> str | None:
        if self._project_arn is None:
            found = self._client.describe_projects(ProjectNames=[project_name(self._version_arn)])
            projects = found.get("ProjectDescriptions", [])
            self._project_arn = str(projects[0]["ProjectArn"]) if projects else None
        return self._project_arn

    def status(self) -> str | None:
        project = self._project()
        if project is None:
            return None
        try:
            response = self._client.describe_project_versions(
                ProjectArn=project, VersionNames=[version_name(self._version_arn)]
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise
        descriptions = response.get("ProjectVersionDescriptions", [])
        return str(descriptions[0]["Status"]) if descriptions else None

    def start(self, min_units: int, max_units: int | None) -> bool:
        """False when a start is already under way (another caller won the race)."""
        request: dict[str, Any] = {"ProjectVersionArn": self._version_arn, "MinInferenceUnits": min_units}
        if max_units is not None:
            request["MaxInferenceUnits"] = max_units
        try:
            self._client.start_project_version(**request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceInUseException":
                return False
            raise
        return True

    def stop(self) -> bool:
        try:
            self._client.stop_project_version(ProjectVersionArn=self._version_arn)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceInUseException":
                return False
            raise
        return True


class QueueBacklog:
    """The manager's side of a queue (the ingest or the backfill queue): its backlog, and moving it to the DLQ."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def depth(self) -> tuple[int, int]:
        """(messages waiting, messages in flight)."""
        attributes = self._client.get_queue_attributes(
            QueueUrl=self._url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def move_waiting_to(
        self, destination_url: str, *, reason: str, max_batches: int, visibility_timeout: int = 60
    ) -> int:
        """Move waiting messages to ``destination_url`` (the DLQ) in at most ``max_batches`` batches of 10.

        SQS's StartMessageMoveTask only moves *out of* a DLQ, so: receive, send
        the same body and attributes to the DLQ, and delete from this queue only
        what the DLQ accepted. A crash between send and delete duplicates a
        message (the labeler dedupes on redrive), it never loses one; what is
        not deleted comes back after ``visibility_timeout`` and is moved by a
        later run. Returns how many messages left this queue.
        """
        moved = 0
        for _ in range(max_batches):
            messages = self._client.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                VisibilityTimeout=visibility_timeout,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                break
            entries = []
            for index, message in enumerate(messages):
                attributes = dict(message.get("MessageAttributes", {}))
                if len(attributes) < MAX_MESSAGE_ATTRIBUTES:
                    attributes[MOVED_REASON_ATTRIBUTE] = {"DataType": "String", "StringValue": reason[:256]}
                entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["Body"]}
                if attributes:
                    entry["MessageAttributes"] = attributes
                entries.append(entry)
            sent = self._client.send_message_batch(QueueUrl=destination_url, Entries=entries)
            accepted = [messages[int(entry["Id"])] for entry in sent.get("Successful", [])]
            if accepted:
                deleted = self._client.delete_message_batch(
                    QueueUrl=self._url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(accepted)],
                )
                moved += len(deleted.get("Successful", []))
            if len(accepted) < len(messages) or len(messages) < 10:
                break  # the DLQ refused some (retried next run), or this queue is drained
        return moved


class LabelerTrigger:
    """The labeler's SQS event source mapping: paused while the model cannot answer."""

    def __init__(self, client: Any, mapping_id: str) -> None:
        self._client = client
        self._id = mapping_id

    def enabled(self) -> bool:
        state = self._client.get_event_source_mapping(UUID=self._id)["State"]
        return state in ("Enabled", "Enabling", "Creating")

    def set_enabled(self, enabled: bool) -> None:
        self._client.update_event_source_mapping(UUID=self._id, Enabled=enabled)


class ManagerStateStore:
    """The manager's one state item, written under a lease so concurrent runs never both act."""

    def __init__(self, client: Any, table_name: str, item_id: str, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._table = table_name
        self._key = {STATE_KEY: {"S": item_id}}
        self._clock = clock

    def acquire(self, owner: str, lease_seconds: float) -> ManagerState | None:
        """The remembered state, or None when another run holds the lease."""
        now = self._clock()
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key,
                UpdateExpression="SET leaseOwner = :owner, leaseUntil = :until",
                ConditionExpression="attribute_not_exists(leaseUntil) OR leaseUntil < :now",
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":until": serialize(now + lease_seconds),
                    ":now": serialize(now),
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise
        item = deserialize_item(response.get("Attributes", {}))
        stored = json.loads(item.get("state", "{}"))
        return ManagerState(**{k: v for k, v in stored.items() if k in ManagerState.__dataclass_fields__})

    def record(self, owner: str, state: ManagerState) -> None:
        """Save the state and keep the lease: an intent written before acting on it."""
        self._client.update_item(
            TableName=self._table,
            Key=self._key,
            UpdateExpression="SET #state = :state",
            ConditionExpression="leaseOwner = :owner",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":state": {"S": json.dumps(asdict(state))}, ":owner": {"S": owner}},
        )

    def save_and_release(self, owner: str, state: ManagerState) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=self._key,
            UpdateExpression="SET #state = :state REMOVE leaseUntil, leaseOwner",
            ConditionExpression="leaseOwner = :owner",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":state": {"S": json.dumps(asdict(state))}, ":owner": {"S": owner}},
        )
