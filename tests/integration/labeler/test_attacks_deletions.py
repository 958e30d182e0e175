"""Adversarial tests of deletions, notification formats and retry delays.

Same style as test_attacks.py: each worker is its own LabelingPipeline on the
shared moto table and bus; interleavings are forced inside FaultyClient calls,
never by sleeping.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ReadTimeoutError

from labeler.logic.pipeline import BatchReport, InboundMessage, LabelingPipeline
from local.faults import Call
from local.samples import make_image
from tests.integration.labeler.test_formats_and_deletions import REMOVED, of_type, with_deletions
from tests.support.builders import notification_body, s3_removal_record
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
