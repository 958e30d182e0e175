"""A local stand-in for Lambda's SQS event source mapping.

Like the real one: receives up to ``batch_size`` messages, invokes the handler
with an SQS event, deletes the messages not named in ``batchItemFailures``,
leaves the failed ones to reappear (after ``retry_delay_seconds`` here instead
of the full visibility timeout), and relies on the queue's redrive policy to
move a message to the DLQ after maxReceiveCount receives. A handler exception
fails the whole batch, as it does in Lambda.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class FakeLambdaContext:
    function_name: str = "autolabel-labeler-local"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:autolabel-labeler-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass
class PollerStats:
    invocations: int = 0
    messages: int = 0
    deleted: int = 0
    item_failures: int = 0
    handler_errors: int = 0


class EventSourceMappingPoller:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        retry_delay_seconds: int = 0,
        region: str = "us-east-1",
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._handler = handler
        self._batch_size = batch_size
        self._retry_delay = retry_delay_seconds
        self._region = region
        self.stats = PollerStats()

    def _event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m.get("MD5OfBody", ""),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self._queue_arn,
                    "awsRegion": self._region,
                }
                for m in messages
            ]
        }

    def poll_once(self) -> int:
        """One receive + invoke; returns how many messages it handled."""
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=self._batch_size, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return 0
        self.stats.invocations += 1
        self.stats.messages += len(messages)
        try:
            response = self._handler(self._event(messages), FakeLambdaContext()) or {}
            failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        except Exception:
            self.stats.handler_errors += 1
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
            self.stats.deleted += len(done)
        retry = [m for m in messages if m["MessageId"] in failed]
        self.stats.item_failures += len(retry)
        if retry:
            self._sqs.change_message_visibility_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self._retry_delay}
                    for i, m in enumerate(retry)
                ],
            )
        return len(messages)

    def in_flight(self) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def run_until_idle(self, *, max_seconds: float = 120.0, pause_seconds: float = 0.05) -> None:
        """Poll until no message is left, visible or waiting for a retry."""
        deadline = time.monotonic() + max_seconds
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"queue not drained within {max_seconds}s")
            if self.poll_once():
                continue
            if self.in_flight() == 0:
                return
            time.sleep(pause_seconds)
