"""The labeler's pure decisions, without clients, clock or moto."""

from __future__ import annotations

from dataclasses import replace

import pytest

from labeler.domain.s3_notification import S3ObjectEvent
from labeler.domain.stored_state import StoredState
from labeler.logic.decisions import (
    Action,
    Delivery,
    Intake,
    claim_expires_in,
    collapse,
    decide,
    decide_removal,
    intake,
    is_own_write,
    publication_uncertain,
    retry_delay_seconds,
)

TTL = 120.0


def _obj(
    key: str = "a.jpg",
    *,
    version: str | None = "v1",
    sequencer: str | None = "0A",
    event: str = "ObjectCreated:Put",
    etag: str = "e",
) -> S3ObjectEvent:
    return S3ObjectEvent(event, "b", key, 1, etag, version, sequencer)


def _state(**overrides: object) -> StoredState:
    fields: dict[str, object] = {
        "result_id": "r1",
        "sequencer": "0A",
        "processed_at": "2026-11-24T10:00:00.000Z",
        "published": False,
        "publish_claimed_at": None,
        "publish_claimed_by": None,
        "publish_uncertain": False,
        "write_id": "t1",
        "label_names": (),
        "parts": 0,
    }
    fields.update(overrides)
    return StoredState(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_obj("a.JPG"), Intake.IMAGE),
        (_obj("a.jpeg"), Intake.IMAGE),
        (_obj("a.png"), Intake.IMAGE),
        (_obj("a.gif"), Intake.NOT_AN_IMAGE),
        (_obj("a.jpg", event="ObjectRemoved:Delete"), Intake.NOT_CREATED),
    ],
)
def test_intake_labels_only_created_images(obj: S3ObjectEvent, expected: Intake) -> None:
    assert intake(obj) is expected


def test_collapse_keeps_the_newest_version_per_key_by_sequencer_not_by_position() -> None:
    newer, older = _obj(version="v2", sequencer="0B"), _obj(version="v1", sequencer="0A")
    other = _obj("b.jpg")
    work = collapse(
        [
            Delivery(0, "m-new", newer),
            Delivery(1, "m-old", older),
            Delivery(2, "m-other", other),
            Delivery(3, "m-new-again", newer),
        ]
    )
    by_key = {unit.newest.key: unit for unit in work}
    assert by_key["a.jpg"].newest == newer
    assert by_key["a.jpg"].message_ids == ["m-new", "m-new-again"]
    assert by_key["a.jpg"].superseded == ["m-old"]
    assert by_key["b.jpg"].message_ids == ["m-other"] and not by_key["b.jpg"].superseded


def test_collapse_without_sequencers_keeps_the_latest_in_the_batch() -> None:
    first, last = _obj(version=None, sequencer=None, etag="e1"), _obj(version=None, sequencer=None, etag="e2")
    (unit,) = collapse([Delivery(0, "m1", first), Delivery(1, "m2", last)])
    assert unit.newest == last and unit.superseded == ["m1"]


def test_collapse_compares_sequencers_of_different_lengths_after_right_padding() -> None:
    # S3: pad the shorter sequencer with zeros on the right, then compare.
    longer_older = _obj(version="v1", sequencer="0055AED6DCD90281E5")
    shorter_newer = _obj(version="v2", sequencer="0055AED6DCD9029")
    (unit,) = collapse([Delivery(0, "m-new", shorter_newer), Delivery(1, "m-old", longer_older)])
    assert unit.newest == shorter_newer


def test_decide_labels_what_has_no_result() -> None:
    assert decide(None, "r1", "0A", now=0, claim_ttl_seconds=TTL) is Action.LABEL


def test_decide_acknowledges_a_published_result_as_a_duplicate() -> None:
    assert decide(_state(published=True), "r1", "0A", now=0, claim_ttl_seconds=TTL) is Action.DUPLICATE


def test_decide_waits_for_a_fresh_claim_and_takes_over_an_expired_one() -> None:
    claimed = _state(publish_claimed_at=1000.0, publish_claimed_by="other")
    assert decide(claimed, "r1", "0A", now=1000 + TTL - 1, claim_ttl_seconds=TTL) is Action.IN_PROGRESS
    assert decide(claimed, "r1", "0A", now=1000 + TTL, claim_ttl_seconds=TTL) is Action.PUBLISH_STORED
    assert decide(_state(), "r1", "0A", now=0, claim_ttl_seconds=TTL) is Action.PUBLISH_STORED


