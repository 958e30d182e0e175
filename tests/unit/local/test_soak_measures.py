"""What the soak and the benchmarks measure: latency percentiles, the handler's visibility changes,
the CPU time of an execution environment's invocations."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.fakes.faults import Journal
from local.poller import FakeLambdaContext, ProcessEnvironment
from local.soak import _watch_visibility_changes, percentile


def test_percentile_counts_the_never_announced_as_slowest() -> None:
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99)) == (50.0, 99.0)
    assert percentile(values, 99, missing=1) == 100.0
    assert percentile(values, 99, missing=2) == math.inf  # p99 not known to be under anything
    assert math.isnan(percentile([], 50))


@pytest.fixture
def fresh_default_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The hook goes on boto3's default session: give it one of its own, dropped afterwards."""
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    yield


def test_handler_visibility_changes_are_journaled_and_scaled(fresh_default_session: None, tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "journal.jsonl"))
    with mock_aws():
        _watch_visibility_changes(journal, time_scale=1 / 3)
        sqs = boto3.client("sqs", region_name="us-east-1")  # created afterwards, as the handler's would be
        url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "900"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="a")
        sqs.send_message(QueueUrl=url, MessageBody="b")
        first, second = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
        sqs.change_message_visibility_batch(
            QueueUrl=url, Entries=[{"Id": "b", "ReceiptHandle": second["ReceiptHandle"], "VisibilityTimeout": 30}]
        )
        again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2).get("Messages", [])
    assert [m["Body"] for m in again] == ["a"]  # 0 stays 0; 30 s became 10 s, not yet over
    assert [(r["kind"], r["seconds"]) for r in journal.read()] == [
        ("visibility-change", [0]),
        ("visibility-change", [10]),
    ]


def busy_handler_init() -> Any:
    def handler(event: dict[str, Any], _context: Any) -> int:
        return sum(i * i for i in range(event["n"]))

    return handler


def test_an_environment_counts_the_cpu_time_of_its_invocations() -> None:
    environment = ProcessEnvironment(busy_handler_init, ())
    try:
        assert environment({"n": 10}, FakeLambdaContext()) == 285
        light = environment.cpu_seconds
        environment({"n": 3_000_000}, FakeLambdaContext())
        assert environment.cpu_seconds > light  # a few hundred ms of arithmetic, counted in the child
        assert environment.starts == 1
    finally:
        environment.close()
