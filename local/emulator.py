"""The stack's resources inside moto (in-process or an embedded server)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from labeler.config import LabelerConfig
from local.stack_template import StackFacts

REGION = "us-east-1"


def local_aws_environment(endpoint: str) -> dict[str, str]:
    """Every boto3 client of this process to the emulator, with throwaway credentials."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for a block, then restore what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass(frozen=True)
class LocalResources:
    bucket: str
    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str
    table_name: str
    event_bus_name: str
    consumer_queue_url: str
    # The backfill lane (autolabel backfill): its queue, read by its own poller, and its DLQ.
    backfill_queue_url: str = ""
    backfill_queue_arn: str = ""
    backfill_dead_letter_queue_url: str = ""


def create_table(dynamodb: Any, facts: StackFacts, table_name: str) -> None:
    """The results table with exactly the template's key schema and GSIs (it has none today)."""
    request: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": facts.table_key_schema,
        "AttributeDefinitions": facts.table_attribute_definitions,
        "BillingMode": "PAY_PER_REQUEST",
    }
    if facts.table_global_secondary_indexes:
        request["GlobalSecondaryIndexes"] = facts.table_global_secondary_indexes
    dynamodb.create_table(**request)


def create_resources(
    facts: StackFacts,
    *,
    s3: Any,
    sqs: Any,
    dynamodb: Any,
    events: Any,
    event_source: str,
    prefix: str = "autolabel",
    visibility_timeout: int | None = None,
    subscribe_deletions: bool = False,
) -> LocalResources:
    """Bucket -> notification -> ingest queue (+DLQ); backfill queue (+DLQ); table; bus -> rule -> consumer queue.

    ``visibility_timeout`` may shorten the template's so that local retries
    happen in seconds; the redrive count is the template's.
    ``subscribe_deletions`` adds the template's ObjectRemoved subscription
    (with deletions on), as the local run does; the soak and benchmarks leave
    it off (their "object gone" faults are not deletions).
    """
    bucket = f"{prefix}-images"
    s3.create_bucket(Bucket=bucket)
    if facts.bucket_versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    dlq_url = sqs.create_queue(QueueName=f"{prefix}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=f"{prefix}-ingest",
        Attributes={
            "VisibilityTimeout": str(visibility_timeout or facts.queue_visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": facts.max_receive_count}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_config: dict[str, Any] = {"QueueArn": queue_arn, "Events": facts.notification_events}
    if facts.notification_prefix:
        queue_config["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": facts.notification_prefix}]}}
    if subscribe_deletions:  # one configuration with both (moto's server refuses two to the same queue)
        queue_config["Events"] = [*facts.notification_events, *facts.removal_events]
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [queue_config]}
    )

    backfill_dlq_url = sqs.create_queue(QueueName=f"{prefix}-backfill-dlq")["QueueUrl"]
    backfill_dlq_arn = sqs.get_queue_attributes(QueueUrl=backfill_dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    backfill_url = sqs.create_queue(
        QueueName=f"{prefix}-backfill",
        Attributes={
            "VisibilityTimeout": str(visibility_timeout or facts.queue_visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": backfill_dlq_arn, "maxReceiveCount": facts.max_receive_count}
            ),
        },
    )["QueueUrl"]
    backfill_arn = sqs.get_queue_attributes(QueueUrl=backfill_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]

    table_name = f"{prefix}-results"
    create_table(dynamodb, facts, table_name)

    bus = f"{prefix}-events"
    events.create_event_bus(Name=bus)
    consumer_url = sqs.create_queue(QueueName=f"{prefix}-consumer")["QueueUrl"]
    consumer_arn = sqs.get_queue_attributes(QueueUrl=consumer_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    # The example consumer of docs/events.md: every autolabel event to a queue.
    events.put_rule(Name=f"{prefix}-all-results", EventBusName=bus, EventPattern=json.dumps({"source": [event_source]}))
    events.put_targets(
        Rule=f"{prefix}-all-results", EventBusName=bus, Targets=[{"Id": "consumer", "Arn": consumer_arn}]
    )
    return LocalResources(
        bucket,
        queue_url,
        queue_arn,
        dlq_url,
        table_name,
        bus,
        consumer_url,
        backfill_url,
        backfill_arn,
        backfill_dlq_url,
    )


def labeler_config(facts: StackFacts, resources: LocalResources) -> LabelerConfig:
    """The labeler's configuration as the deployed function gets it: the template's environment
    with the emulated table and bus, through the Lambda's own cold-start validation."""
    lambda_env = {
        **facts.function_environment,
        "RESULTS_TABLE_NAME": resources.table_name,
        "EVENT_BUS_NAME": resources.event_bus_name,
    }
    with environment(lambda_env):
        return LabelerConfig.from_environ(os.environ)


def drain_queue(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message currently in a queue (received and deleted)."""
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
            "Messages", []
        )
        if not batch:
            return messages
        messages.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )


def consumed_events(sqs: Any, consumer_queue_url: str) -> list[dict[str, Any]]:
    """The EventBridge events the example consumer received."""
    return [json.loads(message["Body"]) for message in drain_queue(sqs, consumer_queue_url)]
