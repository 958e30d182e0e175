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

from labeler.logic.pipeline import BatchReport, InboundMessage, LabelingPipeline
from local.fakes.canned_models import BigResultModel
from local.fakes.faults import Call, client_error, fail_times
from local.samples import make_image
from tests.integration.labeler.test_fault_scenarios import (
    applied_once,
    fail_index_writes_once,
    many_labels_harness,
    read_timeout,
)
from tests.support.builders import notification_body
from tests.support.harness import Harness
from tests.support.table_writes import is_index_only_write, is_mark

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


# -- 2. an older result's in-flight index sync resurrects its labels for good ------


def on_index_writes(harness: Harness, fault: Any) -> None:
    """Apply ``fault`` to every write call that can carry index-only writes; the fault decides."""
    harness.dynamodb.faults["batch_write_item"] = fault


def test_stale_index_sync_interleaved_with_newer_writer_leaves_old_labels_in_the_index(harness: Harness) -> None:
    """Promise: once a record is finished, the label index equals the current result.

    Worker A stores v1 (150 labels): the result item, then its 150 index
    entries in BatchWriteItem calls. Before the first lands, worker B stores
    v2 (newer sequencer, 1 label), deletes v1's entries (none there yet),
    publishes: B's record is finished. A's BatchWriteItem calls then put all
    150 v1 entries. Nothing is wrong with the index: each entry carries A's
    indexId, the current result item carries B's, so ``find_by_label`` never
    returns them. (They stay in the table, unreferenced: docs/reliability.md.)
    """
    model = many_labels_harness(harness)
    old_names = labels(150, "old")
    model.answers["a.png"] = old_names
    v1 = harness.upload_quietly("a.png", SCRATCH)
    body_v1 = notification_body(harness.record_for("a.png", v1, sequencer="0010"))
    v2 = harness.upload_quietly("a.png", DENT)
    body_v2 = notification_body(harness.record_for("a.png", v2, sequencer="0011"))

    worker_b = harness.build_pipeline()
    b_reports: list[BatchReport] = []
    armed = {"b": True}

    def batch_write(kwargs: dict[str, Any], call: Call) -> Any:
        if armed["b"] and is_index_only_write(kwargs):
            armed["b"] = False
            model.answers["a.png"] = ["dent"]
            b_reports.append(run(worker_b, body_v2))  # B finishes entirely in between
        return call(**kwargs)

    on_index_writes(harness, batch_write)
    report_a = run(harness.pipeline, body_v1)

    assert b_reports and b_reports[0].labeled == 1 and not b_reports[0].failed_messages
    result = harness.result("a.png")
    assert result is not None and [label["Name"] for label in result["customLabels"]] == ["dent"]
    # A's record: v1 was stored and announced (once) before B replaced it; consumers order by sequencer.
    assert not report_a.failed_messages and report_a.labeled == 1
    stale_hits = [name for name in old_names if harness.by_label(name)]
    assert stale_hits == [], f"{len(stale_hits)} labels of the replaced v1 result still answer find_by_label"
    assert [f["key"] for f in harness.by_label("dent")] == ["a.png"]
    assert [e["detail"]["labelCount"] for e in events_for(harness, "a.png")] == [1, 150]


# -- 3. AmbiguousPublishes: one republication counted twice -------------------------


def is_release(kwargs: dict[str, Any]) -> bool:
    return str(kwargs.get("UpdateExpression", "")).startswith("REMOVE #claim")


def test_ambiguous_putevents_then_failed_claim_release_counts_one_duplicate_twice(harness: Harness) -> None:
    """Promise: each republication after an unknown PutEvents outcome is counted ONCE.

    Worker A's PutEvents is applied and its answer lost (read timeout): counted
    in AmbiguousPublishes (1) and the claim is released so the retry need not
    wait. The release fails (connection error): the claim stays. The retry
    (after the claim's TTL) takes the result over as "abandoned after
    claiming" (``after_unknown_outcome``) and counts it AGAIN (2) for the same,
    single republication.
    """
    upload = harness.upload_quietly("a.png", SCRATCH)
    body = notification_body(harness.record_for("a.png", upload, sequencer="0010"))
    harness.events.faults["put_events"] = applied_once(read_timeout)
    failed_release = [False]

    def update_item(kwargs: dict[str, Any], call: Call) -> Any:
        if is_release(kwargs) and not failed_release[0]:
            failed_release[0] = True
            raise EndpointConnectionError(endpoint_url=URL)
        return call(**kwargs)

    harness.dynamodb.faults["update_item"] = update_item
    first = run(harness.pipeline, body)
    assert first.failed_messages  # counted when (and if) the result is published again, not here
    retry = run(harness.build_pipeline(claim_ttl=0.0), body)  # after the claim expired
    assert not retry.failed_messages

    events = events_for(harness, "a.png")
    assert len(events) == 2  # one duplicate, as allowed after an unknown outcome
    counted = first.ambiguous_publishes + retry.ambiguous_publishes
    assert counted == len(events) - 1, f"one republication, counted {counted} times"


