"""boto3 clients of the labeler, each with a deliberate retry configuration.

Every client is bound to the invocation's deadline (``labeler.deadline``): no
call or SDK retry starts that could outlast the invocation. The budgets below
are what each phase of a record needs at worst, so the pipeline can refuse to
start a phase it could not finish.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from labeler.deadline import InvocationDeadline, attempt_seconds, guard_client

# Rekognition: throttling on the model's inference units is the common fault.
# Standard mode: exponential backoff with jitter, three retries in-process
# (``max_attempts`` in ``retries`` counts retries: four calls at most),
# then the record goes back to SQS (which retries later) instead of burning the
# Lambda's time. Adaptive mode was measured too (docs/performance.md, P4): its
# client-side rate limiter, new in every execution environment and cut on the
# first throttles, held a capped model at 88% of its capacity; standard mode
# kept it at 100% with no message dead-lettered.
REKOGNITION_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=3,
    read_timeout=15,
    max_pool_connections=16,
)
# DynamoDB and EventBridge: standard mode (exponential backoff with jitter,
# throttling and transient errors), short timeouts: these answer in milliseconds.
DATA_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=2,
    read_timeout=5,
    max_pool_connections=16,
)

# Worst-case seconds each phase of a record needs before the invocation ends:
# publishing = one PutEvents attempt and one attempt of the mark that follows;
# storing = one write, then publishing; labeling = one DetectCustomLabels
# attempt, then storing.
PUBLISH_SECONDS = attempt_seconds(DATA_CONFIG) * 2
STORE_SECONDS = attempt_seconds(DATA_CONFIG) + PUBLISH_SECONDS
LABEL_SECONDS = attempt_seconds(REKOGNITION_CONFIG) + STORE_SECONDS


@dataclass(frozen=True)
class AwsClients:
    rekognition: Any
    dynamodb: Any
    events: Any
    # The deadline the clients are bound to; the pipeline starts it per invocation.
    deadline: InvocationDeadline = field(default_factory=InvocationDeadline)


def create_clients(deadline: InvocationDeadline | None = None) -> AwsClients:
    deadline = deadline or InvocationDeadline()
    rekognition = boto3.client("rekognition", config=REKOGNITION_CONFIG)
    dynamodb = boto3.client("dynamodb", config=DATA_CONFIG)
    events = boto3.client("events", config=DATA_CONFIG)
    guard_client(rekognition, deadline, then_seconds=STORE_SECONDS)
    guard_client(dynamodb, deadline)
    # PutEvents has no idempotency token: a resend after a lost response is a
    # duplicate, so the publisher (which counts it) decides, not the SDK.
    guard_client(events, deadline, then_seconds=attempt_seconds(DATA_CONFIG), retry_ambiguous=False)
    return AwsClients(rekognition=rekognition, dynamodb=dynamodb, events=events, deadline=deadline)
