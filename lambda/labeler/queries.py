"""Read side of the results table: the object and by-label questions, each one DynamoDB Query.

Importing this module reads no environment variable: operator tools use it
from a laptop with their own credentials and an explicit table name.
"""

from __future__ import annotations

from typing import Any

from shared import table_layout as layout
from shared.dynamo_codec import deserialize_item, serialize

# Bookkeeping attributes that are not part of the result contract.
_INTERNAL_ATTRIBUTES = (
    layout.PARTITION_KEY,
    layout.SORT_KEY,
    "itemType",
    "sequencerOrder",
    "publishClaimedAt",
    "publishClaimedBy",
    "publishUncertain",
    "writeId",
    "parts",
)


def _client_or_default(client: Any | None) -> Any:
    if client is not None:
        return client
    import boto3  # only when the caller brings no client

    return boto3.client("dynamodb")


def _query_all(client: Any, **request: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        response = client.query(**request)
        items.extend(deserialize_item(raw) for raw in response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return items
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def get_result(
    table_name: str,
    bucket: str,
    key: str,
    project_version_arn: str | None = None,
    *,
    client: Any | None = None,
) -> dict[str, Any] | None:
    """The current result for an object (for one model, or the latest of any model).

    ``customLabels`` is the full list in Rekognition's order, reassembled from
    continuation items when the result did not fit in one item.
    """
    client = _client_or_default(client)
    prefix = layout.result_sort_key(project_version_arn) if project_version_arn else layout.RESULT_PREFIX
    items = _query_all(
        client,
        TableName=table_name,
        KeyConditionExpression="#pk = :pk AND begins_with(#sk, :prefix)",
        ExpressionAttributeNames={"#pk": layout.PARTITION_KEY, "#sk": layout.SORT_KEY},
        ExpressionAttributeValues={
            ":pk": serialize(layout.object_partition(bucket, key)),
            ":prefix": serialize(prefix),
        },
        ConsistentRead=True,
    )
    results = [item for item in items if item.get("itemType") == layout.ITEM_TYPE_RESULT]
    if project_version_arn:
        results = [item for item in results if item[layout.SORT_KEY] == layout.result_sort_key(project_version_arn)]
    if not results:
        return None
    current = max(results, key=lambda item: str(item.get("processedAt", "")))
    parts_prefix = layout.part_sort_key_prefix(current["projectVersionArn"], current["resultId"])
    parts = sorted(
        (item for item in items if str(item[layout.SORT_KEY]).startswith(parts_prefix)),
        key=lambda item: int(item["partNumber"]),
    )
    if len(parts) != int(current.get("parts", 0)):
        raise RuntimeError(
            f"result {current['resultId']} expects {current.get('parts')} continuation items, found {len(parts)}"
        )
    labels = list(current.get("customLabels", []))
    for part in parts:
        labels.extend(part.get("customLabels", []))
    current["customLabels"] = labels
    return {name: value for name, value in current.items() if name not in _INTERNAL_ATTRIBUTES}


def find_by_label(
    table_name: str,
    label: str,
    min_confidence: float = 0.0,
    *,
    limit: int | None = None,
    client: Any | None = None,
) -> list[dict[str, Any]]:
    """Objects whose current result carries ``label`` at >= ``min_confidence``.

    One entry per (object, model version), most confident first; ``limit``
    keeps the N most confident.
    """
    if limit is not None and limit < 1:
        raise ValueError("limit must be >= 1")
    client = _client_or_default(client)
    request: dict[str, Any] = {
        "TableName": table_name,
        "IndexName": layout.LABEL_INDEX_NAME,
        "KeyConditionExpression": "#name = :name AND #conf >= :conf",
        "ExpressionAttributeNames": {"#name": layout.LABEL_INDEX_PARTITION_KEY, "#conf": layout.LABEL_INDEX_SORT_KEY},
        "ExpressionAttributeValues": {":name": serialize(label), ":conf": serialize(float(min_confidence))},
        "ScanIndexForward": False,
    }
    found: list[dict[str, Any]] = []
    while True:
        if limit is not None:
            request["Limit"] = limit - len(found)
        response = client.query(**request)
        for raw in response.get("Items", []):
            item = deserialize_item(raw)
            entry = {
                "bucket": item["bucket"],
                "key": item["key"],
                "projectVersionArn": item["projectVersionArn"],
                "confidence": float(item[layout.LABEL_INDEX_SORT_KEY]),
            }
            if item.get("versionId"):
                entry["versionId"] = item["versionId"]
            found.append(entry)
        if "LastEvaluatedKey" not in response or (limit is not None and len(found) >= limit):
            return found
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