def test_claim_applied_but_answer_lost_counts_a_duplicate_that_never_happened(harness: Harness) -> None:
    """AmbiguousPublishes should count republications; here it counts one with no duplicate.

    A stored, unpublished, unclaimed result (PutEvents refused it once) is
    taken over by the retry: its claim UpdateItem is applied and the answer
    lost. The record is retried, finds a claim nobody holds, waits for the TTL
    (a 120 s stall), then publishes it as "abandoned after claiming": counted
    ambiguous though no event had ever been accepted.
    """
    from local.fakes.faults import put_events_rejecting

    upload = harness.upload_quietly("a.png", SCRATCH)
    body = notification_body(harness.record_for("a.png", upload, sequencer="0010"))
    refused = [False]

    def refuse_once(_entry: dict[str, Any]) -> bool:
        if refused[0]:
            return False
        refused[0] = True
        return True

    harness.events.faults["put_events"] = put_events_rejecting(refuse_once)
    first = run(harness.pipeline, body)
    assert first.failed_messages  # refused: stored, unpublished, claim released

    lost = [False]

    def update_item(kwargs: dict[str, Any], call: Call) -> Any:
        if str(kwargs.get("UpdateExpression", "")).startswith("SET #claim") and not lost[0]:
            lost[0] = True
            call(**kwargs)
            raise ConnectionClosedError(endpoint_url=URL)
        return call(**kwargs)

    harness.dynamodb.faults["update_item"] = update_item
    second = run(harness.pipeline, body)
    reports = [first, second]
    if second.failed_messages:  # a design that retries the record must not stall or count it either
        reports.append(run(harness.build_pipeline(claim_ttl=0.0), body))  # after the orphaned claim's TTL
    assert not reports[-1].failed_messages
    events = events_for(harness, "a.png")
    assert len(events) == 1  # no duplicate at all
    counted = sum(r.ambiguous_publishes for r in reports)
    assert counted == 0, f"no republication happened, {counted} counted in AmbiguousPublishes"


# -- 4. own-write detection by (resultId, processedAt) mistakes a rival's write ------


def test_rival_write_with_the_same_processed_at_is_taken_for_our_own_and_published_again(harness: Harness) -> None:
    """Promise: at most one event per resultId (unless counted ambiguous).

    Two deliveries of the same notification are labeled concurrently by two
    workers; processedAt has millisecond resolution and the model is
    deterministic, so both build the identical result (same resultId, same
    processedAt: here forced with one clock). A stores and publishes it. B's
    conditional write then conflicts; ``_resolve_conflict`` re-reads and
    ``decisions.is_own_write`` says "ours" (it only compares resultId and processedAt),
    so B syncs and publishes too: an ordinary conflict, no ambiguity at all,
    and a second, uncounted event. (B's write also did not set
    publishClaimedAt, so B publishes without any claim.)
    """
    moment = datetime(2026, 11, 24, 12, 0, 0, 123000, tzinfo=UTC)
    upload = harness.upload_quietly("a.png", SCRATCH)
    body = notification_body(harness.record_for("a.png", upload, sequencer="0010"))
    worker_a = harness.build_pipeline(clock=lambda: moment)
    worker_b = harness.build_pipeline(clock=lambda: moment)
    reports: list[BatchReport] = []
    done = [False]

    def a_wins_the_race(kwargs: dict[str, Any], call: Call) -> Any:
        if not done[0] and not is_mark(kwargs):
            done[0] = True
            reports.append(run(worker_a, body))  # A stores, publishes and marks first
        return call(**kwargs)

    harness.dynamodb.faults["put_item"] = a_wins_the_race
    reports.append(run(worker_b, body))

    assert harness.rekognition_calls() == 2  # both labeled before either stored
    events = events_for(harness, "a.png")
    ambiguous = sum(r.ambiguous_publishes for r in reports)
    assert len(events) - 1 <= ambiguous, f"{len(events)} events for one result, {ambiguous} counted ambiguous"


# -- 6. a failed index write, then a newer version: the repair duty is dropped -----


