"""DynamoDB adapter: the write side of the results table (docs/behaviour.md#stored-attributes).

Writes are conditional so that concurrent or late deliveries can never
overwrite a newer result. A result and its label-index items change together
in one transaction when they fit in one (up to 99 index changes); a larger
index is brought in line afterwards by ``sync_label_index``, which compares
the stored index with the current result and is idempotent, so any retry can
finish what a failed write left undone. Any error (an AWS error answer or a
dropped connection) becomes a ``StoreError``: the record is retried.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labeler.adapters.result_items import (
    IncompleteResultError,
    assemble,
    deletion_attributes,
    label_index_items,
    to_items,
    to_result,
)
from labeler.domain.label_result import LabelResult
from labeler.domain.removal import DELETED, Deletion
from shared import table_layout as layout
from shared.dynamo_codec import deserialize_item, estimated_item_size, serialize, serialize_item

# What a call can raise: the service's error answer, or a connection-level error.
AWS_ERRORS = (ClientError, BotoCoreError)
SYNC_ROUNDS = 3

MAX_TRANSACTION_ACTIONS = 100
MAX_TRANSACTION_BYTES = 3 * 1024 * 1024  # DynamoDB allows 4 MB; our sizes are estimates
MAX_BATCH_GET_KEYS = 100
MAX_BATCH_WRITE_ITEMS = 25
UNPROCESSED_RETRIES = 8

ObjectRef = tuple[str, str, str]  # (bucket, key, projectVersionArn)
# What mark_published records: (ref, resultId), or (ref, removalId, True) for a Removed event.
Publication = tuple[ObjectRef, str] | tuple[ObjectRef, str, bool]

# What the pipeline needs to decide about an object before labeling it.
_STATE_ATTRIBUTES = (
    "resultId",
    "sequencer",
    "processedAt",
    "eventPublished",
    "publishClaimedAt",
    "publishClaimedBy",
    "publishUncertain",
    "writeId",
    "labelNames",
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
    """A publish claim we hold; ``uncertain``: an earlier PutEvents of the result may have been accepted."""

    uncertain: bool


def needs_index_sync(actions: Sequence[dict[str, Any]], previous: StoredState | None) -> bool:
    """Whether a result write must be followed by a sync of the label index.

    More than 99 index changes do not fit in the write's transaction; and a
    previous result that never finished (unpublished) may have left its own
    index incomplete, which the write's deletes (derived from its labelNames)
    would not repair.
    """
    return len(actions) > MAX_TRANSACTION_ACTIONS or (previous is not None and not previous.finished)


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
    write_id: str | None  # the token of the attempt that wrote this result item
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

    @property
    def deleted(self) -> bool:
        return self.removal_id is not None

    @property
    def finished(self) -> bool:
        """Its latest event (Removed once deleted, else Detected/Failed) was accepted."""
        return self.removal_published if self.deleted else self.published

    @property
    def object_version(self) -> str:
        """The stored result's object version, as ``S3ObjectEvent.object_identity`` names it."""
        return self.version_id or f"etag:{self.etag}"

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> StoredState:
        claimed = item.get("publishClaimedAt")
        deletion = item.get("deletion") or {}
        return cls(
            result_id=str(item["resultId"]),
            sequencer=item.get("sequencer"),
            processed_at=str(item.get("processedAt", "")),
            published=bool(item.get("eventPublished", False)),
            publish_claimed_at=float(claimed) if claimed is not None else None,
            publish_claimed_by=item.get("publishClaimedBy"),
            publish_uncertain=bool(item.get("publishUncertain", False)),
            write_id=item.get("writeId"),
            label_names=tuple(item.get("labelNames", [])),
            parts=int(item.get("parts", 0)),
            version_id=item.get("versionId") or None,
            etag=str(item.get("etag") or ""),
            removal_id=item.get(REMOVAL_ID),
            removal_published=bool(item.get("removalPublished", False)),
            deletion_sequencer=deletion.get("sequencer"),
            deletion=Deletion.from_item(item),
        )


