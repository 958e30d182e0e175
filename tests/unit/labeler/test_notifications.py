"""Parsing S3 notifications carried in SQS message bodies."""

from __future__ import annotations

import json

import pytest

from labeler.domain.s3_notification import (
    InvalidMessageError,
    S3ObjectEvent,
    SubscriptionConfirmationError,
    comparable_sequencer,
    parse_message_body,
    sequencer_is_newer,
)
from tests.support.builders import (
    eventbridge_body,
    load_event,
    notification_body,
    s3_record,
    s3_removal_record,
    sns_body,
)

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


# -- other formats: EventBridge, SNS-wrapped (docs/behaviour.md#inbound-messages) --

CANONICAL = S3ObjectEvent(
    event_name="ObjectCreated:Put",
    bucket="autolabel-images",
    key="line-1/a b+c.jpg",
    size=48213,
    etag="d41d8cd98f00b204e9800998ecf8427e",
    version_id="096fKKXTRTtl3on89fVO.nfljtsv6qko",
    sequencer="0055AED6DCD90281E5",
)


def test_eventbridge_object_created_maps_to_the_same_event_as_the_s3_notification() -> None:
    (obj,) = parse_message_body(json.dumps(load_event("eventbridge_object_created.json")))
    assert obj == CANONICAL
    (same,) = parse_message_body(json.dumps(load_event("s3_notification.json")))
    assert obj.result_id(ARN) == same.result_id(ARN)


@pytest.mark.parametrize("key", ["a+b.png", "dir/a%2Bb.png", "with space.png", "ü/ß.jpg"])
def test_eventbridge_keys_are_not_url_decoded(key: str) -> None:
    # The trap: '+' and '%2B' are literal characters in an EventBridge key.
    (obj,) = parse_message_body(eventbridge_body(key))
    assert obj.key == key


@pytest.mark.parametrize("key", ["a+b.png", "dir/a%2Bb.png", "with space.png", "ü/ß.jpg"])
def test_every_format_yields_the_same_decoded_key(key: str) -> None:
    s3 = notification_body(s3_record(key, version_id="v1", sequencer="0A"))
    bodies = [s3, sns_body(s3), eventbridge_body(key, version_id="v1", sequencer="0A")]
    keys = {parse_message_body(body)[0].key for body in bodies}
    assert keys == {key}


@pytest.mark.parametrize(
    ("reason", "event_name"),
    [
        ("PutObject", "ObjectCreated:Put"),
        ("POST Object", "ObjectCreated:Post"),
        ("CopyObject", "ObjectCreated:Copy"),
        ("CompleteMultipartUpload", "ObjectCreated:CompleteMultipartUpload"),
    ],
)
def test_eventbridge_reasons_map_to_s3_event_names(reason: str, event_name: str) -> None:
    event = json.loads(eventbridge_body("a.png"))
    event["detail"]["reason"] = reason
    (obj,) = parse_message_body(json.dumps(event))
    assert obj.event_name == event_name and obj.is_object_created


@pytest.mark.parametrize(
    ("deletion_type", "event_name", "one_version"),
    [
        ("Delete Marker Created", "ObjectRemoved:DeleteMarkerCreated", False),
        ("Permanently Deleted", "ObjectRemoved:Delete", True),
    ],
)
def test_eventbridge_object_deleted(deletion_type: str, event_name: str, one_version: bool) -> None:
    (obj,) = parse_message_body(eventbridge_body("a b.png", version_id="v9", sequencer="0B", deleted=deletion_type))
    assert (obj.event_name, obj.key, obj.version_id, obj.sequencer) == (event_name, "a b.png", "v9", "0B")
    assert obj.is_object_removed and not obj.is_object_created
    assert obj.removes_one_version is one_version


