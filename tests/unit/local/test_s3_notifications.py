"""local.s3_notifications: moto's S3 notifications carry versionId and sequencer, and deletes notify, as in S3."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from labeler.domain.s3_notification import sequencer_is_newer
from local.emulator import drain_queue
from local.s3_notifications import SEQUENCER_DIGITS, s3_like_notifications


@pytest.fixture
def bucket() -> Iterator[tuple[Any, Any, str]]:
    with mock_aws():
        s3, sqs = boto3.client("s3"), boto3.client("sqs")
        url = sqs.create_queue(QueueName="ingest")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for name, versioned in (("versioned", True), ("plain", False)):
            s3.create_bucket(Bucket=name)
            if versioned:
                s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            s3.put_bucket_notification_configuration(
                Bucket=name,
                NotificationConfiguration={
                    "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]
                },
            )
        drain_queue(sqs, url)  # the test events
        yield s3, sqs, url


def records(sqs: Any, url: str) -> list[dict[str, Any]]:
    return [json.loads(m["Body"])["Records"][0] for m in drain_queue(sqs, url)]


def test_uploads_carry_the_version_and_a_growing_sequencer(bucket: tuple[Any, Any, str]) -> None:
    s3, sqs, url = bucket
    with s3_like_notifications():
        first = s3.put_object(Bucket="versioned", Key="a b.png", Body=b"1")
        second = s3.put_object(Bucket="versioned", Key="a b.png", Body=b"2")
        plain = s3.put_object(Bucket="plain", Key="c.png", Body=b"3")
    got = sorted(records(sqs, url), key=lambda r: r["s3"]["object"]["sequencer"])
    objects = [r["s3"]["object"] for r in got]
    assert [o.get("versionId") for o in objects] == [first["VersionId"], second["VersionId"], None]
    assert "VersionId" not in plain
    sequencers = [o["sequencer"] for o in objects]
    assert all(len(s) == SEQUENCER_DIGITS and s == s.upper() and int(s, 16) for s in sequencers)
    assert sequencer_is_newer(sequencers[1], sequencers[0]) and sequencer_is_newer(sequencers[2], sequencers[1])


def test_deletes_notify_as_s3_does(bucket: tuple[Any, Any, str]) -> None:
    s3, sqs, url = bucket
    with s3_like_notifications():
        first = s3.put_object(Bucket="versioned", Key="k.png", Body=b"1")
        s3.put_object(Bucket="versioned", Key="k.png", Body=b"2")
        marker = s3.delete_object(Bucket="versioned", Key="k.png")
        s3.delete_object(Bucket="versioned", Key="k.png", VersionId=first["VersionId"])  # others remain
        s3.put_object(Bucket="plain", Key="p.png", Body=b"3")
        s3.delete_object(Bucket="plain", Key="p.png")
    removed = [r for r in records(sqs, url) if r["eventName"].startswith("ObjectRemoved")]
    assert [(r["s3"]["bucket"]["name"], r["eventName"], r["s3"]["object"].get("versionId")) for r in removed] == [
        ("versioned", "ObjectRemoved:DeleteMarkerCreated", marker["VersionId"]),
        ("versioned", "ObjectRemoved:Delete", first["VersionId"]),
        ("plain", "ObjectRemoved:Delete", None),
    ]
    assert all("size" not in r["s3"]["object"] and "eTag" not in r["s3"]["object"] for r in removed)
    assert all(r["s3"]["object"]["sequencer"] for r in removed)


def test_a_held_notification_arrives_when_released(bucket: tuple[Any, Any, str]) -> None:
    s3, sqs, url = bucket
    with s3_like_notifications() as notifier:
        notifier.hold(lambda record: record["s3"]["object"]["key"] == "late.png")
        s3.put_object(Bucket="versioned", Key="late.png", Body=b"1")
        s3.put_object(Bucket="versioned", Key="late.png", Body=b"2")
        assert len(records(sqs, url)) == 1  # only the second version's
        assert notifier.release() == 1
        late = records(sqs, url)
    assert [r["s3"]["object"]["sequencer"] for r in late] == [
        notifier.records_for("late.png")[0]["s3"]["object"]["sequencer"]
    ]


def test_moto_is_restored_afterwards(bucket: tuple[Any, Any, str]) -> None:
    s3, sqs, url = bucket
    with s3_like_notifications():
        pass
    s3.put_object(Bucket="versioned", Key="k.png", Body=b"1")
    s3.delete_object(Bucket="versioned", Key="k.png")
    assert [r["s3"]["object"].get("sequencer") for r in records(sqs, url)] == [None]  # moto as it ships
