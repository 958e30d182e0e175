"""Adversarial tests of the non-transactional store (commit c45d9ee, "Store: no transactions").

The store writes continuation items first (keyed by resultId), then the result
item with one conditional PutItem, then the label-index entries (keyed by the
write's indexId) and the deletes of the replaced result's entries and
continuation items in BatchWriteItem calls; publication items record accepted
events. Same style as test_attacks.py: each worker is its own LabelingPipeline
on the shared moto table and bus; interleavings are forced inside FaultyClient
calls (a second worker runs inside the first one's call), never by sleeping.

FAILS tests show a broken promise; tests under "regression" are attacks that
were expected to break something and HELD.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from labeler.adapters.result_items import IncompleteResultError
from labeler.logic.pipeline import BatchReport, InboundMessage, LabelingPipeline
from local.fakes.canned_models import BigResultModel
from local.fakes.faults import Call
from local.samples import make_image
from shared import table_layout as layout
from tests.integration.labeler.test_attacks import part_items
from tests.support.builders import notification_body
from tests.support.harness import Harness
from tests.support.table_writes import batch_write_keys, is_mark

SCRATCH = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
DENT = make_image({"dent": (0.5, 0.5, 0.4, 0.4)})


def run(pipeline: LabelingPipeline, *bodies: str) -> BatchReport:
    """One invocation of a worker (its pipeline) on a batch of message bodies."""
    messages = [InboundMessage(f"m{n}-{id(pipeline)}-{hash(body)}", body) for n, body in enumerate(bodies)]
    return pipeline.process(messages)


def events_for(harness: Harness, key: str) -> list[dict[str, Any]]:
    return [e for e in harness.new_events() if e["detail"]["key"] == key]


def unversioned_body(harness: Harness, key: str, content: bytes, sequencer: str) -> str:
    """Upload ``content`` and a notification without versionId (an unversioned bucket: resultId from the ETag)."""
    upload = harness.upload_quietly(key, content)
    return notification_body(harness.record_for(key, upload, sequencer=sequencer, with_version=False))


def is_parts_delete(kwargs: dict[str, Any]) -> bool:
    """A BatchWriteItem deleting continuation items (a replaced result's, with its publication items)."""
    requests = [r for rs in kwargs.get("RequestItems", {}).values() for r in rs]
    return any("DeleteRequest" in r and "#PART#" in r["DeleteRequest"]["Key"][layout.SORT_KEY]["S"] for r in requests)


# -- 1. a stalled replacer deletes the continuation items of a resultId that is current again ------


def test_stalled_replacer_deletes_the_parts_of_the_same_result_id_written_again_meanwhile(
    harness: Harness, big_model: BigResultModel
) -> None:
    """Promise: nothing lost (the current result stays readable); docs/behaviour.md#large-results.

    Unversioned bucket: the resultId comes from the ETag, so the same bytes
    uploaded again get the same resultId. Content X (> 400 KB result: result
    item + continuation items keyed ``PART#<R1>``) is labeled: R1. Worker B
    labels content Y (R2), puts its result item over R1, its index, and stalls
    just before deleting R1's continuation items (``_replaced_items``). Content
    X is uploaded again (newer sequencer): worker C writes R1 again (its parts
    under the same keys ``PART#<R1>#n``, then the result item over R2) and
    publishes. B resumes and deletes ``PART#<R1>#1..n``: the parts of the
    CURRENT result. ``_replaced_parts`` assumed "a replaced result id never
    becomes current again"; an unversioned re-upload breaks that (a BatchWriteItem
    delete cannot be conditional). The current result item now points at
    continuation items that are gone: ``get_result`` raises
    IncompleteResultError, every ``load`` is a StoreError, and redeliveries
    are DUPLICATE, so nothing ever repairs it.

    Fixed: continuation items are keyed by the write's indexId
    (``PART#<indexId>#n``; resultId for results written before indexIds), as
    the label-index entries are, so a late delete only reaches the parts of
    the write it replaced.
    """
    model = big_model
    harness.model = model  # type: ignore[assignment]
    model.name = "scratch"
    assert not run(harness.build_pipeline(), unversioned_body(harness, "a.png", SCRATCH, "0010")).failed_messages
    parts_r1 = part_items(harness, "a.png")
    assert parts_r1, "the X result should have continuation items"
    body_y = unversioned_body(harness, "a.png", DENT, "0011")
    body_x_again = unversioned_body(harness, "a.png", SCRATCH, "0012")

    worker_c = harness.build_pipeline()
    c_reports: list[BatchReport] = []
    armed = [True]

    def batch_write(kwargs: dict[str, Any], call: Call) -> Any:
        if armed[0] and is_parts_delete(kwargs):
            armed[0] = False
            model.name = "scratch"  # C labels content X again
            c_reports.append(run(worker_c, body_x_again))
        return call(**kwargs)

    harness.dynamodb.faults["batch_write_item"] = batch_write
    model.name = "dent"
    report_b = run(harness.build_pipeline(), body_y)

    assert c_reports and c_reports[0].labeled == 1 and not c_reports[0].failed_messages
    assert not report_b.failed_messages
    try:
        result = harness.result("a.png")
    except IncompleteResultError as error:
        pytest.fail(f"the current result is unreadable: {error}")
    assert len(part_items(harness, "a.png")) == len(parts_r1)  # the current result's, nothing left over
    assert result is not None and {label["Name"] for label in result["customLabels"]} == {"scratch"}


# -- 2. results stored before the change are never found by label again -----------------------------


# -- regression: attacks that HELD ------------------------------------------------------------------


def test_holds_stalled_replacer_index_writes_never_touch_the_same_result_id_written_again(harness: Harness) -> None:
    """HOLDS (regression). Promise: find_by_label equals the current results once finished.

    Unversioned bucket, small results. X (R1, 'scratch') labeled. Worker B
    labels Y (R2, 'dent'), puts its result item and stalls before its index
    BatchWriteItem (puts of R2's entries, deletes of R1's entries under R1's
    indexId). X uploaded again: worker C writes R1 again and its entries.
    B's late puts and deletes then land. Entries are keyed by the write's
    indexId, not the resultId: B deletes only the first R1 write's entries,
    and its own R2 entries are ignored (indexId is not the current one).
    """
    first = unversioned_body(harness, "a.png", SCRATCH, "0010")
    assert not run(harness.build_pipeline(), first).failed_messages
    body_y = unversioned_body(harness, "a.png", DENT, "0011")
    body_x_again = unversioned_body(harness, "a.png", SCRATCH, "0012")

    worker_c = harness.build_pipeline()
    c_reports: list[BatchReport] = []
    armed = [True]

    def batch_write(kwargs: dict[str, Any], call: Call) -> Any:
        keys = batch_write_keys(kwargs)
        if armed[0] and keys and keys[0][layout.PARTITION_KEY]["S"].startswith(layout.LABEL_PARTITION_PREFIX):
            armed[0] = False
            c_reports.append(run(worker_c, body_x_again))
        return call(**kwargs)

    harness.dynamodb.faults["batch_write_item"] = batch_write
    report_b = run(harness.build_pipeline(), body_y)

    assert c_reports and c_reports[0].labeled == 1 and not report_b.failed_messages
    result = harness.result("a.png")
    assert result is not None and result["labelNames"] == ["scratch"] and result["eventPublished"] is True
    assert [f["key"] for f in harness.by_label("scratch")] == ["a.png"]
    assert harness.by_label("dent") == []


def strict_batch_write(kwargs: dict[str, Any], call: Call) -> Any:
    """BatchWriteItem as DynamoDB validates it: no two requests (put or delete) for the same key."""
    keys = [(k[layout.PARTITION_KEY]["S"], k[layout.SORT_KEY]["S"]) for k in batch_write_keys(kwargs)]
    if len(keys) != len(set(keys)):
        raise ClientError(
            {"Error": {"Code": "ValidationException", "Message": "Provided list of item keys contains duplicates"}},
            "BatchWriteItem",
        )
    return call(**kwargs)


def test_holds_two_results_of_one_batch_with_identical_labels_never_send_duplicate_keys(harness: Harness) -> None:
    """HOLDS (regression). DynamoDB rejects a BatchWriteItem with two requests for one key.

    ``save_many`` puts every result's entries and deletes every replaced
    result's entries of a batch in shared BatchWriteItem calls. Two objects
    with the same labels at the same confidences, both replacing a result with
    those same labels, in one batch: each entry key carries its write's
    indexId (one token per task), so no two requests share a key. moto only
    rejects two puts or two deletes of one key, not a put and a delete of it
    (as DynamoDB does): every BatchWriteItem call is checked here instead.
    """
    harness.dynamodb.faults["batch_write_item"] = strict_batch_write
    bodies = []
    for name in ("a.png", "b.png"):
        upload = harness.upload_quietly(name, SCRATCH)
        bodies.append(notification_body(harness.record_for(name, upload, sequencer="0010")))
    assert run(harness.build_pipeline(), *bodies).labeled == 2  # first results: puts of identical labels
    bodies = []
    for name in ("a.png", "b.png"):
        upload = harness.upload_quietly(name, SCRATCH + b" ")  # new versions, same labels
        bodies.append(notification_body(harness.record_for(name, upload, sequencer="0011")))
    report = run(harness.build_pipeline(), *bodies)  # puts and deletes of identical labels, one batch
    assert report.labeled == 2 and not report.failed_messages
    assert sorted(f["key"] for f in harness.by_label("scratch")) == ["a.png", "b.png"]


def is_claim(kwargs: dict[str, Any]) -> bool:
    return str(kwargs.get("UpdateExpression", "")).startswith("SET #claim = :now, #by = :me, #unc")


@pytest.mark.parametrize("mark_lands", ["between-claim-and-check", "after-check"])
def test_holds_claim_publication_racing_the_first_workers_mark(harness: Harness, mark_lands: str) -> None:
    """HOLDS (regression). Promise: nothing announced twice unless counted in AmbiguousPublishes.

    Worker A stores and publishes a result; its mark (the publication item) is
    late. Worker B (A's claim already expired: claim_ttl 0) reads the result
    unpublished and claims it. "between-claim-and-check": A's mark lands
    after B's claim UpdateItem and before B checks the publication item: B
    sees it and does not publish. "after-check": A's mark lands after the
    check: B publishes again, which it counts (it took A's claim over).
    """
    upload = harness.upload_quietly("a.png", SCRATCH)
    body = notification_body(harness.record_for("a.png", upload, sequencer="0010"))
    real = harness.dynamodb._client
    worker_b = harness.build_pipeline(claim_ttl=0.0)
    reports: list[BatchReport] = []
    pending_mark: list[dict[str, Any]] = []

    def batch_write(kwargs: dict[str, Any], call: Call) -> Any:
        if is_mark(kwargs) and not pending_mark:
            pending_mark.append(kwargs)
            reports.append(run(worker_b, body))  # B runs while A's mark is in flight
        return call(**kwargs)

    def update_item(kwargs: dict[str, Any], call: Call) -> Any:
        answer = call(**kwargs)
        if is_claim(kwargs) and mark_lands == "between-claim-and-check" and pending_mark:
            real.batch_write_item(**pending_mark[0])  # A's mark lands now
        return answer

    harness.dynamodb.faults["batch_write_item"] = batch_write
    harness.dynamodb.faults["update_item"] = update_item
    reports.append(run(harness.pipeline, body))
    reports.append(run(harness.build_pipeline(), body))  # any retry of B's record

    events = events_for(harness, "a.png")
    counted = sum(r.ambiguous_publishes for r in reports)
    assert not reports[-1].failed_messages
    assert len(events) == (1 if mark_lands == "between-claim-and-check" else 2)
    assert len(events) - 1 <= counted


def test_holds_a_late_mark_of_a_replaced_write_does_not_mark_the_newer_result(harness: Harness) -> None:
    """HOLDS (regression). Promise: nothing lost (every version ends announced).

    Worker A publishes v1; its mark is late. Meanwhile worker B labels v2
    (newer: claims never hold back a newer version), stores it, and its
    PutEvents is refused (B releases its claim: v2 stored, unpublished). A's
    late mark then lands. Publication items are keyed by the write
    (``PUBLISHED#<arn>#<writeId>``): it cannot mark v2, so v2's retry
    publishes it.
    """
    from local.fakes.faults import put_events_rejecting

    v1 = harness.upload_quietly("a.png", SCRATCH)
    body_v1 = notification_body(harness.record_for("a.png", v1, sequencer="0010"))
    v2 = harness.upload_quietly("a.png", DENT)
    body_v2 = notification_body(harness.record_for("a.png", v2, sequencer="0011"))
    worker_b = harness.build_pipeline()
    b_reports: list[BatchReport] = []
    refuse_v2 = [True]

    def refuse(entry: dict[str, Any]) -> bool:
        if refuse_v2[0] and '"dent"' in entry["Detail"]:
            refuse_v2[0] = False
            return True
        return False

    def batch_write(kwargs: dict[str, Any], call: Call) -> Any:
        if is_mark(kwargs) and not b_reports:
            b_reports.append(run(worker_b, body_v2))
        return call(**kwargs)

    harness.events.faults["put_events"] = put_events_rejecting(refuse)
    harness.dynamodb.faults["batch_write_item"] = batch_write
    assert not run(harness.pipeline, body_v1).failed_messages
    assert b_reports[0].failed_messages  # v2 refused, stored unpublished
    retry = run(harness.build_pipeline(), body_v2)
    assert not retry.failed_messages and retry.labeled == 1
    assert [e["detail"]["labelNames"] for e in events_for(harness, "a.png")] == [["scratch"], ["dent"]]
    assert [f["key"] for f in harness.by_label("dent")] == ["a.png"] and harness.by_label("scratch") == []


def test_holds_find_by_label_with_limit_skips_many_leftover_entries_above_the_current_one(harness: Harness) -> None:
    """HOLDS (regression). Promise: leftover entries may stay but are never returned.

    60 leftover entries (of replaced writes of a.png, and of the deleted-then-
    re-labeled b.png) sit above the current entries in the label partition,
    at confidence 100. ``find_by_label(limit=1)`` pages (at least 25 entries
    per Query) past all of them and returns the most confident
    CURRENT entry; limit=2 returns both objects once each.
    """
    from labeler.adapters.result_items import label_index_items

    for name, sequencer in (("a.png", "0010"), ("b.png", "0011")):
        upload = harness.upload_quietly(name, SCRATCH)
        assert run(
            harness.build_pipeline(), notification_body(harness.record_for(name, upload, sequencer=sequencer))
        ).labeled
    stored = harness.pipeline.ctx.results.load((harness.resources.bucket, "a.png", harness.config.project_version_arn))
    assert stored is not None
    leftovers = []
    for n in range(60):
        target = stored if n % 2 else type(stored)(**{**stored.__dict__, "key": "b.png"})
        boosted = type(target)(**{**target.__dict__, "custom_labels": [{"Name": "scratch", "Confidence": 100.0}]})
        leftovers.extend(label_index_items(boosted, f"replaced-write-{n:03d}"))
    client = boto3.client("dynamodb")
    from shared.dynamo_codec import serialize_item

    for start in range(0, len(leftovers), 25):
        client.batch_write_item(
            RequestItems={
                harness.resources.table_name: [
                    {"PutRequest": {"Item": serialize_item(e)}} for e in leftovers[start : start + 25]
                ]
            }
        )
    one = harness.by_label("scratch", limit=1)
    assert len(one) == 1 and one[0]["confidence"] < 100.0
    # Pages of at least 25 entries: the 62 entries take 3 Queries (and 3 BatchGetItems), not one per entry.
    from labeler.queries import find_by_label
    from local.fakes.faults import FaultyClient

    counting = FaultyClient(client)
    assert len(find_by_label(harness.resources.table_name, "scratch", limit=1, client=counting)) == 1
    assert counting.calls["query"] == 3 and counting.calls["batch_get_item"] == 3
    two = harness.by_label("scratch", limit=2)
    assert sorted(f["key"] for f in two) == ["a.png", "b.png"]
    assert sorted(f["key"] for f in harness.by_label("scratch")) == ["a.png", "b.png"]


def test_holds_sort_key_rounding_at_the_min_confidence_bound(harness: Harness) -> None:
    """HOLDS (regression). The sort key rounds confidences to 6 decimals; the bound must stay exact.

    Entries just below and above a bound that rounds up (87.4999996 -> key
    '087.500000') and one that rounds down (87.5000004): the key range starts
    at the rounded bound, the filter on the exact number does the rest.
    """
    from datetime import UTC, datetime

    from labeler.adapters.results_store import ResultStore
    from labeler.domain.label_result import LabelResult
    from labeler.domain.s3_notification import S3ObjectEvent

    store = ResultStore(boto3.client("dynamodb"), harness.resources.table_name)
    confidences = {"lo.png": 87.4999994, "mid.png": 87.4999998, "hi.png": 87.5000001, "top.png": 87.5000006}
    for key, confidence in confidences.items():
        obj = S3ObjectEvent("ObjectCreated:Put", harness.resources.bucket, key, 1, "e", "v", "0010")
        result = LabelResult.labeled(
            obj, harness.config, [{"Name": "edge", "Confidence": confidence}], datetime.now(UTC)
        )
        store.save(result, None)
    for bound in (87.4999996, 87.5000004, 87.4999994, 87.5000006):
        expected = sorted(k for k, c in confidences.items() if c >= bound)
        assert sorted(f["key"] for f in harness.by_label("edge", bound)) == expected, bound