def test_failed_index_write_of_a_shrinking_relabel_is_never_repaired_once_a_newer_version_lands(
    harness: Harness,
) -> None:
    """Promise (docs/reliability.md, "label index (> 99 changes) | write fails"): the retry syncs
    the index again, idempotently; and: once a record is finished, the index equals the current result.

    v1 has 150 labels (stored, published). Worker B relabels v2 to 1 label:
    151 index changes, so its transaction carries only 98 of the 149 deletes
    and ``sync_label_index`` must delete the other 51. Before that BatchWriteItem
    (which is throttled once, the very fault the docs describe), worker C stores
    v3 (5 labels): C's transaction deletes only the names of the result it
    replaced (v2's ``labelNames``: 'dent') and, with under 99 changes, runs no
    sync. C's record is finished with 51 v1 labels still in the index. B's
    write failed; it re-reads, sees v3 is newer, decides STALE and acknowledges:
    no retry path ever syncs the index again.
    """
    model = many_labels_harness(harness)
    old_names = labels(150, "old")
    model.answers["a.png"] = old_names
    v1 = harness.upload_quietly("a.png", SCRATCH)
    assert not run(
        harness.pipeline, notification_body(harness.record_for("a.png", v1, sequencer="0010"))
    ).failed_messages
    v2 = harness.upload_quietly("a.png", DENT)
    body_v2 = notification_body(harness.record_for("a.png", v2, sequencer="0011"))
    v3 = harness.upload_quietly("a.png", SCRATCH)
    body_v3 = notification_body(harness.record_for("a.png", v3, sequencer="0012"))
    new_names = labels(5, "new")

    worker_c = harness.build_pipeline()
    c_reports: list[BatchReport] = []
    armed = [True]

    def batch_write(kwargs: dict[str, Any], call: Call) -> Any:
        if armed[0] and is_index_only_write(kwargs):
            armed[0] = False
            model.answers["a.png"] = new_names
            c_reports.append(run(worker_c, body_v3))  # C stores v3 and finishes
            raise client_error("ProvisionedThroughputExceededException", operation="BatchWriteItem")
        return call(**kwargs)

    model.answers["a.png"] = ["dent"]
    on_index_writes(harness, batch_write)
    report_b = run(harness.build_pipeline(), body_v2)
    if report_b.failed_messages:  # the documented retry
        run(harness.build_pipeline(), body_v2)

    assert c_reports and c_reports[0].labeled == 1 and not c_reports[0].failed_messages
    result = harness.result("a.png")
    assert result is not None and [label["Name"] for label in result["customLabels"]] == new_names
    stale_hits = [name for name in old_names if harness.by_label(name)]
    assert stale_hits == [], f"{len(stale_hits)} labels of v1 still answer find_by_label; current result is v3"


# -- 7. a takeover whose own PutEvents is ambiguous: two republications, one counted --


TAKEOVER_PUTEVENTS = {
    # B's PutEvents applied, answer lost: 3 events, 2 republications.
    "ambiguous": (lambda: applied_once(read_timeout), 3),
    # B's PutEvents throttled (not sent): 2 events; the claim release erases that A's outcome was unknown.
    "not-sent": (lambda: fail_times(1, lambda: client_error("ThrottlingException")), 2),
}


@pytest.mark.parametrize("fault", list(TAKEOVER_PUTEVENTS))
def test_takeover_whose_putevents_fails_undercounts_republications(harness: Harness, fault: str) -> None:
    """Promise: each republication after an unknown outcome is counted once in AmbiguousPublishes.

    Worker A stored a result (claim), its event was accepted, and A stopped
    before marking it (documented case 2). Worker B takes it over after the
    claim's TTL (``after_unknown_outcome``: should count one). B's PutEvents
    is applied and its answer lost (case 1: should count one more). The
    refusal branch in ``_announce`` counts the ambiguous failure and
    ``continue``s before the ``after_unknown_outcome`` count, then releases the
    claim; B's retry (C) publishes with no claim seen, counting nothing.
    Three events (two republications), one counted. Simpler still
    ("not-sent"): B's PutEvents is throttled, B releases the claim, and C
    republishes A's possibly accepted event without counting it at all.
    """
    from labeler.adapters.results_store import ResultStore
    from labeler.domain.label_result import LabelResult
    from labeler.domain.result_event import build_entry
    from labeler.domain.s3_notification import parse_message_body
    from shared.event_publisher import EventPublisher

    upload = harness.upload_quietly("a.png", SCRATCH)
    body = notification_body(harness.record_for("a.png", upload, sequencer="0010"))
    (obj,) = parse_message_body(body)
    result = LabelResult.labeled(obj, harness.config, [{"Name": "scratch", "Confidence": 99.0}], datetime.now(UTC))
    ResultStore(harness.dynamodb, harness.resources.table_name).save(result, None, "worker-a")  # with A's claim
    EventPublisher(harness.events, harness.config.event_bus_name, "autolabel").publish(
        [build_entry(result, "autolabel")]
    )  # A's event was accepted; A stopped before the mark

    make_fault, expected_events = TAKEOVER_PUTEVENTS[fault]
    harness.events.faults["put_events"] = make_fault()
    b = run(harness.build_pipeline(claim_ttl=0.0), body)  # after A's claim expired
    assert b.failed_messages
    c = run(harness.build_pipeline(claim_ttl=0.0), body)
    assert not c.failed_messages

    events = events_for(harness, "a.png")
    assert len(events) == expected_events and len({e["detail"]["resultId"] for e in events}) == 1
    counted = b.ambiguous_publishes + c.ambiguous_publishes
    assert counted == len(events) - 1, f"{len(events) - 1} republications, {counted} counted"


