"""Backfill messages through the real pipeline in moto: fill gaps, never replace a newer result, --force.

The labeler does not care which queue a message came from; these tests put
backfill bodies on the harness's queue. The queue itself is in the infra and
local tests.
"""

from __future__ import annotations

from typing import Any

from labeler.adapters.clients import AwsClients
from labeler.domain.backfill_request import backfill_request
from labeler.logic.pipeline import InboundMessage
from labeler.wiring import build_pipeline
from local.samples import make_image
from tests.support.builders import notification_body
from tests.support.harness import Harness

SCRATCH = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
DENT = make_image({"dent": (0.5, 0.5, 0.4, 0.4)})


def _backfill_body(
    harness: Harness, key: str, upload: dict[str, Any], *, run: str = "run-1", force: bool = False
) -> str:
    head = harness.s3.head_object(Bucket=harness.resources.bucket, Key=key, VersionId=upload["VersionId"])
    return backfill_request(
        harness.resources.bucket,
        key,
        version_id=upload["VersionId"],
        etag=upload["ETag"],
        size=head["ContentLength"],
        run_id=run,
        force=force,
    ).to_body()


def test_a_listed_object_is_labeled_and_announced_once(harness: Harness) -> None:
    upload = harness.upload_quietly("old/part 1.png", SCRATCH)
    body = _backfill_body(harness, "old/part 1.png", upload)
    harness.send(body)
    harness.run()
    result = harness.result("old/part 1.png")
    assert result is not None and result["status"] == "LABELED" and result["labelNames"] == ["scratch"]
    assert result["versionId"] == upload["VersionId"] and "sequencer" not in result
    (event,) = harness.new_events()
    assert event["detail"]["resultId"] == result["resultId"]
    # The same message again (a resumed backfill, a redrive): no call, no event.
    harness.send(body)
    harness.run()
    assert harness.rekognition_calls() == 1
    assert harness.new_events() == []


def test_a_version_labeled_by_its_notification_is_not_labeled_again(harness: Harness) -> None:
    upload = harness.upload_quietly("a.png", SCRATCH)
    harness.send(notification_body(harness.record_for("a.png", upload, sequencer="0A")))
    harness.run()
    stored = harness.result("a.png")
    harness.new_events()
    harness.send(_backfill_body(harness, "a.png", upload))
    harness.run()
    assert harness.rekognition_calls() == 1
    assert harness.new_events() == []
    assert harness.result("a.png") == stored


def test_a_backfill_never_replaces_another_versions_result(harness: Harness) -> None:
    old = harness.upload_quietly("a.png", SCRATCH)
    new = harness.upload_quietly("a.png", DENT)
    harness.send(notification_body(harness.record_for("a.png", new, sequencer="0B")))
    harness.run()
    harness.new_events()
    # A listing taken before the new upload names the old version.
    harness.send(_backfill_body(harness, "a.png", old, force=True))
    harness.run()
    result = harness.result("a.png")
    assert result is not None and result["versionId"] == new["VersionId"] and result["labelNames"] == ["dent"]
    assert harness.new_events() == []
    assert harness.rekognition_calls() == 1
    assert harness.dead_letters() == []


def test_a_notification_for_a_newer_version_during_a_backfill_wins_the_race(harness: Harness) -> None:
    """The backfill read "no result", then a newer version was stored before its conditional write."""
    old = harness.upload_quietly("a.png", SCRATCH)
    new = harness.upload_quietly("a.png", DENT)
    newer_pipeline = build_pipeline(harness.config, AwsClients(harness.model, harness.dynamodb, harness.events))
    notification = notification_body(harness.record_for("a.png", new, sequencer="0B"))
    raced = []

    def notification_lands_first(request: dict[str, Any]) -> None:
        if request["Image"]["S3Object"].get("Version") == old["VersionId"] and not raced:
            raced.append(newer_pipeline.process([InboundMessage("notification", notification)]))

    harness.model.fault = notification_lands_first
    backfill = harness.build_pipeline()
    report = backfill.process([InboundMessage("backfill", _backfill_body(harness, "a.png", old))])
    assert raced and not raced[0].failed_messages and raced[0].labeled == 1
    assert report.failed_messages == {} and report.stale == 1 and report.labeled == 0
    result = harness.result("a.png")
    assert result is not None and result["versionId"] == new["VersionId"] and result["labelNames"] == ["dent"]
    events = harness.new_events()
    assert [e["detail"]["versionId"] for e in events] == [new["VersionId"]]


def test_force_relabels_the_same_version_once_per_run_under_a_new_result_id(harness: Harness) -> None:
    upload = harness.upload_quietly("a.png", SCRATCH)
    harness.send(notification_body(harness.record_for("a.png", upload, sequencer="0A")))
    harness.run()
    first = harness.result("a.png")
    assert first is not None
    harness.new_events()

    forced = _backfill_body(harness, "a.png", upload, run="forced-run", force=True)
    harness.send(forced)
    harness.run()
    second = harness.result("a.png")
    assert second is not None and second["resultId"] != first["resultId"]
    assert second["versionId"] == first["versionId"] and second["sequencer"] == "0A"  # the version's order is kept
    (event,) = harness.new_events()
    assert event["detail"]["resultId"] == second["resultId"]
    assert harness.rekognition_calls() == 2

    # A retry of the forced message, and a late duplicate notification of the version: nothing more.
    harness.send(forced)
    harness.send(notification_body(harness.record_for("a.png", upload, sequencer="0A")))
    harness.run()
    assert harness.rekognition_calls() == 2
    assert harness.new_events() == []
    assert harness.result("a.png") == second
