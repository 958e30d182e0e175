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
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labeler.adapters.result_items import (
    IncompleteResultError,
    assemble,
    deletion_attributes,
    label_index_items,
    label_index_keys,
    to_items,
    to_result,
)
from labeler.domain.label_result import LabelResult
from labeler.domain.removal import DELETED, Deletion
from labeler.domain.s3_notification import comparable_sequencer
from shared import table_layout as layout
from shared.dynamo_codec import deserialize_item, serialize, serialize_item

# What a call can raise: the service's error answer, or a connection-level error.
AWS_ERRORS = (ClientError, BotoCoreError)

MAX_BATCH_GET_KEYS = 100
MAX_BATCH_WRITE_ITEMS = 25
UNPROCESSED_RETRIES = 8
PARALLEL_WRITES = 10  # a batch's result items are written concurrently (one SQS batch holds at most 10)

ObjectRef = tuple[str, str, str]  # (bucket, key, projectVersionArn)
# What mark_published records: (ref, writeId of the stored result or deletion announced, its resultId or removalId).
Publication = tuple[ObjectRef, str, str]

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

REMOVAL_ID = "removalId"


def error_code(error: Exception) -> str:
    """The AWS error code of a ClientError; '' for connection-level errors."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


class StoreError(Exception):
    """DynamoDB did not take the write or read; the record is retried."""


class ResultConflict(Exception):
    """The current result changed since it was read (a concurrent writer)."""


@dataclass(frozen=True)
class Claim:
    """A publish claim we hold on the stored result (or deletion) written by ``write_id``.

    ``uncertain``: an earlier PutEvents of it may have been accepted.
    ``index_id``: the token its label-index entries are stored under.
    """

    uncertain: bool
    write_id: str | None = None
    index_id: str | None = None


@dataclass(frozen=True)
class StoredState:
    """The current result item of one object for one model, as far as decisions go."""

    result_id: str
    sequencer: str | None
    processed_at: str
    published: bool
    publish_claimed_at: float | None
    publish_claimed_by: str | None
    # A PutEvents for this result may have been accepted without being recorded.
    publish_uncertain: bool
    write_id: str | None  # the token of the attempt that wrote this result item (or its deletion)
    label_names: tuple[str, ...]
    parts: int
    version_id: str | None = None
    # The ETag of the object version (a backfill compares versions: a listing has no sequencer).
    etag: str = ""
    # Set once the object was deleted (docs/behaviour.md#deletions): the
    # deletion's id, whether its Removed event was accepted, its sequencer.
    removal_id: str | None = None
    removal_published: bool = False
    deletion_sequencer: str | None = None
    deletion: Deletion | None = None
    # The token its label-index entries are stored under, and the labels kept
    # in the result item itself (all of them unless ``parts``).
    index_id: str | None = None
    custom_labels: tuple[dict[str, Any], ...] = ()

    @property
    def deleted(self) -> bool:
        return self.removal_id is not None

    @property
    def finished(self) -> bool:
        """Its latest event (Removed once deleted, else Detected/Failed) was accepted."""
        return self.removal_published if self.deleted else self.published

    @property
    def part_id(self) -> str:
        """What its continuation items are keyed by (``result_items.part_id_of``)."""
        return self.index_id or self.result_id

    @property
    def object_version(self) -> str:
        """The stored result's object version, as ``S3ObjectEvent.object_identity`` names it."""
        return self.version_id or f"etag:{self.etag}"

    @classmethod
    def from_item(cls, item: dict[str, Any], *, marked: bool = False) -> StoredState:
        """``marked``: a publication item exists for the item's ``writeId`` (its latest event was accepted)."""
        claimed = item.get("publishClaimedAt")
        deletion = item.get("deletion") or {}
        deleted = item.get(REMOVAL_ID) is not None
        return cls(
            result_id=str(item["resultId"]),
            sequencer=item.get("sequencer"),
            processed_at=str(item.get("processedAt", "")),
            published=bool(item.get("eventPublished", False)) or (marked and not deleted),
            publish_claimed_at=float(claimed) if claimed is not None else None,
            publish_claimed_by=item.get("publishClaimedBy"),
            publish_uncertain=bool(item.get("publishUncertain", False)),
            write_id=item.get("writeId"),
            label_names=tuple(item.get("labelNames", [])),
            parts=int(item.get("parts", 0)),
            version_id=item.get("versionId") or None,
            etag=str(item.get("etag") or ""),
            removal_id=item.get(REMOVAL_ID),
            removal_published=bool(item.get("removalPublished", False)) or (marked and deleted),
            deletion_sequencer=deletion.get("sequencer"),
            deletion=Deletion.from_item(item),
            index_id=item.get(layout.INDEX_ID),
            custom_labels=tuple(item.get("customLabels", [])),
        )


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


