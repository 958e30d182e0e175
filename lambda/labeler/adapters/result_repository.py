"""DynamoDB adapter: the write side of the results table (docs/behaviour.md#stored-attributes).

Every write is a plain (non-transactional) write: transactions bill each item
twice. What keeps concurrent or late deliveries from overwriting a newer
result is the condition on the result item alone; everything else is
idempotent and keyed so that it cannot hurt a newer result:

1. continuation items (keyed by the write's token) go in first: nothing points at them yet;
2. the result item, conditionally (it is still the result read before);
3. the label-index entries of the new result, and deletes of the replaced
   result's entries and continuation items, in BatchWriteItem calls. Entries
   are keyed by the write's token (``indexId``), so a late or repeated write
   of an old result's entries never collides with a newer result's, and
   ``queries.find_by_label`` ignores an entry whose result item no longer
   carries its ``indexId``;
4. after EventBridge accepted the event, a small publication item
   (``PUBLISHED#<arn>#<writeId>``), not an update of the result item.

A result is published only after step 3 completed, so "published" implies
"its index is complete"; a retry of an unpublished result repeats step 3
(``finish_write`` / ``sync_label_index``) before publishing. Any error (an AWS
error answer or a dropped connection) becomes a ``StoreError``: the record is
retried.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from labeler.adapters.dynamo_table import (
    PARALLEL_WRITES,
    REMOVAL_ID,
    ResultsTableAccess,
    current_condition,
    delete_request,
    put_request,
)
from labeler.adapters.label_index import DynamoLabelIndex
from labeler.adapters.result_items import deletion_attributes, to_items, tombstone_item
from labeler.adapters.result_reads import DynamoResultReads
from labeler.domain.label_result import LabelResult
from labeler.domain.removal import Deletion
from labeler.domain.s3_notification import comparable_sequencer
from labeler.domain.stored_state import ObjectRef, StoredState
from labeler.ports import ResultConflict, StoreError
from shared import table_layout as layout
from shared.dynamo_codec import serialize


class DynamoResultRepository(DynamoResultReads):
    """The result repository: the reads it inherits, and the conditional writes of results and deletions."""

    def __init__(
        self,
        table: ResultsTableAccess,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(table)
        self.index = DynamoLabelIndex(table, self)
        self._clock = clock
        self._writer_pool: ThreadPoolExecutor | None = None
        self._writers_lock = threading.Lock()

    def _result_item(self, result: LabelResult, token: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The result item (written by the attempt ``token``, which claims its publication) and its parts.

        ``token`` is the result's ``writeId`` (so the writer can recognise its
        own write after a lost answer), its ``indexId`` (the key of its
        label-index entries) and the owner of the publish claim the write takes.
        """
        item, parts = to_items(result, part_id=token)
        item["writeId"] = token
        item[layout.INDEX_ID] = token
        item["publishClaimedAt"] = self._clock()  # this writer publishes next
        item["publishClaimedBy"] = token
        return item, parts

    def _write_result(self, result: LabelResult, previous: StoredState | None, token: str) -> None:
        """Steps 1 and 2: the continuation items, then the result item, conditionally."""
        item, parts = self._result_item(result, token)
        if parts:  # keyed by this write's token: harmless until the result item points at them
            self._table.batch_write([put_request(part) for part in parts])
        self._table.put_result_item(item, previous)

    def save(self, result: LabelResult, previous: StoredState | None, token: str | None = None) -> None:
        """Make ``result`` the current result, if the current one is still ``previous``; then its index.

        Raises ResultConflict when another writer changed the current result
        since ``previous`` was read; StoreError when DynamoDB refused a write
        (the result item may then be in: the caller checks its ``writeId`` and
        calls ``finish_write``). ``token`` identifies the writing attempt (a
        new one when not given).
        """
        token = token or uuid.uuid4().hex
        self._write_result(result, previous, token)
        self.finish_write(result, previous, token)

    def finish_write(self, result: LabelResult, previous: StoredState | None, token: str) -> None:
        """Step 3 of a result write (idempotent): its label-index entries, and the replaced result's removed."""
        self._finish_writes([(result, previous, token)])

    def _finish_writes(self, writes: Sequence[tuple[LabelResult, StoredState | None, str]]) -> None:
        """Step 3 of several result writes, in shared BatchWriteItem calls: all index changes, then the
        replaced results' items (their entries' keys are computed from their parts before those go)."""
        self._table.batch_write([change for write in writes for change in self.index.changes(*write)])
        self._table.batch_write(
            [delete for result, previous, _ in writes for delete in self._replaced_items(result, previous)]
        )

    def _replaced_items(self, result: LabelResult, previous: StoredState | None) -> list[dict[str, Any]]:
        """Deletes of the continuation and publication items of the replaced result ``previous``.

        They are keyed by the writes that stored them (its indexId, and its
        deletion's writeId), never by the resultId alone: the same resultId can
        become current again (the same bytes uploaded again to an unversioned
        bucket), and a late delete by a replaced writer must not remove the
        items of that newer write. Nothing looks a replaced write's items up
        again; deleting them keeps an object that is overwritten often from
        piling them up in its partition (``get_result`` reads the partition).
        """
        if previous is None:
            return []
        bucket, key, arn = result.bucket, result.key, result.project_version_arn
        keys = [layout.part_sort_key(arn, previous.part_id, n) for n in range(1, previous.parts + 1)]
        if previous.index_id is not None:  # a result written with publication items (not a tombstone)
            writes = {previous.index_id, previous.write_id or previous.index_id}
            keys.extend(layout.publication_sort_key(arn, write_id) for write_id in sorted(writes))
        return [
            delete_request({layout.PARTITION_KEY: layout.object_partition(bucket, key), layout.SORT_KEY: sort_key})
            for sort_key in keys
        ]

    def save_many(self, pairs: Sequence[tuple[LabelResult, StoredState | None, str]]) -> list[Exception | None]:
        """Save several results: each result item conditionally, then all their indexes in shared batches.

        Returns, per pair, None when saved, else the ResultConflict or
        StoreError that ``save`` would have raised for it alone. A conflict on
        one result does not stop the others.
        """

        def write(pair: tuple[LabelResult, StoredState | None, str]) -> Exception | None:
            try:
                self._write_result(*pair)
            except (ResultConflict, StoreError) as error:
                return error
            return None

        # One conditional PutItem per result (a batch write cannot carry a condition): concurrently,
        # so that a batch of ten costs about one round trip, not ten.
        outcomes = list(self._writers().map(write, pairs)) if len(pairs) > 1 else [write(pair) for pair in pairs]
        written = [index for index, outcome in enumerate(outcomes) if outcome is None]
        try:
            self._finish_writes([pairs[index] for index in written])
        except StoreError as error:  # the result items are in: each caller finishes its own write
            for index in written:
                outcomes[index] = error
        return outcomes

    def save_removal(
        self, ref: ObjectRef, deletion: Deletion, previous: StoredState | None, token: str, *, announce: bool = True
    ) -> None:
        """Mark the current result ``previous`` deleted and remove its label-index entries, conditionally.

        The result item is kept (its labels, resultId and processedAt stay) and
        gains the deletion, with a publish claim for ``token`` on its Removed
        event (``announce``; otherwise the deletion is only recorded, e.g. a
        newer deletion of a result already announced removed). Without a
        current result, a tombstone (status ``DELETED``, no event to announce)
        records the deletion so that an older notification cannot label the
        object afterwards. Raises like ``save``.
        """
        if previous is None:
            self._table.put_result_item(tombstone_item(ref, deletion, token), None)
            return
        condition = current_condition(previous)
        names = {**condition["ExpressionAttributeNames"], "#wid": "writeId", "#by": "publishClaimedBy"}
        values = {**condition["ExpressionAttributeValues"], ":me": {"S": token}}
        # Nobody claimed its publication since it was read: a deletion never lands while another
        # attempt that took the result (or an earlier deletion) over is about to announce it.
        if previous.publish_claimed_by is None:
            claim_condition = "attribute_not_exists(#by)"
        else:
            claim_condition = "#by = :claimedBy"
            values[":claimedBy"] = {"S": previous.publish_claimed_by}
        attributes = {**deletion_attributes(deletion), "removalPublished": not announce}
        assignments = [f"#d{i} = :d{i}" for i in range(len(attributes))]
        for i, (name, value) in enumerate(attributes.items()):
            names[f"#d{i}"] = name
            values[f":d{i}"] = serialize(value)
        expression = f"SET {', '.join(assignments)}, #wid = :me"
        if announce:
            # This writer publishes next. Of a result, nothing of the Removed was sent: no uncertainty
            # carries over. Of a deletion replaced by a newer one, an earlier Removed of the same result
            # may have been accepted: its uncertainty is kept, and the next publication counted.
            names["#claim"] = "publishClaimedAt"
            values[":now"] = serialize(self._clock())
            expression += ", #claim = :now, #by = :me"
            if not previous.deleted:
                names["#unc"] = "publishUncertain"
                expression += " REMOVE #unc"
        applied = self._table.update_result_item(
            "deletion",
            ref,
            UpdateExpression=expression,
            ConditionExpression=f"{condition['ConditionExpression']} AND {claim_condition}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        if applied is None:
            raise ResultConflict("the current result changed since it was read")
        self._table.batch_write([delete_request(key) for key in self.index.entries_of(ref, previous)])

    def advance_sequencer(self, ref: ObjectRef, previous: StoredState, sequencer: str) -> bool:
        """Record ``sequencer``, newer than the stored one, on the current result ``previous`` (not deleted).

        One conditional UpdateItem that changes nothing else: the same result
        (not deleted) whose stored sequencer is still older. False when the
        condition failed (it was replaced, deleted or advanced meanwhile: read
        again). Idempotent: a repeat after a lost answer finds it done and
        changes nothing. Raises StoreError when the write's outcome is unknown.
        """
        order = comparable_sequencer(sequencer)
        applied = self._table.update_result_item(
            "advance sequencer",
            ref,
            UpdateExpression="SET #seq = :seq, #order = :order",
            ConditionExpression=(
                "#rid = :rid AND attribute_not_exists(#rm) AND (attribute_not_exists(#order) OR #order < :order)"
            ),
            ExpressionAttributeNames={
                "#seq": "sequencer",
                "#order": "sequencerOrder",
                "#rid": "resultId",
                "#rm": REMOVAL_ID,
            },
            ExpressionAttributeValues={
                ":seq": {"S": sequencer},
                ":order": {"S": str(order)},
                ":rid": {"S": previous.result_id},
            },
        )
        return applied is not None

    def _writers(self) -> ThreadPoolExecutor:
        with self._writers_lock:
            if self._writer_pool is None:
                self._writer_pool = ThreadPoolExecutor(max_workers=PARALLEL_WRITES, thread_name_prefix="store")
            return self._writer_pool
