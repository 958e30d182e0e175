"""Races between workers: conditional writes and publish claims keep one result, one event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from labeler import handler
from labeler.adapters.results_store import ResultStore
from labeler.domain.label_result import LabelResult
from labeler.domain.s3_notification import parse_message_body
from local.samples import make_image
from tests.support.builders import notification_body
from tests.support.harness import Harness
from tests.support.metrics import emitted

IMAGE = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})


def stored_by_another_worker(harness: Harness, body: str, *, published: bool) -> LabelResult:
    """What a concurrent worker left behind for the same object version."""
    (obj,) = parse_message_body(body)
    result = LabelResult.labeled(obj, harness.config, [{"Name": "scratch", "Confidence": 99.0}], datetime.now(UTC))
    store = ResultStore(harness.dynamodb, harness.resources.table_name)
    store.save(result, None, "other-worker")  # holds a fresh publish claim
    if published:
        ref = (obj.bucket, obj.key, harness.config.project_version_arn)
        store.mark_published([(ref, "other-worker", result.result_id)])
    return result


def test_a_result_another_worker_is_publishing_is_retried_not_duplicated(harness: Harness) -> None:
    upload = harness.upload_quietly("a.png", IMAGE)
    body = notification_body(harness.record_for("a.png", upload, sequencer="00D1"))
    stored_by_another_worker(harness, body, published=False)
    harness.send(body)
    harness.poller.poll_once()
    assert harness.poller.stats.item_failures == 1  # back to the queue: the other worker publishes
    assert harness.rekognition_calls() == 0 and harness.new_events() == []


def test_an_abandoned_stored_result_is_published_without_relabeling(harness: Harness) -> None:
    upload = harness.upload_quietly("a.png", IMAGE)
    body = notification_body(harness.record_for("a.png", upload, sequencer="00D1"))
    stored = stored_by_another_worker(harness, body, published=False)
    handler.use_pipeline(harness.build_pipeline(claim_ttl=0.0))  # the other worker's claim has expired
    harness.send(body)
    harness.run()
    assert harness.rekognition_calls() == 0
    (event,) = harness.new_events()
    assert event["detail"]["resultId"] == stored.result_id
    assert event["detail"]["processedAt"] == stored.processed_at  # the stored result, as stored
    harness.send(body)
    harness.run()
    assert harness.new_events() == []  # now marked published: a later copy is a duplicate


def test_a_writer_that_lost_the_race_does_not_publish_again(harness: Harness, capsys: Any) -> None:
    upload = harness.upload_quietly("a.png", IMAGE)
    body = notification_body(harness.record_for("a.png", upload, sequencer="00D1"))
    stored_by_another_worker(harness, body, published=True)

    reads = [0]

    def read_before_the_other_writer(kwargs: dict[str, Any], call: Any) -> Any:
        reads[0] += 1
        if reads[0] == 1:  # the batch's read saw nothing yet; the re-read after the conflict sees it
            return {"Responses": {harness.resources.table_name: []}, "UnprocessedKeys": {}}
        return call(**kwargs)

    harness.dynamodb.faults["batch_get_item"] = read_before_the_other_writer
    harness.send(body)
    harness.run()
    assert harness.rekognition_calls() == 1  # it labeled before it knew
    assert harness.new_events() == []  # but its conditional write lost, and it saw the same result published
    assert harness.poller.stats.item_failures == 0
    assert emitted(capsys.readouterr().out, "LabelsDiscarded") == 1  # the wasted model call is counted
