"""Parsing of SQS message bodies that carry S3 event notifications."""

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
        return self.event_name.startswith("ObjectCreated:")

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


def parse_message_body(body: str) -> list[S3ObjectEvent]:
    """Records of one SQS message body; an empty list for ``s3:TestEvent``."""
    try:
        document = json.loads(body)
    except (TypeError, ValueError) as error:
        raise InvalidMessageError(f"message body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidMessageError("message body is not a JSON object")
    if document.get("Event") == "s3:TestEvent":
        return []
    records = document.get("Records")
    if not isinstance(records, list) or not records:
        raise InvalidMessageError("message body has no S3 'Records' list")
    return [_parse_record(record, index) for index, record in enumerate(records)]


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
    created = event_name.startswith("ObjectCreated:")
    size = obj.get("size")
    etag = obj.get("eTag", "")
    if created and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InvalidMessageError(f"{where} has no valid object size")
    if created and (not isinstance(etag, str) or not etag):
        raise InvalidMessageError(f"{where} has no object eTag")
    version_id = obj.get("versionId") or None
    sequencer = obj.get("sequencer") or None
    return S3ObjectEvent(
        event_name=event_name,
        bucket=bucket,
        key=unquote_plus(raw_key),
        size=int(size) if isinstance(size, int) else 0,
        etag=str(etag or ""),
        version_id=str(version_id) if version_id else None,
        sequencer=str(sequencer) if sequencer else None,
    )