def test_canonical_eventbridge_object_deleted_matches_the_s3_removal() -> None:
    (eb,) = parse_message_body(json.dumps(load_event("eventbridge_object_deleted.json")))
    (s3,) = parse_message_body(json.dumps(load_event("s3_object_removed.json")))
    assert eb == s3
    assert eb.removal_id(ARN) == s3.removal_id(ARN) != eb.result_id(ARN)


def test_eventbridge_sequencer_under_detail_is_accepted() -> None:
    event = json.loads(eventbridge_body("a.png"))
    event["detail"]["sequencer"] = "00FF"
    (obj,) = parse_message_body(json.dumps(event))
    assert obj.sequencer == "00FF"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e["detail"]["object"].pop("size"),
        lambda e: e["detail"]["object"].pop("etag"),
        lambda e: e["detail"]["object"].pop("key"),
        lambda e: e["detail"].pop("bucket"),
        lambda e: e.pop("detail"),
        lambda e: e.update({"detail-type": "Object Restore Completed"}),
    ],
)
def test_malformed_eventbridge_events_are_rejected(mutate: object) -> None:
    event = json.loads(eventbridge_body("a.png"))
    mutate(event)  # type: ignore[operator]
    with pytest.raises(InvalidMessageError):
        parse_message_body(json.dumps(event))


def test_eventbridge_deleted_with_unknown_deletion_type_is_rejected() -> None:
    event = json.loads(eventbridge_body("a.png", deleted="Delete Marker Created"))
    event["detail"]["deletion-type"] = "Vanished"
    with pytest.raises(InvalidMessageError, match="deletion-type"):
        parse_message_body(json.dumps(event))


def test_sns_notification_envelope_is_unwrapped() -> None:
    (obj,) = parse_message_body(json.dumps(load_event("sns_notification.json")))
    assert obj == CANONICAL


def test_sns_raw_delivery_is_the_notification_itself() -> None:
    raw = json.dumps(load_event("s3_notification.json"))
    assert parse_message_body(raw) == parse_message_body(sns_body(raw))


def test_sns_wrapped_test_event_is_acknowledged() -> None:
    assert parse_message_body(sns_body(json.dumps(load_event("s3_test_event.json")))) == []


def test_sns_wrapped_removal() -> None:
    (obj,) = parse_message_body(sns_body(notification_body(s3_removal_record("a.png", sequencer="0C"))))
    assert obj.is_object_removed and obj.key == "a.png"


@pytest.mark.parametrize("message", ["not json", "[]", json.dumps({"hello": 1}), json.dumps({"Records": []})])
def test_sns_envelope_with_a_bad_message_is_rejected(message: str) -> None:
    with pytest.raises(InvalidMessageError):
        parse_message_body(sns_body(message))


def test_sns_envelope_without_a_message_string_is_rejected() -> None:
    envelope = load_event("sns_notification.json")
    envelope["Message"] = {"Records": []}
    with pytest.raises(InvalidMessageError, match="Message"):
        parse_message_body(json.dumps(envelope))


@pytest.mark.parametrize("kind", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_sns_subscription_confirmation_is_invalid_and_says_what_to_do(kind: str) -> None:
    confirmation = load_event("sns_subscription_confirmation.json")
    confirmation["Type"] = kind
    with pytest.raises(SubscriptionConfirmationError, match="SubscribeURL") as raised:
        parse_message_body(json.dumps(confirmation))
    assert "autolabel-images-fanout" in str(raised.value)
    assert isinstance(raised.value, InvalidMessageError)  # so it ends in the DLQ, which alarms


def test_removal_identity_differs_from_the_created_version() -> None:
    (created,) = parse_message_body(notification_body(s3_record("k.png", version_id="v1", sequencer="01")))
    removal = s3_removal_record("k.png", version_id="v1", sequencer="02", event_name="ObjectRemoved:Delete")
    (removed,) = parse_message_body(notification_body(removal))
    assert created.event_identity != removed.event_identity
    assert removed.removes_one_version and not created.removes_one_version
