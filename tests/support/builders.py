"""Builders for S3 notifications and SQS events, from the canonical JSON files."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


def load_event(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return document


def s3_record(
    key: str,
    *,
    bucket: str = "autolabel-images",
    size: int = 48213,
    etag: str = "d41d8cd98f00b204e9800998ecf8427e",
    version_id: str | None = None,
    sequencer: str | None = None,
    event_name: str = "ObjectCreated:Put",
) -> dict[str, Any]:
    """One S3 notification record; the key is URL-encoded as S3 does."""
    return _record(
        "s3_notification.json", bucket, event_name, key, size=size, eTag=etag, versionId=version_id, sequencer=sequencer
    )


def notification_body(*records: dict[str, Any]) -> str:
    return json.dumps({"Records": list(records)})


def sqs_event(*bodies: str) -> dict[str, Any]:
    """An SQS event for the handler with these bodies, each its own new messageId."""
    return sqs_messages_event([(str(uuid.uuid4()), body) for body in bodies])


def sqs_messages_event(messages: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """An SQS event for the handler: (messageId, body) pairs, in this order."""
    template = load_event("sqs_event.json")["Records"][0]
    return {
        "Records": [{**copy.deepcopy(template), "messageId": message_id, "body": body} for message_id, body in messages]
    }


def s3_removal_record(
    key: str,
    *,
    bucket: str = "autolabel-images",
    version_id: str | None = None,
    sequencer: str | None = None,
    event_name: str = "ObjectRemoved:DeleteMarkerCreated",
) -> dict[str, Any]:
    """One ObjectRemoved record, shaped like ``s3_object_removed.json`` (no size, no eTag)."""
    return _record("s3_object_removed.json", bucket, event_name, key, versionId=version_id, sequencer=sequencer)


def _record(template: str, bucket: str, event_name: str, key: str, **object_fields: Any) -> dict[str, Any]:
    """The template's record for ``bucket`` and ``event_name``; its object the key and the fields given (not None)."""
    record = copy.deepcopy(load_event(template)["Records"][0])
    record["eventName"] = event_name
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    fields = {name: value for name, value in object_fields.items() if value is not None}
    record["s3"]["object"] = {"key": quote_plus(key), **fields}
    return record


def eventbridge_body(
    key: str,
    *,
    bucket: str = "autolabel-images",
    size: int = 48213,
    etag: str = "d41d8cd98f00b204e9800998ecf8427e",
    version_id: str | None = None,
    sequencer: str | None = None,
    deleted: str | None = None,
) -> str:
    """An EventBridge ``aws.s3`` event as the rule delivers it to SQS; the key is NOT URL-encoded.

    ``deleted``: None for Object Created, else the deletion-type of an Object
    Deleted event ("Delete Marker Created" or "Permanently Deleted").
    """
    template = "eventbridge_object_deleted.json" if deleted else "eventbridge_object_created.json"
    event = load_event(template)
    event["id"] = str(uuid.uuid4())
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    detail = event["detail"]
    detail["bucket"]["name"] = bucket
    obj: dict[str, Any] = {"key": key}
    if not deleted:
        obj.update(size=size, etag=etag)
    else:
        detail["deletion-type"] = deleted
    if version_id is not None:
        obj["version-id"] = version_id
    if sequencer is not None:
        obj["sequencer"] = sequencer
    detail["object"] = obj
    return json.dumps(event)


def sns_body(message: str) -> str:
    """A non-raw SNS delivery: the ``Notification`` envelope with ``message`` as its Message string."""
    envelope = load_event("sns_notification.json")
    envelope["MessageId"] = str(uuid.uuid4())
    envelope["Message"] = message
    return json.dumps(envelope)
