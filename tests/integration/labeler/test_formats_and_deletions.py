"""The real path in moto for the other notification formats and for deletions.

EventBridge ``aws.s3`` events and SNS-wrapped notifications go through the
same handler, ordering and dedupe as S3 notifications
(docs/behaviour.md#inbound-messages); deletions mark results deleted and
announce ``Custom Labels Removed`` (docs/behaviour.md#deletions).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from labeler import handler
from local.fakes.faults import client_error, fail_times, put_events_rejecting
from local.samples import make_image
from tests.integration.labeler.test_fault_scenarios import many_labels_harness
from tests.support.builders import (
    eventbridge_body,
    load_event,
    notification_body,
    s3_removal_record,
    sns_body,
)
from tests.support.harness import Harness
from tests.support.metrics import emitted
from tests.support.table_writes import is_index_only_write, is_mark
from tests.unit.labeler.test_event_schema import validate_detail

SCRATCH = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
DENT = make_image({"dent": (0.5, 0.5, 0.4, 0.4)})
REMOVED = "Custom Labels Removed"


def with_deletions(harness: Harness, on: bool = True) -> Harness:
    """The harness's pipeline with the ``deletions`` option (the DELETIONS variable) set."""
    harness.config = replace(harness.config, deletions=on)
    harness.pipeline = harness.build_pipeline()
    handler.use_pipeline(harness.pipeline)
    return harness


def of_type(events: list[dict[str, Any]], detail_type: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in events if e["detail-type"] == detail_type]


# -- EventBridge and SNS-wrapped notifications ---------------------------------------------------


def test_eventbridge_event_is_labeled_under_its_literal_key(harness: Harness) -> None:
    key = "line 1/a+b%2B.png"  # '+' and '%2B' are literal: EventBridge keys are not URL-encoded
    upload = harness.upload_quietly(key, SCRATCH)
    harness.send(eventbridge_body(key, bucket=harness.resources.bucket, version_id=upload["VersionId"], sequencer="0A"))
    harness.run()
    result = harness.result(key)
    assert result is not None and result["status"] == "LABELED" and result["key"] == key
    assert result["versionId"] == upload["VersionId"] and result["sequencer"] == "0A"
    (call,) = harness.model.calls
    assert call["Image"]["S3Object"]["Name"] == key
    (event,) = harness.new_events()
    assert event["detail"]["key"] == key and event["detail"]["resultId"] == result["resultId"]


def test_the_same_upload_in_two_formats_is_labeled_and_announced_once(harness: Harness) -> None:
    upload = harness.upload_quietly("a b.png", SCRATCH)
    record = harness.record_for("a b.png", upload, sequencer="0A")
    harness.send(
        eventbridge_body(
            "a b.png",
            bucket=harness.resources.bucket,
            version_id=upload["VersionId"],
            etag=record["s3"]["object"]["eTag"],
            size=record["s3"]["object"]["size"],
            sequencer="0A",
        )
    )
    harness.run()
    harness.send(notification_body(record))  # the same version, as an S3 notification (key encoded)
    harness.send(sns_body(notification_body(record)))  # and wrapped by SNS
    harness.run()
    assert harness.rekognition_calls() == 1
    assert len(harness.new_events()) == 1


def test_older_eventbridge_event_after_a_newer_one_never_overwrites(harness: Harness) -> None:
    first = harness.upload_quietly("a.png", SCRATCH)
    second = harness.upload_quietly("a.png", DENT)
    bucket = harness.resources.bucket
    harness.send(eventbridge_body("a.png", bucket=bucket, version_id=second["VersionId"], sequencer="0055AED6DCD9029"))
    harness.run()
    harness.send(
        eventbridge_body("a.png", bucket=bucket, version_id=first["VersionId"], sequencer="0055AED6DCD90281E5")
    )
    harness.run()
    result = harness.result("a.png")
    assert result is not None and result["labelNames"] == ["dent"]
    assert harness.rekognition_calls() == 1


