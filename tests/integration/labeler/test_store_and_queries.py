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
    # The label index is in the table's own partitions: no secondary index to bill twice.
    assert stack_facts.table_global_secondary_indexes == []


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
    # find_by_label: one Query of the label's partition, and one BatchGetItem to check its entries are current.
    assert dict(counting.calls) == {"query": 2, "batch_get_item": 1}


def test_find_by_label_checks_its_entries_against_strongly_consistent_reads(dynamodb: Any) -> None:
    # An eventually consistent check could still see a result replaced or deleted a moment ago.
    ResultStore(dynamodb, TABLE).save(labeled("a.png", [label("dent", 60)]), None)
    requests: list[dict[str, Any]] = []

    def record(kwargs: dict[str, Any], call: Any) -> Any:
        requests.append(kwargs)
        return call(**kwargs)

    assert [
        entry["key"]
        for entry in find_by_label(TABLE, "dent", client=FaultyClient(dynamodb, {"batch_get_item": record}))
    ] == ["a.png"]
    assert [table["ConsistentRead"] for request in requests for table in request["RequestItems"].values()] == [True]


def test_get_result_of_unknown_object_is_none(dynamodb: Any) -> None:
    assert get_result(TABLE, "bucket", "missing.png", client=dynamodb) is None


def test_result_over_400_kb_is_split_and_reassembled(dynamodb: Any) -> None:
    # Few labels with huge polygons: about 800 KB of labels.
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
    assert sorted(i["itemType"]["S"] for i in items) == ["RESULT"]
    # The replaced result's label-index entries are gone too, not only hidden by find_by_label.
    assert all(label_partition(dynamodb, f"defect-{i:02d}") == [] for i in range(12))
    assert [hit["key"] for hit in find_by_label(TABLE, "dent", client=dynamodb)] == ["big.png"]


def label_partition(client: Any, name: str) -> list[dict[str, Any]]:
    """The raw label-index entries of one label, current or not."""
    return client.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": layout.label_partition(name)}},
    )["Items"]


def test_more_than_99_distinct_labels_are_all_indexed(dynamodb: Any) -> None:
    labels = [label(f"defect-{i:03d}", 50 + i / 10) for i in range(150)]
    counting = FaultyClient(dynamodb)
    ResultStore(counting, TABLE).save(labeled("many.png", labels), None)
    # The result item by one conditional PutItem; its 150 index entries in BatchWriteItem calls of 25.
    assert counting.calls["put_item"] == 1 and counting.calls["batch_write_item"] == 6
    assert "transact_write_items" not in counting.calls
    assert all(len(find_by_label(TABLE, f"defect-{i:03d}", client=dynamodb)) == 1 for i in (0, 98, 99, 149))
    stored = get_result(TABLE, "bucket", "many.png", ARN, client=dynamodb)
    assert stored is not None and stored["customLabels"] == labels


def indexed(client: Any, names: list[str]) -> dict[str, list[str]]:
    return {name: [hit["key"] for hit in find_by_label(TABLE, name, client=client)] for name in names}


def test_finish_write_puts_the_new_entries_and_deletes_the_replaced_ones(dynamodb: Any) -> None:
    store = ResultStore(dynamodb, TABLE)
    ref = ("bucket", "a.png", ARN)
    old = labeled("a.png", [label("dent", 60), label("scratch", 70), label("rust", 80)])
    store.save(old, None, "w1")
    previous = store.current_state(ref)
    new = labeled("a.png", [label("dent", 90), label("logo", 55)], version="v2")
    # A write that stored the new result item, then stopped before any of its index changes:
    item, _ = to_items(new)
    dynamodb.put_item(TableName=TABLE, Item=serialize_item({**item, "writeId": "w2", "indexId": "w2"}))
    # The replaced result's entries are no longer current, so find_by_label leaves them out already.
    assert indexed(dynamodb, ["dent", "scratch", "rust", "logo"]) == {"dent": [], "scratch": [], "rust": [], "logo": []}
    store.finish_write(new, previous, "w2")  # what the retry that finds its own write does
    assert indexed(dynamodb, ["dent", "scratch", "rust", "logo"]) == {
        "dent": ["a.png"],
        "scratch": [],
        "rust": [],
        "logo": ["a.png"],
    }
    (hit,) = find_by_label(TABLE, "dent", client=dynamodb)
    assert hit["confidence"] == 90 and hit["versionId"] == "v2"
    assert label_partition(dynamodb, "scratch") == [] and len(label_partition(dynamodb, "dent")) == 1
    store.finish_write(new, previous, "w2")  # idempotent
    assert len(label_partition(dynamodb, "dent")) == 1 and len(label_partition(dynamodb, "logo")) == 1


