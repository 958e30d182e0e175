"""Parsing of SQS message bodies that carry S3 object events (docs/behaviour.md#inbound-messages).

Three formats reach the ingest queue, all parsed into the same
``S3ObjectEvent`` (decoded key, version, sequencer):

- an S3 event notification (``{"Records": [...]}``), keys URL-encoded;
- the same notification wrapped by SNS: raw delivery is the notification
  itself, non-raw delivery is an SNS ``Notification`` envelope whose
  ``Message`` is the notification as a JSON string;
- an EventBridge ``aws.s3`` event (``Object Created`` / ``Object Deleted``),
  whose keys are NOT URL-encoded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


# Wide enough for any S3 sequencer seen so far; longer ones still compare right.
SEQUENCER_ORDER_WIDTH = 64


def comparable_sequencer(sequencer: str | None) -> str | None:
    """The order key of an S3 sequencer: upper-case hex, right-padded with zeros.

    The S3 User Guide (event message structure) says sequencers of different
    lengths compare after right-padding the shorter one with zeros; then a
    plain string comparison orders them. Stored as ``sequencerOrder``.
    """
    return sequencer.upper().ljust(SEQUENCER_ORDER_WIDTH, "0") if sequencer else None


def sequencer_is_newer(candidate: str | None, current: str | None) -> bool:
    """True when ``candidate`` is strictly later than ``current``; False if either is unknown.

    As S3 documents: right-pad the shorter with zeros, then compare (docs/behaviour.md#ordering).
    """
    if not candidate or not current:
        return False
    width = max(len(candidate), len(current))
    return candidate.upper().ljust(width, "0") > current.upper().ljust(width, "0")


class InvalidMessageError(ValueError):
    """The message body is not JSON or not an S3 event notification."""


class SubscriptionConfirmationError(InvalidMessageError):
    """An SNS subscription (or unsubscribe) confirmation reached the queue.

    Not an object event, and not to be dropped silently: the subscription
    stays unconfirmed until someone visits its SubscribeURL. It is invalid,
    so it ends in the DLQ, which alarms (docs/runbook.md).
    """


OBJECT_CREATED = "ObjectCreated:"
OBJECT_REMOVED = "ObjectRemoved:"
DELETE = "ObjectRemoved:Delete"
DELETE_MARKER_CREATED = "ObjectRemoved:DeleteMarkerCreated"


@dataclass(frozen=True)
class S3ObjectEvent:
    """One record of an S3 event notification, with the key URL-decoded."""

    event_name: str
    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None
    sequencer: str | None

    @property
    def is_object_created(self) -> bool:
        return self.event_name.startswith(OBJECT_CREATED)

    @property
    def is_object_removed(self) -> bool:
        return self.event_name.startswith(OBJECT_REMOVED)

    @property
    def removes_one_version(self) -> bool:
        """A permanent delete of one version of a versioned object (not the key, not a delete marker)."""
        return self.event_name == DELETE and self.version_id is not None

    @property
    def event_identity(self) -> tuple[str, ...]:
        """What makes two records the same event: the object version created, or the deletion."""
        if self.is_object_removed:
            return (self.bucket, self.key, "removed", self.sequencer or "", self.version_id or "")
        return self.object_identity

    @property
    def has_image_extension(self) -> bool:
        return self.key.lower().endswith(IMAGE_EXTENSIONS)

    @property
    def object_identity(self) -> tuple[str, str, str]:
        """What identifies these exact bytes: the version when known, else the ETag."""
        return (self.bucket, self.key, self.version_id or f"etag:{self.etag}")

    @property
    def sequencer_order(self) -> str | None:
        return comparable_sequencer(self.sequencer)

    def result_id(self, project_version_arn: str) -> str:
        bucket, key, version = self.object_identity
        digest = hashlib.sha256("\0".join((bucket, key, version, project_version_arn)).encode())
        return digest.hexdigest()[:32]

    def removal_id(self, project_version_arn: str) -> str:
        """Stable id of this deletion for one model version (the same for every redelivery)."""
        parts = ("removed", self.bucket, self.key, self.sequencer or "", self.version_id or "", project_version_arn)
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def parse_message_body(body: str) -> list[S3ObjectEvent]:
    """Records of one SQS message body, whatever its format; an empty list for ``s3:TestEvent``."""
    document = _json_object(body, "message body")
    kind = document.get("Type")
    if kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        raise SubscriptionConfirmationError(
            f"SNS {kind} for topic {document.get('TopicArn')!r}: confirm the subscription from its "
            "SubscribeURL (in this message, in the DLQ), then delete the message"
        )
    if kind == "Notification" and "TopicArn" in document:
        message = document.get("Message")
        if not isinstance(message, str):
            raise InvalidMessageError("SNS notification has no 'Message' string")
        return _parse_s3_notification(_json_object(message, "SNS Message"))
    if document.get("source") == "aws.s3" and "detail-type" in document:
        return [_parse_eventbridge(document)]
    return _parse_s3_notification(document)


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except (TypeError, ValueError) as error:
        raise InvalidMessageError(f"{what} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidMessageError(f"{what} is not a JSON object")
    return document


def _parse_s3_notification(document: dict[str, Any]) -> list[S3ObjectEvent]:
    if document.get("Event") == "s3:TestEvent":
        return []
    records = document.get("Records")
    if not isinstance(records, list) or not records:
        raise InvalidMessageError("message body has no S3 'Records' list")
    return [_parse_record(record, index) for index, record in enumerate(records)]


# EventBridge's ``reason`` of an Object Created event -> the S3 notification's event name.
_CREATED_REASONS = {
    "PutObject": "ObjectCreated:Put",
    "POST Object": "ObjectCreated:Post",
    "CopyObject": "ObjectCreated:Copy",
    "CompleteMultipartUpload": "ObjectCreated:CompleteMultipartUpload",
}
_DELETION_TYPES = {"Permanently Deleted": DELETE, "Delete Marker Created": DELETE_MARKER_CREATED}


def _parse_eventbridge(event: dict[str, Any]) -> S3ObjectEvent:
    """An EventBridge ``aws.s3`` event; its key is NOT URL-encoded (unlike an S3 notification's)."""
    detail_type = event["detail-type"]
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise InvalidMessageError("EventBridge event has no detail")
    bucket = detail.get("bucket", {}).get("name") if isinstance(detail.get("bucket"), dict) else None
    obj = detail.get("object")
    if not isinstance(bucket, str) or not bucket or not isinstance(obj, dict):
        raise InvalidMessageError("EventBridge event has no bucket name or object")
    key = obj.get("key")
    if not isinstance(key, str) or not key:
        raise InvalidMessageError("EventBridge event has no object key")
    if detail_type == "Object Created":
        reason = str(detail.get("reason", ""))
        event_name = _CREATED_REASONS.get(reason, f"{OBJECT_CREATED}{reason or 'Put'}")
    elif detail_type == "Object Deleted":
        deletion_type = detail.get("deletion-type")
        if deletion_type not in _DELETION_TYPES:
            raise InvalidMessageError(f"EventBridge Object Deleted event has unknown deletion-type {deletion_type!r}")
        event_name = _DELETION_TYPES[deletion_type]
    else:
        raise InvalidMessageError(f"EventBridge aws.s3 event {detail_type!r} is not Object Created or Object Deleted")
    # S3 documents the sequencer under detail.object; accept it under detail too.
    return _object_event(
        event_name,
        bucket,
        key,
        obj.get("size"),
        obj.get("etag", ""),
        obj.get("version-id"),
        obj.get("sequencer") or detail.get("sequencer"),
        "EventBridge event",
    )


def _object_event(  # noqa: PLR0917 - one field per argument, in the notification's order
    event_name: str,
    bucket: str,
    key: str,
    size: Any,
    etag: Any,
    version_id: Any,
    sequencer: Any,
    where: str,
) -> S3ObjectEvent:
    """One object event, checked the same way whatever the format; ``key`` already decoded."""
    created = event_name.startswith(OBJECT_CREATED)
    if created and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InvalidMessageError(f"{where} has no valid object size")
    if created and (not isinstance(etag, str) or not etag):
        raise InvalidMessageError(f"{where} has no object eTag")
    return S3ObjectEvent(
        event_name=event_name,
        bucket=bucket,
        key=key,
        size=int(size) if isinstance(size, int) and not isinstance(size, bool) else 0,
        etag=str(etag or ""),
        version_id=str(version_id) if version_id else None,
        sequencer=str(sequencer) if sequencer else None,
    )


def _parse_record(record: Any, index: int) -> S3ObjectEvent:
    where = f"Records[{index}]"
    if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
        raise InvalidMessageError(f"{where} is not an S3 event record")
    event_name = record.get("eventName")
    s3 = record.get("s3")
    if not isinstance(event_name, str) or not isinstance(s3, dict):
        raise InvalidMessageError(f"{where} has no eventName or s3 section")
    bucket = s3.get("bucket", {}).get("name") if isinstance(s3.get("bucket"), dict) else None
    obj = s3.get("object")
    if not isinstance(bucket, str) or not bucket or not isinstance(obj, dict):
        raise InvalidMessageError(f"{where} has no bucket name or object")
    raw_key = obj.get("key")
    if not isinstance(raw_key, str) or not raw_key:
        raise InvalidMessageError(f"{where} has no object key")
    return _object_event(
        event_name,
        bucket,
        unquote_plus(raw_key),  # S3 notifications URL-encode keys
        obj.get("size"),
        obj.get("eTag", ""),
        obj.get("versionId"),
        obj.get("sequencer"),
        where,
    )
