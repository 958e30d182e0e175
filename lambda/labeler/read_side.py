"""The read side of the results table: every reader's questions, and never a write.

``queries`` (``get_result``, ``find_by_label``), the backfill job's selection
and the ``autolabel`` command line read through ``ResultsReader``; the
Lambda's write adapters (``adapters.results_store``) stay with the pipeline.
The batch reads are the same consistent reads the pipeline decides on
(``adapters.result_reads``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from labeler.adapters.dynamo_table import ResultsTableAccess, batch_get, query_partition, result_key
from labeler.adapters.result_reads import DynamoResultReads
from shared import table_layout as layout
from shared.dynamo_codec import deserialize_item, serialize

ObjectKey = tuple[str, str, str]  # (bucket, key, projectVersionArn)


class ResultsReader(DynamoResultReads):
    """Reads of the results table: stored states in batches (inherited), object partitions, label-index pages."""

    def __init__(self, client: Any, table_name: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(ResultsTableAccess(client, table_name, sleep=sleep))

    def object_items(self, bucket: str, key: str) -> dict[str, dict[str, Any]]:
        """The whole object partition (results, continuation and publication items), by sort key.

        An AWS error is raised as it came (the public queries pass it on).
        """
        return query_partition(self._table.client, self._table.name, layout.object_partition(bucket, key), None)

    def result_items(self, refs: Sequence[ObjectKey], projection: Sequence[str]) -> list[dict[str, Any]]:
        """The result items found of ``refs`` (plain values, ``projection`` only): the backfill's reconcile."""
        return self._table.batch_get([result_key(*ref) for ref in refs], projection=projection)

    def label_entries(
        self, label: str, min_confidence: float, *, page_size: int | None, start: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of the label's index entries at >= ``min_confidence``, most confident first; the next start."""
        request: dict[str, Any] = {
            "TableName": self._table.name,
            "KeyConditionExpression": "#pk = :pk AND #sk >= :from",
            # The sort key rounds to 6 decimals: the exact bound is the number itself.
            "FilterExpression": "#conf >= :conf",
            "ExpressionAttributeNames": {
                "#pk": layout.PARTITION_KEY,
                "#sk": layout.SORT_KEY,
                "#conf": layout.LABEL_CONFIDENCE,
            },
            "ExpressionAttributeValues": {
                ":pk": {"S": layout.label_partition(label)},
                ":from": {"S": layout.confidence_key(min_confidence)},
                ":conf": serialize(float(min_confidence)),
            },
            "ScanIndexForward": False,
        }
        if page_size is not None:
            request["Limit"] = page_size
        if start is not None:
            request["ExclusiveStartKey"] = start
        response = self._table.client.query(**request)
        return [deserialize_item(raw) for raw in response.get("Items", [])], response.get("LastEvaluatedKey")

    def current_index_ids(self, entries: list[dict[str, Any]]) -> dict[ObjectKey, str]:
        """(bucket, key, projectVersionArn) -> indexId of its current result item, for results not deleted."""
        refs = {(entry["bucket"], entry["key"], entry["projectVersionArn"]) for entry in entries}
        items = batch_get(
            self._table.client,
            self._table.name,
            [result_key(*ref) for ref in refs],
            projection=(layout.INDEX_ID, "removalId", "bucket", "key", "projectVersionArn"),
            # Strongly consistent: a result replaced or deleted a moment ago must not answer for its old labels.
            consistent=True,
        )
        return {
            (item["bucket"], item["key"], item["projectVersionArn"]): str(item[layout.INDEX_ID])
            for item in items
            if item.get(layout.INDEX_ID) is not None and item.get("removalId") is None
        }
