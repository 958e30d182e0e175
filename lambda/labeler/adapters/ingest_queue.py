"""SQS adapter: bring retried records back sooner than the queue's visibility timeout.

A record the batch response names as failed becomes visible again when its
visibility timeout ends: the queue's (six function timeouts) unless changed.
For a transient fault that is minutes of waiting for nothing, so the pipeline
asks for a jittered delay that doubles with each receive instead (``decisions.retry_delay_seconds``).
Best effort: a change that fails leaves the queue's timeout, which is only slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labeler.ports import RetryDelay

MAX_ENTRIES_PER_REQUEST = 10  # ChangeMessageVisibilityBatch


def queue_url(endpoint_url: str, queue_arn: str) -> str:
    """The queue URL for ``arn:aws:sqs:<region>:<account>:<name>`` at the client's endpoint."""
    parts = queue_arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {queue_arn!r}")
    return f"{endpoint_url.rstrip('/')}/{parts[4]}/{parts[5]}"


class IngestRetryQueue:
    """The labeler's side of its ingest queue (the ``RetryQueue`` port): shortens retried messages' wait."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def delay(self, delays: Sequence[RetryDelay]) -> int:
        """Set each message's visibility timeout; returns how many could not be set (never raises)."""
        failed = 0
        by_queue: dict[str, list[RetryDelay]] = {}
        for delay in delays:
            by_queue.setdefault(delay.queue_arn, []).append(delay)
        for arn, entries in by_queue.items():
            try:
                url = queue_url(self._client.meta.endpoint_url, arn)
            except ValueError:
                failed += len(entries)
                continue
            for start in range(0, len(entries), MAX_ENTRIES_PER_REQUEST):
                chunk = entries[start : start + MAX_ENTRIES_PER_REQUEST]
                try:
                    response = self._client.change_message_visibility_batch(
                        QueueUrl=url,
                        Entries=[
                            {"Id": str(n), "ReceiptHandle": e.receipt_handle, "VisibilityTimeout": e.seconds}
                            for n, e in enumerate(chunk)
                        ],
                    )
                except (ClientError, BotoCoreError):
                    failed += len(chunk)
                    continue
                failed += len(response.get("Failed", []))
        return failed
