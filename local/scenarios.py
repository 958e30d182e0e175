"""The local run's ordering and deletion scenarios, and the checks of their outcome.

- Overwrite, delivered out of order: two versions of one key; the first
  version's notification is held back (S3 does not promise order) and
  arrives after the second was labeled. The stored result must stay the
  second version's (docs/behaviour.md#ordering): labels of the newer image,
  its versionId, one Detected event.
- Deletion: an image labeled, then deleted (a delete marker in the versioned
  bucket, ObjectRemoved:DeleteMarkerCreated). Its result must be marked
  deleted (``deletedAt``), be gone from ``find_by_label``, and a Removed
  event announce it (docs/behaviour.md#deletions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from labeler.queries import find_by_label, get_result
from local.s3_notifications import S3LikeNotifications
from local.samples import make_image

OVERWRITTEN = "line-3/overwritten.png"
DELETED = "line-3/deleted.png"
# Events the scenarios add: the second version's Detected; the deleted image's Detected and Removed.
EXPECTED_EVENTS = 3


@dataclass(frozen=True)
class Check:
    key: str
    ok: bool
    status: str
    detail: str
    note: str


@dataclass(frozen=True)
class Overwrite:
    first_version: str
    second_version: str


def overwrite_out_of_order(s3: Any, bucket: str, notifier: S3LikeNotifications, drain: Callable[[], None]) -> Overwrite:
    notifier.hold(lambda r: r["s3"]["object"]["key"] == quote_plus(OVERWRITTEN) and "Created" in r["eventName"])
    first = s3.put_object(Bucket=bucket, Key=OVERWRITTEN, Body=make_image({"dent": (0.2, 0.2, 0.4, 0.4)}))
    second = s3.put_object(Bucket=bucket, Key=OVERWRITTEN, Body=make_image({"logo": (0.5, 0.5, 0.4, 0.4)}))
    drain()  # the second version is labeled first
    notifier.release()  # then the first version's notification arrives
    drain()
    return Overwrite(first["VersionId"], second["VersionId"])


def delete_after_labeling(s3: Any, bucket: str, drain: Callable[[], None]) -> None:
    s3.put_object(Bucket=bucket, Key=DELETED, Body=make_image({"scratch": (0.3, 0.3, 0.3, 0.3)}))
    drain()
    s3.delete_object(Bucket=bucket, Key=DELETED)  # versioned bucket: a delete marker
    drain()


def check_overwrite(table: str, bucket: str, overwrite: Overwrite, events: list[dict[str, Any]], ddb: Any) -> Check:
    result = get_result(table, bucket, OVERWRITTEN, client=ddb) or {}
    labels = [label["Name"] for label in result.get("customLabels", [])]
    detected = [e for e in events if e["detail"]["key"] == OVERWRITTEN and e["detail-type"].endswith("Detected")]
    ok = (
        result.get("versionId") == overwrite.second_version
        and labels == ["logo"]
        and [e["detail"]["versionId"] for e in detected] == [overwrite.second_version]
    )
    detail = f"{', '.join(labels) or '(none)'} of version {result.get('versionId')}; {len(detected)} Detected event(s)"
    note = "2 versions, the 1st's notification delivered last: the 2nd's result stays"
    return Check(OVERWRITTEN, ok, str(result.get("status", "SKIPPED")), detail, note)


def check_deletion(table: str, bucket: str, events: list[dict[str, Any]], ddb: Any) -> Check:
    result = get_result(table, bucket, DELETED, client=ddb) or {}
    listed = [f["key"] for f in find_by_label(table, "scratch", 0, client=ddb) if f["key"] == DELETED]
    removed = [e for e in events if e["detail"]["key"] == DELETED and e["detail-type"].endswith("Removed")]
    ok = "deletedAt" in result and not listed and len(removed) == 1
    detail = (
        f"deletedAt {result.get('deletedAt')}; find_by_label lists it {len(listed)} time(s); "
        f"{len(removed)} Removed event(s)"
    )
    note = "labeled, then deleted (delete marker): marked deleted, unlisted, announced"
    return Check(DELETED, ok, str(result.get("status", "SKIPPED")), detail, note)
