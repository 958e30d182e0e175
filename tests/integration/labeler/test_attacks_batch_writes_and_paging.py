"""Adversarial tests of the batched store writes and find_by_label paging (commits 534aed6 and a372af3).

1. ``ResultStore.save_many`` writes a batch's result items concurrently, then
   the index entries of every written result in shared BatchWriteItem calls;
2. replacing a result deletes the replaced write's publication items
   (``PUBLISHED#<arn>#<indexId|writeId>``) and continuation items
   (``_replaced_items``);
3. ``find_by_label`` pages at least 25 entries per Query when given a limit.

Same style as test_attacks_store.py: each worker is its own LabelingPipeline
on the shared moto table and bus; interleavings are forced inside
FaultyClient calls (a second worker runs inside the first one's call), never
by sleeping. Every BatchWriteItem is checked as DynamoDB validates it (no two
requests for one key), which moto does not fully do.

Promises checked: nothing lost; nothing announced twice unless counted in
AmbiguousPublishes; an older event never overwrites a newer result; once a
record is finished ``find_by_label`` equals the current results.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from labeler.adapters.result_items import label_index_items
from labeler.logic.pipeline import BatchReport
from labeler.queries import find_by_label
from local.fakes.faults import Call, FaultyClient, client_error
from local.samples import make_image
from shared import table_layout as layout
from shared.dynamo_codec import serialize_item
from tests.integration.labeler.test_attacks_store import run
from tests.integration.labeler.test_formats_and_deletions import REMOVED, with_deletions
from tests.support.builders import notification_body, s3_removal_record
from tests.support.harness import ARN, Harness
from tests.support.table_writes import batch_write_keys, is_index_only_write

SCRATCH = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
DENT = make_image({"dent": (0.5, 0.5, 0.4, 0.4)})
KEYS = ("a.png", "b.png", "c.png")


# -- helpers ---------------------------------------------------------------------------------------


def duplicate_keys(kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    keys = [(k[layout.PARTITION_KEY]["S"], k[layout.SORT_KEY]["S"]) for k in batch_write_keys(kwargs)]
    return sorted({key for key in keys if keys.count(key) > 1})


def strict(fault: Any = None) -> Any:
    """BatchWriteItem as DynamoDB validates it (no two requests for one key), then ``fault`` (or the call)."""

    def batch_write(kwargs: dict[str, Any], call: Call) -> Any:
        if duplicate_keys(kwargs):
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": "Provided list of item keys contains duplicates"}},
                "BatchWriteItem",
            )
        return fault(kwargs, call) if fault is not None else call(**kwargs)

    return batch_write


def body_for(harness: Harness, key: str, content: bytes, sequencer: str) -> str:
    upload = harness.upload_quietly(key, content)
    return notification_body(harness.record_for(key, upload, sequencer=sequencer))


def label_all(harness: Harness, content: bytes, sequencer: str, keys: tuple[str, ...] = KEYS) -> list[str]:
    """Upload ``content`` under each key and label them in one batch; the bodies."""
    bodies = [body_for(harness, key, content, sequencer) for key in keys]
    report = run(harness.build_pipeline(), *bodies)
    assert report.labeled == len(keys) and not report.failed_messages, report
    harness.new_events()
    return bodies


def partition(harness: Harness, key: str) -> dict[str, dict[str, Any]]:
    """The object's items (low-level format) by sort key."""
    client = boto3.client("dynamodb")
    response = client.query(
        TableName=harness.resources.table_name,
        KeyConditionExpression="#pk = :pk",
        ExpressionAttributeNames={"#pk": layout.PARTITION_KEY},
        ExpressionAttributeValues={":pk": {"S": layout.object_partition(harness.resources.bucket, key)}},
        ConsistentRead=True,
    )
    return {item[layout.SORT_KEY]["S"]: item for item in response["Items"]}


def publication_items(harness: Harness, key: str) -> list[str]:
    return sorted(sk for sk in partition(harness, key) if sk.startswith(layout.PUBLISHED_PREFIX))


