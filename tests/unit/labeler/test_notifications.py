"""Parsing S3 notifications carried in SQS message bodies."""

from __future__ import annotations

import json

import pytest

from labeler.domain.s3_notification import (
    InvalidMessageError,
    S3ObjectEvent,
    comparable_sequencer,
    parse_message_body,
    sequencer_is_newer,
)
from tests.support.builders import load_event, notification_body, s3_record

ARN = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/p.1/1"


def test_canonical_notification_is_parsed_with_decoded_key() -> None:
    (obj,) = parse_message_body(json.dumps(load_event("s3_notification.json")))
    assert obj == S3ObjectEvent(
        event_name="ObjectCreated:Put",
        bucket="autolabel-images",
        key="line-1/a b+c.jpg",  # 'a+b%2Bc.jpg' decoded
        size=48213,
        etag="d41d8cd98f00b204e9800998ecf8427e",
        version_id="096fKKXTRTtl3on89fVO.nfljtsv6qko",
        sequencer="0055AED6DCD90281E5",
    )


def test_test_event_has_no_records() -> None:
    assert parse_message_body(json.dumps(load_event("s3_test_event.json"))) == []


def test_several_records_in_one_message() -> None:
    objects = parse_message_body(notification_body(s3_record("a.png"), s3_record("b.jpg")))
    assert [o.key for o in objects] == ["a.png", "b.jpg"]


def test_missing_version_and_sequencer_are_none() -> None:
    (obj,) = parse_message_body(notification_body(s3_record("a.png")))
    assert obj.version_id is None and obj.sequencer is None and obj.sequencer_order is None


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        json.dumps({"hello": "world"}),
        json.dumps({"Records": []}),
        json.dumps({"Records": [{"eventSource": "aws:sns"}]}),
        json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {}}]}),
    ],
)
def test_bodies_that_are_not_s3_notifications_are_rejected(body: str) -> None:
    with pytest.raises(InvalidMessageError):
        parse_message_body(body)


def test_created_record_without_size_is_rejected() -> None:
    record = s3_record("a.png")
    del record["s3"]["object"]["size"]
    with pytest.raises(InvalidMessageError, match="size"):
        parse_message_body(notification_body(record))


def test_delete_record_needs_no_etag() -> None:
    record = s3_record("a.png", event_name="ObjectRemoved:Delete")
    del record["s3"]["object"]["eTag"]
    (obj,) = parse_message_body(notification_body(record))
    assert not obj.is_object_created


@pytest.mark.parametrize(
    ("key", "is_image"),
    [("a.jpg", True), ("a.JPEG", True), ("dir/b.Png", True), ("a.gif", False), ("jpg", False), ("a.jpg.txt", False)],
)
def test_image_extension_in_any_case(key: str, is_image: bool) -> None:
    (obj,) = parse_message_body(notification_body(s3_record(key)))
    assert obj.has_image_extension is is_image


# The S3 User Guide (event message structure): right-pad the shorter sequencer
# with zeros, then compare lexicographically.
@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("0055AED6DCD90281E5", "0055AED6DCD9029"),  # the newer one is shorter
        ("0055AED6DCD9029", "0055AED6DCD90291"),  # the newer one is longer
        ("00B1", "00b2"),  # hex in any letter case
        ("0100", "FF"),
    ],
)
def test_sequencers_of_different_lengths_compare_after_right_padding(older: str, newer: str) -> None:
    assert sequencer_is_newer(newer, older)
    assert not sequencer_is_newer(older, newer)
    low, high = comparable_sequencer(older), comparable_sequencer(newer)
    assert low is not None and high is not None and high > low  # the stored order key agrees


def test_equal_sequencers_after_padding_are_not_newer() -> None:
    assert not sequencer_is_newer("00B1", "00b100")
    assert comparable_sequencer("00B1") == comparable_sequencer("00b100")


def test_result_id_depends_on_version_or_etag_and_model() -> None:
    (a,) = parse_message_body(notification_body(s3_record("k.png", version_id="v1")))
    (b,) = parse_message_body(notification_body(s3_record("k.png", version_id="v2")))
    (c,) = parse_message_body(notification_body(s3_record("k.png", etag="e1")))
    (d,) = parse_message_body(notification_body(s3_record("k.png", etag="e2")))
    assert a.result_id(ARN) != b.result_id(ARN)
    assert c.result_id(ARN) != d.result_id(ARN)
    assert a.result_id(ARN) == a.result_id(ARN) != a.result_id(ARN + "0")