def test_decide_never_lets_an_older_version_replace_a_newer_result() -> None:
    stored = _state(result_id="r-new", sequencer="0B")
    assert decide(stored, "r-old", "0A", now=0, claim_ttl_seconds=TTL) is Action.STALE
    assert decide(stored, "r-newer", "0C", now=0, claim_ttl_seconds=TTL) is Action.LABEL
    # No sequencer to compare (events without one): the last writer wins.
    assert decide(replace(stored, sequencer=None), "r-other", None, now=0, claim_ttl_seconds=TTL) is Action.LABEL


def test_own_write_is_recognised_by_token_until_published() -> None:
    assert is_own_write(_state(write_id="t1"), "t1")
    assert not is_own_write(_state(write_id="t2"), "t1")
    assert not is_own_write(_state(write_id="t1", published=True), "t1")
    assert not is_own_write(None, "t1")


@pytest.mark.parametrize(
    ("claim_uncertain", "state", "expected"),
    [
        (False, _state(), False),
        (True, _state(), True),
        (False, _state(publish_uncertain=True), True),
        (False, _state(publish_claimed_at=5.0, publish_claimed_by="someone-else"), True),
        (False, _state(publish_claimed_at=5.0, publish_claimed_by="me"), False),
        (False, None, False),
    ],
)
def test_publication_is_uncertain_when_an_earlier_putevents_may_have_been_accepted(
    claim_uncertain: bool, state: StoredState | None, expected: bool
) -> None:
    assert publication_uncertain(claim_uncertain, state, "me") is expected


def _lowest(low: float, _high: float) -> float:
    return low


def _highest(_low: float, high: float) -> float:
    return high


@pytest.mark.parametrize(
    ("receive_count", "lowest", "highest"),
    [(1, 3, 5), (2, 5, 10), (3, 10, 20), (4, 20, 40), (6, 80, 160), (7, 150, 300), (10, 150, 300), (99, 150, 300)],
)
def test_retry_delay_doubles_with_each_receive_within_its_jitter_up_to_five_minutes(
    receive_count: int, lowest: int, highest: int
) -> None:
    assert retry_delay_seconds(receive_count, _lowest) == lowest
    assert retry_delay_seconds(receive_count, _highest) == highest


def test_retry_delay_waits_for_a_claim_to_expire_when_asked() -> None:
    assert retry_delay_seconds(1, _highest, not_before=119.2) == 120
    assert retry_delay_seconds(1, _highest, not_before=0.5) == 5
    assert retry_delay_seconds(4, _highest, not_before=119.2) == 120  # whatever the receive count


def test_a_ten_minute_fault_does_not_use_up_the_default_receives_even_at_the_shortest_jitter() -> None:
    # Nine retries (receives 1-9) before the tenth and last receive of the default maxReceiveCount.
    assert sum(retry_delay_seconds(n, _lowest) for n in range(1, 10)) >= 600


def test_claim_expiry_counts_down_from_the_claim() -> None:
    claimed = _state(publish_claimed_at=1000.0, publish_claimed_by="other")
    assert claim_expires_in(claimed, now=1030.0, claim_ttl_seconds=TTL) == TTL - 30
    assert claim_expires_in(claimed, now=1000.0 + TTL + 5, claim_ttl_seconds=TTL) == 0
    assert claim_expires_in(_state(), now=0, claim_ttl_seconds=TTL) == 0
    assert claim_expires_in(None, now=0, claim_ttl_seconds=TTL) == 0


# -- deletions (docs/behaviour.md#deletions) -------------------------------------------------

DELETED_STATE = _state(
    result_id="r1",
    sequencer="0A",
    published=True,
    version_id="v1",
    removal_id="rm1",
    removal_published=True,
    deletion_sequencer="0C",
)


def _removal(
    *, version: str | None = "dm1", sequencer: str | None = "0C", event: str = "ObjectRemoved:DeleteMarkerCreated"
) -> S3ObjectEvent:
    return S3ObjectEvent(event, "b", "a.jpg", 0, "", version, sequencer)