def current_index_id(harness: Harness, key: str) -> str:
    return str(partition(harness, key)[layout.result_sort_key(ARN)][layout.INDEX_ID]["S"])


def put_key(kwargs: dict[str, Any]) -> str:
    """The object key a PutItem of a result item is for."""
    return str(kwargs["Item"][layout.PARTITION_KEY]["S"]).split("/", 1)[1]


def ambiguous(*reports: BatchReport) -> int:
    return sum(report.ambiguous_publishes for report in reports)


def assert_finished(harness: Harness, expected: dict[str, str]) -> None:
    """Each key's current result has exactly the label ``expected[key]``, published; the index agrees."""
    for key, name in expected.items():
        result = harness.result(key)
        assert result is not None and result["labelNames"] == [name] and result["eventPublished"] is True, key
    for name in set(expected.values()) | {"scratch", "dent"}:
        assert sorted(f["key"] for f in harness.by_label(name)) == sorted(k for k, n in expected.items() if n == name)


# -- 1. save_many: concurrent result puts, shared index batches ------------------------------------


def test_holds_concurrent_puts_each_outcome_goes_to_its_own_record(harness: Harness) -> None:
    """HOLDS (regression). Promises: nothing lost; nothing announced twice uncounted; index = results.

    a, b, c have published results ('scratch'); new versions ('dent') arrive in
    one batch, so their three conditional PutItems run concurrently. a's goes
    through. b's is applied and its answer lost (the SDK's retry then meets
    its own write: ConditionalCheckFailed, a ResultConflict although it went
    in). c's is refused (throughput), nothing written. The errors stay with
    their own records: a is finished by the shared index batch; b is
    recognised as its own write and finished in the same invocation (its
    replaced result's publication item deleted with it); only c is retried,
    and its retry labels it. One event each, none counted, and every
    BatchWriteItem valid for DynamoDB.
    """
    label_all(harness, SCRATCH, "0010")
    bodies = [body_for(harness, key, DENT, "0011") for key in KEYS]
    faults = {"b.png": "lost-answer", "c.png": "refused"}

    def put_item(kwargs: dict[str, Any], call: Call) -> Any:
        fault = faults.pop(put_key(kwargs), None)
        if fault == "refused":
            raise client_error("ProvisionedThroughputExceededException", operation="PutItem")
        answer = call(**kwargs)
        if fault == "lost-answer":
            raise client_error("ConditionalCheckFailedException", operation="PutItem")
        return answer

    harness.dynamodb.faults["put_item"] = put_item
    harness.dynamodb.faults["batch_write_item"] = strict()
    report = run(harness.build_pipeline(), *bodies)
    assert report.labeled == 2 and len(report.failed_messages) == 1, report
    retry = run(harness.build_pipeline(), bodies[2])
    assert retry.labeled == 1 and not retry.failed_messages

    events = harness.new_events()
    assert sorted((e["detail"]["key"], tuple(e["detail"]["labelNames"])) for e in events) == [
        (key, ("dent",)) for key in KEYS
    ]
    assert ambiguous(report, retry) == 0
    assert_finished(harness, dict.fromkeys(KEYS, "dent"))
    for key in KEYS:  # the replaced write's publication item went with it
        assert publication_items(harness, key) == [layout.publication_sort_key(ARN, current_index_id(harness, key))]


