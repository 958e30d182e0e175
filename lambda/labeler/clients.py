"""boto3 clients of the labeler, each with a deliberate retry configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

# Rekognition: throttling on the model's inference units is the common fault;
# adaptive mode adds client-side rate limiting shared by the batch's threads.
# Three attempts in-process, then the record goes back to SQS (which retries
# with its own, longer backoff) instead of burning the Lambda's time.
REKOGNITION_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 3},
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