# -- 8. continuation items of a replaced result are orphaned after a lost answer ----


def part_items(harness: Harness, key: str) -> list[str]:
    response = harness.dynamodb._client.query(
        TableName=harness.resources.table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={
            ":pk": {"S": f"{harness.resources.bucket}/{key}"},
            ":prefix": {"S": f"RESULT#{harness.config.project_version_arn}#PART#"},
        },
        ConsistentRead=True,
    )
    return [item["sk"]["S"] for item in response["Items"]]


def test_replaced_results_continuation_items_orphaned_after_the_answer_is_lost(
    harness: Harness, big_model: BigResultModel
) -> None:
    """Nothing half-done: a result's continuation items go when it is replaced.

    v1 is > 400 KB (continuation items). v2 (also large) replaces it:
    ``save`` writes v2's parts, the transaction is applied and its answer lost
    (connection closed), so the step after it (deleting v1's parts) never
    runs; the own-write path of ``_resolve_conflict`` then syncs the index and
    publishes, but does not delete the old parts. They stay in the object's
    partition for good: every ``get_result`` Query reads them again (hundreds
    of KB of read capacity per lookup), and each further fault adds more.
    """
    model = big_model
    harness.model = model  # type: ignore[assignment]
    v1 = harness.upload_quietly("a.png", SCRATCH)
    assert not run(
        harness.build_pipeline(), notification_body(harness.record_for("a.png", v1, sequencer="0010"))
    ).failed_messages
    parts_v1 = part_items(harness, "a.png")
    assert parts_v1, "v1 should have continuation items"

    lose = applied_once(lambda: ConnectionClosedError(endpoint_url=URL))
    harness.dynamodb.faults["put_item"] = lose  # the result item's write: applied, answer lost
    model.name = "dent"
    v2 = harness.upload_quietly("a.png", DENT)
    report = run(harness.build_pipeline(), notification_body(harness.record_for("a.png", v2, sequencer="0011")))
    assert not report.failed_messages and report.labeled == 1
    result = harness.result("a.png")
    assert result is not None and {label["Name"] for label in result["customLabels"]} == {"dent"}
    orphans = [sk for sk in part_items(harness, "a.png") if sk in parts_v1]
    assert orphans == [], f"{len(orphans)} continuation items of the replaced result left behind"


# -- regression (these attacks did not break anything) ------------------------------


# Every DynamoDB operation a fresh 150-label record uses (a Query only comes on recovery paths).
AMBIGUOUS_OPERATIONS = [
    "batch_get_item",
    "put_item",
    "batch_write_item",
]


@pytest.mark.parametrize("operation", AMBIGUOUS_OPERATIONS)
def test_each_dynamodb_call_applied_then_answer_lost_once_still_one_event_and_a_true_index(
    harness: Harness, operation: str
) -> None:
    """The ambiguous kind (applied, answer lost) once at every DynamoDB operation a 150-label record uses."""
    model = many_labels_harness(harness)
    names = labels(150)
    model.answers["a.png"] = names
    upload = harness.upload_quietly("a.png", SCRATCH)
    body = notification_body(harness.record_for("a.png", upload, sequencer="0010"))
    harness.dynamodb.faults[operation] = applied_once(lambda: ConnectionClosedError(endpoint_url=URL))
    reports = [run(harness.pipeline, body)]
    while reports[-1].failed_messages and len(reports) < 5:
        reports.append(run(harness.build_pipeline(claim_ttl=0.0), body))  # redelivery after the claim TTL
    assert not reports[-1].failed_messages
    events = events_for(harness, "a.png")
    counted = sum(r.ambiguous_publishes for r in reports)
    assert 1 <= len(events) <= 1 + counted
    assert [name for name in names if [f["key"] for f in harness.by_label(name)] != ["a.png"]] == []
    assert harness.rekognition_calls() == 1


