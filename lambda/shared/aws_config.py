"""botocore configurations of autolabel's AWS clients, each a deliberate choice."""

from __future__ import annotations

from typing import Any

from botocore.config import Config

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


def attempt_seconds(config: Any) -> float:
    """Worst case of one attempt of a client with this botocore Config."""
    return float(config.connect_timeout) + float(config.read_timeout)