def test_sync_label_index_of_a_result_replaced_meanwhile_leaves_nothing_behind(dynamodb: Any) -> None:
    store = ResultStore(dynamodb, TABLE)
    older = labeled("a.png", [label("scratch", 70)], version="v1")
    newer = labeled("a.png", [label("dent", 90)], version="v2")
    store.save(newer, None)  # the newer result, index and all, is current
    # A slow worker now puts the index entries of the older result it believed current:
    store.sync_label_index(("bucket", "a.png", ARN), older, "older-write")
    assert indexed(dynamodb, ["dent", "scratch"]) == {"dent": ["a.png"], "scratch": []}
    assert label_partition(dynamodb, "scratch") == []  # it saw the newer result and took them back


def test_find_by_label_skips_entries_of_replaced_and_deleted_results(dynamodb: Any) -> None:
    store = ResultStore(dynamodb, TABLE)
    store.save(labeled("a.png", [label("dent", 95)], version="v1"), None, "w1")
    store.save(labeled("b.png", [label("dent", 90)], version="v1"), None, "w2")
    store.save(labeled("c.png", [label("dent", 85)], version="v1"), None, "w3")
    # Leftovers that a worker death could leave: entries of writes that are not the current results'...
    for key, index_id in (("a.png", "w0"), ("b.png", "gone")):
        dynamodb.put_item(
            TableName=TABLE,
            Item=serialize_item(
                {
                    "pk": layout.label_partition("dent"),
                    "sk": layout.label_entry_sort_key(99.5, index_id),
                    "itemType": "LABEL",
                    "labelName": "dent",
                    "labelConfidence": 99.5,
                    "bucket": "bucket",
                    "key": key,
                    "projectVersionArn": ARN,
                    "resultId": "r-old",
                    "indexId": index_id,
                }
            ),
        )
    # ...and a deleted result whose entries were not deleted yet.
    dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "bucket/c.png"}, "sk": {"S": f"RESULT#{ARN}"}},
        UpdateExpression="SET removalId = :rm",
        ExpressionAttributeValues={":rm": {"S": "removal-1"}},
    )
    found = find_by_label(TABLE, "dent", client=dynamodb)
    assert [(f["key"], f["confidence"]) for f in found] == [("a.png", 95.0), ("b.png", 90.0)]
    assert [f["key"] for f in find_by_label(TABLE, "dent", limit=1, client=dynamodb)] == ["a.png"]
    assert [f["key"] for f in find_by_label(TABLE, "dent", 91, client=dynamodb)] == ["a.png"]
    assert [f["key"] for f in find_by_label(TABLE, "dent", 96, client=dynamodb)] == []


def test_find_by_label_bound_is_exact_below_the_sort_key_rounding(dynamodb: Any) -> None:
    store = ResultStore(dynamodb, TABLE)
    store.save(labeled("a.png", [label("dent", 87.1234564)]), None)
    assert find_by_label(TABLE, "dent", 87.1234564, client=dynamodb) != []
    assert find_by_label(TABLE, "dent", 87.1234566, client=dynamodb) == []  # same 6-decimal sort key


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
    store.mark_published([(ref, "writer", result.result_id)])  # the writeId of the stored result
    state = store.current_state(ref)
    assert state is not None and state.published
    # Published: nobody can claim it again, even once every claim is stale.
    assert store.claim_publication(ref, result.result_id, "fourth", claim_ttl_seconds=0) is None
    view = get_result(TABLE, "bucket", "a.png", ARN, client=dynamodb)
    assert view is not None and view["eventPublished"] is True


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
    for n, result in enumerate(results):
        store.save(result, None, f"w{n}")
    refs = [(("bucket", r.key, ARN), f"w{n}", r.result_id) for n, r in enumerate(results)]
    before = counting.calls["batch_write_item"]
    store.mark_published(refs)
    assert counting.calls["batch_write_item"] == before + 1  # one small item each, in one call
    assert "update_item" not in counting.calls and "transact_write_items" not in counting.calls
    assert all(store.current_state(ref) and store.current_state(ref).published for ref, _, _ in refs)  # type: ignore[union-attr]
    # A mark for a write that is not the current result item's says nothing about it.
    fresh = labeled("3.png", [label("dent", 60)])
    store.save(fresh, None, "w3")
    store.mark_published([(("bucket", "3.png", ARN), "an-earlier-write", fresh.result_id)])
    state = store.current_state(("bucket", "3.png", ARN))
    assert state is not None and not state.published


def test_replacing_a_result_deletes_its_publication_item(dynamodb: Any) -> None:
    store = ResultStore(dynamodb, TABLE)
    ref = ("bucket", "a.png", ARN)
    store.save(labeled("a.png", [label("dent", 80)], etag="e1"), None, "w1")
    store.mark_published([(ref, "w1", "r1")])
    previous = store.current_state(ref)
    assert previous is not None and previous.published
    store.save(labeled("a.png", [label("dent", 70)], etag="e2", at=T0 + timedelta(seconds=1)), previous, "w2")
    store.mark_published([(ref, "w2", "r2")])
    items = dynamodb.query(
        TableName=TABLE, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "bucket/a.png"}}
    )["Items"]
    # An object overwritten often keeps one publication item, not one per version it ever had.
    assert sorted(i["sk"]["S"] for i in items) == [f"PUBLISHED#{ARN}#w2", f"RESULT#{ARN}"]