@pytest.mark.parametrize(
    ("obj", "deletions", "expected"),
    [
        (_removal(), True, Intake.REMOVAL),
        (_removal(event="ObjectRemoved:Delete"), True, Intake.REMOVAL),
        (_removal(), False, Intake.NOT_CREATED),
        (S3ObjectEvent("ObjectRemoved:Delete", "b", "a.gif", 0, "", None, None), True, Intake.NOT_AN_IMAGE),
        (_obj("a.jpg"), True, Intake.IMAGE),
        (_obj("a.jpg", event="ObjectRestore:Completed"), True, Intake.NOT_CREATED),
    ],
)
def test_intake_takes_removals_of_images_only_when_deletions_are_on(
    obj: S3ObjectEvent, deletions: bool, expected: Intake
) -> None:
    assert intake(obj, deletions=deletions) is expected


def test_collapse_a_newer_deletion_supersedes_the_creation_in_the_batch() -> None:
    created, deleted = _obj(version="v1", sequencer="0A"), _removal(sequencer="0B")
    (unit,) = collapse([Delivery(0, "m-del", deleted), Delivery(1, "m-put", created)])
    assert unit.newest == deleted and unit.superseded == ["m-put"]


def test_collapse_a_newer_creation_supersedes_an_older_deletion() -> None:
    deleted, created = _removal(sequencer="0A"), _obj(version="v2", sequencer="0B")
    (unit,) = collapse([Delivery(0, "m-put", created), Delivery(1, "m-del", deleted)])
    assert unit.newest == created and unit.superseded == ["m-del"]


def test_collapse_a_version_delete_only_competes_with_its_own_version() -> None:
    created_v2 = _obj(version="v2", sequencer="0B")
    delete_v1 = _removal(version="v1", sequencer="0C", event="ObjectRemoved:Delete")
    (unit,) = collapse([Delivery(0, "m-put", created_v2), Delivery(1, "m-del", delete_v1)])
    assert unit.newest == created_v2 and unit.superseded == ["m-del"]
    delete_v2 = _removal(version="v2", sequencer="0C", event="ObjectRemoved:Delete")
    (unit,) = collapse([Delivery(0, "m-put", created_v2), Delivery(1, "m-del", delete_v2)])
    assert unit.newest == delete_v2 and unit.superseded == ["m-put"]
    (unit,) = collapse([Delivery(0, "m-del", delete_v1)])
    assert unit.newest == delete_v1


def test_collapse_repeats_of_one_deletion_share_its_outcome() -> None:
    deleted = _removal(sequencer="0B")
    (unit,) = collapse([Delivery(0, "m1", deleted), Delivery(1, "m2", deleted)])
    assert unit.message_ids == ["m1", "m2"] and not unit.superseded


def _decide_removal(state: StoredState | None, obj: S3ObjectEvent | None = None, now: float = 0) -> Action:
    return decide_removal(state, obj or _removal(), "rm1", now=now, claim_ttl_seconds=TTL)


def test_a_deletion_without_a_result_records_one() -> None:
    assert _decide_removal(None) is Action.RECORD_DELETION


def test_a_deletion_newer_than_the_result_removes_it() -> None:
    assert _decide_removal(_state(published=True, sequencer="0A")) is Action.REMOVE
    # No sequencer to compare: the deletion being processed wins, like a create.
    assert _decide_removal(_state(published=True, sequencer=None), _removal(sequencer=None)) is Action.REMOVE


def test_a_deletion_older_than_the_result_changes_nothing() -> None:
    assert _decide_removal(_state(published=True, sequencer="0D")) is Action.STALE


def test_a_deletion_waits_while_the_result_is_being_announced() -> None:
    claimed = _state(sequencer="0A", publish_claimed_at=1000.0, publish_claimed_by="other")
    assert _decide_removal(claimed, now=1000 + TTL - 1) is Action.IN_PROGRESS
    # An abandoned announcement is superseded by the deletion (its retry will find the result deleted).
    assert _decide_removal(claimed, now=1000 + TTL) is Action.REMOVE


