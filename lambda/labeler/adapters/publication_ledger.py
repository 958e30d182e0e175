"""DynamoDB adapter of the publication ledger: publish claims on result items, and publication items.

A stored result is announced by the attempt that holds its publish claim (the
write that stored it took one). After EventBridge accepted the event, a small
publication item (``PUBLISHED#<arn>#<writeId>``) records it, not an update of
the result item. docs/behaviour.md#delivery-guarantee.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from labeler.adapters.dynamo_table import REMOVAL_ID, ResultsTableAccess, put_request
from labeler.adapters.result_items import publication_item
from labeler.adapters.result_reads import published_writes
from labeler.domain.stored_state import Claim, ObjectRef, Publication
from shared import table_layout as layout
from shared.dynamo_codec import deserialize_item, serialize


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


class DynamoPublicationLedger:
    def __init__(self, table: ResultsTableAccess, *, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    def claim(
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
        response = self._table.update_result_item(
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
        if write_id is not None and published_writes(self._table, {ref: str(write_id)}):
            return None  # published meanwhile: the claim we now hold is never used
        taken_over = old.get("publishClaimedAt") is not None and old.get("publishClaimedBy") != token
        return Claim(
            uncertain=bool(old.get("publishUncertain", False)) or taken_over,
            write_id=write_id,
            index_id=old.get(layout.INDEX_ID),
        )

    def release(self, ref: ObjectRef, result_id: str, token: str, *, uncertain: bool, removal: bool = False) -> None:
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
        self._table.update_result_item(  # not ours (any more): nothing to release
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
        self._table.batch_write(
            [put_request(publication_item(ref, write_id, announced)) for ref, write_id, announced in published]
        )
