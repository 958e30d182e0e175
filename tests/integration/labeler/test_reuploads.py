"""The same bytes uploaded again under the same key (an unversioned bucket), with and without a
deletion between, delivered out of order (issue 16; docs/behaviour.md#ordering).

In an unversioned bucket the resultId comes from the ETag, so uploading X, then
Y, then X again gives the third event the first one's resultId. It must still
order the key: an older event (Y's upload, or a deletion) delivered after it is
stale. Each delivery is its own invocation, as on the real queue.
"""

from __future__ import annotations

from typing import Any

from labeler.domain.backfill_request import backfill_request
from labeler.logic.pipeline import BatchReport
from local.fakes.faults import Call, client_error
from local.samples import make_image
from tests.integration.labeler.test_attacks_store import run, unversioned_body
from tests.integration.labeler.test_formats_and_deletions import REMOVED, of_type, with_deletions
from tests.support.builders import notification_body, s3_removal_record
from tests.support.harness import Harness

SCRATCH = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
DENT = make_image({"dent": (0.5, 0.5, 0.4, 0.4)})
DETECTED = "Custom Labels Detected"


def _unversioned_delete(harness: Harness, key: str, sequencer: str) -> str:
    """An ObjectRemoved:Delete of an unversioned bucket: no versionId."""
    return notification_body(
        s3_removal_record(key, bucket=harness.resources.bucket, sequencer=sequencer, event_name="ObjectRemoved:Delete")
    )


def _labels(harness: Harness, key: str = "a.png") -> list[str]:
    result = harness.result(key)
    assert result is not None
    return list(result["labelNames"])


def _is_update(kwargs: dict[str, Any]) -> bool:
    return "sequencerOrder" in str(kwargs.get("ExpressionAttributeNames", {}).values())


def test_an_older_upload_delivered_after_the_same_bytes_came_back_is_stale(harness: Harness) -> None:
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    y = unversioned_body(harness, "a.png", DENT, "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")  # S3 now holds X
    for body in (x1, x2, y):  # delivered s1, s3, s2
        harness.send(body)
        harness.run()
    assert _labels(harness) == ["scratch"]
    result = harness.result("a.png")
    assert result is not None and result["sequencer"] == "0012"
    assert [f["key"] for f in harness.by_label("scratch")] == ["a.png"] and harness.by_label("dent") == []
    assert [e["detail-type"] for e in harness.new_events()] == [DETECTED]  # X once, never Y
    assert harness.rekognition_calls() == 1


def test_an_older_deletion_delivered_after_the_same_bytes_came_back_is_stale(harness: Harness) -> None:
    with_deletions(harness)
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    delete = _unversioned_delete(harness, "a.png", "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")  # deleted, then uploaded again: S3 holds X
    for body in (x1, x2, delete):  # delivered s1, s3, s2
        harness.send(body)
        harness.run()
    result = harness.result("a.png")
    assert result is not None and "deletedAt" not in result and result["status"] == "LABELED"
    assert [f["key"] for f in harness.by_label("scratch")] == ["a.png"]
    assert of_type(harness.new_events(), REMOVED) == []


def test_a_lost_answer_to_the_sequencer_advance_is_harmless(harness: Harness) -> None:
    """The advance applied, its answer was lost: the retry finds it done, the older event is still stale."""
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    y = unversioned_body(harness, "a.png", DENT, "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")
    assert not run(harness.build_pipeline(), x1).failed_messages
    lost = [0]

    def update_item(kwargs: dict[str, Any], call: Call) -> Any:
        answer = call(**kwargs)
        if _is_update(kwargs) and not lost[0]:
            lost[0] += 1
            raise client_error("InternalServerError", status=500)
        return answer

    harness.dynamodb.faults["update_item"] = update_item
    first = run(harness.build_pipeline(), x2)
    assert lost[0] == 1 and first.failed_messages  # retried: the outcome of the write is unknown
    again = run(harness.build_pipeline(), x2)  # the redelivery: the advance is already in
    assert not again.failed_messages and again.duplicates == 1
    stale = run(harness.build_pipeline(), y)
    assert stale.stale == 1 and _labels(harness) == ["scratch"]
    assert harness.rekognition_calls() == 1


def test_an_older_upload_that_read_before_the_advance_cannot_write_after_it(harness: Harness) -> None:
    """Y (s2) read X (s1) and labeled; X again (s3) advances the sequencer before Y's write: Y loses."""
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    y = unversioned_body(harness, "a.png", DENT, "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")
    assert not run(harness.build_pipeline(), x1).failed_messages
    other: list[BatchReport] = []

    def put_item(kwargs: dict[str, Any], call: Call) -> Any:
        if not other:
            other.append(run(harness.build_pipeline(), x2))  # runs between Y's read and Y's write
        return call(**kwargs)

    harness.dynamodb.faults["put_item"] = put_item
    report = run(harness.build_pipeline(), y)
    assert other and other[0].duplicates == 1
    assert not report.failed_messages and report.stale == 1 and report.labeled == 0
    assert _labels(harness) == ["scratch"] and harness.by_label("dent") == []


class FailsFirst:
    """Refuses the first image for good (e.g. InvalidS3ObjectException: a key policy fixed since), then labels."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.calls: list[dict[str, Any]] = []

    def detect_custom_labels(self, **request: Any) -> Any:
        self.calls.append(request)
        if len(self.calls) == 1:
            raise client_error("InvalidS3ObjectException", "Unable to get object metadata from S3.")
        return self._model.detect_custom_labels(**request)


def test_a_failed_result_is_retried_by_a_forced_backfill_not_by_uploading_the_same_bytes(harness: Harness) -> None:
    """docs/behaviour.md#labeling: identical bytes again are a duplicate; `backfill --force` retries the object."""
    model = FailsFirst(harness.model)
    harness.model = model  # type: ignore[assignment]
    assert not run(harness.build_pipeline(), unversioned_body(harness, "a.png", SCRATCH, "0010")).failed_messages
    failed = harness.result("a.png")
    assert failed is not None and failed["status"] == "FAILED"
    again = run(harness.build_pipeline(), unversioned_body(harness, "a.png", SCRATCH, "0011"))
    assert again.duplicates == 1 and len(model.calls) == 1  # the same resultId: not labeled again
    upload = harness.s3.head_object(Bucket=harness.resources.bucket, Key="a.png")
    forced = backfill_request(
        harness.resources.bucket,
        "a.png",
        version_id=None,
        etag=upload["ETag"],
        size=upload["ContentLength"],
        run_id="retry-1",
        force=True,
    ).to_body()
    assert run(harness.build_pipeline(), forced).labeled == 1
    result = harness.result("a.png")
    assert result is not None and result["status"] == "LABELED" and result["labelNames"] == ["scratch"]
    assert result["resultId"] != failed["resultId"] and result["sequencer"] == "0011"  # still ordered
    detected = [e["detail"] for e in harness.new_events() if e["detail-type"] == DETECTED]
    assert [d["resultId"] for d in detected] == [result["resultId"]]
