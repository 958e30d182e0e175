"""The mapping between a label result and its DynamoDB items, both ways.

The item schema of the results table lives here alone. result -> items: the
result item (as many labels as fit in one item), its continuation items (the
remaining labels, in order), one label-index item per distinct label, the
tombstone of a deletion without a result, and the publication item of an
accepted event. items -> result: the result item with its continuation
items reassembled, as the stored result (``to_result``), as the state decisions
need (``stored_state_of``) or as the public view ``queries.get_result``
returns (``public_view``). docs/behaviour.md#stored-attributes
describes every attribute.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from labeler.domain.label_result import IDENTITY_ATTRIBUTES, LabelResult, best_confidences
from labeler.domain.removal import DELETED, Deletion
from labeler.domain.s3_notification import comparable_sequencer
from labeler.domain.stored_state import ObjectRef, StoredState
from shared import table_layout as layout
from shared.dynamo_codec import estimated_item_size, estimated_size

MAX_ITEM_BYTES = 400 * 1024
# Headroom under the 400 KB limit for our size estimate's error.
ITEM_BUDGET_BYTES = MAX_ITEM_BYTES - 24 * 1024

# Bookkeeping attributes of a result item, not part of the result contract.
INTERNAL_ATTRIBUTES = (
    layout.PARTITION_KEY,
    layout.SORT_KEY,
    "itemType",
    "sequencerOrder",
    "publishClaimedAt",
    "publishClaimedBy",
    "publishUncertain",
    "writeId",
    "indexId",
    "parts",
)


class IncompleteResultError(RuntimeError):
    """A result item points at continuation items that are not all there."""


def to_items(result: LabelResult, part_id: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The result item and its continuation items (plain values).

    The result item keeps as many labels as fit in one item; the rest go, in
    order, to continuation items in the same partition. Nothing is dropped.
    ``part_id`` keys the continuation items: the write's ``indexId`` (the
    resultId when not given), so that two writes of one resultId (the same
    bytes uploaded again to an unversioned bucket) never share them.
    """
    item: dict[str, Any] = {
        layout.PARTITION_KEY: layout.object_partition(result.bucket, result.key),
        layout.SORT_KEY: layout.result_sort_key(result.project_version_arn),
        "itemType": layout.ITEM_TYPE_RESULT,
        **result.identity(),
        "sequencerOrder": comparable_sequencer(result.sequencer),
        "minConfidence": result.min_confidence,
        "maxResults": result.max_results,
        "status": result.status,
        "labelNames": result.label_names,
        "labelCount": result.label_count,
        "error": result.error,
        "processedAt": result.processed_at,
        "eventPublished": False,
        "parts": 0,
        "customLabels": [],
    }
    labels = result.custom_labels
    kept = _fitting_prefix(labels, ITEM_BUDGET_BYTES - estimated_item_size(item))
    item["customLabels"] = labels[:kept]
    parts: list[dict[str, Any]] = []
    rest = labels[kept:]
    while rest:
        part: dict[str, Any] = {
            layout.PARTITION_KEY: item[layout.PARTITION_KEY],
            layout.SORT_KEY: layout.part_sort_key(
                result.project_version_arn, part_id or result.result_id, len(parts) + 1
            ),
            "itemType": layout.ITEM_TYPE_RESULT_PART,
            "resultId": result.result_id,
            "partNumber": len(parts) + 1,
            "customLabels": [],
        }
        take = max(1, _fitting_prefix(rest, ITEM_BUDGET_BYTES - estimated_item_size(part)))
        part["customLabels"] = rest[:take]
        parts.append(part)
        rest = rest[take:]
    item["parts"] = len(parts)
    if result.deletion is not None:
        item.update(deletion_attributes(result.deletion))
    return item, parts