def _track(ident: str, removal: bool) -> tuple[str, dict[str, str], dict[str, Any], str]:
    """(condition, names, values, published attribute) of one publication of an item.

    A result item announces twice at most: its result (Detected/Failed, keyed
    by resultId, only while not deleted) and its deletion (Removed, keyed by
    removalId). Claims of one never touch the other.
    """
    if removal:
        return "#rm = :rmid", {"#rm": REMOVAL_ID}, {":rmid": {"S": ident}}, "removalPublished"
    return (
        "#rid = :rid AND attribute_not_exists(#rm)",
        {"#rid": "resultId", "#rm": REMOVAL_ID},
        {":rid": {"S": ident}},
        "eventPublished",
    )


def _key(bucket: str, key: str, sort_key: str) -> dict[str, Any]:
    return {layout.PARTITION_KEY: {"S": layout.object_partition(bucket, key)}, layout.SORT_KEY: {"S": sort_key}}


def result_key(bucket: str, key: str, project_version_arn: str) -> dict[str, Any]:
    return _key(bucket, key, layout.result_sort_key(project_version_arn))


def publication_key(ref: ObjectRef, write_id: str) -> dict[str, Any]:
    bucket, key, project_version_arn = ref
    return _key(bucket, key, layout.publication_sort_key(project_version_arn, write_id))


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _delete_request(key: dict[str, Any]) -> dict[str, Any]:
    return {"DeleteRequest": {"Key": serialize_item(key)}}


def _put_request(item: dict[str, Any]) -> dict[str, Any]:
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
    for chunk in _chunks(list(keys), MAX_BATCH_GET_KEYS):
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


