"""The SQS adapter that shortens retried records' visibility: URLs, batching, never raising."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from labeler.adapters.ingest_queue import IngestRetryQueue, RetryDelay, queue_url

ARN = "arn:aws:sqs:eu-west-1:123456789012:autolabel-ingest"


class RecordingSqs:
    def __init__(self, endpoint: str = "https://sqs.eu-west-1.amazonaws.com", fail: Exception | None = None) -> None:
        self.meta = type("Meta", (), {"endpoint_url": endpoint})()
        self.requests: list[dict[str, Any]] = []
        self.fail = fail

    def change_message_visibility_batch(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if self.fail is not None:
            raise self.fail
        failed = [
            {"Id": e["Id"], "Code": "ReceiptHandleIsInvalid"} for e in request["Entries"] if e["ReceiptHandle"] == "bad"
        ]
        return {"Successful": [], "Failed": failed}


def test_queue_url_comes_from_the_arn_at_the_clients_endpoint() -> None:
    assert queue_url("https://sqs.eu-west-1.amazonaws.com", ARN) == (
        "https://sqs.eu-west-1.amazonaws.com/123456789012/autolabel-ingest"
    )
    assert queue_url("http://127.0.0.1:5000/", ARN) == "http://127.0.0.1:5000/123456789012/autolabel-ingest"
    with pytest.raises(ValueError, match="not an SQS queue ARN"):
        queue_url("https://sqs.eu-west-1.amazonaws.com", "arn:aws:sns:eu-west-1:123456789012:topic")


def test_delays_go_ten_per_request_and_refused_entries_are_counted() -> None:
    sqs = RecordingSqs()
    delays = [RetryDelay(ARN, "bad" if n == 3 else f"h{n}", 5) for n in range(23)]
    assert IngestRetryQueue(sqs).delay(delays) == 1
    assert [len(r["Entries"]) for r in sqs.requests] == [10, 10, 3]
    assert {r["QueueUrl"] for r in sqs.requests} == {
        "https://sqs.eu-west-1.amazonaws.com/123456789012/autolabel-ingest"
    }
    assert sqs.requests[0]["Entries"][0] == {"Id": "0", "ReceiptHandle": "h0", "VisibilityTimeout": 5}


def test_a_failed_call_or_a_bad_arn_is_counted_never_raised() -> None:
    sqs = RecordingSqs(fail=EndpointConnectionError(endpoint_url="https://sqs.eu-west-1.amazonaws.com"))
    assert IngestRetryQueue(sqs).delay([RetryDelay(ARN, "h", 5), RetryDelay("not-an-arn", "h2", 5)]) == 2