def deletion_attributes(deletion: Deletion) -> dict[str, Any]:
    """What marks a result item deleted (docs/behaviour.md#stored-attributes); removalPublished starts false.

    The status says DELETED; the labels (and a failed result's error) stay, for history.
    """
    return {
        "status": DELETED,
        "deletedAt": deletion.deleted_at,
        "deletion": deletion_map(deletion),
        "removalId": deletion.removal_id,
        "removalPublished": False,
    }


def deletion_map(deletion: Deletion) -> dict[str, Any]:
    """The ``deletion`` map of the result item (absent values left out)."""
    fields = {"eventName": deletion.event_name, "versionId": deletion.version_id, "sequencer": deletion.sequencer}
    return {name: value for name, value in fields.items() if value is not None}


def deletion_of(item: dict[str, Any]) -> Deletion | None:
    """The deletion recorded on a result item (plain values), or None: the inverse of ``deletion_attributes``."""
    removal_id = item.get("removalId")
    if not removal_id:
        return None
    stored = item.get("deletion") or {}
    return Deletion(
        removal_id=str(removal_id),
        deleted_at=str(item.get("deletedAt", "")),
        event_name=str(stored.get("eventName", "")),
        version_id=stored.get("versionId"),
        sequencer=stored.get("sequencer"),
    )


def tombstone_item(ref: ObjectRef, deletion: Deletion, token: str) -> dict[str, Any]:
    """The result item that records a deletion of an object without a result (status ``DELETED``, no event),
    written by the attempt ``token``: an older notification cannot label the object afterwards."""
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


def publication_item(ref: ObjectRef, write_id: str, announced_id: str) -> dict[str, Any]:
    """The item that records an accepted event: the Detected/Failed or Removed of the write ``write_id``."""
    bucket, key, project_version_arn = ref
    return {
        layout.PARTITION_KEY: layout.object_partition(bucket, key),
        layout.SORT_KEY: layout.publication_sort_key(project_version_arn, write_id),
        "itemType": layout.ITEM_TYPE_PUBLISHED,
        "announcedId": announced_id,
    }


def _fitting_prefix(labels: Sequence[dict[str, Any]], room: int) -> int:
    used = 0
    for index, label in enumerate(labels):
        used += 1 + estimated_size(label)
        if used > room:
            return index
    return len(labels)


def label_index_items(result: LabelResult, index_id: str) -> list[dict[str, Any]]:
    """The label-index entries of ``result`` stored by the write ``index_id``: one per distinct label,
    with that label's best confidence; none once deleted."""
    if result.deletion is not None:
        return []
    return [
        label_index_entry(result, name, confidence, index_id)
        for name, confidence in best_confidences(result.custom_labels).items()
    ]


def label_index_entry(result: LabelResult, name: str, confidence: float, index_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        layout.PARTITION_KEY: layout.label_partition(name),
        layout.SORT_KEY: layout.label_entry_sort_key(confidence, index_id),
        "itemType": layout.ITEM_TYPE_LABEL,
        layout.LABEL_NAME: name,
        layout.LABEL_CONFIDENCE: confidence,
        "bucket": result.bucket,
        "key": result.key,
        "projectVersionArn": result.project_version_arn,
        "resultId": result.result_id,
        layout.INDEX_ID: index_id,
    }
    if result.version_id:
        entry["versionId"] = result.version_id
    return entry


def label_index_keys(labels: Iterable[dict[str, Any]], index_id: str) -> list[dict[str, Any]]:
    """The keys (plain values) of the entries that ``labels`` (a result's full list) have under ``index_id``."""
    return [
        {
            layout.PARTITION_KEY: layout.label_partition(name),
            layout.SORT_KEY: layout.label_entry_sort_key(confidence, index_id),
        }
        for name, confidence in best_confidences(list(labels)).items()
    ]