def test_holds_the_shared_index_batch_failing_is_finished_by_every_written_record(harness: Harness) -> None:
    """HOLDS (regression). Promises: index = results once finished; nothing announced twice uncounted.

    Three new versions in one batch: their result items go in concurrently;
    the one BatchWriteItem carrying all their index entries (and the deletes
    of the replaced results' entries) is refused. The error is given to every
    written record; each recognises its own write and writes its index again
    before publishing, in the same invocation. No event before the index is
    complete, none twice.
    """
    label_all(harness, SCRATCH, "0010")
    bodies = [body_for(harness, key, DENT, "0011") for key in KEYS]
    failed = [False]
    published_before_index: list[str] = []

    def batch_write(kwargs: dict[str, Any], call: Call) -> Any:
        if not failed[0] and is_index_only_write(kwargs):
            failed[0] = True
            assert {k[layout.PARTITION_KEY]["S"] for k in batch_write_keys(kwargs)} >= {"LABEL#dent", "LABEL#scratch"}
            raise client_error("ProvisionedThroughputExceededException", operation="BatchWriteItem")
        return call(**kwargs)

    def put_events(kwargs: dict[str, Any], call: Call) -> Any:
        published_before_index.extend(k for k in KEYS if k not in [f["key"] for f in harness.by_label("dent")])
        return call(**kwargs)

    harness.dynamodb.faults["batch_write_item"] = strict(batch_write)
    harness.events.faults["put_events"] = put_events
    report = run(harness.build_pipeline(), *bodies)
    assert failed[0] and report.labeled == 3 and not report.failed_messages, report
    assert published_before_index == []
    assert len(harness.new_events()) == 3 and ambiguous(report) == 0
    assert_finished(harness, dict.fromkeys(KEYS, "dent"))


def test_holds_a_newer_writer_between_the_concurrent_puts_and_the_shared_index_batch(harness: Harness) -> None:
    """HOLDS (regression). Promises: older never overwrites newer; index = results; once each.

    Worker A's batch: v2 of a, b, c ('dent'). Right after A's PutItem of b
    went in (inside that call, on A's store thread), worker B stores and
    publishes v3 of b ('scratch'): it replaces A's b write, deletes its
    (not yet written) entries and publication item. Only then does A write
    the shared index batch (b's entries under A's indexId: never returned)
    and publish. b's current result stays v3, find_by_label says so, and each
    version is announced once. (A's late mark of b's v2 stays in b's
    partition: a leftover nothing looks up.)
    """
    label_all(harness, SCRATCH, "0010")
    bodies = [body_for(harness, key, DENT, "0011") for key in KEYS]
    body_b3 = body_for(harness, "b.png", SCRATCH + b" ", "0012")
    worker_b = harness.build_pipeline()
    b_reports: list[BatchReport] = []
    armed = [True]

    def put_item(kwargs: dict[str, Any], call: Call) -> Any:
        answer = call(**kwargs)
        if put_key(kwargs) == "b.png" and armed[0]:
            armed[0] = False
            b_reports.append(run(worker_b, body_b3))
        return answer

    harness.dynamodb.faults["put_item"] = put_item
    harness.dynamodb.faults["batch_write_item"] = strict()
    report = run(harness.build_pipeline(), *bodies)
    assert b_reports and b_reports[0].labeled == 1 and not b_reports[0].failed_messages
    assert report.labeled == 3 and not report.failed_messages  # A announces its (now replaced) b v2 too

    assert_finished(harness, {"a.png": "dent", "b.png": "scratch", "c.png": "dent"})
    b_events = [e["detail"] for e in harness.new_events() if e["detail"]["key"] == "b.png"]
    assert len(b_events) == len({e["resultId"] for e in b_events}) == 2
    assert ambiguous(report, *b_reports) == 0
    # b's partition: the current write's publication item, and A's late mark of its replaced v2 write.
    pubs = publication_items(harness, "b.png")
    assert layout.publication_sort_key(ARN, current_index_id(harness, "b.png")) in pubs and len(pubs) == 2
    # Redeliveries of everything change nothing and announce nothing.
    again = run(harness.build_pipeline(), *bodies, body_b3)
    assert not again.failed_messages and again.labeled == 0 and harness.new_events() == []
    assert_finished(harness, {"a.png": "dent", "b.png": "scratch", "c.png": "dent"})


# -- 2. replacing a result deletes its publication items -------------------------------------------


