"""DynamoDB adapter of the label index: one entry per distinct label of each current result.

Entries are keyed by the write that stored the result (its ``indexId``), so a
late or repeated write of an old result's entries never collides with a newer
result's, and ``queries.find_by_label`` ignores an entry whose result item no
longer carries its ``indexId``. A result is published only after its index is
complete; a retry of an unpublished one repairs it first (``sync``, ``clear``).
"""

from __future__ import annotations

from typing import Any

from labeler.adapters.dynamo_table import REMOVAL_ID, ResultsTableAccess, delete_request, put_request
from labeler.adapters.result_items import label_index_items, label_index_keys
from labeler.adapters.result_reads import DynamoResultReads
from labeler.domain.label_result import LabelResult
from labeler.domain.stored_state import ObjectRef, StoredState
from shared import table_layout as layout


class DynamoLabelIndex:
    def __init__(self, table: ResultsTableAccess, reads: DynamoResultReads) -> None:
        self._table = table
        self._reads = reads

    def changes(self, result: LabelResult, previous: StoredState | None, token: str) -> list[dict[str, Any]]:
        changes = [put_request(entry) for entry in label_index_items(result, token)]
        changes.extend(
            delete_request(key)
            for key in self.entries_of((result.bucket, result.key, result.project_version_arn), previous)
        )
        return changes

    def entries_of(self, ref: ObjectRef, state: StoredState | None) -> list[dict[str, Any]]:
        """The keys of the label-index entries ``state`` may have; none once its deletion was announced.

        A deletion is announced only after its entries were deleted, so those
        are gone; an unannounced deletion may not have finished deleting them.
        """
        if state is None or state.index_id is None or (state.deleted and state.removal_published):
            return []
        labels = list(state.custom_labels)
        if state.parts:  # the rest of its labels, from its continuation items (still there: deleted after this)
            bucket, key, project_version_arn = ref
            parts = self._table.query_partition(
                layout.object_partition(bucket, key),
                layout.part_sort_key_prefix(project_version_arn, state.part_id),
                "replaced result's labels",
            )
            for part in sorted(parts.values(), key=lambda item: int(item["partNumber"])):
                labels.extend(part.get("customLabels", []))
        return label_index_keys(labels, state.index_id)

    def clear(self, ref: ObjectRef) -> None:
        """Delete the label-index entries of the current result of ``ref`` if it is deleted (idempotent).

        Nothing happens when it is not deleted (any more): a newer upload owns
        the object, under its own indexId.
        """
        item = self._reads.load_item(ref)
        if item is None or item.get(REMOVAL_ID) is None or item.get(layout.INDEX_ID) is None:
            return
        keys = label_index_keys(item.get("customLabels", []), str(item[layout.INDEX_ID]))
        self._table.batch_write([delete_request(key) for key in keys])

    def sync(self, ref: ObjectRef, result: LabelResult, index_id: str | None) -> None:
        """Put the label-index entries of the stored ``result`` (stored under ``index_id``); idempotent.

        An entry put for a result replaced meanwhile is never returned by
        ``find_by_label`` (its indexId is not the result item's); the check
        after the put deletes such entries so that they do not linger.
        """
        if index_id is None:  # written before the index was keyed by indexId: nothing of ours to repair
            return
        entries = label_index_items(result, index_id)
        if not entries:
            return
        self._table.batch_write([put_request(entry) for entry in entries])
        current = self._reads.current_state(ref)
        if current is None or current.index_id != index_id or current.deleted:
            self._table.batch_write(
                [delete_request({k: e[k] for k in (layout.PARTITION_KEY, layout.SORT_KEY)}) for e in entries]
            )