class ResultStore:
    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock
        self._sleep = sleep
        self._writer_pool: ThreadPoolExecutor | None = None
        self._writers_lock = threading.Lock()

    # -- reads -------------------------------------------------------------

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
            for item in batch_get(self._client, self._table, keys, projection=_STATE_ATTRIBUTES, sleep=self._sleep)
        }
        unrecorded = {ref: item for ref, item in items.items() if _needs_publication_lookup(item)}
        marked = self._marked({ref: str(item["writeId"]) for ref, item in unrecorded.items()})
        for ref, item in items.items():
            states[ref] = StoredState.from_item(item, marked=ref in marked)
        return states

    def _marked(self, write_ids: dict[ObjectRef, str]) -> set[ObjectRef]:
        """The refs whose publication item for the given writeId exists (strongly consistent)."""
        if not write_ids:
            return set()
        keys = [publication_key(ref, write_id) for ref, write_id in write_ids.items()]
        found = {
            (item[layout.PARTITION_KEY], item[layout.SORT_KEY])
            for item in batch_get(self._client, self._table, keys, projection=("itemType",), sleep=self._sleep)
        }
        return {
            ref
            for ref, write_id in write_ids.items()
            if (layout.object_partition(ref[0], ref[1]), layout.publication_sort_key(ref[2], write_id)) in found
        }

    def _load_item(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The current result item of ``ref`` with its continuation items reassembled, or None."""
        bucket, key, project_version_arn = ref
        try:
            items = query_partition(
                self._client,
                self._table,
                layout.object_partition(bucket, key),
                layout.result_sort_key(project_version_arn),
            )
            return assemble(items.values(), project_version_arn)
        except (*AWS_ERRORS, IncompleteResultError) as error:  # a fault of the read: retried
            raise StoreError(f"Query (load result) failed: {error}") from error

    def load(self, ref: ObjectRef) -> LabelResult | None:
        """The current stored result of ``ref`` (continuation items reassembled), or None."""
        item = self._load_item(ref)
        return to_result(item) if item is not None else None

    def model_versions(self, bucket: str, key: str) -> list[str]:
        """The model version ARNs that have a result item for the object (strongly consistent)."""
        request: dict[str, Any] = {
            "TableName": self._table,
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
                response = self._client.query(**request)
            except AWS_ERRORS as error:
                raise StoreError(f"Query (model versions) failed: {error}") from error
            arns.extend(str(deserialize_item(raw)["projectVersionArn"]) for raw in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return arns
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def current_state(self, ref: ObjectRef) -> StoredState | None:
        return self.current_states([ref])[ref]

    # -- writes ------------------------------------------------------------

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

    def _put_result(self, item: dict[str, Any], previous: StoredState | None) -> None:
        """Put the result item if the current one is still ``previous``."""
        try:
            self._client.put_item(TableName=self._table, Item=serialize_item(item), **current_condition(previous))
        except AWS_ERRORS as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise ResultConflict("the current result changed since it was read") from error
            raise StoreError(f"PutItem (result) failed: {error}") from error

    def _write_result(self, result: LabelResult, previous: StoredState | None, token: str) -> None:
        """Steps 1 and 2: the continuation items, then the result item, conditionally."""
        item, parts = self._result_item(result, token)
        if parts:  # keyed by this write's token: harmless until the result item points at them
            self._batch_write([_put_request(part) for part in parts])
        self._put_result(item, previous)

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
        self._batch_write([change for write in writes for change in self._index_changes(*write)])
        self._batch_write(
            [delete for result, previous, _ in writes for delete in self._replaced_items(result, previous)]
        )

    def _index_changes(self, result: LabelResult, previous: StoredState | None, token: str) -> list[dict[str, Any]]:
        changes = [_put_request(entry) for entry in label_index_items(result, token)]
        changes.extend(
            _delete_request(key)
            for key in self._entries_of((result.bucket, result.key, result.project_version_arn), previous)
        )
        return changes

    def _entries_of(self, ref: ObjectRef, state: StoredState | None) -> list[dict[str, Any]]:
        """The keys of the label-index entries ``state`` may have; none once its deletion was announced.

        A deletion is announced only after its entries were deleted, so those
        are gone; an unannounced deletion may not have finished deleting them.
        """
        if state is None or state.index_id is None or (state.deleted and state.removal_published):
            return []
        labels = list(state.custom_labels)
        if state.parts:  # the rest of its labels, from its continuation items (still there: deleted after this)
            bucket, key, project_version_arn = ref
            try:
                parts = query_partition(
                    self._client,
                    self._table,
                    layout.object_partition(bucket, key),
                    layout.part_sort_key_prefix(project_version_arn, state.part_id),
                )
            except AWS_ERRORS as error:
                raise StoreError(f"Query (replaced result's labels) failed: {error}") from error
            for part in sorted(parts.values(), key=lambda item: int(item["partNumber"])):
                labels.extend(part.get("customLabels", []))
        return label_index_keys(labels, state.index_id)

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
            _delete_request({layout.PARTITION_KEY: layout.object_partition(bucket, key), layout.SORT_KEY: sort_key})
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
            self._put_result(self._tombstone(ref, deletion, token), None)
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
        applied = self._update_result_item(
            "deletion",
            ref,
            UpdateExpression=expression,
            ConditionExpression=f"{condition['ConditionExpression']} AND {claim_condition}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        if applied is None:
            raise ResultConflict("the current result changed since it was read")
        self._batch_write([_delete_request(key) for key in self._entries_of(ref, previous)])

    def advance_sequencer(self, ref: ObjectRef, previous: StoredState, sequencer: str) -> bool:
        """Record ``sequencer``, newer than the stored one, on the current result ``previous`` (not deleted).

        One conditional UpdateItem that changes nothing else: the same result
        (not deleted) whose stored sequencer is still older. False when the
        condition failed (it was replaced, deleted or advanced meanwhile: read
        again). Idempotent: a repeat after a lost answer finds it done and
        changes nothing. Raises StoreError when the write's outcome is unknown.
        """
        order = comparable_sequencer(sequencer)
        applied = self._update_result_item(
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

    def clear_label_index(self, ref: ObjectRef) -> None:
        """Delete the label-index entries of the current result of ``ref`` if it is deleted (idempotent).

        Nothing happens when it is not deleted (any more): a newer upload owns
        the object, under its own indexId.
        """
        item = self._load_item(ref)
        if item is None or item.get(REMOVAL_ID) is None or item.get(layout.INDEX_ID) is None:
            return
        keys = label_index_keys(item.get("customLabels", []), str(item[layout.INDEX_ID]))
        self._batch_write([_delete_request(key) for key in keys])

    def sync_label_index(self, ref: ObjectRef, result: LabelResult, index_id: str | None) -> None:
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
        self._batch_write([_put_request(entry) for entry in entries])
        current = self.current_state(ref)
        if current is None or current.index_id != index_id or current.deleted:
            self._batch_write(
                [_delete_request({k: e[k] for k in (layout.PARTITION_KEY, layout.SORT_KEY)}) for e in entries]
            )

    def _tombstone(self, ref: ObjectRef, deletion: Deletion, token: str) -> dict[str, Any]:
        bucket, key, project_version_arn = ref
        return {
            layout.PARTITION_KEY: layout.object_partition(bucket, key),
            layout.SORT_KEY: layout.result_sort_key(project_version_arn),
            "itemType": layout.ITEM_TYPE_RESULT,
            "resultId": deletion.removal_id,
            "bucket": bucket,
            "key": key,
            "etag": "",
            "size": 0,
            "projectVersionArn": project_version_arn,
            "status": DELETED,
            "customLabels": [],
            "labelNames": [],
            "labelCount": 0,
            "processedAt": deletion.deleted_at,
            "eventPublished": False,  # it has no result event
            "parts": 0,
            "writeId": token,
            **deletion_attributes(deletion),
            "removalPublished": True,  # nothing was announced for it, so nothing to remove
        }

    def claim_publication(
        self, ref: ObjectRef, result_id: str, token: str, *, claim_ttl_seconds: float, removal: bool = False
    ) -> Claim | None:
        """Take the right to publish a stored but unpublished result, as ``token``.

        None when it was published meanwhile, replaced, or another attempt
        claimed it less than ``claim_ttl_seconds`` ago. The claim says whether
        an earlier PutEvents for the result may have been accepted: the result
        was marked uncertain, or a claim of an attempt that stopped was taken
        over (it may have sent before it stopped). ``removal``: ``result_id``
        is a removalId, and the publication is the deletion's Removed event.
        """
        now = self._clock()
        track, names, values, published = _track(result_id, removal)
        response = self._update_result_item(
            "claim",
            ref,
            UpdateExpression="SET #claim = :now, #by = :me, #unc = if_not_exists(#unc, :false)",
            ConditionExpression=(
                f"{track} AND #pub = :false AND (attribute_not_exists(#claim) OR #claim < :stale OR #by = :me)"
            ),
            ExpressionAttributeNames={
                "#claim": "publishClaimedAt",
                "#by": "publishClaimedBy",
                "#unc": "publishUncertain",
                "#pub": published,
                **names,
            },
            ExpressionAttributeValues={
                ":now": serialize(now),
                ":me": {"S": token},
                ":false": {"BOOL": False},
                ":stale": serialize(now - claim_ttl_seconds),
                **values,
            },
            # The whole old item (only on this rare recovery path): UPDATED_OLD
            # may leave out attributes whose value did not change.
            ReturnValues="ALL_OLD",
        )
        if response is None:
            return None
        old = deserialize_item(response.get("Attributes", {}))
        write_id = old.get("writeId")
        if write_id is not None and self._marked({ref: str(write_id)}):
            return None  # published meanwhile: the claim we now hold is never used
        taken_over = old.get("publishClaimedAt") is not None and old.get("publishClaimedBy") != token
        return Claim(
            uncertain=bool(old.get("publishUncertain", False)) or taken_over,
            write_id=write_id,
            index_id=old.get(layout.INDEX_ID),
        )

    def release_claim(
        self, ref: ObjectRef, result_id: str, token: str, *, uncertain: bool, removal: bool = False
    ) -> None:
        """Give up our publish claim so a retry need not wait for it to expire.

        ``uncertain``: a PutEvents for this result may have been accepted (ours
        had an unknown outcome, or we took the result over from an attempt
        that stopped). That is kept on the result, never erased, so whoever
        publishes it next counts the publication as a possible duplicate.
        """
        update = "REMOVE #claim, #by" + (" SET #unc = :true" if uncertain else "")
        track, track_names, track_values, published = _track(result_id, removal)
        values: dict[str, Any] = {":false": {"BOOL": False}, ":me": {"S": token}, **track_values}
        names = {"#claim": "publishClaimedAt", "#by": "publishClaimedBy", "#pub": published, **track_names}
        if uncertain:
            values[":true"] = {"BOOL": True}
            names["#unc"] = "publishUncertain"
        self._update_result_item(  # not ours (any more): nothing to release
            "release claim",
            ref,
            UpdateExpression=update,
            ConditionExpression=f"{track} AND #pub = :false AND #by = :me",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def mark_published(self, published: Sequence[Publication]) -> None:
        """Record that these events were accepted by EventBridge: one small publication item each.

        Each entry is (ref, writeId, resultId or removalId): the writeId of the
        stored result (or deletion) whose event was accepted. Idempotent puts,
        in BatchWriteItem calls of 25; an item written for a result replaced
        meanwhile is never looked up again.
        """
        self._batch_write(
            [
                _put_request(
                    {
                        layout.PARTITION_KEY: layout.object_partition(ref[0], ref[1]),
                        layout.SORT_KEY: layout.publication_sort_key(ref[2], write_id),
                        "itemType": layout.ITEM_TYPE_PUBLISHED,
                        "announcedId": announced,
                    }
                )
                for ref, write_id, announced in published
            ]
        )

    # -- helpers -----------------------------------------------------------

    def _update_result_item(self, what: str, ref: ObjectRef, **request: Any) -> dict[str, Any] | None:
        """A conditional UpdateItem of the result item of ``ref``: its answer, or None when the condition failed.

        Any other error (an AWS error answer, a dropped connection) is a StoreError naming ``what``.
        """
        try:
            response: dict[str, Any] = self._client.update_item(TableName=self._table, Key=result_key(*ref), **request)
        except AWS_ERRORS as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return None
            raise StoreError(f"UpdateItem ({what}) failed: {error}") from error
        return response

    def _writers(self) -> ThreadPoolExecutor:
        with self._writers_lock:
            if self._writer_pool is None:
                self._writer_pool = ThreadPoolExecutor(max_workers=PARALLEL_WRITES, thread_name_prefix="store")
            return self._writer_pool

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for chunk in _chunks(requests, MAX_BATCH_WRITE_ITEMS):
            pending: dict[str, Any] = {self._table: list(chunk)}
            for attempt in range(UNPROCESSED_RETRIES + 1):
                try:
                    response = self._client.batch_write_item(RequestItems=pending)
                except AWS_ERRORS as error:
                    raise StoreError(f"BatchWriteItem failed: {error}") from error
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                self._sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise StoreError("BatchWriteItem left items unprocessed after retries")


def _needs_publication_lookup(item: dict[str, Any]) -> bool:
    """Whether the item's latest event may be recorded only in a publication item."""
    if item.get("writeId") is None:
        return False
    if item.get(REMOVAL_ID) is not None:
        return not item.get("removalPublished", False)
    return not item.get("eventPublished", False)