@pytest.mark.parametrize("raw", [True, False])
def test_sns_wrapped_notification_is_labeled(harness: Harness, raw: bool) -> None:
    upload = harness.upload_quietly("dir/x y.png", DENT)
    body = notification_body(harness.record_for("dir/x y.png", upload, sequencer="0B"))
    harness.send(body if raw else sns_body(body))
    harness.run()
    result = harness.result("dir/x y.png")
    assert result is not None and result["labelNames"] == ["dent"]
    assert len(harness.new_events()) == 1


def test_eventbridge_event_with_a_transient_fault_is_retried_like_any_other(harness: Harness) -> None:
    harness.dynamodb.faults["put_item"] = fail_times(
        1, lambda: client_error("InternalServerError", status=500, operation="PutItem")
    )
    upload = harness.upload_quietly("a.png", SCRATCH)
    harness.send(eventbridge_body("a.png", bucket=harness.resources.bucket, version_id=upload["VersionId"]))
    harness.run()
    assert harness.result("a.png") is not None and len(harness.new_events()) == 1
    assert harness.dead_letters() == []


def test_sns_subscription_confirmation_ends_in_the_dlq_and_the_batch_proceeds(
    harness: Harness, capsys: Any, caplog: Any
) -> None:
    harness.discard_notifications()
    confirmation = load_event("sns_subscription_confirmation.json")
    harness.send(json.dumps(confirmation))
    harness.upload("a.png", SCRATCH)
    harness.run()
    assert harness.result("a.png") is not None
    (dead,) = harness.dead_letters()
    assert dead["Type"] == "SubscriptionConfirmation" and dead["SubscribeURL"] == confirmation["SubscribeURL"]
    # The error log line says what to do.
    assert any("SubscribeURL" in str(getattr(record, "error", "")) for record in caplog.records)
    assert emitted(capsys.readouterr().out, "InvalidMessages") == harness.facts.max_receive_count


def test_malformed_eventbridge_event_goes_to_the_dlq(harness: Harness) -> None:
    event = json.loads(eventbridge_body("a.png", bucket=harness.resources.bucket))
    del event["detail"]["object"]["etag"]
    harness.send(json.dumps(event))
    harness.run()
    (dead,) = harness.dead_letters()
    assert dead["detail-type"] == "Object Created"


# -- deletions ---------------------------------------------------------------------------------


def _label(harness: Harness, key: str = "a.png", body: bytes = SCRATCH, sequencer: str = "0A") -> dict[str, Any]:
    upload = harness.upload_quietly(key, body)
    harness.send(notification_body(harness.record_for(key, upload, sequencer=sequencer)))
    harness.run()
    harness.new_events()
    return upload


def _delete_marker(harness: Harness, key: str = "a.png", sequencer: str = "0C", version: str = "dm1") -> str:
    return notification_body(
        s3_removal_record(key, bucket=harness.resources.bucket, version_id=version, sequencer=sequencer)
    )


def test_deleted_object_stops_answering_find_by_label_and_is_announced_once(harness: Harness, capsys: Any) -> None:
    with_deletions(harness)
    upload = _label(harness)
    labeled = harness.result("a.png")
    assert labeled is not None and harness.by_label("scratch") != []
    body = _delete_marker(harness)
    harness.send(body)
    harness.run()
    harness.send(body)  # the same deletion again: nothing more
    harness.run()
    assert harness.by_label("scratch") == []
    result = harness.result("a.png")
    assert result is not None
    # Kept, marked deleted: history is not lost, and the status says so.
    assert result["status"] == "DELETED" and result["labelNames"] == ["scratch"]
    assert result["resultId"] == labeled["resultId"] and result["customLabels"] == labeled["customLabels"]
    assert result["deletedAt"] >= labeled["processedAt"]
    assert result["deletion"] == {
        "eventName": "ObjectRemoved:DeleteMarkerCreated",
        "versionId": "dm1",
        "sequencer": "0C",
    }
    assert result["removalPublished"] is True and result["eventPublished"] is True
    (removed,) = of_type(harness.new_events(), REMOVED)
    validate_detail(REMOVED, removed)
    assert removed["sequencer"] == "0C"  # the deletion's, at the top level as in every event of the key
    assert removed["resultId"] == labeled["resultId"] and removed["removalId"] == result["removalId"]
    assert (removed["key"], removed["versionId"], removed["labelNames"]) == ("a.png", upload["VersionId"], ["scratch"])
    assert removed["deletedAt"] == result["deletedAt"]
    output = capsys.readouterr().out
    assert emitted(output, "ResultsRemoved") == 1 and emitted(output, "DuplicatesIgnored") == 1
    assert harness.rekognition_calls() == 1


