"""boto3 clients of the labeler, each with a deliberate retry configuration.

Every client is bound to the invocation's deadline (``shared.deadline``): no
call or SDK retry starts that could outlast the invocation; the pipeline
refuses to start a phase it could not finish (``labeler.phase_budgets``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3

from labeler.phase_budgets import STORE_SECONDS
from shared.aws_config import DATA_CONFIG, REKOGNITION_CONFIG, attempt_seconds
from shared.deadline import InvocationDeadline, guard_client


@dataclass(frozen=True)
class AwsClients:
    rekognition: Any
    dynamodb: Any
    events: Any
    # The deadline the clients are bound to; the pipeline starts it per invocation.
    deadline: InvocationDeadline = field(default_factory=InvocationDeadline)
    sqs: Any = None  # shortens retried records' visibility timeout; None: the queue's timeout applies


def create_clients(deadline: InvocationDeadline | None = None) -> AwsClients:
    deadline = deadline or InvocationDeadline()
    rekognition = boto3.client("rekognition", config=REKOGNITION_CONFIG)
    dynamodb = boto3.client("dynamodb", config=DATA_CONFIG)
    events = boto3.client("events", config=DATA_CONFIG)
    sqs = boto3.client("sqs", config=DATA_CONFIG)
    guard_client(rekognition, deadline, then_seconds=STORE_SECONDS)
    guard_client(dynamodb, deadline)
    # PutEvents has no idempotency token: a resend after a lost response is a
    # duplicate, so the publisher (which counts it) decides, not the SDK.
    guard_client(events, deadline, then_seconds=attempt_seconds(DATA_CONFIG), retry_ambiguous=False)
    guard_client(sqs, deadline)
    return AwsClients(rekognition=rekognition, dynamodb=dynamodb, events=events, deadline=deadline, sqs=sqs)
