"""The item mapping works both ways: result -> items -> result gives the result back."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeler.adapters.result_items import (
    INTERNAL_ATTRIBUTES,
    IncompleteResultError,
    assemble,
    label_index_items,
    label_index_keys,
    public_view,
    to_items,
    to_result,
)
from labeler.domain.label_result import FAILED, LABELED, LabelResult
from shared import table_layout as layout
from shared.dynamo_codec import deserialize_item, estimated_item_size, serialize_item

ARN = "arn:aws:rekognition:eu-west-1:123456789012:project/p/version/v/1"
OTHER_ARN = "arn:aws:rekognition:eu-west-1:123456789012:project/p/version/v/2"

LABELS = st.lists(
    st.fixed_dictionaries(
        {
            "Name": st.text(min_size=1, max_size=40),
            "Confidence": st.floats(min_value=0, max_value=100, allow_nan=False).map(lambda c: round(c, 3)),
        },
        optional={
            "Geometry": st.fixed_dictionaries(
                {"BoundingBox": st.fixed_dictionaries({"Width": st.just(0.5), "Height": st.just(0.25)})}
            )
        },
    ),
    max_size=60,
)


def _result(labels: list[dict[str, Any]], *, status: str = LABELED, arn: str = ARN, **overrides: Any) -> LabelResult:
    fields: dict[str, Any] = {
        "result_id": "r-1",
        "bucket": "b",
        "key": "photos/cat 1.jpg",
        "version_id": "v1",
        "etag": "e",
        "size": 10,
        "sequencer": "0055AED6DCD90281E5",
        "project_version_arn": arn,
        "min_confidence": None,
        "max_results": None,
        "status": status,
        "processed_at": "2026-11-24T10:00:00.000Z",
        "custom_labels": labels,
        "error": {"code": "ImageTooLarge", "message": "too large"} if status == FAILED else None,
    }
    fields.update(overrides)
    return LabelResult(**fields)


def _stored(result: LabelResult) -> list[dict[str, Any]]:
    """The items as DynamoDB gives them back (through the codec)."""
    item, parts = to_items(result)
    return [deserialize_item(serialize_item(each)) for each in (item, *parts)]


@settings(max_examples=60, deadline=None)
@given(labels=LABELS, status=st.sampled_from([LABELED, FAILED]), version_id=st.sampled_from([None, "v1"]))
def test_result_to_items_and_back_is_the_same_result(
    labels: list[dict[str, Any]], status: str, version_id: str | None
) -> None:
    result = _result(labels if status == LABELED else [], status=status, version_id=version_id)
    assembled = assemble(_stored(result), ARN)
    assert assembled is not None
    assert to_result(assembled) == result
    assert to_result(public_view(assembled)) == result


def test_a_result_too_large_for_one_item_is_split_in_order_and_reassembled() -> None:
    labels = [
        {"Name": f"part-{n:03d}", "Confidence": 50.0, "Geometry": {"Polygon": [{"X": 0.1, "Y": 0.2}] * 60}}
        for n in range(400)
    ]
    result = _result(labels)
    item, parts = to_items(result)
    assert parts, "400 labels with polygons must not fit in one item"
    assert all(estimated_item_size(each) < 400 * 1024 for each in (item, *parts))
    assert item["parts"] == len(parts)
    assembled = assemble(_stored(result), ARN)
    assert assembled is not None and assembled["customLabels"] == labels


def test_a_missing_continuation_item_is_an_error_not_a_shorter_result() -> None:
    labels = [
        {"Name": f"n{n}", "Confidence": 1.0, "Geometry": {"Polygon": [{"X": 0.1, "Y": 0.2}] * 60}} for n in range(400)
    ]
    stored = _stored(_result(labels))
    with pytest.raises(IncompleteResultError):
        assemble(stored[:-1], ARN)


def test_the_public_view_has_no_bookkeeping_attributes() -> None:
    assembled = assemble(_stored(_result([{"Name": "cat", "Confidence": 90.0}])), ARN)
    assert assembled is not None
    view = public_view(assembled)
    assert not set(view) & set(INTERNAL_ATTRIBUTES)
    assert view["labelNames"] == ["cat"] and view["resultId"] == "r-1"


def test_without_a_model_the_latest_result_of_any_model_is_current() -> None:
    older = _result([{"Name": "cat", "Confidence": 90.0}], processed_at="2026-11-24T10:00:00.000Z")
    newer = _result(
        [{"Name": "dog", "Confidence": 80.0}], arn=OTHER_ARN, result_id="r-2", processed_at="2026-11-24T11:00:00.000Z"
    )
    items = _stored(older) + _stored(newer)
    latest = assemble(items)
    assert latest is not None and latest["resultId"] == "r-2"
    only_first = assemble(items, ARN)
    assert only_first is not None and only_first["resultId"] == "r-1"
    assert assemble([], ARN) is None


def test_one_index_entry_per_distinct_label_with_its_best_confidence() -> None:
    result = _result(
        [{"Name": "cat", "Confidence": 60.0}, {"Name": "cat", "Confidence": 90.0}, {"Name": "dog", "Confidence": 70.0}]
    )
    index = {item[layout.LABEL_NAME]: item for item in label_index_items(result, "w-1")}
    assert {name: item[layout.LABEL_CONFIDENCE] for name, item in index.items()} == {"cat": 90.0, "dog": 70.0}
    assert all(item["resultId"] == "r-1" and item["versionId"] == "v1" for item in index.values())
    # In the label's own partition, keyed by confidence and by the write that stored the result.
    assert index["cat"][layout.PARTITION_KEY] == "LABEL#cat"
    assert index["cat"][layout.SORT_KEY] == "090.000000#w-1" and index["cat"][layout.INDEX_ID] == "w-1"
    # The keys a replaced result's entries have can be computed from its labels alone.
    keys = label_index_keys(result.custom_labels, "w-1")
    assert keys == [{k: item[k] for k in (layout.PARTITION_KEY, layout.SORT_KEY)} for item in index.values()]


def test_confidence_keys_sort_as_the_numbers_do() -> None:
    confidences = [0.0, 0.5, 9.999999, 10.0, 55.5, 99.9, 100.0]
    keys = [layout.confidence_key(c) for c in confidences]
    assert keys == sorted(keys) and len(set(map(len, keys))) == 1


@pytest.mark.parametrize("stored_status", [LABELED, FAILED])
def test_a_result_deleted_before_deletions_set_the_status_reads_as_deleted(stored_status: str) -> None:
    """The upgrade (docs/behaviour.md#deletions): items deleted by an earlier release kept their status."""
    labels = [{"Name": "cat", "Confidence": 90.0}] if stored_status == LABELED else []
    assembled = assemble(_stored(_result(labels, status=stored_status)), ARN)
    assert assembled is not None
    deletion = {"eventName": "ObjectRemoved:Delete"}
    assembled.update(deletedAt="2026-11-24T10:20:00.314Z", removalId="r1", deletion=deletion)
    assert assembled["status"] == stored_status  # as an earlier release left it
    view = public_view(assembled)
    assert view["status"] == "DELETED" and view["customLabels"] == labels  # the labels stay, for history
    assert to_result(view).status == "DELETED"