def test_same_key_twice_in_a_batch_shorter_newer_sequencer_wins(harness: Harness) -> None:
    """Right-pad rule inside one batch: 0055AED6DCD9029 is newer than 0055AED6DCD90281E5."""
    older = harness.upload_quietly("a.png", SCRATCH)
    newer = harness.upload_quietly("a.png", DENT)
    body_old = notification_body(harness.record_for("a.png", older, sequencer="0055AED6DCD90281E5"))
    body_new = notification_body(harness.record_for("a.png", newer, sequencer="0055AED6DCD9029"))
    for bodies in ((body_new, body_old), (body_old, body_new)):
        report = run(harness.build_pipeline(), *bodies)
        assert not report.failed_messages
    result = harness.result("a.png")
    assert result is not None and result["versionId"] == newer["VersionId"]
    assert [f["key"] for f in harness.by_label("dent")] == ["a.png"] and harness.by_label("scratch") == []
    assert len(events_for(harness, "a.png")) == 1


def test_putevents_refused_by_the_deadline_guard_is_not_counted_ambiguous(harness: Harness) -> None:
    """DeadlineExceededError (a BotoCoreError) is 'not sent': retried, no duplicate, not counted."""
    from shared.deadline import DeadlineExceededError

    upload = harness.upload_quietly("a.png", SCRATCH)
    body = notification_body(harness.record_for("a.png", upload, sequencer="0010"))
    harness.events.faults["put_events"] = fail_times(
        1, lambda: DeadlineExceededError(operation="PutEvents", needed=14.0, left=3.0)
    )
    first = run(harness.pipeline, body)
    assert first.failed_messages and first.ambiguous_publishes == 0 and first.unexpected_errors == 0
    second = run(harness.pipeline, body)  # claim was released: no wait
    assert not second.failed_messages and second.ambiguous_publishes == 0
    assert len(events_for(harness, "a.png")) == 1 and harness.rekognition_calls() == 1


def test_failed_result_replaced_by_a_labeled_one_and_back(harness: Harness) -> None:
    """FAILED results carry no index items; LABELED -> FAILED removes them."""
    labeled = harness.upload_quietly("a.png", SCRATCH)
    run(harness.pipeline, notification_body(harness.record_for("a.png", labeled, sequencer="0010")))
    assert [f["key"] for f in harness.by_label("scratch")] == ["a.png"]
    broken = harness.upload_quietly("a.png", b"not an image")
    run(harness.pipeline, notification_body(harness.record_for("a.png", broken, sequencer="0011")))
    result = harness.result("a.png")
    assert result is not None and result["status"] == "FAILED"
    assert harness.by_label("scratch") == []
    again = harness.upload_quietly("a.png", DENT)
    run(harness.pipeline, notification_body(harness.record_for("a.png", again, sequencer="0012")))
    assert [f["key"] for f in harness.by_label("dent")] == ["a.png"]
    assert len(events_for(harness, "a.png")) == 3


def test_mark_retry_loop_is_bounded_by_the_remaining_time(harness: Harness) -> None:
    """Mark always failing: with 45 s left it stops before the deadline; with plenty, after MARK_ATTEMPTS."""
    from labeler.logic.publishing import MARK_ATTEMPTS

    def always(_kwargs: dict[str, Any], _call: Call) -> Any:
        raise EndpointConnectionError(endpoint_url=URL)

    harness.dynamodb.faults["batch_write_item"] = lambda kwargs, call: (
        always if is_mark(kwargs) else lambda k, c: c(**k)
    )(kwargs, call)
    for n, (remaining, max_sleeps) in enumerate(((45_000, MARK_ATTEMPTS - 2), (600_000, MARK_ATTEMPTS - 1))):
        key = f"{n}.png"
        upload = harness.upload_quietly(key, SCRATCH)
        clock = {"ms": remaining}
        sleeps: list[float] = []

        def sleep(seconds: float, clock: dict[str, int] = clock, sleeps: list[float] = sleeps) -> None:
            sleeps.append(seconds)
            clock["ms"] -= int(seconds * 1000) + 7_000  # each failed attempt may take a whole attempt

        pipeline = harness.build_pipeline(sleep=sleep)
        report = run(
            pipeline,
            notification_body(harness.record_for(key, upload, sequencer="0010")),
            remaining_ms=lambda clock=clock: clock["ms"],
        )
        assert not report.failed_messages and report.publish_marks_failed == 1
        assert len(sleeps) <= max_sleeps
        assert clock["ms"] >= 1_000  # never past the reserve
