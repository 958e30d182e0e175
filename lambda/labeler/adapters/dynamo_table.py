"""DynamoDB access shared by the results-table adapters: keys, conditions, batched calls, their errors.

Any error (an AWS error answer or a dropped connection) becomes a
``StoreError`` (the record is retried); a failed condition becomes a
``ResultConflict`` or ``None``, as each call says.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labeler.domain.stored_state import ObjectRef, StoredState
from labeler.ports import ResultConflict, StoreError
from shared import table_layout as layout
from shared.dynamo_codec import deserialize_item, serialize_item

# What a call can raise: the service's error answer, or a connection-level error.
AWS_ERRORS = (ClientError, BotoCoreError)

MAX_BATCH_GET_KEYS = 100
MAX_BATCH_WRITE_ITEMS = 25
UNPROCESSED_RETRIES = 8
PARALLEL_WRITES = 10  # a batch's result items are written concurrently (one SQS batch holds at most 10)

REMOVAL_ID = "removalId"


def error_code(error: Exception) -> str:
    """The AWS error code of a ClientError; '' for connection-level errors."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def current_condition(previous: StoredState | None) -> dict[str, Any]:
    """The condition that the result item is still ``previous`` (absent when None), deletion included.

    A deletion keeps the result's resultId and processedAt, so the condition
    also says whether, and by which deletion, the item was deleted: a writer
    that read it before the deletion cannot write over it. Likewise for the
    sequencer, which a newer event of the same bytes advances.
    """
    if previous is None:
        return {
            "ConditionExpression": "attribute_not_exists(#pk)",
            "ExpressionAttributeNames": {"#pk": layout.PARTITION_KEY},
        }
    names = {"#rid": "resultId", "#at": "processedAt", "#rm": REMOVAL_ID, "#seq": "sequencer"}
    values: dict[str, Any] = {":rid": {"S": previous.result_id}, ":at": {"S": previous.processed_at}}
    if previous.removal_id is None:
        deletion = "attribute_not_exists(#rm)"
    else:
        deletion = "#rm = :rm"
        values[":rm"] = {"S": previous.removal_id}
    # The sequencer too: the same result advanced to a newer event (``advance_sequencer``) orders the key
    # differently, and a writer that decided against the older one must decide again.
    if previous.sequencer is None:
        ordering = "attribute_not_exists(#seq)"
    else:
        ordering = "#seq = :seq"
        values[":seq"] = {"S": previous.sequencer}
    return {
        "ConditionExpression": f"#rid = :rid AND #at = :at AND {deletion} AND {ordering}",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _key(bucket: str, key: str, sort_key: str) -> dict[str, Any]:
    return {layout.PARTITION_KEY: {"S": layout.object_partition(bucket, key)}, layout.SORT_KEY: {"S": sort_key}}


def result_key(bucket: str, key: str, project_version_arn: str) -> dict[str, Any]:
    return _key(bucket, key, layout.result_sort_key(project_version_arn))


def publication_key(ref: ObjectRef, write_id: str) -> dict[str, Any]:
    bucket, key, project_version_arn = ref
    return _key(bucket, key, layout.publication_sort_key(project_version_arn, write_id))


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def delete_request(key: dict[str, Any]) -> dict[str, Any]:
    return {"DeleteRequest": {"Key": serialize_item(key)}}


def put_request(item: dict[str, Any]) -> dict[str, Any]:
    return {"PutRequest": {"Item": serialize_item(item)}}


def query_partition(client: Any, table: str, partition: str, prefix: str | None) -> dict[str, dict[str, Any]]:
    """Items of one partition whose sort key starts with ``prefix`` (None: all), by sort key, strongly consistent."""
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "#pk = :pk",
        "ExpressionAttributeNames": {"#pk": layout.PARTITION_KEY},
        "ExpressionAttributeValues": {":pk": {"S": partition}},
        "ConsistentRead": True,
    }
    if prefix is not None:
        request["KeyConditionExpression"] += " AND begins_with(#sk, :prefix)"
        request["ExpressionAttributeNames"]["#sk"] = layout.SORT_KEY
        request["ExpressionAttributeValues"][":prefix"] = {"S": prefix}
    items: dict[str, dict[str, Any]] = {}
    while True:
        response = client.query(**request)
        for raw in response.get("Items", []):
            item = deserialize_item(raw)
            items[item[layout.SORT_KEY]] = item
        if "LastEvaluatedKey" not in response:
            return items
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def batch_get(
    client: Any,
    table: str,
    keys: Sequence[dict[str, Any]],
    *,
    projection: Sequence[str] = (),
    consistent: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """The items (plain values) found for ``keys`` (low-level format), 100 keys per call, unprocessed keys retried.

    Raises StoreError when a call fails or keys stay unprocessed.
    """
    found: list[dict[str, Any]] = []
    for chunk in chunks(list(keys), MAX_BATCH_GET_KEYS):
        request_for_table: dict[str, Any] = {"Keys": list(chunk), "ConsistentRead": consistent}
        if projection:
            names = {f"#a{i}": name for i, name in enumerate(projection)}
            names.update({"#pk": layout.PARTITION_KEY, "#sk": layout.SORT_KEY})
            request_for_table["ProjectionExpression"] = ", ".join(names)
            request_for_table["ExpressionAttributeNames"] = names
        request: dict[str, Any] = {table: request_for_table}
        for attempt in range(UNPROCESSED_RETRIES + 1):
            try:
                response = client.batch_get_item(RequestItems=request)
            except AWS_ERRORS as error:
                raise StoreError(f"BatchGetItem failed: {error}") from error
            found.extend(deserialize_item(raw) for raw in response.get("Responses", {}).get(table, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            sleep(min(0.05 * 2**attempt, 1.0))
        else:
            raise StoreError("BatchGetItem left keys unprocessed after retries")
    return found


class ResultsTableAccess:
    """The results table as the adapters use it: conditional writes of a result item, batched writes."""

    def __init__(self, client: Any, table_name: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.name = table_name
        self.sleep = sleep

    def batch_get(self, keys: Sequence[dict[str, Any]], *, projection: Sequence[str] = ()) -> list[dict[str, Any]]:
        return batch_get(self.client, self.name, keys, projection=projection, sleep=self.sleep)

    def query_partition(self, partition: str, prefix: str | None, what: str) -> dict[str, dict[str, Any]]:
        """``query_partition`` of this table; a failure is a StoreError naming ``what``."""
        try:
            return query_partition(self.client, self.name, partition, prefix)
        except AWS_ERRORS as error:
            raise StoreError(f"Query ({what}) failed: {error}") from error

    def put_result_item(self, item: dict[str, Any], previous: StoredState | None) -> None:
        """Put the result item if the current one is still ``previous``."""
        try:
            self.client.put_item(TableName=self.name, Item=serialize_item(item), **current_condition(previous))
        except AWS_ERRORS as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise ResultConflict("the current result changed since it was read") from error
            raise StoreError(f"PutItem (result) failed: {error}") from error

    def update_result_item(self, what: str, ref: ObjectRef, **request: Any) -> dict[str, Any] | None:
        """A conditional UpdateItem of the result item of ``ref``: its answer, or None when the condition failed.

        Any other error (an AWS error answer, a dropped connection) is a StoreError naming ``what``.
        """
        try:
            response: dict[str, Any] = self.client.update_item(TableName=self.name, Key=result_key(*ref), **request)
        except AWS_ERRORS as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return None
            raise StoreError(f"UpdateItem ({what}) failed: {error}") from error
        return response

    def batch_write(self, requests: list[dict[str, Any]]) -> None:
        for chunk in chunks(requests, MAX_BATCH_WRITE_ITEMS):
            pending: dict[str, Any] = {self.name: list(chunk)}
            for attempt in range(UNPROCESSED_RETRIES + 1):
                try:
                    response = self.client.batch_write_item(RequestItems=pending)
                except AWS_ERRORS as error:
                    raise StoreError(f"BatchWriteItem failed: {error}") from error
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                self.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise StoreError("BatchWriteItem left items unprocessed after retries")
