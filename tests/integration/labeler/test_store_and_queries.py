"""DynamoDB adapter and the two result queries, against moto with the template's key schema."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from labeler.adapters.result_items import to_items
from labeler.adapters.results_store import ResultConflict, ResultStore
from labeler.config import LabelerConfig
from labeler.domain.label_result import LabelResult
from labeler.domain.s3_notification import S3ObjectEvent
from labeler.queries import find_by_label, get_result
from local.emulator import create_table
from local.fakes.faults import FaultyClient
from local.stack_template import StackFacts
from shared import table_layout as layout
from shared.dynamo_codec import serialize_item

TABLE = "results"
ARN = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/p.1/1700000000000"
OTHER_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/p.2/1700000000001"
CONFIG = LabelerConfig(ARN, TABLE, "bus")
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.fixture
def dynamodb(stack_facts: StackFacts) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb")
        create_table(client, stack_facts, TABLE)
        yield client


def label(name: str, confidence: float) -> dict[str, Any]:
    return {
        "Name": name,
        "Confidence": confidence,
        "Geometry": {"BoundingBox": {"Width": 0.25, "Height": 0.5, "Left": 0.125, "Top": 0.0625}},
    }


def labeled(
    key: str,
    labels: list[dict[str, Any]],
    *,
    etag: str = "e1",
    version: str | None = None,
    sequencer: str | None = None,
    config: LabelerConfig = CONFIG,
    at: datetime = T0,
) -> LabelResult:
    obj = S3ObjectEvent("ObjectCreated:Put", "bucket", key, 100, etag, version, sequencer)
    return LabelResult.labeled(obj, config, labels, at)


def test_table_schema_comes_from_the_template(stack_facts: StackFacts) -> None:
    assert {k["AttributeName"] for k in stack_facts.table_key_schema} == {layout.PARTITION_KEY, layout.SORT_KEY}
    (index,) = stack_facts.table_global_secondary_indexes
    assert index["IndexName"] == layout.LABEL_INDEX_NAME


def test_saved_result_reads_back_with_contract_attributes(dynamodb: Any) -> None:
    labels = [label("dent", 80.5), label("scratch", 99.25), label("dent", 91.0)]
    result = labeled("dir/a b.png", labels, version="v1", sequencer="00AB")
    ResultStore(dynamodb, TABLE).save(result, None)
    stored = get_result(TABLE, "bucket", "dir/a b.png", ARN, client=dynamodb)
    assert stored is not None
    assert stored["customLabels"] == labels
    assert stored["labelNames"] == ["scratch", "dent"]
    assert stored["labelCount"] == 3
    assert stored["status"] == "LABELED"
    assert (stored["bucket"], stored["key"], stored["versionId"], stored["sequencer"]) == (
        "bucket",
        "dir/a b.png",
        "v1",
        "00AB",
    )
    assert (stored["etag"], stored["size"], stored["projectVersionArn"]) == ("e1", 100, ARN)
    assert stored["processedAt"] == "2026-11-24T10:00:00.000Z"
    assert stored["resultId"] == result.result_id
    assert "error" not in stored and "minConfidence" not in stored and "maxResults" not in stored


def test_numbers_are_dynamodb_numbers(dynamodb: Any) -> None:
    ResultStore(dynamodb, TABLE).save(labeled("a.png", [label("dent", 80.5)]), None)
    raw = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "bucket/a.png"}, "sk": {"S": f"RESULT#{ARN}"}})["Item"]
    first = raw["customLabels"]["L"][0]["M"]
    assert first["Confidence"] == {"N": "80.5"}
    assert first["Geometry"]["M"]["BoundingBox"]["M"]["Width"] == {"N": "0.25"}
    assert raw["labelCount"] == {"N": "1"} and raw["size"] == {"N": "100"}


def test_stale_write_is_refused(dynamodb: Any) -> None:
    store = ResultStore(dynamodb, TABLE)
    first = labeled("a.png", [label("dent", 80)], etag="e1")
    store.save(first, None)
    with pytest.raises(ResultConflict):
        store.save(labeled("a.png", [label("dent", 70)], etag="e2"), None)  # thinks there is nothing yet
    state = store.current_state(("bucket", "a.png", ARN))
    assert state is not None and state.result_id == first.result_id


def test_relabel_replaces_label_index_items(dynamodb: Any) -> None:
    store = ResultStore(dynamodb, TABLE)
    store.save(labeled("a.png", [label("dent", 80), label("scratch", 60)], etag="e1"), None)
    previous = store.current_state(("bucket", "a.png", ARN))
    store.save(labeled("a.png", [label("logo", 75)], etag="e2", at=T0 + timedelta(seconds=1)), previous)
    assert find_by_label(TABLE, "dent", client=dynamodb) == []
    assert find_by_label(TABLE, "scratch", client=dynamodb) == []
    assert find_by_label(TABLE, "logo", client=dynamodb) == [
        {"bucket": "bucket", "key": "a.png", "projectVersionArn": ARN, "confidence": 75.0}
    ]


def test_find_by_label_orders_filters_and_limits(dynamodb: Any) -> None:
    store = ResultStore(dynamodb, TABLE)
    for key, confidence in [("a.png", 55.0), ("b.png", 99.0), ("c.png", 75.0), ("d.png", 30.0)]:
        store.save(labeled(key, [label("dent", confidence - 20), label("dent", confidence)], version=f"v-{key}"), None)
    found = find_by_label(TABLE, "dent", 50, client=dynamodb)
    assert [(f["key"], f["confidence"]) for f in found] == [("b.png", 99.0), ("c.png", 75.0), ("a.png", 55.0)]
    assert found[0]["versionId"] == "v-b.png"
    assert [f["key"] for f in find_by_label(TABLE, "dent", 0, limit=2, client=dynamodb)] == ["b.png", "c.png"]
    assert find_by_label(TABLE, "nothing", client=dynamodb) == []


def test_one_entry_per_model_version(dynamodb: Any) -> None:
    store = ResultStore(dynamodb, TABLE)
    store.save(labeled("a.png", [label("dent", 60)]), None)
    store.save(
        labeled(
            "a.png", [label("dent", 90)], config=LabelerConfig(OTHER_ARN, TABLE, "bus"), at=T0 + timedelta(minutes=1)
        ),
        None,
    )
    found = find_by_label(TABLE, "dent", client=dynamodb)
    assert [(f["projectVersionArn"], f["confidence"]) for f in found] == [(OTHER_ARN, 90.0), (ARN, 60.0)]
    latest = get_result(TABLE, "bucket", "a.png", client=dynamodb)  # no model given: most recent
    assert latest is not None and latest["projectVersionArn"] == OTHER_ARN
    first = get_result(TABLE, "bucket", "a.png", ARN, client=dynamodb)
    assert first is not None and first["customLabels"][0]["Confidence"] == 60


def test_queries_use_query_not_scan(dynamodb: Any) -> None:
    ResultStore(dynamodb, TABLE).save(labeled("a.png", [label("dent", 60)]), None)
    counting = FaultyClient(dynamodb)
    get_result(TABLE, "bucket", "a.png", ARN, client=counting)
    find_by_label(TABLE, "dent", client=counting)
    assert dict(counting.calls) == {"query": 2}


def test_get_result_of_unknown_object_is_none(dynamodb: Any) -> None:
    assert get_result(TABLE, "bucket", "missing.png", client=dynamodb) is None


def test_result_over_400_kb_is_split_and_reassembled(dynamodb: Any) -> None:
    # Few labels with huge polygons: about 800 KB of labels (moto deep-copies the
    # table for each transaction action, so this stays small in actions).
    polygon = [{"X": i / 1500, "Y": (i * 7 % 1500) / 1500} for i in range(1500)]
    labels = [
        {
            **label(f"defect-{i:02d}", 50 + i),
            "Geometry": {"BoundingBox": {"Width": 0.1, "Height": 0.1, "Left": 0.1, "Top": 0.1}, "Polygon": polygon},
        }
        for i in range(12)
    ]
    result = labeled("big.png", labels)
    item, parts = to_items(result)
    assert len(parts) >= 1 and item["parts"] == len(parts)
    assert len(item["customLabels"]) + sum(len(p["customLabels"]) for p in parts) == 12
    ResultStore(dynamodb, TABLE).save(result, None)
    stored = get_result(TABLE, "bucket", "big.png", ARN, client=dynamodb)
    assert stored is not None
    assert stored["customLabels"] == labels  # complete and in Rekognition's order
    assert stored["labelCount"] == 12 and stored["labelNames"] == [f"defect-{i:02d}" for i in reversed(range(12))]
    # Relabeling with a small result removes the old continuation items.
    previous = ResultStore(dynamodb, TABLE).current_state(("bucket", "big.png", ARN))
    ResultStore(dynamodb, TABLE).save(
        labeled("big.png", [label("dent", 70)], etag="e2", at=T0 + timedelta(seconds=1)), previous
    )
    items = dynamodb.query(
        TableName=TABLE, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "bucket/big.png"}}
    )["Items"]
    assert sorted(i["itemType"]["S"] for i in items) == ["LABEL", "RESULT"]


def test_more_than_99_distinct_labels_are_all_indexed(dynamodb: Any) -> None:
    labels = [label(f"defect-{i:03d}", 50 + i / 10) for i in range(150)]
    counting = FaultyClient(dynamodb)
    ResultStore(counting, TABLE).save(labeled("many.png", labels), None)
    # The result and 99 index items in one transaction; the other 51 by comparison with the stored
    # index, in one more transaction guarded by "this result is still current".
    assert counting.calls["transact_write_items"] == 2 and counting.calls["batch_write_item"] == 0
    assert all(len(find_by_label(TABLE, f"defect-{i:03d}", client=dynamodb)) == 1 for i in (0, 98, 99, 149))
    stored = get_result(TABLE, "bucket", "many.png", ARN, client=dynamodb)
    assert stored is not None and stored["customLabels"] == labels


def indexed(client: Any, names: list[str]) -> dict[str, list[str]]:
    return {name: [hit["key"] for hit in find_by_label(TABLE, name, client=client)] for name in names}


def test_sync_label_index_repairs_missing_extra_and_outdated_items(dynamodb: Any) -> None:
    store = ResultStore(dynamodb, TABLE)
    old = labeled("a.png", [label("dent", 60), label("scratch", 70), label("rust", 80)])
    store.save(old, None)
    new = labeled("a.png", [label("dent", 90), label("logo", 55)], version="v2")
    # A write that stored the new result item but none of its index changes:
    item, _ = to_items(new)
    dynamodb.put_item(TableName=TABLE, Item=serialize_item(item))
    store.sync_label_index(("bucket", "a.png", ARN), new)
    assert indexed(dynamodb, ["dent", "scratch", "rust", "logo"]) == {
        "dent": ["a.png"],
        "scratch": [],
        "rust": [],
        "logo": ["a.png"],
    }
    (hit,) = find_by_label(TABLE, "dent", client=dynamodb)
    assert hit["confidence"] == 90 and hit["versionId"] == "v2"


def test_sync_label_index_follows_a_result_replaced_meanwhile(dynamodb: Any) -> None:
    store = ResultStore(dynamodb, TABLE)
    older = labeled("a.png", [label("scratch", 70)], version="v1")
    newer = labeled("a.png", [label("dent", 90)], version="v2")
    store.save(newer, None)  # the newer result, index and all, is current
    # A slow worker now syncs the index to the older result it believed current:
    store.sync_label_index(("bucket", "a.png", ARN), older)
    assert indexed(dynamodb, ["dent", "scratch"]) == {"dent": ["a.png"], "scratch": []}


def test_claim_mark_and_release(dynamodb: Any) -> None:
    now = [1000.0]
    store = ResultStore(dynamodb, TABLE, clock=lambda: now[0])
    result = labeled("a.png", [label("dent", 60)])
    ref = ("bucket", "a.png", ARN)
    store.save(result, None, "writer")  # the writer holds the claim
    assert store.claim_publication(ref, result.result_id, "other", claim_ttl_seconds=120) is None
    claim = store.claim_publication(ref, result.result_id, "writer", claim_ttl_seconds=120)
    assert claim is not None and not claim.uncertain  # our own claim, renewed
    now[0] += 121
    taken = store.claim_publication(ref, result.result_id, "other", claim_ttl_seconds=120)
    assert taken is not None and taken.uncertain  # the writer may have sent before it stopped
    store.release_claim(ref, result.result_id, "writer", uncertain=False)  # not the owner: no effect
    assert store.claim_publication(ref, result.result_id, "third", claim_ttl_seconds=120) is None
    store.release_claim(ref, result.result_id, "other", uncertain=True)
    again = store.claim_publication(ref, result.result_id, "third", claim_ttl_seconds=120)
    assert again is not None and again.uncertain  # the release kept the uncertainty
    store.mark_published([(ref, result.result_id)])
    state = store.current_state(ref)
    assert state is not None and state.published and state.publish_claimed_at is None
    assert store.claim_publication(ref, result.result_id, "fourth", claim_ttl_seconds=0) is None


def test_a_clean_release_leaves_no_uncertainty(dynamodb: Any) -> None:
    store = ResultStore(dynamodb, TABLE)
    result = labeled("a.png", [label("dent", 60)])
    ref = ("bucket", "a.png", ARN)
    store.save(result, None, "writer")
    store.release_claim(ref, result.result_id, "writer", uncertain=False)
    claim = store.claim_publication(ref, result.result_id, "retry", claim_ttl_seconds=120)
    assert claim is not None and not claim.uncertain


def test_mark_published_batches_and_skips_replaced_results(dynamodb: Any) -> None:
    counting = FaultyClient(dynamodb)
    store = ResultStore(counting, TABLE)
    results = [labeled(f"{n}.png", [label("dent", 60)]) for n in range(3)]
    for result in results:
        store.save(result, None)
    refs = [(("bucket", r.key, ARN), r.result_id) for r in results]
    store.mark_published(refs)
    assert counting.calls["transact_write_items"] == 3 + 1  # three saves, one mark for all
    # A result replaced meanwhile is left alone; the others are still marked.
    replaced = [(refs[0][0], "some-other-result"), *refs[1:]]
    store.mark_published(replaced)
    assert all(store.current_state(ref) and store.current_state(ref).published for ref, _ in refs)  # type: ignore[union-attr]
