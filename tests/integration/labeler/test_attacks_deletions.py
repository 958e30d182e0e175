"""Adversarial tests of deletions, notification formats and retry delays.

Same style as test_attacks.py: each worker is its own LabelingPipeline on the
shared moto table and bus; interleavings are forced inside FaultyClient calls,
never by sleeping.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import boto3
from botocore.exceptions import ReadTimeoutError

from infra.settings import StackSettings
from labeler.adapters.clients import AwsClients
from labeler.logic.pipeline import BatchReport, InboundMessage, LabelingPipeline
from labeler.wiring import build_pipeline
from local.fakes.faults import Call, FaultyClient, client_error, put_events_rejecting
from local.fakes.recorders import RecordedDelays
from local.samples import make_image
from tests.integration.labeler.test_formats_and_deletions import REMOVED, of_type, with_deletions
from tests.support.builders import eventbridge_body, notification_body, s3_removal_record, sns_body
from tests.support.harness import Harness

SCRATCH = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
DENT = make_image({"dent": (0.5, 0.5, 0.4, 0.4)})


def run(pipeline: LabelingPipeline, *bodies: str) -> BatchReport:
    """One invocation of a worker (its pipeline) on a batch of message bodies."""
    messages = [InboundMessage(f"m{n}-{id(pipeline)}-{hash(body)}", body) for n, body in enumerate(bodies)]
    return pipeline.process(messages)


def label(harness: Harness, key: str = "a.png", body: bytes = SCRATCH, sequencer: str = "0A") -> dict[str, Any]:
    upload = harness.upload_quietly(key, body)
    report = run(harness.pipeline, notification_body(harness.record_for(key, upload, sequencer=sequencer)))
    assert report.labeled == 1, report
    harness.new_events()
    return upload


def delete_marker(harness: Harness, sequencer: str, version: str, key: str = "a.png") -> str:
    return notification_body(
        s3_removal_record(key, bucket=harness.resources.bucket, version_id=version, sequencer=sequencer)
    )


def accept_then_lose_answer(times: int = 1) -> Any:
    """PutEvents that EventBridge applies, whose answer is lost (``times`` times)."""
    left = [times]

    def fault(kwargs: dict[str, Any], call: Call) -> Any:
        answer = call(**kwargs)
        if left[0] > 0:
            left[0] -= 1
            raise ReadTimeoutError(endpoint_url="https://events.us-east-1.amazonaws.com")
        return answer

    return fault


# -- 1. an uncertain Removed superseded by a newer deletion ----------------------------------


def test_newer_deletion_after_an_unknown_removed_outcome_counts_the_repeat(harness: Harness) -> None:
    """Promise: a result is announced removed once, except after an unknown outcome, counted.

    The Removed of the first delete marker is accepted but its answer lost:
    the claim is released with publishUncertain. A second delete marker
    (newer) arrives before the first one's retry: the result is deleted, its
    removal not recorded as published, so the newer deletion announces a
    Removed of the same result again. That repeat may duplicate the accepted
    one and must be counted in AmbiguousPublishes.
    """
    with_deletions(harness)
    label(harness)
    harness.events.faults["put_events"] = accept_then_lose_answer()
    first = run(harness.pipeline, delete_marker(harness, "0B", "dm1"))
    assert len(first.failed_messages) == 1 and first.removed == 0
    second = run(harness.build_pipeline(), delete_marker(harness, "0C", "dm2"))
    assert second.failed_messages == {}
    retry = run(harness.build_pipeline(), delete_marker(harness, "0B", "dm1"))  # the first one's retry: stale
    assert retry.failed_messages == {}
    removed = of_type(harness.new_events(), REMOVED)
    assert len(removed) == 2 and removed[0]["resultId"] == removed[1]["resultId"]
    ambiguous = first.ambiguous_publishes + second.ambiguous_publishes + retry.ambiguous_publishes
    assert ambiguous >= len(removed) - 1, "a repeated Removed of one result was not counted"


# -- 2. short retry delays spend the receives of a message in about a minute --------------


class ThrottledUntil:
    """A model that throttles every call before the (virtual) time ``until``."""

    def __init__(self, model: Any, clock: list[float], until: float) -> None:
        self._model, self._clock, self._until = model, clock, until

    def detect_custom_labels(self, **request: Any) -> dict[str, Any]:
        if self._clock[0] < self._until:
            raise client_error("ThrottlingException", operation="DetectCustomLabels")
        return dict(self._model.detect_custom_labels(**request))


def test_a_ten_minute_throttling_storm_does_not_dead_letter_what_the_queue_timeout_survived(
    harness: Harness,
) -> None:
    """Promise (docs/behaviour.md#failures): a transient fault is retried, DLQ only "if it persists".

    Found by the attack: with maxReceiveCount 5 and short delays (5, 10, 20,
    40 s at most) a record throttled on every receive spent all five receives
    in about a minute, so a burst that kept the model throttled for a few
    minutes dead-lettered records the old 6-minute timeout carried through.
    Now the delay doubles up to 5 minutes and the default maxReceiveCount is
    10: even the shortest jitter spreads the receives over more than 10
    minutes. Virtual time: each receive happens when the delay the pipeline
    set (or the queue's timeout) has passed.
    """
    defaults = StackSettings(project_version_arn="arn")
    clock = [0.0]
    upload = harness.upload_quietly("a.png", SCRATCH)
    body = notification_body(harness.record_for("a.png", upload, sequencer="0A"))
    model = ThrottledUntil(harness.model, clock, until=600.0)
    queue = RecordedDelays()
    pipeline = build_pipeline(harness.config, AwsClients(model, harness.dynamodb, harness.events))
    pipeline.ctx.retry_queue = queue
    pipeline.ctx.draw = lambda low, high: low  # the shortest delay each time: the worst case
    for receive in range(1, defaults.max_receive_count + 1):
        assert queue.seconds == []
        message = InboundMessage("m1", body, receipt_handle=f"r{receive}", receive_count=receive, queue_arn="arn")
        report = pipeline.process([message])
        if not report.failed_messages:
            break
        clock[0] += queue.seconds.pop() if queue.seconds else defaults.queue_visibility_timeout_seconds
    else:
        raise AssertionError(f"dead-lettered after {clock[0]:.0f} s of throttling")
    assert report.labeled == 1


# -- 3. a deletion after a model version change -------------------------------------------

NEW_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/autolabel/version/autolabel.2/1700000000001"


def test_deletion_after_a_model_change_removes_every_model_versions_labels(harness: Harness) -> None:
    """Promise (docs/behaviour.md#deletions): "For each model version's current result of the key" the
    result is marked deleted and its labels leave find_by_label.

    The object was labeled by the old model version; the stack now runs a new
    one (the old results stay, and find_by_label keeps answering with them).
    Deleting the object must remove it from find_by_label for every model
    version, not only for the one configured now.
    """
    with_deletions(harness)
    label(harness)
    assert [f["key"] for f in harness.by_label("scratch")] == ["a.png"]
    harness.config = replace(harness.config, project_version_arn=NEW_ARN)
    new_model = harness.build_pipeline()
    report = run(new_model, delete_marker(harness, "0C", "dm1"))
    assert report.failed_messages == {}
    assert harness.by_label("scratch") == [], "the deleted object still answers find_by_label"
    old = harness.result("a.png")  # the old model version's result
    assert old is not None and old["deletion"]["sequencer"] == "0C"
    removed = of_type(harness.new_events(), REMOVED)
    assert [(r["resultId"], r["projectVersionArn"]) for r in removed] == [(old["resultId"], old["projectVersionArn"])]
    assert removed[0]["removalId"] == old["removalId"]
    again = run(new_model, delete_marker(harness, "0C", "dm1"))  # a redelivery: nothing more
    assert again.failed_messages == {} and again.removed == 0 and harness.new_events() == []


# -- 4. a deletion racing a takeover of the create's publication ---------------------------


def test_deletion_decided_before_a_takeover_claim_never_lets_detected_follow_removed(harness: Harness) -> None:
    """Promise (docs/behaviour.md#deletions): a deletion of a result whose own event is being
    published right now waits for that publication; no Detected after its Removed.

    The result is stored but unannounced, unclaimed (its PutEvents was refused).
    Worker D (a delete marker) reads it; then worker C (the create's retry)
    claims it and is about to send Detected; D's conditional write only checks
    the result and the deletion, not the claim, so it goes in and D announces
    Removed; then C sends Detected of the deleted result.
    """
    with_deletions(harness)
    upload = harness.upload_quietly("a.png", SCRATCH)
    create = notification_body(harness.record_for("a.png", upload, sequencer="0A"))
    harness.events.faults["put_events"] = put_events_rejecting(lambda _entry: True)
    assert len(run(harness.pipeline, create).failed_messages) == 1  # stored, unannounced, claim released
    sent: list[str] = []

    # D's batch read happens now, before C's claim (replayed to D when it runs).
    d_dynamodb = FaultyClient(boto3.client("dynamodb"))
    cached: list[Any] = []

    def read_once_then_replay(kwargs: dict[str, Any], call: Call) -> Any:
        if not cached:
            cached.append(call(**kwargs))
        return cached[0]

    d_dynamodb.faults["batch_get_item"] = read_once_then_replay
    worker_d = build_pipeline(harness.config, AwsClients(harness.model, d_dynamodb, harness.events))
    worker_d.ctx.results.current_states([(harness.resources.bucket, "a.png", harness.config.project_version_arn)])
    assert cached
    d_ran = [False]

    def d_runs_before_c_sends(kwargs: dict[str, Any], call: Call) -> Any:
        if not d_ran[0]:
            d_ran[0] = True
            run(worker_d, delete_marker(harness, "0C", "dm1"))
        answer = call(**kwargs)
        sent.extend(entry["DetailType"] for entry in kwargs["Entries"])
        return answer

    harness.events.faults["put_events"] = d_runs_before_c_sends
    run(harness.build_pipeline(), create)  # C: the create's retry takes the result over
    d_dynamodb.faults.clear()
    for _ in range(3):  # whatever was retried comes back
        run(worker_d, delete_marker(harness, "0C", "dm1"))
        run(harness.build_pipeline(), create)
    # sent: in call order, inner (D's) calls first; Detected must never come after Removed.
    detected = [n for n, kind in enumerate(sent) if kind == "Custom Labels Detected"]
    removed = [n for n, kind in enumerate(sent) if kind == REMOVED]
    assert len(removed) == 1
    assert all(n < removed[0] for n in detected), f"Detected sent after Removed: {sent}"
    result = harness.result("a.png")
    assert result is not None and result["removalPublished"] is True and harness.by_label("scratch") == []


# -- 5. a permanent delete of one version orders the creation of other versions ------------


def test_permanent_delete_of_the_labeled_version_does_not_block_a_newer_version(harness: Harness) -> None:
    """Promise (docs/behaviour.md#deletions, #ordering): a permanent delete of one version only
    competes with that version's own creation; the newest version of the key ends labeled.

    v1 is labeled (0A); v2 is uploaded (0B) but its notification is delayed;
    v1 is then permanently deleted (0C). S3 now shows v2. The deletion removes
    v1's result, as it should; v2's notification, older than the version
    deletion but of another version, must still be labeled.
    """
    with_deletions(harness)
    v1 = label(harness, sequencer="0A")
    v2 = harness.upload_quietly("a.png", DENT)
    version_delete = notification_body(
        s3_removal_record(
            "a.png",
            bucket=harness.resources.bucket,
            version_id=v1["VersionId"],
            sequencer="0C",
            event_name="ObjectRemoved:Delete",
        )
    )
    assert run(harness.pipeline, version_delete).failed_messages == {}
    assert len(of_type(harness.new_events(), REMOVED)) == 1
    report = run(harness.pipeline, notification_body(harness.record_for("a.png", v2, sequencer="0B")))
    assert report.failed_messages == {} and report.labeled == 1, "the current version was never labeled"
    result = harness.result("a.png")
    assert result is not None and result["versionId"] == v2["VersionId"] and "deletedAt" not in result
    assert [f["key"] for f in harness.by_label("dent")] == ["a.png"] and harness.by_label("scratch") == []
    # v1's own notification again (a redrive): still deleted, never relabeled.
    again = run(harness.pipeline, notification_body(harness.record_for("a.png", v1, sequencer="0A")))
    assert again.stale == 1 and harness.rekognition_calls() == 2


def test_delete_marker_arriving_after_a_later_version_delete_still_hides_older_uploads(harness: Harness) -> None:
    """v1 labeled (0A); v2 uploaded (0B); a delete marker hides the key (0C); v1 is then
    permanently deleted (0D). Delivered: v1, the version delete, the marker, v2. The
    marker is older than the version delete but is the key's deletion: v2, older
    than the marker, must not be labeled.
    """
    with_deletions(harness)
    v1 = label(harness, sequencer="0A")
    v2 = harness.upload_quietly("a.png", DENT)
    version_delete = notification_body(
        s3_removal_record(
            "a.png",
            bucket=harness.resources.bucket,
            version_id=v1["VersionId"],
            sequencer="0D",
            event_name="ObjectRemoved:Delete",
        )
    )
    assert run(harness.pipeline, version_delete).failed_messages == {}
    assert run(harness.pipeline, delete_marker(harness, "0C", "dm1")).failed_messages == {}
    report = run(harness.pipeline, notification_body(harness.record_for("a.png", v2, sequencer="0B")))
    assert report.failed_messages == {} and report.labeled == 0, "an upload hidden by a delete marker was labeled"
    assert harness.by_label("dent") == [] and harness.by_label("scratch") == []
    assert len(of_type(harness.new_events(), REMOVED)) == 1


# -- held: races that the conditions and claims already handle ------------------------------


def test_two_deletions_racing_one_write_each_end_with_the_newest_and_one_removed(harness: Harness) -> None:
    with_deletions(harness)
    label(harness)
    newer = harness.build_pipeline()
    raced = [False]

    def newer_deletion_writes_first(kwargs: dict[str, Any], call: Call) -> Any:
        if not raced[0] and "removalPublished" in str(kwargs):
            raced[0] = True
            assert run(newer, delete_marker(harness, "0D", "dm2")).failed_messages == {}
        return call(**kwargs)

    harness.dynamodb.faults["update_item"] = newer_deletion_writes_first
    older = run(harness.pipeline, delete_marker(harness, "0C", "dm1"))
    assert raced == [True] and older.failed_messages == {} and older.stale == 1
    result = harness.result("a.png")
    assert result is not None and result["deletion"]["sequencer"] == "0D" and result["removalPublished"] is True
    assert len(of_type(harness.new_events(), REMOVED)) == 1 and harness.by_label("scratch") == []


def test_deletion_during_the_creates_publication_waits_for_its_claim_then_follows_it(harness: Harness) -> None:
    with_deletions(harness)
    upload = harness.upload_quietly("a.png", SCRATCH)
    deleter = harness.build_pipeline()
    sent: list[str] = []
    reports: list[BatchReport] = []

    def deletion_while_detected_is_in_flight(kwargs: dict[str, Any], call: Call) -> Any:
        if not reports:
            reports.append(run(deleter, delete_marker(harness, "0C", "dm1")))
        answer = call(**kwargs)
        sent.extend(entry["DetailType"] for entry in kwargs["Entries"])
        return answer

    harness.events.faults["put_events"] = deletion_while_detected_is_in_flight
    assert run(harness.pipeline, notification_body(harness.record_for("a.png", upload, sequencer="0A"))).labeled == 1
    (waiting,) = reports
    assert len(waiting.failed_messages) == 1 and sent == ["Custom Labels Detected"]
    # It comes back when the claim would have expired (not after a 5 s retry that spends a receive).
    assert min(waiting.retry_soon.values()) > 100
    assert run(deleter, delete_marker(harness, "0C", "dm1")).removed == 1
    assert sent == ["Custom Labels Detected", REMOVED] and harness.by_label("scratch") == []


def test_the_same_deletion_in_three_formats_is_announced_once(harness: Harness) -> None:
    with_deletions(harness)
    label(harness, key="a b+c.png")
    direct = delete_marker(harness, "0C", "dm1", key="a b+c.png")  # key URL-encoded
    bridge = eventbridge_body(
        "a b+c.png", bucket=harness.resources.bucket, version_id="dm1", sequencer="0C", deleted="Delete Marker Created"
    )
    reports = [run(harness.build_pipeline(), body) for body in (bridge, sns_body(direct), direct)]
    reports.append(run(harness.build_pipeline(), bridge, direct))  # both in one batch
    assert all(r.failed_messages == {} for r in reports)
    assert sum(r.removed for r in reports) == 1
    assert len(of_type(harness.new_events(), REMOVED)) == 1 and harness.by_label("scratch") == []
