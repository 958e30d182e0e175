"""local.moto_process's SQS patches keep moto's queue semantics and remove its per-message queue scans.

The same script of SQS calls (receives, deletes, visibility changes, redrive to
the DLQ, delays, invalid handles) must give the same transcript against moto as
it ships (in-process) and against the patched moto server (its own process).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local.moto_process import _sqs_without_queue_scans, moto_server_process

COUNTS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]


def sqs_script(sqs: Any) -> list[Any]:
    """Drive two queues through every path the patches touch; return what a client observes."""
    out: list[Any] = []
    handles: dict[str, list[str]] = {}  # body -> every receipt handle it was given, oldest first

    def receive(url: str, n: int = 10) -> list[str]:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=n, AttributeNames=["All"]).get("Messages", [])
        for m in messages:
            handles.setdefault(m["Body"], []).append(m["ReceiptHandle"])
        out.append(("receive", [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in messages]))
        return [m["Body"] for m in messages]

    def counts(url: str) -> None:
        out.append(("counts", sqs.get_queue_attributes(QueueUrl=url, AttributeNames=COUNTS)["Attributes"]))

    def attempt(name: str, call: Callable[[], Any]) -> None:
        try:
            answer = call()
            out.append((name, sorted(answer.get("Successful", []), key=str), answer.get("Failed", [])))
        except ClientError as error:
            out.append((name, "error", error.response["Error"]["Code"]))

    dlq = sqs.create_queue(QueueName="semantics-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})
    queue = sqs.create_queue(QueueName="semantics", Attributes={"VisibilityTimeout": "600", "RedrivePolicy": redrive})[
        "QueueUrl"
    ]
    out.append(("attributes", sorted(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"])))
    bodies = [f"m{n:02d}" for n in range(25)]
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(
            QueueUrl=queue, Entries=[{"Id": b, "MessageBody": b} for b in bodies[start : start + 10]]
        )
    sqs.send_message(QueueUrl=queue, MessageBody="delayed", DelaySeconds=900)
    counts(queue)

    first = receive(queue)  # m00..m09, now in flight for 600 s
    counts(queue)
    entries = [{"Id": b, "ReceiptHandle": handles[b][-1]} for b in first[:5]]
    attempt("delete", lambda: sqs.delete_message_batch(QueueUrl=queue, Entries=entries))
    attempt("delete again", lambda: sqs.delete_message(QueueUrl=queue, ReceiptHandle=handles[first[0]][-1]))
    attempt("delete unknown", lambda: sqs.delete_message(QueueUrl=queue, ReceiptHandle="not-a-handle"))
    back = [{"Id": b, "ReceiptHandle": handles[b][-1], "VisibilityTimeout": 0} for b in first[5:8]]
    attempt("visible again", lambda: sqs.change_message_visibility_batch(QueueUrl=queue, Entries=back))
    counts(queue)
    receive(queue)  # m05..m07 (second receive) first, then m10..m16

    # An older receipt handle still works in moto; an out-of-range timeout does not.
    attempt(
        "old handle",
        lambda: sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=handles["m05"][0], VisibilityTimeout=0),
    )
    too_long = [{"Id": "m06", "ReceiptHandle": handles["m06"][-1], "VisibilityTimeout": 50000}]
    attempt("too long", lambda: sqs.change_message_visibility_batch(QueueUrl=queue, Entries=too_long))
    attempt(
        "unknown handle",
        lambda: sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle="not-a-handle", VisibilityTimeout=0),
    )
    # m05: its third receive; made visible again, its next receive moves it to the DLQ (and
    # returns the next message instead), after which its handle is refused.
    for _ in range(2):
        receive(queue, 1)
        attempt(
            "m05 visible",
            lambda: sqs.change_message_visibility(
                QueueUrl=queue, ReceiptHandle=handles["m05"][-1], VisibilityTimeout=0
            ),
        )
    receive(queue, 1)
    counts(queue)
    counts(dlq)
    attempt(  # its handle is no longer valid on the source queue
        "moved", lambda: sqs.delete_message(QueueUrl=queue, ReceiptHandle=handles["m05"][-1])
    )
    receive(dlq)
    attempt("delete in DLQ", lambda: sqs.delete_message(QueueUrl=dlq, ReceiptHandle=handles["m05"][-1]))

    drain(sqs, queue, receive, handles, attempt)
    counts(queue)
    counts(dlq)
    return out


def drain(sqs: Any, queue: str, receive: Any, handles: dict[str, list[str]], attempt: Any) -> None:
    """Everything left but the delayed message and those still in flight."""
    while batch := receive(queue):
        ids = [{"Id": f"e{i}", "ReceiptHandle": handles[b][-1]} for i, b in enumerate(batch)]

        def delete(entries: list[dict[str, str]] = ids) -> Any:
            return sqs.delete_message_batch(QueueUrl=queue, Entries=entries)

        attempt("drain", delete)


@pytest.fixture
def transcript_unpatched() -> list[Any]:
    with mock_aws():
        return sqs_script(boto3.client("sqs", region_name="us-east-1"))


@pytest.mark.enable_socket  # the moto server process, on loopback
def test_the_patched_server_answers_as_moto_does(transcript_unpatched: list[Any]) -> None:
    with moto_server_process():
        patched = sqs_script(boto3.client("sqs", region_name="us-east-1"))
    assert patched == transcript_unpatched
    # And the script did reach every path: receive counts, redrive, refused handles, the delayed message.
    steps = set(map(repr, transcript_unpatched))
    for expected in (
        ("receive", [("m05", "2"), ("m06", "2"), ("m07", "2"), *((f"m{n}", "1") for n in range(10, 17))]),
        ("receive", [("m05", "3")]),
        ("receive", [("m17", "1")]),  # m05 went to the DLQ instead
        ("m05 visible", "error", "ReceiptHandleIsInvalid"),
        ("moved", "error", "ReceiptHandleIsInvalid"),
        ("receive", [("m05", "4")]),  # from the DLQ
        ("delete unknown", "error", "ReceiptHandleIsInvalid"),
    ):
        assert repr(expected) in steps, expected
    assert transcript_unpatched[-2] == (
        "counts",
        {
            "ApproximateNumberOfMessages": "0",
            "ApproximateNumberOfMessagesNotVisible": "13",  # received, never deleted: m06-m18 but m05
            "ApproximateNumberOfMessagesDelayed": "1",
        },
    )


@pytest.fixture
def patched_in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The SQS patches applied to this process's moto, undone afterwards."""
    from moto.sqs import models

    for owner, name in (
        (models.Queue, "messages"),
        (models.Queue, "approximate_number_of_messages_not_visible"),
        (models.Queue, "approximate_number_of_messages_delayed"),
        (models.Queue, "delete_message"),
        (models.Message, "mark_received"),
        (models.SQSBackend, "change_message_visibility"),
        (models.SQSBackend, "is_message_valid_based_on_retention_period"),
        (models.SQSBackend, "get_queue_attributes"),
    ):
        monkeypatch.setattr(owner, name, owner.__dict__[name])
    _sqs_without_queue_scans()
    yield


def clock_reads_per_receive(sqs: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many times moto reads its clock to receive 10 of 500 queued messages and delete them."""
    from moto.sqs import models

    url = sqs.create_queue(QueueName="big")["QueueUrl"]
    for _ in range(50):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(10)])
    reads = [0]
    real = models.unix_time_millis

    def counted(*args: Any) -> float:
        reads[0] += 1
        return float(real(*args))

    monkeypatch.setattr(models, "unix_time_millis", counted)
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
    )
    assert len(messages) == 10
    return reads[0]


def test_a_receive_no_longer_walks_the_whole_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        shipped = clock_reads_per_receive(boto3.client("sqs", region_name="us-east-1"), monkeypatch)
    assert shipped > 500  # moto as shipped: every queued message's visibility, again for each one returned


def test_the_patched_receive_reads_the_clock_a_bounded_number_of_times(
    patched_in_process: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        patched = clock_reads_per_receive(boto3.client("sqs", region_name="us-east-1"), monkeypatch)
    assert patched < 50  # independent of the 500 messages queued
