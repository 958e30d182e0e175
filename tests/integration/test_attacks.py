"""Adversarial reliability tests: interleavings and faults that break docs/reliability.md.

Each test drives the real pipeline (or handler) inside moto. Interleavings are
forced deterministically: a FaultyClient fault runs a second worker *inside*
the first worker's call (same thread, before or after calling through), so no
sleep or timing is involved. A second worker is a separate LabelingPipeline
sharing the same (moto) table and bus, like another Lambda execution environment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

from labeler.pipeline import BatchReport, InboundMessage, LabelingPipeline
from local.faults import Call, client_error
from local.samples import make_image
from tests.integration.test_fault_scenarios import (
    ManyLabelsModel,
    applied_once,
    fail_index_writes_once,
    is_mark,
    many_labels_harness,
    read_timeout,
)
from tests.support.builders import notification_body
from tests.support.harness import Harness

SCRATCH = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
DENT = make_image({"dent": (0.5, 0.5, 0.4, 0.4)})
URL = "https://dynamodb.us-east-1.amazonaws.com/"


def run(pipeline: LabelingPipeline, *bodies: str, remaining_ms: Any = None) -> BatchReport:
    """One invocation of a worker (its pipeline) on a batch of message bodies."""
    messages = [InboundMessage(f"m{n}-{id(pipeline)}", body) for n, body in enumerate(bodies)]
    return pipeline.process(messages, remaining_ms=remaining_ms)


def events_for(harness: Harness, key: str) -> list[dict[str, Any]]:
    return [e for e in harness.new_events() if e["detail"]["key"] == key]


def labels(n: int, prefix: str = "label") -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(n)]


# -- 1. a >99-label result is published without holding its publish claim --------


def test_claim_released_after_failed_index_sync_lets_a_concurrent_worker_publish_too(harness: Harness) -> None:
    """Promise: at most one event per resultId unless counted in AmbiguousPublishes.

    Worker A stores a 150-label result (transaction: result + 99 index items,
    with A's publish claim), then the rest of the index by ``sync_label_index``.
    That BatchWriteItem fails once: ``save`` RELEASES A's claim and raises;
    ``_resolve_conflict`` recognises A's own write, syncs again and publishes,
    all in the same invocation, but no longer holding the claim. A redelivery
    of the same notification (worker B) reading the item now finds it stored,
    unpublished and unclaimed: it claims and publishes it as well. Two events,
    none counted ambiguous.
    """
    model = many_labels_harness(harness)
    model.answers["a.png"] = labels(150)
    upload = harness.upload_quietly("a.png", SCRATCH)
    body = notification_body(harness.record_for("a.png", upload, sequencer="0010"))
    fail_index_writes_once(harness)

    worker_b = harness.build_pipeline()
    reports: list[BatchReport] = []
    done = [False]

    def b_runs_before_a_sends(kwargs: dict[str, Any], call: Call) -> Any:
        if not done[0]:
            done[0] = True
            reports.append(run(worker_b, body))  # a redelivery of the same notification
        return call(**kwargs)

    harness.events.faults["put_events"] = b_runs_before_a_sends
    report_a = run(harness.pipeline, body)
    reports.append(report_a)

    events = events_for(harness, "a.png")
    ambiguous = sum(r.ambiguous_publishes for r in reports)
    assert len({e["detail"]["resultId"] for e in events}) == 1
    assert len(events) - 1 <= ambiguous, f"{len(events)} events for one result, {ambiguous} counted ambiguous"