def test_the_same_deletion_is_announced_once() -> None:
    assert _decide_removal(DELETED_STATE) is Action.DUPLICATE
    pending = replace(DELETED_STATE, removal_published=False)
    assert _decide_removal(pending) is Action.PUBLISH_STORED
    claimed = replace(pending, publish_claimed_at=1000.0, publish_claimed_by="other")
    assert _decide_removal(claimed, now=1001) is Action.IN_PROGRESS


def test_an_older_or_unordered_deletion_of_a_deleted_result_changes_nothing() -> None:
    older = _removal(version="dm0", sequencer="0B")
    assert decide_removal(DELETED_STATE, older, "rm0", now=0, claim_ttl_seconds=TTL) is Action.STALE
    unordered = _removal(version="dm2", sequencer=None)
    assert decide_removal(DELETED_STATE, unordered, "rm2", now=0, claim_ttl_seconds=TTL) is Action.DUPLICATE


def test_a_newer_deletion_of_a_deleted_result_is_recorded_and_announced_at_most_once() -> None:
    newer = _removal(version="dm2", sequencer="0D")
    # Already announced removed: only recorded, so that it orders later uploads.
    assert decide_removal(DELETED_STATE, newer, "rm2", now=0, claim_ttl_seconds=TTL) is Action.RECORD_DELETION
    # The first deletion was never announced: the newer one announces instead.
    pending = replace(DELETED_STATE, removal_published=False)
    assert decide_removal(pending, newer, "rm2", now=0, claim_ttl_seconds=TTL) is Action.REMOVE
    claimed = replace(pending, publish_claimed_at=1000.0, publish_claimed_by="other")
    assert decide_removal(claimed, newer, "rm2", now=1001, claim_ttl_seconds=TTL) is Action.IN_PROGRESS
    tombstone = replace(DELETED_STATE, result_id="rm1", version_id=None, label_names=())
    assert decide_removal(tombstone, newer, "rm2", now=0, claim_ttl_seconds=TTL) is Action.RECORD_DELETION


def test_a_permanent_version_delete_removes_only_the_labeled_version() -> None:
    labeled_v1 = _state(published=True, version_id="v1", sequencer="0A")
    delete_v1 = _removal(version="v1", sequencer="0C", event="ObjectRemoved:Delete")
    delete_v0 = _removal(version="v0", sequencer="0C", event="ObjectRemoved:Delete")
    assert _decide_removal(labeled_v1, delete_v1) is Action.REMOVE
    assert _decide_removal(labeled_v1, delete_v0) is Action.UNRELATED
    assert _decide_removal(None, delete_v1) is Action.UNRELATED  # no tombstone: it says nothing of the key


def test_a_create_older_than_the_deletion_does_not_resurrect() -> None:
    assert decide(DELETED_STATE, "r1", "0A", now=0, claim_ttl_seconds=TTL) is Action.STALE  # the deleted version
    assert decide(DELETED_STATE, "r0", "0B", now=0, claim_ttl_seconds=TTL) is Action.STALE  # between the two
    tombstone = replace(DELETED_STATE, result_id="rm1", version_id=None, label_names=())
    assert decide(tombstone, "r1", "0A", now=0, claim_ttl_seconds=TTL) is Action.STALE


def test_a_create_newer_than_the_deletion_labels_again() -> None:
    assert decide(DELETED_STATE, "r2", "0D", now=0, claim_ttl_seconds=TTL) is Action.LABEL
    # Same bytes uploaded again (same resultId without versioning), after the deletion.
    assert decide(DELETED_STATE, "r1", "0D", now=0, claim_ttl_seconds=TTL) is Action.LABEL


def test_a_create_against_a_deletion_without_sequencers() -> None:
    unknown = replace(DELETED_STATE, deletion_sequencer=None)
    assert decide(unknown, "r1", None, now=0, claim_ttl_seconds=TTL) is Action.STALE  # the deleted version again
    assert decide(unknown, "r2", None, now=0, claim_ttl_seconds=TTL) is Action.LABEL  # another version


def test_own_deletion_write_is_recognised_until_its_removal_is_published() -> None:
    pending = replace(DELETED_STATE, removal_published=False, write_id="t1")
    assert is_own_write(pending, "t1")
    assert not is_own_write(replace(pending, removal_published=True), "t1")