def test_holds_a_stale_previous_in_a_conflict_round_never_unpublishes_the_current_write(harness: Harness) -> None:
    """HOLDS (regression). Promise: nothing announced twice uncounted; index = results.

    a v1 published (write W0). Worker A labels v3. Inside A's PutItem (before
    it lands) worker B stores and publishes v2 (write W1): A's put conflicts.
    A's conflict round decides v3 over W1 and writes it; that put is applied
    and its answer lost (ConditionalCheckFailed on the SDK's retry). The next
    round recognises A's own write and calls ``finish_write(result,
    labeled.previous, token)`` with the STALE previous W0 (the round's
    previous was W1): W1's entries and publication item are not deleted, but
    nothing current is touched either (publication items and entries are
    keyed by write tokens; A's own is new). v3 is published once and stays
    published; redeliveries of v1, v2, v3 announce nothing.
    """
    body_v1 = label_all(harness, SCRATCH, "0010", ("a.png",))[0]
    body_v2 = body_for(harness, "a.png", SCRATCH + b" ", "0011")
    body_v3 = body_for(harness, "a.png", DENT, "0012")
    worker_b = harness.build_pipeline()
    b_reports: list[BatchReport] = []
    puts = [0]

    def put_item(kwargs: dict[str, Any], call: Call) -> Any:
        puts[0] += 1
        if puts[0] == 1:  # A's first put: B stores v2 first
            b_reports.append(run(worker_b, body_v2))
            return call(**kwargs)
        if puts[0] == 3:  # A's put in its conflict round (B's was the 2nd): applied, answer lost
            call(**kwargs)
            raise client_error("ConditionalCheckFailedException", operation="PutItem")
        return call(**kwargs)

    harness.dynamodb.faults["put_item"] = put_item
    harness.dynamodb.faults["batch_write_item"] = strict()
    report = run(harness.build_pipeline(), body_v3)
    assert puts[0] == 3 and b_reports[0].labeled == 1
    assert report.labeled == 1 and not report.failed_messages, report

    events = [e["detail"] for e in harness.new_events()]
    assert [e["labelNames"] for e in events] == [["scratch"], ["dent"]]
    assert_finished(harness, {"a.png": "dent"})
    assert layout.publication_sort_key(ARN, current_index_id(harness, "a.png")) in publication_items(harness, "a.png")
    again = run(harness.build_pipeline(), body_v1, body_v2, body_v3)
    assert not again.failed_messages and harness.new_events() == [] and ambiguous(report, again, *b_reports) == 0


def test_holds_deletion_then_new_upload_keeps_each_publication_once(harness: Harness) -> None:
    """HOLDS (regression). Promise: nothing announced twice uncounted; index = results.

    A deletion keeps the result's indexId and changes its writeId, so the
    deleted item carries two writes: its result's (``PUBLISHED#<indexId>``,
    the Detected) and its deletion's (``PUBLISHED#<writeId>``, the Removed).
    v1 labeled, deleted (Removed announced), v2 uploaded (newer): v2's write
    deletes both of the deleted item's publication items and only those. Then
    every notification (v1, the delete marker, v2) is delivered again, in
    one batch and one by one: nothing is announced again, nothing changes.
    """
    with_deletions(harness)
    body_v1 = label_all(harness, SCRATCH, "0010", ("a.png",))[0]
    marker = notification_body(
        s3_removal_record("a.png", bucket=harness.resources.bucket, version_id="dm1", sequencer="0011")
    )
    harness.dynamodb.faults["batch_write_item"] = strict()
    removed = run(harness.build_pipeline(), marker)
    assert removed.removed == 1 and not removed.failed_messages
    deleted_pubs = publication_items(harness, "a.png")
    assert len(deleted_pubs) == 2  # the Detected's and the Removed's
    body_v2 = body_for(harness, "a.png", DENT, "0012")
    assert run(harness.build_pipeline(), body_v2).labeled == 1
    assert publication_items(harness, "a.png") == [layout.publication_sort_key(ARN, current_index_id(harness, "a.png"))]
    events = harness.new_events()
    assert [e["detail-type"] for e in events].count(REMOVED) == 1 and len(events) == 2

    reports = [run(harness.build_pipeline(), body_v1, marker, body_v2)]
    reports += [run(harness.build_pipeline(), body) for body in (body_v1, marker, body_v2)]
    assert all(not r.failed_messages for r in reports) and harness.new_events() == []
    assert_finished(harness, {"a.png": "dent"})


