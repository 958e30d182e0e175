"""Backfill messages and the ordering rule for listed objects (pure; docs/behaviour.md#backfill)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from labeler.domain.backfill_request import (
    BACKFILL_EVENT_NAME,
    backfill_request,
    forced_result_id,
    parse_backfill_body,
)
from labeler.domain.s3_notification import InvalidMessageError
from labeler.domain.stored_state import StoredState
from labeler.logic.decisions import Action, Delivery, collapse, decide, decide_backfill
from tests.unit.labeler.test_decisions import _obj

TTL = 120.0
ARN = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/p.1/1"


def _state(**overrides: object) -> StoredState:
    fields: dict[str, object] = {
        "result_id": "r1",
        "sequencer": "0A",
        "processed_at": "2026-11-24T10:00:00.000Z",
        "published": True,
        "publish_claimed_at": None,
        "publish_claimed_by": None,
        "publish_uncertain": False,
        "write_id": "t1",
        "label_names": (),
        "parts": 0,
        "version_id": "v1",
        "etag": "e",
    }
    fields.update(overrides)
    return StoredState(**fields)  # type: ignore[arg-type]


def _decide(state: StoredState | None, result_id: str = "r1", version: str = "v1", *, force: bool = False) -> Action:
    return decide_backfill(state, result_id, version, force=force, now=1000.0, claim_ttl_seconds=TTL)


# -- the message ---------------------------------------------------------------------------------


def test_a_request_round_trips_through_its_body_with_the_key_as_is() -> None:
    request = backfill_request(
        "b", "line 1/part+7%.png", version_id="v1", etag='"abc-2"', size=10, run_id="run", last_modified="x"
    )
    parsed = parse_backfill_body(request.to_body())
    assert parsed == request
    assert parsed.obj.key == "line 1/part+7%.png"  # never URL-decoded
    assert parsed.obj.etag == "abc-2"  # listing ETags come quoted; notifications' do not
    assert parsed.obj.event_name == BACKFILL_EVENT_NAME
    assert parsed.obj.sequencer is None


def test_the_null_version_of_an_unversioned_object_is_no_version() -> None:
    request = backfill_request("b", "k.png", version_id="null", etag="e", size=1, run_id="r")
    assert request.obj.version_id is None
    assert request.obj.object_identity == ("b", "k.png", "etag:e")


def test_a_backfill_of_the_same_version_has_the_notifications_result_id() -> None:
    request = backfill_request("b", "a.jpg", version_id="v1", etag="e", size=1, run_id="r")
    assert request.obj.result_id(ARN) == _obj("a.jpg", version="v1").result_id(ARN)


def test_forced_result_ids_differ_per_run_and_repeat_within_one() -> None:
    obj = _obj()
    assert forced_result_id(obj, ARN, "run-1") == forced_result_id(obj, ARN, "run-1")
    assert forced_result_id(obj, ARN, "run-1") != forced_result_id(obj, ARN, "run-2")
    assert forced_result_id(obj, ARN, "run-1") != obj.result_id(ARN)


def test_a_notification_body_is_not_a_backfill_body() -> None:
    assert parse_backfill_body(json.dumps({"Records": []})) is None
    assert parse_backfill_body("not json") is None


@pytest.mark.parametrize(
    "change",
    [
        {"autolabelBackfill": "2"},
        {"key": ""},
        {"bucket": None},
        {"etag": ""},
        {"size": -1},
        {"size": True},
        {"run": ""},
        {"force": "yes"},
        {"versionId": 3},
    ],
)
def test_a_malformed_backfill_body_is_invalid(change: dict[str, object]) -> None:
    body = json.loads(backfill_request("b", "a.png", version_id="v", etag="e", size=1, run_id="r").to_body())
    body.update(change)
    with pytest.raises(InvalidMessageError):
        parse_backfill_body(json.dumps(body))


# -- the ordering rule -----------------------------------------------------------------------------


def test_no_result_is_labeled() -> None:
    assert _decide(None) is Action.LABEL


def test_another_versions_result_is_never_replaced_by_a_listing() -> None:
    # Newer or older: a listing has no sequencer to tell, so the notification of that version decides.
    assert _decide(_state(version_id="v2", result_id="r2")) is Action.STALE
    assert _decide(_state(version_id="v2", result_id="r2"), force=True) is Action.STALE
    assert _decide(_state(version_id=None, etag="other", result_id="r2"), version="etag:e") is Action.STALE


def test_the_same_result_already_stored_is_handled_as_for_a_notification() -> None:
    assert _decide(_state()) is Action.DUPLICATE
    assert _decide(_state(published=False)) is Action.PUBLISH_STORED
    assert _decide(_state(published=False, publish_claimed_at=990.0)) is Action.IN_PROGRESS


def test_a_result_of_the_same_version_is_done_unless_forced() -> None:
    forced_id = "forced"
    assert _decide(_state(), forced_id) is Action.DUPLICATE
    assert _decide(_state(), forced_id, force=True) is Action.LABEL
    # The same version known by its ETag (no versioning).
    assert _decide(_state(version_id=None), forced_id, "etag:e", force=True) is Action.LABEL


def test_a_forced_relabel_waits_for_a_fresh_claim_to_publish_the_stored_result() -> None:
    claimed = _state(published=False, publish_claimed_at=990.0)
    assert _decide(claimed, "forced", force=True) is Action.IN_PROGRESS
    expired = replace(claimed, publish_claimed_at=1000.0 - TTL - 1)
    assert _decide(expired, "forced", force=True) is Action.LABEL


def test_a_notification_after_a_forced_relabel_of_its_version_is_a_duplicate() -> None:
    forced = _state(result_id="forced", sequencer="0A")
    assert decide(forced, "r1", "0A", now=1000.0, claim_ttl_seconds=TTL, object_version="v1") is Action.DUPLICATE
    # A newer version still replaces it.
    assert decide(forced, "r2", "0B", now=1000.0, claim_ttl_seconds=TTL, object_version="v2") is Action.LABEL


def test_collapse_keeps_the_backfill_request_of_the_newest_delivery() -> None:
    request = backfill_request("b", "a.jpg", version_id="v1", etag="e", size=1, run_id="r", force=True)
    work = collapse([Delivery(0, "m1", request.obj, request), Delivery(1, "m2", request.obj, request)])
    assert len(work) == 1
    assert work[0].backfill == request
    assert work[0].message_ids == ["m1", "m2"]


def test_a_version_the_listing_proved_older_is_replaced_and_only_that_one() -> None:
    older = _state(version_id="v0", result_id="r0")
    assert decide_backfill(older, "r1", "v1", force=False, now=1000.0, claim_ttl_seconds=TTL, replaces="v0") is (
        Action.LABEL
    )
    # Any other version stored (a newer upload after the listing) stays.
    newer = _state(version_id="v2", result_id="r2")
    assert decide_backfill(newer, "r1", "v1", force=False, now=1000.0, claim_ttl_seconds=TTL, replaces="v0") is (
        Action.STALE
    )


def test_replaces_travels_in_the_body_and_needs_a_version() -> None:
    request = backfill_request("b", "a.png", version_id="v1", etag="e", size=1, run_id="r", replaces="v0")
    assert parse_backfill_body(request.to_body()) == request
    assert backfill_request("b", "a.png", version_id=None, etag="e", size=1, run_id="r", replaces="v0").replaces is None


def test_a_deleted_result_comes_back_only_for_a_version_the_listing_proved_newer() -> None:
    deleted = _state(removal_id="removed-1", removal_published=True)
    assert _decide(deleted) is Action.STALE  # the deleted version itself, listed again
    assert _decide(deleted, "forced", force=True) is Action.STALE
    assert _decide(deleted, "r2", "v2") is Action.STALE  # another version, not proven newer
    proven = decide_backfill(deleted, "r2", "v2", force=False, now=1000.0, claim_ttl_seconds=TTL, replaces="v1")
    assert proven is Action.LABEL
