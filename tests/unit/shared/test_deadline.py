"""The invocation deadline: no call or SDK retry starts that could outlast the invocation."""

from __future__ import annotations

import math
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ReadTimeoutError

from labeler.phase_budgets import LABEL_SECONDS, PUBLISH_SECONDS, STORE_SECONDS
from local.fakes.faults import http_response
from shared.aws_config import DATA_CONFIG, REKOGNITION_CONFIG, attempt_seconds
from shared.deadline import DeadlineExceededError, InvocationDeadline, guard_client

ARN = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v/1700000000000"


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda _seconds: None)


def throttled_client(service: str, config: Any, answers: list[str]) -> tuple[Any, list[str]]:
    """A real client whose every request is answered at the HTTP layer (nothing leaves the process)."""
    client = boto3.client(service, config=config, region_name="us-east-1")
    sent: list[str] = []

    def answer(request: Any, **_kwargs: Any) -> AWSResponse:
        sent.append(request.url)
        kind = answers[min(len(sent), len(answers)) - 1]
        if kind == "timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        return http_response(request.url, 400, {"__type": kind, "message": "injected"})

    client.meta.events.register_first("before-send", answer)
    return client, sent


def test_unbounded_without_a_context() -> None:
    deadline = InvocationDeadline()
    assert deadline.remaining() == math.inf and deadline.allows(10_000)


def test_remaining_time_comes_from_the_context_at_every_check() -> None:
    left = [30_000]
    deadline = InvocationDeadline(reserve_seconds=1.0)
    deadline.start(lambda: left[0])
    assert deadline.remaining() == 29.0
    left[0] = 5_000
    assert deadline.remaining() == 4.0 and not deadline.allows(5)


def test_phase_budgets_nest() -> None:
    # Labeling must leave time to store, storing to publish and mark.
    assert LABEL_SECONDS > STORE_SECONDS > PUBLISH_SECONDS >= 2 * attempt_seconds(DATA_CONFIG)


def test_sdk_retries_while_time_allows() -> None:
    client, sent = throttled_client("rekognition", REKOGNITION_CONFIG, ["ThrottlingException"])
    deadline = InvocationDeadline()
    deadline.start(lambda: 900_000)
    guard_client(client, deadline)
    with pytest.raises(ClientError):
        client.detect_custom_labels(ProjectVersionArn=ARN, Image={"Bytes": b"x"})

    assert len(sent) == 4  # botocore's retries.max_attempts counts retries: 1 + 3


def test_no_sdk_retry_that_would_outlast_the_invocation() -> None:
    client, sent = throttled_client("rekognition", REKOGNITION_CONFIG, ["ThrottlingException"])
    deadline = InvocationDeadline(reserve_seconds=0)
    # Enough for one attempt, not for a backoff and a second one.
    deadline.start(lambda: int(attempt_seconds(REKOGNITION_CONFIG) * 1000) + 500)
    guard_client(client, deadline)
    with pytest.raises(ClientError):
        client.detect_custom_labels(ProjectVersionArn=ARN, Image={"Bytes": b"x"})
    assert len(sent) == 1


def test_a_call_that_cannot_finish_in_time_is_not_sent() -> None:
    client, sent = throttled_client("dynamodb", DATA_CONFIG, ["ThrottlingException"])
    deadline = InvocationDeadline(reserve_seconds=0)
    deadline.start(lambda: 2_000)
    guard_client(client, deadline)
    with pytest.raises(DeadlineExceededError):
        client.get_item(TableName="t", Key={"pk": {"S": "x"}})
    assert sent == []


def test_then_seconds_keeps_time_for_what_must_follow() -> None:
    client, sent = throttled_client("rekognition", REKOGNITION_CONFIG, ["ThrottlingException"])
    deadline = InvocationDeadline(reserve_seconds=0)
    deadline.start(lambda: int((attempt_seconds(REKOGNITION_CONFIG) + 1) * 1000))
    guard_client(client, deadline, then_seconds=STORE_SECONDS)
    with pytest.raises(DeadlineExceededError):
        client.detect_custom_labels(ProjectVersionArn=ARN, Image={"Bytes": b"x"})
    assert sent == []


def test_putevents_is_never_resent_by_the_sdk_after_a_lost_response() -> None:
    client, sent = throttled_client("events", DATA_CONFIG, ["timeout"])
    deadline = InvocationDeadline()
    guard_client(client, deadline, retry_ambiguous=False)
    with pytest.raises(ReadTimeoutError):
        client.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}])
    assert len(sent) == 1  # standard mode alone would have sent it 6 times


def test_putevents_throttling_is_still_retried_by_the_sdk() -> None:
    client, sent = throttled_client("events", DATA_CONFIG, ["ThrottlingException", "ThrottlingException", "x"])
    guard_client(client, InvocationDeadline(), retry_ambiguous=False)
    with pytest.raises(ClientError):
        client.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}])
    assert len(sent) == 3  # two throttles retried; "x" is not a retryable error
