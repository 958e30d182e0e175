"""The backfill queue's message: one object already in the bucket, as listed by `autolabel backfill`.

Its own small schema rather than a fake S3 notification, so that nothing can
mistake a listing for an event (a listing has no sequencer and no event time):

    {"autolabelBackfill": "1", "bucket": "images", "key": "line-1/part 7.png",
     "versionId": "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY" | null, "etag": "d41d8cd98f00b204e9800998ecf8427e",
     "size": 48213, "lastModified": "2026-11-24T10:00:00Z", "run": "<backfill run id>", "force": false,
     "replaces": "<versionId>" | null}

``key`` is the key itself (not URL-encoded, unlike S3 notifications); ``etag``
has no quotes (as in notifications); ``versionId`` is null for an object of a
bucket without versioning. ``replaces``: a version the listing showed to be
older than this one (non-current), whose stored result this one may replace.
docs/behaviour.md#backfill states how the labeler treats it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from labeler.domain.s3_notification import InvalidMessageError, S3ObjectEvent

MARKER = "autolabelBackfill"
SCHEMA_VERSION = "1"
# The event name a listed object carries through the pipeline (never stored or published).
BACKFILL_EVENT_NAME = "ObjectCreated:Backfill"


@dataclass(frozen=True)
class BackfillRequest:
    obj: S3ObjectEvent  # sequencer None: a listing has none
    run_id: str
    force: bool
    last_modified: str = ""
    replaces: str | None = None  # a versionId the listing proved older (non-current) than this one

    def to_body(self) -> str:
        return json.dumps(
            {
                MARKER: SCHEMA_VERSION,
                "bucket": self.obj.bucket,
                "key": self.obj.key,
                "versionId": self.obj.version_id,
                "etag": self.obj.etag,
                "size": self.obj.size,
                "lastModified": self.last_modified,
                "run": self.run_id,
                "force": self.force,
                "replaces": self.replaces,
            },
            separators=(",", ":"),
        )


def backfill_request(
    bucket: str,
    key: str,
    *,
    version_id: str | None,
    etag: str,
    size: int,
    run_id: str,
    force: bool = False,
    last_modified: str = "",
    replaces: str | None = None,
) -> BackfillRequest:
    """A request from a listing entry: the ETag without quotes, no version for an unversioned object ("null")."""
    version = version_id if version_id and version_id != "null" else None
    obj = S3ObjectEvent(BACKFILL_EVENT_NAME, bucket, key, int(size), etag.strip('"'), version, None)
    return BackfillRequest(obj, run_id, force, last_modified, replaces if version else None)


def is_backfill_body(document: Any) -> bool:
    return isinstance(document, dict) and MARKER in document


def parse_backfill_body(body: str) -> BackfillRequest | None:
    """The backfill request in a message body; None when the body is not one (an S3 notification...)."""
    try:
        document = json.loads(body)
    except (TypeError, ValueError):
        return None  # not JSON: the notification parser reports it
    if not is_backfill_body(document):
        return None
    if document.get(MARKER) != SCHEMA_VERSION:
        raise InvalidMessageError(f"unknown backfill message version {document.get(MARKER)!r}")
    bucket, key, etag, size = (document.get(name) for name in ("bucket", "key", "etag", "size"))
    run_id, force = document.get("run"), document.get("force", False)
    version_id = document.get("versionId")
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise InvalidMessageError("backfill message has no bucket or key")
    if not isinstance(etag, str) or not etag:
        raise InvalidMessageError("backfill message has no etag")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidMessageError("backfill message has no valid size")
    if version_id is not None and not isinstance(version_id, str):
        raise InvalidMessageError("backfill message has an invalid versionId")
    replaces = document.get("replaces")
    if replaces is not None and (not isinstance(replaces, str) or not replaces):
        raise InvalidMessageError("backfill message has an invalid 'replaces' version")
    if not isinstance(run_id, str) or not run_id or not isinstance(force, bool):
        raise InvalidMessageError("backfill message has no run id or an invalid force flag")
    return backfill_request(
        bucket,
        key,
        version_id=version_id,
        etag=etag,
        size=size,
        run_id=run_id,
        force=force,
        last_modified=str(document.get("lastModified") or ""),
        replaces=replaces,
    )


def forced_result_id(obj: S3ObjectEvent, project_version_arn: str, run_id: str) -> str:
    """The resultId of a forced relabel: new for each forced run, the same for every retry within one."""
    bucket, key, version = obj.object_identity
    digest = hashlib.sha256("\0".join((bucket, key, version, project_version_arn, "force", run_id)).encode())
    return digest.hexdigest()[:32]
