"""DynamoDB adapter, the read half of the result repository: what the batch decides on.

Strongly consistent: a decision never rests on a stale read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from labeler.adapters.dynamo_table import AWS_ERRORS, REMOVAL_ID, ResultsTableAccess, publication_key
from labeler.adapters.result_items import IncompleteResultError, assemble, stored_state_of, to_result
from labeler.domain.label_result import LabelResult
from labeler.domain.stored_state import ObjectRef, StoredState
from labeler.ports import StoreError
from shared import table_layout as layout
from shared.dynamo_codec import deserialize_item

# What the pipeline needs to decide about an object before labeling it (and to
# find the label-index entries of the result it replaces).
_STATE_ATTRIBUTES = (
    "resultId",
    "sequencer",
    "processedAt",
    "eventPublished",
    "publishClaimedAt",
    "publishClaimedBy",
    "publishUncertain",
    "writeId",
    "indexId",
    "labelNames",
    "customLabels",
    "parts",
    "status",
    "versionId",
    "etag",
    "removalId",
    "removalPublished",
    "deletion",
    "deletedAt",
)


def published_writes(table: ResultsTableAccess, write_ids: dict[ObjectRef, str]) -> set[ObjectRef]:
    """The refs whose publication item for the given writeId exists (strongly consistent)."""
    if not write_ids:
        return set()
    keys = [publication_key(ref, write_id) for ref, write_id in write_ids.items()]
    found = {
        (item[layout.PARTITION_KEY], item[layout.SORT_KEY]) for item in table.batch_get(keys, projection=("itemType",))
    }
    return {
        ref
        for ref, write_id in write_ids.items()
        if (layout.object_partition(ref[0], ref[1]), layout.publication_sort_key(ref[2], write_id)) in found
    }


class DynamoResultReads:
    def __init__(self, table: ResultsTableAccess) -> None:
        self._table = table

    def current_states(self, refs: Sequence[ObjectRef]) -> dict[ObjectRef, StoredState | None]:
        """Current result state of each object, by strongly consistent BatchGetItem.

        A second BatchGetItem, only for result items whose latest event is not
        recorded on the item itself, looks up their publication items.
        """
        states: dict[ObjectRef, StoredState | None] = dict.fromkeys(refs)
        by_key = {(layout.object_partition(b, k), layout.result_sort_key(arn)): (b, k, arn) for b, k, arn in states}
        keys = [{layout.PARTITION_KEY: {"S": pk}, layout.SORT_KEY: {"S": sk}} for pk, sk in by_key]
        items = {
            by_key[(item[layout.PARTITION_KEY], item[layout.SORT_KEY])]: item
            for item in self._table.batch_get(keys, projection=_STATE_ATTRIBUTES)
        }
        unrecorded = {ref: item for ref, item in items.items() if _needs_publication_lookup(item)}
        marked = published_writes(self._table, {ref: str(item["writeId"]) for ref, item in unrecorded.items()})
        for ref, item in items.items():
            states[ref] = stored_state_of(item, marked=ref in marked)
        return states

    def current_state(self, ref: ObjectRef) -> StoredState | None:
        return self.current_states([ref])[ref]

    def load_item(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The current result item of ``ref`` with its continuation items reassembled, or None."""
        bucket, key, project_version_arn = ref
        items = self._table.query_partition(
            layout.object_partition(bucket, key), layout.result_sort_key(project_version_arn), "load result"
        )
        try:
            return assemble(items.values(), project_version_arn)
        except IncompleteResultError as error:  # a torn read (a write in progress): retried
            raise StoreError(f"Query (load result) failed: {error}") from error

    def load(self, ref: ObjectRef) -> LabelResult | None:
        """The current stored result of ``ref`` (continuation items reassembled), or None."""
        item = self.load_item(ref)
        return to_result(item) if item is not None else None

    def model_versions(self, bucket: str, key: str) -> list[str]:
        """The model version ARNs that have a result item for the object (strongly consistent)."""
        request: dict[str, Any] = {
            "TableName": self._table.name,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "FilterExpression": "#type = :result",
            "ProjectionExpression": "#arn",
            "ExpressionAttributeNames": {
                "#pk": layout.PARTITION_KEY,
                "#sk": layout.SORT_KEY,
                "#type": "itemType",
                "#arn": "projectVersionArn",
            },
            "ExpressionAttributeValues": {
                ":pk": {"S": layout.object_partition(bucket, key)},
                ":prefix": {"S": layout.RESULT_PREFIX},
                ":result": {"S": layout.ITEM_TYPE_RESULT},
            },
            "ConsistentRead": True,
        }
        arns: list[str] = []
        while True:
            try:
                response = self._table.client.query(**request)
            except AWS_ERRORS as error:
                raise StoreError(f"Query (model versions) failed: {error}") from error
            arns.extend(str(deserialize_item(raw)["projectVersionArn"]) for raw in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return arns
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _needs_publication_lookup(item: dict[str, Any]) -> bool:
    """Whether the item's latest event may be recorded only in a publication item."""
    if item.get("writeId") is None:
        return False
    if item.get(REMOVAL_ID) is not None:
        return not item.get("removalPublished", False)
    return not item.get("eventPublished", False)
