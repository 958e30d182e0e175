"""moto's S3 notifications made to carry what real S3 sends and autolabel depends on.

moto (as pinned) sends ObjectCreated records without ``versionId`` and
``sequencer``, and in a versioned bucket sends no ObjectRemoved record for a
delete (a delete marker) nor for the permanent delete of one version while
others remain. Real S3 sends all of them (S3 User Guide, "Event message
structure"): ``versionId`` when the bucket is versioned, and a ``sequencer``,
a hexadecimal string that orders the events of one key (compared after
right-padding the shorter with zeros). Without them the emulator never
exercises ordering, versions or deletions.

Inside :func:`s3_like_notifications` (the local run and its serve mode):

- every record gets ``sequencer``: fixed-width upper-case hex of a counter
  that never goes back (so it is monotonic per key, and across keys too), and
  ``versionId`` when the bucket is versioned;
- deletes send the ObjectRemoved record real S3 would: ``Delete`` (unversioned
  bucket, or a version deleted permanently, with its ``versionId``) or
  ``DeleteMarkerCreated`` (versioned bucket, with the marker's ``versionId``);
  removal records carry no ``size`` or ``eTag``, as in S3;
- a record can be held back (``hold``) and delivered later (``release``): S3
  does not promise delivery in order, and the local run shows what the
  labeler does with a notification that arrives after a newer one.

It patches moto in this process and restores it on exit, so the tests that
run moto elsewhere in the same process see moto as it ships.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

SEQUENCER_DIGITS = 18  # as the sequencers S3 sends today ("0055AED6DCD90281E5")


class Sequencer:
    """Real-format sequencers that never go back, even if the clock does."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return f"{self._last:0{SEQUENCER_DIGITS}X}"


HoldRule = Callable[[dict[str, Any]], bool]


@dataclass
class S3LikeNotifications:
    """What was sent (every record, in order) and what is held back for a later delivery."""

    sequencer: Sequencer = field(default_factory=Sequencer)
    sent: list[dict[str, Any]] = field(default_factory=list)
    held: list[Callable[[], None]] = field(default_factory=list)  # each delivers one held notification
    _hold_rules: list[HoldRule] = field(default_factory=list)

    def hold(self, rule: HoldRule) -> None:
        """The next record ``rule`` accepts is kept back instead of sent (once)."""
        self._hold_rules.append(rule)

    def release(self) -> int:
        """Deliver what was held, now; returns how many."""
        held, self.held = self.held, []
        for deliver in held:
            deliver()
        return len(held)

    def records_for(self, key: str) -> list[dict[str, Any]]:
        return [r for r in self.sent if r["s3"]["object"]["key"] == quote_plus(key)]

    def _take_hold(self, record: dict[str, Any]) -> bool:
        for rule in self._hold_rules:
            if rule(record):
                self._hold_rules.remove(rule)
                return True
        return False


@dataclass(frozen=True)
class _Removal:
    """An ObjectRemoved event of one key (and version), before it is addressed to a notification configuration."""

    bucket: Any
    key_name: str
    event_name: str  # "ObjectRemoved:Delete" or "ObjectRemoved:DeleteMarkerCreated"
    version: str | None

    def record(self, configuration_id: str, sequencer: Sequencer) -> dict[str, Any]:
        """As S3 sends it: no size, no eTag; versionId when there is one."""
        obj: dict[str, Any] = {
            "key": quote_plus(self.key_name),
            **({"versionId": self.version} if self.version else {}),
        }
        obj["sequencer"] = sequencer.next()
        return {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": self.bucket.region_name,
            "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "eventName": self.event_name,
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": configuration_id,
                "bucket": {"name": self.bucket.name, "arn": self.bucket.arn},
                "object": obj,
            },
        }