def test_eventbridge_object_deleted_removes_too(harness: Harness) -> None:
    with_deletions(harness)
    _label(harness, "a b+c.png")
    harness.send(
        eventbridge_body(
            "a b+c.png",
            bucket=harness.resources.bucket,
            version_id="dm1",
            sequencer="0C",
            deleted="Delete Marker Created",
        )
    )
    harness.run()
    assert harness.by_label("scratch") == []
    (removed,) = of_type(harness.new_events(), REMOVED)
    assert removed["key"] == "a b+c.png"


def test_deletion_older_than_the_current_result_changes_nothing(harness: Harness) -> None:
    with_deletions(harness)
    _label(harness, sequencer="0D")
    harness.send(_delete_marker(harness, sequencer="0C"))
    harness.run()
    result = harness.result("a.png")
    assert result is not None and "deletedAt" not in result
    assert [f["key"] for f in harness.by_label("scratch")] == ["a.png"]
    assert harness.new_events() == []


def test_create_older_than_a_deletion_does_not_resurrect(harness: Harness) -> None:
    with_deletions(harness)
    upload = harness.upload_quietly("a.png", SCRATCH)
    record = harness.record_for("a.png", upload, sequencer="0A")
    # The deletion is processed first (the create was delayed, e.g. throttled).
    harness.send(_delete_marker(harness, sequencer="0C"))
    harness.run()
    tombstone = harness.result("a.png")
    assert tombstone is not None and tombstone["status"] == "DELETED" and tombstone["labelNames"] == []
    harness.send(notification_body(record))
    harness.run()
    assert harness.rekognition_calls() == 0
    assert harness.by_label("scratch") == [] and harness.new_events() == []
    # A newer upload after the deletion is labeled as usual.
    again = harness.upload_quietly("a.png", DENT)
    harness.send(notification_body(harness.record_for("a.png", again, sequencer="0E")))
    harness.run()
    result = harness.result("a.png")
    assert result is not None and result["labelNames"] == ["dent"] and "deletedAt" not in result
    assert [f["key"] for f in harness.by_label("dent")] == ["a.png"]


def test_redelivered_create_of_the_deleted_version_does_not_resurrect(harness: Harness) -> None:
    with_deletions(harness)
    upload = _label(harness)
    harness.send(_delete_marker(harness))
    harness.run()
    harness.new_events()
    harness.send(notification_body(harness.record_for("a.png", upload, sequencer="0A")))  # a redrive, say
    harness.run()
    assert harness.by_label("scratch") == [] and harness.new_events() == []
    assert harness.rekognition_calls() == 1


def test_a_newer_deletion_of_a_deleted_object_orders_later_uploads(harness: Harness, capsys: Any) -> None:
    # Upload v1, delete (0B), upload v2 (0C), delete (0D); v2's notification arrives last.
    with_deletions(harness)
    _label(harness, sequencer="0A")
    harness.send(_delete_marker(harness, sequencer="0B", version="dm1"))
    harness.run()
    v2 = harness.upload_quietly("a.png", DENT)
    harness.send(_delete_marker(harness, sequencer="0D", version="dm2"))
    harness.run()
    harness.send(notification_body(harness.record_for("a.png", v2, sequencer="0C")))
    harness.run()
    result = harness.result("a.png")
    assert result is not None and result["deletion"]["sequencer"] == "0D" and result["labelNames"] == ["scratch"]
    assert harness.by_label("dent") == [] and harness.by_label("scratch") == []
    assert [e["detail-type"] for e in harness.new_events()] == [REMOVED]  # one Removed, for v1
    assert harness.rekognition_calls() == 1  # v2 was older than the last deletion: not labeled
    output = capsys.readouterr().out
    assert emitted(output, "DeletionsNotAnnounced") == 1 and emitted(output, "StaleEventsIgnored") == 1


