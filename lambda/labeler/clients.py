"""boto3 clients of the labeler, each with a deliberate retry configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

# Rekognition: throttling on the model's inference units is the common fault.
# Standard mode: exponential backoff with jitter, three attempts in-process,
# then the record goes back to SQS (which retries later) instead of burning the
# Lambda's time. Adaptive mode was measured too (docs/performance.md, P4): its
# client-side rate limiter, new in every execution environment and cut on the
# first throttles, held a capped model at 88% of its capacity; standard mode
# kept it at 100% with no message dead-lettered.
REKOGNITION_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=20,
    max_pool_connections=16,
)
# DynamoDB and EventBridge: standard mode (exponential backoff with jitter,
# throttling and transient errors), short timeouts.
DATA_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=3,
    read_timeout=10,
    max_pool_connections=16,
)


@dataclass(frozen=True)
class AwsClients:
    rekognition: Any
    dynamodb: Any
    events: Any


def create_clients() -> AwsClients:
    return AwsClients(
        rekognition=boto3.client("rekognition", config=REKOGNITION_CONFIG),
        dynamodb=boto3.client("dynamodb", config=DATA_CONFIG),
        events=boto3.client("events", config=DATA_CONFIG),
    )