def test_holds_force_backfill_relabel_interleaved_with_a_redelivery_announces_each_result_once(
    harness: Harness,
) -> None:
    """HOLDS (regression). Promise: nothing announced twice uncounted.

    v1 labeled and published (write W0). A ``--force`` backfill relabels the
    same version (new resultId, write W1, replaces W0 and deletes
    ``PUBLISHED#W0``). Inside the forced write's PutItem, a redelivery of v1's
    notification runs: it still sees W0 published (DUPLICATE). After it, the
    same redelivery sees W1 of the same version (DUPLICATE too): W0's deleted
    publication item is never needed again.
    """
    from labeler.domain.backfill_request import backfill_request

    upload = harness.upload_quietly("a.png", SCRATCH)
    body_v1 = notification_body(harness.record_for("a.png", upload, sequencer="0010"))
    assert run(harness.build_pipeline(), body_v1).labeled == 1
    harness.new_events()
    forced = backfill_request(
        harness.resources.bucket,
        "a.png",
        version_id=upload["VersionId"],
        etag=upload["ETag"],
        size=len(SCRATCH),
        run_id="run-1",
        force=True,
    ).to_body()
    inner: list[BatchReport] = []

    def put_item(kwargs: dict[str, Any], call: Call) -> Any:
        if not inner:
            inner.append(run(harness.build_pipeline(), body_v1))
        answer = call(**kwargs)
        inner.append(run(harness.build_pipeline(), body_v1))
        return answer

    harness.dynamodb.faults["put_item"] = put_item
    harness.dynamodb.faults["batch_write_item"] = strict()
    report = run(harness.build_pipeline(), forced)
    assert report.labeled == 1 and [r.duplicates for r in inner] == [1, 1]
    events = harness.new_events()
    assert len(events) == 1 and ambiguous(report, *inner) == 0
    assert publication_items(harness, "a.png") == [layout.publication_sort_key(ARN, current_index_id(harness, "a.png"))]
    assert [run(harness.build_pipeline(), body).duplicates for body in (body_v1, forced)] == [1, 1]
    assert harness.new_events() == []


# -- 3. find_by_label pages of at least 25 entries ---------------------------------------------------


@pytest.mark.parametrize("leftovers", [24, 25, 26, 49, 50, 51])
def test_holds_find_by_label_limit_across_page_boundaries(harness: Harness, leftovers: int) -> None:
    """HOLDS (regression). Promise: find_by_label equals the current results (the N most confident).

    Three current results ('scratch' at their own confidences) and
    ``leftovers`` entries of replaced writes interleaved around them (above,
    between and below, at the page boundaries of 25): every limit from 1 to 4
    returns the prefix of the unlimited answer, each object once, in order.
    """
    label_all(harness, SCRATCH, "0010")
    store = harness.pipeline.ctx.results
    stored = {key: store.load((harness.resources.bucket, key, ARN)) for key in KEYS}
    current = {key: float(r.custom_labels[0]["Confidence"]) for key, r in stored.items() if r is not None}
    top, low = max(current.values()), min(current.values())
    entries = []
    for n in range(leftovers):
        key = KEYS[n % 3]
        base = stored[key]
        assert base is not None
        confidence = [100.0, (top + low) / 2, max(low - 1, 0.5), top + 0.0000001][n % 4]
        boosted = type(base)(**{**base.__dict__, "custom_labels": [{"Name": "scratch", "Confidence": confidence}]})
        entries.extend(label_index_items(boosted, f"replaced-{n:03d}"))
    client = boto3.client("dynamodb")
    for start in range(0, len(entries), 25):
        chunk = entries[start : start + 25]
        client.batch_write_item(
            RequestItems={harness.resources.table_name: [{"PutRequest": {"Item": serialize_item(e)}} for e in chunk]}
        )
    everything = harness.by_label("scratch")
    assert sorted(f["key"] for f in everything) == sorted(KEYS)
    assert [f["confidence"] for f in everything] == sorted(current.values(), reverse=True)
    for limit in range(1, 5):
        counting = FaultyClient(client)
        found = find_by_label(harness.resources.table_name, "scratch", limit=limit, client=counting)
        assert found == everything[:limit], limit
        assert counting.calls["query"] <= (leftovers + 3) // 25 + 1
