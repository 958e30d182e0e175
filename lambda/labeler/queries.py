"""Read side of the results table: the object and by-label questions, each one DynamoDB Query.

Importing this module reads no environment variable: operator tools use it
from a laptop with their own credentials and an explicit table name.
"""

from __future__ import annotations

from typing import Any

from labeler.adapters.result_items import assemble, public_view
from labeler.adapters.results_store import query_partition
from shared import table_layout as layout
from shared.dynamo_codec import deserialize_item, serialize


def _client_or_default(client: Any | None) -> Any:
    if client is not None:
        return client
    import boto3  # only when the caller brings no client

    return boto3.client("dynamodb")


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
    items = query_partition(client, table_name, layout.object_partition(bucket, key), prefix)
    current = assemble(items.values(), project_version_arn)
    return public_view(current) if current is not None else None


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