def test_deletion_and_create_in_one_batch_keep_the_newest(harness: Harness) -> None:
    with_deletions(harness)
    _label(harness)
    newer = harness.upload_quietly("a.png", DENT)
    harness.send(_delete_marker(harness, sequencer="0C"))
    harness.send(notification_body(harness.record_for("a.png", newer, sequencer="0D")))
    harness.run()
    result = harness.result("a.png")
    assert result is not None and result["labelNames"] == ["dent"] and "deletedAt" not in result
    assert [e["detail-type"] for e in harness.new_events()] == ["Custom Labels Detected"]


def test_permanent_delete_of_another_version_changes_nothing(harness: Harness) -> None:
    with_deletions(harness)
    _label(harness)
    harness.send(
        notification_body(
            s3_removal_record(
                "a.png",
                bucket=harness.resources.bucket,
                version_id="old-version",
                sequencer="0C",
                event_name="ObjectRemoved:Delete",
            )
        )
    )
    harness.run()
    result = harness.result("a.png")
    assert result is not None and "deletedAt" not in result and harness.new_events() == []


def test_permanent_delete_of_the_labeled_version_removes_it(harness: Harness) -> None:
    with_deletions(harness)
    upload = _label(harness)
    harness.send(
        notification_body(
            s3_removal_record(
                "a.png",
                bucket=harness.resources.bucket,
                version_id=upload["VersionId"],
                sequencer="0C",
                event_name="ObjectRemoved:Delete",
            )
        )
    )
    harness.run()
    assert harness.by_label("scratch") == []
    (removed,) = of_type(harness.new_events(), REMOVED)
    assert removed["deletion"]["eventName"] == "ObjectRemoved:Delete"


def test_deletions_off_ignores_removals(harness: Harness) -> None:
    with_deletions(harness, on=False)
    _label(harness)
    harness.send(_delete_marker(harness))
    harness.run()
    result = harness.result("a.png")
    assert result is not None and "deletedAt" not in result
    assert harness.by_label("scratch") != [] and harness.new_events() == []


def test_refused_removed_event_is_retried_and_announced_once(harness: Harness) -> None:
    with_deletions(harness)
    _label(harness)
    harness.events.faults["put_events"] = put_events_rejecting(
        fail_once := _once(lambda entry: entry["DetailType"] == REMOVED)
    )
    harness.send(_delete_marker(harness))
    harness.run()
    assert fail_once.fired == 1 and harness.poller.stats.item_failures == 1
    assert len(of_type(harness.new_events(), REMOVED)) == 1
    assert harness.by_label("scratch") == []


def test_deletion_write_failure_is_retried(harness: Harness) -> None:
    with_deletions(harness)
    _label(harness)
    harness.dynamodb.faults["update_item"] = fail_times(  # the deletion's conditional write
        1, lambda: client_error("InternalServerError", status=500, operation="UpdateItem")
    )
    harness.send(_delete_marker(harness))
    harness.run()
    assert harness.by_label("scratch") == [] and len(of_type(harness.new_events(), REMOVED)) == 1


def test_lost_putevents_answer_for_a_removal_is_counted_as_ambiguous(harness: Harness, capsys: Any) -> None:
    with_deletions(harness)
    _label(harness)
    lost = [0]

    def accept_then_lose_answer(kwargs: dict[str, Any], call: Any) -> Any:
        answer = call(**kwargs)
        if lost[0] == 0:
            lost[0] += 1
            raise ReadTimeoutError(endpoint_url="https://events.us-east-1.amazonaws.com")
        return answer

    harness.events.faults["put_events"] = accept_then_lose_answer
    harness.send(_delete_marker(harness))
    harness.run()
    announced = of_type(harness.new_events(), REMOVED)
    assert len(announced) == 2 and announced[0]["removalId"] == announced[1]["removalId"]
    assert emitted(capsys.readouterr().out, "AmbiguousPublishes") == 1  # the only duplicate, and it is counted