class _MotoPatches:
    """The replacements of moto's functions, around the originals they call."""

    def __init__(self, state: S3LikeNotifications) -> None:
        from moto.s3 import models, notifications

        self.state = state
        self.models, self.notifications = models, notifications
        self.muted = threading.local()
        self.original_event = notifications._get_s3_event
        self.original_send_sqs = notifications._send_sqs_message
        self.original_send_event = notifications.send_event
        self.original_delete = models.S3Backend.delete_object

    def install(self) -> None:
        self.notifications._get_s3_event = self.get_s3_event
        self.notifications._send_sqs_message = self.send_sqs_message
        self.notifications.send_event = self.send_event
        patches = self

        def delete_object(
            backend: Any, bucket_name: str, key_name: str, version_id: str | None = None, bypass: bool = False
        ) -> tuple[bool, dict[str, Any]]:
            return patches.delete_object(backend, bucket_name, key_name, version_id, bypass)

        self.models.S3Backend.delete_object = delete_object  # type: ignore[method-assign,assignment]

    def restore(self) -> None:
        self.notifications._get_s3_event = self.original_event
        self.notifications._send_sqs_message = self.original_send_sqs
        self.notifications.send_event = self.original_send_event
        self.models.S3Backend.delete_object = self.original_delete  # type: ignore[method-assign]

    def get_s3_event(self, event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.original_event(event_name, bucket, key, notification_id)
        obj = body["Records"][0]["s3"]["object"]
        version = getattr(key, "version_id", None)
        if bucket.is_versioned and version and version != "null":
            obj["versionId"] = str(version)
        obj["sequencer"] = self.state.sequencer.next()
        return body

    def send_sqs_message(self, account_id: str, event_body: Any, queue_name: str, region_name: str) -> None:
        records = event_body.get("Records") if isinstance(event_body, dict) else None
        if records:  # not the s3:TestEvent
            self.state.sent.append(copy.deepcopy(records[0]))
            if self.state._take_hold(records[0]):
                send = self.original_send_sqs
                self.state.held.append(lambda: send(account_id, event_body, queue_name, region_name))
                return
        self.original_send_sqs(account_id, event_body, queue_name, region_name)

    def send_event(self, account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
        name = str(getattr(event_name, "value", event_name))
        if getattr(self.muted, "removals", False) and name.startswith("s3:ObjectRemoved"):
            return  # delete_object sends the record real S3 would
        self.original_send_event(account_id, event_name, bucket, key)

    def delete_object(
        self, backend: Any, bucket_name: str, key_name: str, version_id: str | None, bypass: bool
    ) -> tuple[bool, dict[str, Any]]:
        bucket = backend.get_bucket(bucket_name)
        self.muted.removals = True
        try:
            deleted, meta = self.original_delete(backend, bucket_name, key_name, version_id, bypass)
        finally:
            self.muted.removals = False
        if deleted:
            if not bucket.is_versioned:
                removal = _Removal(bucket, key_name, "ObjectRemoved:Delete", None)
            elif version_id is None:
                removal = _Removal(bucket, key_name, "ObjectRemoved:DeleteMarkerCreated", meta["version-id"])
            else:
                removal = _Removal(bucket, key_name, "ObjectRemoved:Delete", str(version_id))
            self.notify_removal(backend.account_id, removal)
        return deleted, meta

    def notify_removal(self, account_id: str, removal: _Removal) -> None:
        configuration = removal.bucket.notification_configuration
        for notification in configuration.queue if configuration is not None else []:
            if notification.matches(f"s3:{removal.event_name}", removal.key_name):
                record = removal.record(notification.id, self.state.sequencer)
                _, _, _, region, _, queue_name = notification.arn.split(":")
                self.send_sqs_message(account_id, {"Records": [record]}, queue_name, region)


@contextlib.contextmanager
def s3_like_notifications() -> Iterator[S3LikeNotifications]:
    state = S3LikeNotifications()
    patches = _MotoPatches(state)
    patches.install()
    try:
        yield state
    finally:
        patches.restore()