def assemble(items: Iterable[dict[str, Any]], project_version_arn: str | None = None) -> dict[str, Any] | None:
    """The current result item among ``items`` (one object's partition, plain values), labels reassembled.

    ``items`` may hold any items of the partition; with ``project_version_arn``
    only that model's result counts, otherwise the most recently processed of
    any model. None when there is no result.
    """
    partition = list(items)
    results = [item for item in partition if item.get("itemType") == layout.ITEM_TYPE_RESULT]
    if project_version_arn:
        results = [item for item in results if item[layout.SORT_KEY] == layout.result_sort_key(project_version_arn)]
    if not results:
        return None
    newest: dict[str, Any] = max(results, key=lambda item: str(item.get("processedAt", "")))
    current = dict(newest)
    parts_prefix = layout.part_sort_key_prefix(current["projectVersionArn"], part_id_of(current))
    expected = int(current.get("parts", 0))
    # Parts numbered above ``expected`` belong to an earlier write of the same resultId, not yet deleted.
    parts = sorted(
        (
            item
            for item in partition
            if str(item[layout.SORT_KEY]).startswith(parts_prefix) and int(item["partNumber"]) <= expected
        ),
        key=lambda item: int(item["partNumber"]),
    )
    if len(parts) != expected:
        raise IncompleteResultError(
            f"result {current['resultId']} expects {current.get('parts')} continuation items, found {len(parts)}"
        )
    labels = list(current.get("customLabels", []))
    for part in parts:
        labels.extend(part.get("customLabels", []))
    current["customLabels"] = labels
    return current


def part_id_of(item: dict[str, Any]) -> str:
    """What a result item's continuation items are keyed by: its write's indexId (resultId before indexIds)."""
    return str(item.get(layout.INDEX_ID) or item["resultId"])


def public_view(item: dict[str, Any], partition: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """An assembled result item without its bookkeeping attributes (what ``get_result`` returns).

    ``partition``: the object's items by sort key. Its publication items say
    which events were accepted: the result's (keyed by the write that stored
    it, its ``indexId``) sets ``eventPublished``; once deleted, the deletion's
    (keyed by the write that recorded it, the item's ``writeId``) sets
    ``removalPublished``.
    """
    view = {name: value for name, value in item.items() if name not in INTERNAL_ATTRIBUTES}
    if item.get("removalId") is not None:
        # Items deleted before deletions set the status kept LABELED or FAILED (docs/behaviour.md#deletions).
        view["status"] = DELETED
    arn = str(item["projectVersionArn"])

    def published(write_id: Any) -> bool:
        return write_id is not None and layout.publication_sort_key(arn, str(write_id)) in (partition or {})

    if published(item.get(layout.INDEX_ID)):
        view["eventPublished"] = True
    if item.get("removalId") is not None and published(item.get("writeId")):
        view["removalPublished"] = True
    return view


def to_result(item: dict[str, Any]) -> LabelResult:
    """The result an assembled result item (or its public view) stores: the inverse of ``to_items``."""
    identity: dict[str, Any] = {attribute: item.get(name) for name, attribute in IDENTITY_ATTRIBUTES.items()}
    identity.update(etag=identity["etag"] or "", size=int(identity["size"] or 0))
    return LabelResult(
        **identity,
        min_confidence=item.get("minConfidence"),
        max_results=item.get("maxResults"),
        status=DELETED if item.get("removalId") is not None else item["status"],
        processed_at=item["processedAt"],
        custom_labels=list(item.get("customLabels", [])),
        error=item.get("error"),
        deletion=deletion_of(item),
    )


def stored_state_of(item: dict[str, Any], *, marked: bool = False) -> StoredState:
    """The decision-relevant state of a result item (plain values).

    ``marked``: a publication item exists for the item's ``writeId`` (its latest event was accepted).
    """
    claimed = item.get("publishClaimedAt")
    deletion = item.get("deletion") or {}
    deleted = item.get("removalId") is not None
    return StoredState(
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
        removal_id=item.get("removalId"),
        removal_published=bool(item.get("removalPublished", False)) or (marked and deleted),
        deletion_sequencer=deletion.get("sequencer"),
        deletion=deletion_of(item),
        index_id=item.get(layout.INDEX_ID),
        custom_labels=tuple(item.get("customLabels", [])),
    )