def test_failure_to_mark_a_removal_published_does_not_republish(harness: Harness) -> None:
    with_deletions(harness)
    _label(harness)

    def fail_marks(kwargs: dict[str, Any], call: Any) -> Any:
        if is_mark(kwargs):
            raise client_error("InternalServerError", status=500, operation="BatchWriteItem")
        return call(**kwargs)

    harness.dynamodb.faults["batch_write_item"] = fail_marks
    harness.send(_delete_marker(harness))
    harness.run()
    assert harness.poller.stats.item_failures == 0
    assert len(of_type(harness.new_events(), REMOVED)) == 1


def test_deletion_supersedes_a_result_that_was_never_announced(harness: Harness) -> None:
    with_deletions(harness)
    # Every Detected event refused: the result is stored, never announced, its message dead-lettered.
    harness.events.faults["put_events"] = put_events_rejecting(lambda e: e["DetailType"] == "Custom Labels Detected")
    upload = harness.upload_quietly("a.png", SCRATCH)
    harness.send(notification_body(harness.record_for("a.png", upload, sequencer="0A")))
    harness.run()
    (dead,) = harness.dead_letters()
    stored = harness.result("a.png")
    assert stored is not None and stored["eventPublished"] is False
    harness.events.faults.clear()
    harness.send(_delete_marker(harness))
    harness.run()
    harness.send(json.dumps(dead))  # the operator redrives the DLQ afterwards
    harness.run()
    # Removed once; the Detected of the deleted result is never announced after it.
    assert [e["detail-type"] for e in harness.new_events()] == [REMOVED]
    assert harness.by_label("scratch") == [] and harness.rekognition_calls() == 1


def test_lost_answer_of_the_deletion_write_is_recognised_as_its_own(harness: Harness) -> None:
    with_deletions(harness)
    _label(harness)
    lost = [0]

    def apply_then_lose_answer(kwargs: dict[str, Any], call: Any) -> Any:
        answer = call(**kwargs)
        if lost[0] == 0 and "removalPublished" in json.dumps(kwargs):
            lost[0] += 1  # the deletion went in; its answer never arrives
            raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
        return answer

    harness.dynamodb.faults["update_item"] = apply_then_lose_answer
    harness.send(_delete_marker(harness))
    harness.run()
    assert lost == [1]
    assert harness.poller.stats.item_failures == 0  # finished in the same invocation
    (removed,) = of_type(harness.new_events(), REMOVED)
    result = harness.result("a.png")
    assert result is not None and result["removalId"] == removed["removalId"] and result["removalPublished"] is True
    assert harness.by_label("scratch") == []


def test_deletion_of_a_result_with_more_than_99_labels_clears_its_whole_index(harness: Harness) -> None:
    with_deletions(harness)
    model = many_labels_harness(harness)  # keeps the harness's config (deletions on)
    names = [f"label-{n:03d}" for n in range(150)]
    model.answers["a.png"] = names
    _label(harness)
    # The deletion's write goes in; the first of its BatchWriteItem calls deleting the 150 entries fails.
    calls = [0]

    def fail_first_index_only_write(kwargs: dict[str, Any], call: Any) -> Any:
        if is_index_only_write(kwargs) and calls[0] == 0:
            calls[0] += 1
            raise client_error("InternalServerError", status=500, operation="BatchWriteItem")
        return call(**kwargs)

    harness.dynamodb.faults["batch_write_item"] = fail_first_index_only_write
    harness.send(_delete_marker(harness))
    harness.run()
    assert calls == [1]
    assert [name for name in names if harness.by_label(name)] == []
    (removed,) = of_type(harness.new_events(), REMOVED)
    assert sorted(removed["labelNames"]) == names


class _once:  # used like a function
    """A predicate true for the first entry matching ``match``; counts how often it fired."""

    def __init__(self, match: Any) -> None:
        self._match = match
        self.fired = 0

    def __call__(self, entry: dict[str, Any]) -> bool:
        if self.fired == 0 and self._match(entry):
            self.fired += 1
            return True
        return False