def current_condition(previous: StoredState | None) -> dict[str, Any]:
    """The condition that the result item is still ``previous`` (absent when None), deletion included.

    A deletion keeps the result's resultId and processedAt, so the condition
    also says whether, and by which deletion, the item was deleted: a writer
    that read it before the deletion cannot write over it.
    """
    if previous is None:
        return {
            "ConditionExpression": "attribute_not_exists(#pk)",
            "ExpressionAttributeNames": {"#pk": layout.PARTITION_KEY},
        }
    names = {"#rid": "resultId", "#at": "processedAt", "#rm": REMOVAL_ID}
    values: dict[str, Any] = {":rid": {"S": previous.result_id}, ":at": {"S": previous.processed_at}}
    if previous.removal_id is None:
        deletion = "attribute_not_exists(#rm)"
    else:
        deletion = "#rm = :rm"
        values[":rm"] = {"S": previous.removal_id}
    return {
        "ConditionExpression": f"#rid = :rid AND #at = :at AND {deletion}",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _track(ident: str, removal: bool) -> tuple[str, dict[str, str], dict[str, Any], str]:
    """(condition, names, values, published attribute) of one publication of an item.

    A result item announces twice at most: its result (Detected/Failed, keyed
    by resultId, only while not deleted) and its deletion (Removed, keyed by
    removalId). Claims and marks of one never touch the other.
    """
    if removal:
        return "#rm = :rmid", {"#rm": REMOVAL_ID}, {":rmid": {"S": ident}}, "removalPublished"
    return (
        "#rid = :rid AND attribute_not_exists(#rm)",
        {"#rid": "resultId", "#rm": REMOVAL_ID},
        {":rid": {"S": ident}},  # local/fakes/faults.py reads the marked resultIds from ":rid"
        "eventPublished",
    )


def _key(bucket: str, key: str, sort_key: str) -> dict[str, Any]:
    return {layout.PARTITION_KEY: {"S": layout.object_partition(bucket, key)}, layout.SORT_KEY: {"S": sort_key}}


def result_key(bucket: str, key: str, project_version_arn: str) -> dict[str, Any]:
    return _key(bucket, key, layout.result_sort_key(project_version_arn))


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _index_fields(item: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """What makes a stored index item current: its result and confidence."""
    if item is None:
        return None
    return (item.get("resultId"), float(item.get(layout.LABEL_INDEX_SORT_KEY, -1)), item.get("versionId"))


def query_partition(client: Any, table: str, partition: str, prefix: str) -> dict[str, dict[str, Any]]:
    """All items of one partition whose sort key starts with ``prefix``, by sort key (strongly consistent)."""
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
        "ExpressionAttributeNames": {"#pk": layout.PARTITION_KEY, "#sk": layout.SORT_KEY},
        "ExpressionAttributeValues": {":pk": {"S": partition}, ":prefix": {"S": prefix}},
        "ConsistentRead": True,
    }
    items: dict[str, dict[str, Any]] = {}
    while True:
        response = client.query(**request)
        for raw in response.get("Items", []):
            item = deserialize_item(raw)
            items[item[layout.SORT_KEY]] = item
        if "LastEvaluatedKey" not in response:
            return items
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


class ResultStore:
    def __init__(self, client: Any, table_name: str, *, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock

    # -- reads -------------------------------------------------------------

    def current_states(self, refs: Sequence[ObjectRef]) -> dict[ObjectRef, StoredState | None]:
        """Current result state of each object, by strongly consistent BatchGetItem."""
        states: dict[ObjectRef, StoredState | None] = dict.fromkeys(refs)
        names = {f"#a{i}": name for i, name in enumerate(_STATE_ATTRIBUTES)}
        names.update({"#pk": layout.PARTITION_KEY, "#sk": layout.SORT_KEY})
        projection = ", ".join(names)
        by_key = {(layout.object_partition(b, k), layout.result_sort_key(arn)): (b, k, arn) for b, k, arn in states}
        for chunk in _chunks(list(by_key), MAX_BATCH_GET_KEYS):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [{layout.PARTITION_KEY: {"S": pk}, layout.SORT_KEY: {"S": sk}} for pk, sk in chunk],
                    "ConsistentRead": True,
                    "ProjectionExpression": projection,
                    "ExpressionAttributeNames": names,
                }
            }
            for attempt in range(UNPROCESSED_RETRIES + 1):
                try:
                    response = self._client.batch_get_item(RequestItems=request)
                except AWS_ERRORS as error:
                    raise StoreError(f"BatchGetItem failed: {error}") from error
                for raw in response.get("Responses", {}).get(self._table, []):
                    item = deserialize_item(raw)
                    states[by_key[(item[layout.PARTITION_KEY], item[layout.SORT_KEY])]] = StoredState.from_item(item)
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise StoreError("BatchGetItem left keys unprocessed after retries")
        return states

    def load(self, ref: ObjectRef) -> LabelResult | None:
        """The current stored result of ``ref`` (continuation items reassembled), or None."""
        bucket, key, project_version_arn = ref
        try:
            items = query_partition(
                self._client,
                self._table,
                layout.object_partition(bucket, key),
                layout.result_sort_key(project_version_arn),
            )
            item = assemble(items.values(), project_version_arn)
        except (*AWS_ERRORS, IncompleteResultError) as error:  # a fault of the read: retried
            raise StoreError(f"Query (load result) failed: {error}") from error
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
        try:
            response = self._client.get_item(TableName=self._table, Key=result_key(*ref), ConsistentRead=True)
        except AWS_ERRORS as error:
            raise StoreError(f"GetItem failed: {error}") from error
        item = response.get("Item")
        return StoredState.from_item(deserialize_item(item)) if item else None

    # -- writes ------------------------------------------------------------

    def _write_actions(
        self, result: LabelResult, previous: StoredState | None, token: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(transaction actions, continuation items): result put first, then label-index changes.

        ``token`` identifies the writing attempt: it is the result's ``writeId``
        (so the writer can recognise its own write after a lost answer) and
        the owner of the publish claim the write takes.
        """
        item, parts = to_items(result)
        item["writeId"] = token
        item["publishClaimedAt"] = self._clock()  # this writer publishes next
        item["publishClaimedBy"] = token
        condition = current_condition(previous)
        labels = label_index_items(result)
        current_names = {label[layout.LABEL_INDEX_PARTITION_KEY] for label in labels}
        stale_names = [name for name in (previous.label_names if previous else ()) if name not in current_names]
        actions: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table, "Item": serialize_item(item), **condition}},
            *({"Put": {"TableName": self._table, "Item": serialize_item(label)}} for label in labels),
            *(
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": _key(result.bucket, result.key, layout.label_sort_key(result.project_version_arn, n)),
                    }
                }
                for n in stale_names
            ),
        ]
        return actions, parts

    def save(self, result: LabelResult, previous: StoredState | None, token: str | None = None) -> None:
        """Make ``result`` the current result, if the current one is still ``previous``.

        Raises ResultConflict when another writer changed the current result
        since ``previous`` was read; StoreError when DynamoDB refused the write
        (the result item may then be in: the caller checks its ``writeId``).
        ``token`` identifies the writing attempt (a new one when not given).
        """
        actions, parts = self._write_actions(result, previous, token or uuid.uuid4().hex)
        if parts:  # keyed by resultId: harmless until the result item points at them
            self._batch_write([{"PutRequest": {"Item": serialize_item(part)}} for part in parts])
        self._transact(actions[:MAX_TRANSACTION_ACTIONS], conflict_index=0)
        if needs_index_sync(actions, previous):
            self.sync_label_index((result.bucket, result.key, result.project_version_arn), result)
        self.delete_replaced_parts(result, previous)

    def save_removal(
        self, ref: ObjectRef, deletion: Deletion, previous: StoredState | None, token: str, *, announce: bool = True
    ) -> None:
        """Mark the current result ``previous`` deleted and remove its label-index items, conditionally.

        The result item is kept (its labels, resultId and processedAt stay) and
        gains the deletion, with a publish claim for ``token`` on its Removed
        event (``announce``; otherwise the deletion is only recorded, e.g. a
        newer deletion of a result already announced removed). Without a
        current result, a tombstone (status ``DELETED``, no event to announce)
        records the deletion so that an older notification cannot label the
        object afterwards. Raises like ``save``.
        """
        bucket, key, project_version_arn = ref
        if previous is None:
            self._transact(
                [
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": serialize_item(self._tombstone(ref, deletion, token)),
                            **current_condition(None),
                        }
                    }
                ],
                conflict_index=0,
            )
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
        update = {
            "Update": {
                "TableName": self._table,
                "Key": result_key(*ref),
                "UpdateExpression": expression,
                "ConditionExpression": f"{condition['ConditionExpression']} AND {claim_condition}",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }
        deletes = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": _key(bucket, key, layout.label_sort_key(project_version_arn, name)),
                }
            }
            for name in previous.label_names
            if not previous.deleted  # a deleted result's index items are gone (or being cleared)
        ]
        self._transact([update, *deletes[: MAX_TRANSACTION_ACTIONS - 1]], conflict_index=0)
        if len(deletes) > MAX_TRANSACTION_ACTIONS - 1 or not previous.finished:
            self.clear_label_index(ref, deletion.removal_id)

    def clear_label_index(self, ref: ObjectRef, removal_id: str) -> None:
        """Delete every label-index item of ``ref`` while it is deleted by ``removal_id`` (idempotent).

        Nothing happens when the item has changed since (a newer upload owns the index).
        """
        try:
            self._sync_index_items(ref, [], removal_id, removal=True)
        except ResultConflict:
            return

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

    def delete_replaced_parts(self, result: LabelResult, previous: StoredState | None) -> None:
        """Delete the continuation items of the result ``result`` replaced (idempotent).

        A replaced result id never becomes current again (an older version is
        never written over a newer one), so its parts are safe to delete.
        """
        if previous is None or not previous.parts or previous.result_id == result.result_id:
            return
        old_parts = [
            layout.part_sort_key(result.project_version_arn, previous.result_id, n)
            for n in range(1, previous.parts + 1)
        ]
        self._batch_write([{"DeleteRequest": {"Key": _key(result.bucket, result.key, sk)}} for sk in old_parts])

    def save_many(self, pairs: Sequence[tuple[LabelResult, StoredState | None, str]]) -> list[Exception | None]:
        """Save several results, packed into as few transactions as fit (100 actions, 4 MB).

        Returns, per pair, None when saved, else the ResultConflict or
        StoreError that ``save`` would have raised for it alone. A conflict on
        one result does not stop the others: they are written without it.
        """
        outcomes: list[Exception | None] = [None] * len(pairs)
        groups: list[list[tuple[int, list[dict[str, Any]]]]] = []
        alone: list[int] = []
        group: list[tuple[int, list[dict[str, Any]]]] = []
        group_actions = group_bytes = 0
        for index, (result, previous, token) in enumerate(pairs):
            actions, parts = self._write_actions(result, previous, token)
            if parts or (previous is not None and previous.parts) or needs_index_sync(actions, previous):
                alone.append(index)  # continuation items, or an index to sync: the general path
                continue
            size = sum(estimated_item_size(deserialize_item(a["Put"]["Item"])) for a in actions if "Put" in a)
            if group and (
                group_actions + len(actions) > MAX_TRANSACTION_ACTIONS or group_bytes + size > MAX_TRANSACTION_BYTES
            ):
                groups.append(group)
                group, group_actions, group_bytes = [], 0, 0
            group.append((index, actions))
            group_actions += len(actions)
            group_bytes += size
        if group:
            groups.append(group)
        for each in groups:
            self._transact_group(each, outcomes)
        for index in alone:
            try:
                self.save(*pairs[index])
            except (ResultConflict, StoreError) as error:
                outcomes[index] = error
        return outcomes

    def _transact_group(self, group: list[tuple[int, list[dict[str, Any]]]], outcomes: list[Exception | None]) -> None:
        while group:
            try:
                self._client.transact_write_items(TransactItems=[a for _, actions in group for a in actions])
                return
            except AWS_ERRORS as error:
                reasons = (error.response.get("CancellationReasons") or []) if isinstance(error, ClientError) else []
                if error_code(error) != "TransactionCanceledException" or not any(
                    r.get("Code") == "ConditionalCheckFailed" for r in reasons
                ):
                    break  # throttled, conflicting transaction...: each on its own below
                conflicted, offset = set(), 0
                for position, (_, actions) in enumerate(group):
                    if offset < len(reasons) and reasons[offset].get("Code") == "ConditionalCheckFailed":
                        conflicted.add(position)
                    offset += len(actions)
                for position in conflicted:
                    outcomes[group[position][0]] = ResultConflict("the current result changed since it was read")
                group = [entry for position, entry in enumerate(group) if position not in conflicted]
        for index, actions in group:
            try:
                self._transact(actions, conflict_index=0)
            except (ResultConflict, StoreError) as error:
                outcomes[index] = error

    def sync_label_index(self, ref: ObjectRef, result: LabelResult) -> None:
        """Make the label index of ``ref`` equal its current result (``result``, as far as we know).

        Compares the stored index items with the result's and writes only the
        difference, so any retry can finish what a failed write left undone.
        Every write is a transaction guarded by "this result is still the
        current one": a slow or stale syncer can never write an old result's
        labels over a newer one's. When the guard fails, the current result
        is loaded and synced instead.
        """
        target = result
        for _ in range(SYNC_ROUNDS):
            try:
                self._sync_index_once(target)
                return
            except ResultConflict:
                stored = self.load(ref)
                if stored is None:
                    return
                target = stored
        raise StoreError("the result kept changing while its label index was synced")

    def _sync_index_once(self, result: LabelResult) -> None:
        ref = (result.bucket, result.key, result.project_version_arn)
        removal_id = result.deletion.removal_id if result.deletion is not None else None
        self._sync_index_items(
            ref,
            label_index_items(result),
            result.result_id if removal_id is None else removal_id,
            removal=removal_id is not None,
        )

    def _sync_index_items(self, ref: ObjectRef, items: list[dict[str, Any]], ident: str, *, removal: bool) -> None:
        """Make the index of ``ref`` equal ``items``, guarded by "the item is still this result (or deletion)"."""
        bucket, key, project_version_arn = ref
        partition = layout.object_partition(bucket, key)
        prefix = layout.label_sort_key(project_version_arn, "")
        try:
            stored = query_partition(self._client, self._table, partition, prefix)
        except AWS_ERRORS as error:
            raise StoreError(f"Query (label index) failed: {error}") from error
        wanted = {item[layout.SORT_KEY]: item for item in items}
        changes: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table, "Item": serialize_item(item)}}
            for sort_key, item in wanted.items()
            if _index_fields(stored.get(sort_key)) != _index_fields(item)
        ]
        changes.extend(
            {"Delete": {"TableName": self._table, "Key": _key(bucket, key, sort_key)}}
            for sort_key in stored
            if sort_key not in wanted
        )
        condition, names, values, _ = _track(ident, removal)
        guard = {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": result_key(*ref),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }
        for chunk in _chunks(changes, MAX_TRANSACTION_ACTIONS - 1):
            self._transact([guard, *chunk], conflict_index=0)

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
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=result_key(*ref),
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
        except AWS_ERRORS as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return None
            raise StoreError(f"UpdateItem (claim) failed: {error}") from error
        old = deserialize_item(response.get("Attributes", {}))
        taken_over = old.get("publishClaimedAt") is not None and old.get("publishClaimedBy") != token
        return Claim(uncertain=bool(old.get("publishUncertain", False)) or taken_over)

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
        try:
            self._client.update_item(
                TableName=self._table,
                Key=result_key(*ref),
                UpdateExpression=update,
                ConditionExpression=f"{track} AND #pub = :false AND #by = :me",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except AWS_ERRORS as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise StoreError(f"UpdateItem (release claim) failed: {error}") from error

    def mark_published(self, published: Sequence[Publication]) -> None:
        """Record that these events were accepted by EventBridge.

        Each entry is (ref, resultId) for a result's event, or (ref, removalId,
        True) for a deletion's Removed event. One TransactWriteItems call for a
        whole batch; if any item changed meanwhile, one conditional update each.
        """

        def update(ref: ObjectRef, ident: str, removal: bool = False) -> dict[str, Any]:
            track, names, values, published = _track(ident, removal)
            return {
                "TableName": self._table,
                "Key": result_key(*ref),
                "UpdateExpression": "SET #pub = :true REMOVE #claim, #by",
                "ConditionExpression": track,
                "ExpressionAttributeNames": {
                    "#pub": published,
                    "#claim": "publishClaimedAt",
                    "#by": "publishClaimedBy",
                    **names,
                },
                "ExpressionAttributeValues": {":true": {"BOOL": True}, **values},
            }

        for chunk in _chunks(list(published), MAX_TRANSACTION_ACTIONS):
            if len(chunk) > 1:
                try:
                    self._client.transact_write_items(TransactItems=[{"Update": update(*entry)} for entry in chunk])
                    continue
                except AWS_ERRORS as error:
                    if error_code(error) != "TransactionCanceledException":
                        raise StoreError(f"TransactWriteItems (mark published) failed: {error}") from error
            for entry in chunk:
                try:
                    self._client.update_item(**update(*entry))
                except AWS_ERRORS as error:
                    if error_code(error) != "ConditionalCheckFailedException":
                        raise StoreError(f"UpdateItem (mark published) failed: {error}") from error

    # -- helpers -----------------------------------------------------------

    def _transact(self, actions: list[dict[str, Any]], *, conflict_index: int) -> None:
        try:
            self._client.transact_write_items(TransactItems=actions)
        except AWS_ERRORS as error:
            reasons = (error.response.get("CancellationReasons") or []) if isinstance(error, ClientError) else []
            if (
                error_code(error) == "TransactionCanceledException"
                and len(reasons) > conflict_index
                and reasons[conflict_index].get("Code") == "ConditionalCheckFailed"
            ):
                raise ResultConflict("the current result changed since it was read") from error
            raise StoreError(f"TransactWriteItems failed: {error}") from error

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
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise StoreError("BatchWriteItem left items unprocessed after retries")
