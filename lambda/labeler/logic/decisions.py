"""The labeler's decisions, as pure functions: no I/O, no clock, no AWS.

The pipeline (``logic.pipeline``) gathers what they need (the batch's parsed
notifications, the stored state, the time) and carries out what they decide.
docs/behaviour.md#ordering and #delivery-guarantee state the rules in prose.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from labeler.domain.backfill_request import BackfillRequest
from labeler.domain.s3_notification import S3ObjectEvent, sequencer_is_newer
from labeler.domain.stored_state import StoredState


class Intake(Enum):
    """What a notification record is to the labeler."""

    IMAGE = "image"  # an ObjectCreated record of a .jpg/.jpeg/.png key: labeled
    REMOVAL = "removal"  # an ObjectRemoved record of such a key, deletions on: its result is marked deleted
    NOT_CREATED = "not-created"  # another event type (or a removal with deletions off): acknowledged, ignored
    NOT_AN_IMAGE = "not-an-image"  # another extension: acknowledged, skipped


def intake(obj: S3ObjectEvent, *, deletions: bool = False) -> Intake:
    if obj.is_object_removed and deletions:
        return Intake.REMOVAL if obj.has_image_extension else Intake.NOT_AN_IMAGE
    if not obj.is_object_created:
        return Intake.NOT_CREATED
    if not obj.has_image_extension:
        return Intake.NOT_AN_IMAGE
    return Intake.IMAGE


@dataclass(frozen=True)
class Delivery:
    """One image record of the batch: where it came from and its position in the batch."""

    position: int
    message_id: str
    obj: S3ObjectEvent
    backfill: BackfillRequest | None = None  # from the backfill queue: a listed object, no sequencer


@dataclass
class ObjectWork:
    """The work for one object key in a batch: its newest version, and the messages that carried it."""

    newest: S3ObjectEvent
    message_ids: list[str] = field(default_factory=list)  # acknowledged with the newest version's outcome
    superseded: list[str] = field(default_factory=list)  # older versions in the same batch: acknowledged as stale
    backfill: BackfillRequest | None = None  # the newest version's, when it came from a backfill


def collapse(deliveries: Sequence[Delivery]) -> list[ObjectWork]:
    """One unit of work per object key: its newest event in the batch (a version created, or a deletion).

    Newest by sequencer; without sequencers, the latest in the batch. Repeats
    of the newest event share its outcome; older events are stale. A permanent
    delete of one version only competes with that version's own events: it
    says nothing about another version of the key (docs/behaviour.md#deletions).
    """
    by_object: dict[tuple[str, str], list[Delivery]] = {}
    for delivery in deliveries:
        by_object.setdefault((delivery.obj.bucket, delivery.obj.key), []).append(delivery)
    work: list[ObjectWork] = []
    for candidates in by_object.values():
        newest = _newest(candidates)
        chosen = next(d for d in candidates if d.obj is newest)
        unit = ObjectWork(newest, backfill=chosen.backfill)
        for delivery in candidates:
            if delivery.obj.event_identity != newest.event_identity:
                unit.superseded.append(delivery.message_id)
            elif delivery.message_id not in unit.message_ids:
                unit.message_ids.append(delivery.message_id)
        work.append(unit)
    return work


def _newest(candidates: Sequence[Delivery]) -> S3ObjectEvent:
    def order(delivery: Delivery) -> tuple[str, int]:
        return (delivery.obj.sequencer_order or "", delivery.position)

    others = [d for d in candidates if not d.obj.removes_one_version]
    if not others:
        return max(candidates, key=order).obj
    newest = max(others, key=order)
    # A version's permanent delete wins only over the creation of that same version.
    version_deletes = [d for d in candidates if d.obj.removes_one_version and d.obj.version_id == newest.obj.version_id]
    return max([newest, *version_deletes], key=order).obj


class Action(Enum):
    """What to do with an object version, given what the table holds for the object."""

    LABEL = "label"  # no result for this version yet, and it is not older than the stored one
    PUBLISH_STORED = "publish-stored"  # stored but never announced, and nobody is announcing it
    DUPLICATE = "duplicate"  # stored and announced: acknowledge
    # The stored result's own bytes again, in a newer event (uploaded again to an unversioned bucket):
    # record the newer sequencer on it first, so that events older than this one are stale, then decide again.
    ADVANCE = "advance"
    STALE = "stale"  # older than the stored result: acknowledge
    IN_PROGRESS = "in-progress"  # stored; another attempt holds a fresh publish claim: retry later
    REMOVE = "remove"  # a deletion of the current result: mark it deleted, drop its index, announce Removed
    # A deletion with nothing to announce: of an object without a result (a tombstone), or a newer
    # deletion of a result already announced removed. Recorded for ordering.
    RECORD_DELETION = "record-deletion"
    UNRELATED = "unrelated"  # a permanent delete of a version that is not the current result's: acknowledge


def decide(
    state: StoredState | None,
    result_id: str,
    sequencer: str | None,
    *,
    now: float,
    claim_ttl_seconds: float,
    object_version: str | None = None,
) -> Action:
    """The action for the version ``result_id`` (with ``sequencer``) against the stored ``state``.

    ``object_version``: the version (``S3ObjectEvent.object_identity[2]``); a
    stored result of that same version under another resultId is a forced
    relabel of it (``autolabel backfill --force``): the notification is a duplicate.
    A newer event of the stored result's own bytes (the same bytes uploaded
    again to an unversioned bucket) is ADVANCE: before anything else, its
    sequencer is recorded, or an older event of another content (or a
    deletion) delivered after it would replace what S3 holds.
    """
    if state is None:
        return Action.LABEL
    if state.deleted and state.deletion is not None and state.deletion.removes_one_version:
        # A permanent delete of the result's version says nothing about other versions: they are
        # ordered against the deleted result, as if it were current; its own version stays deleted.
        if state.result_id == result_id or sequencer_is_newer(state.sequencer, sequencer):
            return Action.STALE
        return Action.LABEL
    if state.deleted:
        # A create never brings back a deleted result unless it is newer than the deletion.
        if sequencer_is_newer(sequencer, state.deletion_sequencer):
            return Action.LABEL
        if sequencer and state.deletion_sequencer:
            return Action.STALE
        # Sequencers unknown: the deleted version's own notification again is stale; another version is new.
        return Action.STALE if state.result_id == result_id else Action.LABEL
    same_bytes = state.result_id == result_id or (object_version is not None and state.object_version == object_version)
    if same_bytes and sequencer and (state.sequencer is None or sequencer_is_newer(sequencer, state.sequencer)):
        return Action.ADVANCE
    if state.result_id == result_id:
        return _same_result(state, now=now, claim_ttl_seconds=claim_ttl_seconds)
    if object_version is not None and state.object_version == object_version:
        return Action.DUPLICATE
    if sequencer_is_newer(state.sequencer, sequencer):
        return Action.STALE
    return Action.LABEL


def _same_result(state: StoredState, *, now: float, claim_ttl_seconds: float) -> Action:
    """The stored result is the one this record would produce."""
    if state.published:
        return Action.DUPLICATE
    claimed_at = state.publish_claimed_at
    if claimed_at is not None and now - claimed_at < claim_ttl_seconds:
        return Action.IN_PROGRESS
    return Action.PUBLISH_STORED


def decide_backfill(
    state: StoredState | None,
    result_id: str,
    object_version: str,
    *,
    force: bool,
    now: float,
    claim_ttl_seconds: float,
    replaces: str | None = None,
) -> Action:
    """The action for a listed object (a backfill message) against the stored ``state``.

    A listing has no sequencer, so a backfill fills gaps and never replaces
    another version's result (docs/behaviour.md#backfill):

    - no result for the object and model: label it;
    - the result this message would write (same resultId: a retry, or the
      notification of the same version got there first): as for a notification;
    - a result of another version: stale, left alone (that version's
      notification decides), unless it is ``replaces``, a version the listing
      showed to be non-current (older): then label (the conditional write
      still loses to a newer result stored meanwhile);
    - a result of the same version: done, unless ``force``, which labels it
      again under a new resultId (``forced_result_id``), but not while another
      attempt holds a fresh claim to publish the stored one.
    """
    if state is None:
        return Action.LABEL
    if state.deleted:
        # Deleted: only a version the listing proved newer than the deleted one brings a result back.
        proven_newer = replaces is not None and state.version_id == replaces and state.object_version != object_version
        return Action.LABEL if proven_newer else Action.STALE
    if state.result_id == result_id:
        return _same_result(state, now=now, claim_ttl_seconds=claim_ttl_seconds)
    if state.object_version != object_version:
        return Action.LABEL if replaces is not None and state.version_id == replaces else Action.STALE
    if not force:
        return Action.DUPLICATE
    claimed_at = state.publish_claimed_at
    if not state.published and claimed_at is not None and now - claimed_at < claim_ttl_seconds:
        return Action.IN_PROGRESS
    return Action.LABEL


def decide_removal(
    state: StoredState | None, removal: S3ObjectEvent, removal_id: str, *, now: float, claim_ttl_seconds: float
) -> Action:
    """The action for the deletion ``removal`` (id ``removal_id``) against the stored ``state``.

    docs/behaviour.md#deletions: a deletion older than the current result
    changes nothing; a permanent delete of another version than the labeled
    one changes nothing; a deletion recorded but not yet announced is
    announced (once); a result whose own event is being announced right now
    is left to finish first.
    """
    if state is not None and state.removal_id == removal_id:
        if state.removal_published:
            return Action.DUPLICATE
        return _claimed_or(state, Action.PUBLISH_STORED, now=now, claim_ttl_seconds=claim_ttl_seconds)
    if removal.removes_one_version:
        if state is None or state.deleted or state.version_id != removal.version_id:
            return Action.UNRELATED
    elif state is None:
        return Action.RECORD_DELETION
    if state.deleted:
        # A permanent delete of the result's version orders only that version: a deletion of the key
        # newer than the deleted result is recorded over it (it orders the other versions' uploads).
        recorded = state.deletion_sequencer
        if state.deletion is not None and state.deletion.removes_one_version:
            recorded = state.sequencer or recorded
        if not sequencer_is_newer(removal.sequencer, recorded):
            newer = sequencer_is_newer(recorded, removal.sequencer)
            return Action.STALE if newer else Action.DUPLICATE
        # A newer deletion of a deleted object (another delete marker, or a delete after an upload not
        # seen yet) is recorded, so that it orders later events; the result was announced removed already.
        if state.removal_published:
            return Action.RECORD_DELETION
        return _claimed_or(state, Action.REMOVE, now=now, claim_ttl_seconds=claim_ttl_seconds)
    if sequencer_is_newer(state.sequencer, removal.sequencer):
        return Action.STALE
    if state.published:
        return Action.REMOVE
    return _claimed_or(state, Action.REMOVE, now=now, claim_ttl_seconds=claim_ttl_seconds)


def _claimed_or(state: StoredState, action: Action, *, now: float, claim_ttl_seconds: float) -> Action:
    """IN_PROGRESS while another attempt holds a fresh publish claim on ``state``, else ``action``."""
    claimed_at = state.publish_claimed_at
    if claimed_at is not None and now - claimed_at < claim_ttl_seconds:
        return Action.IN_PROGRESS
    return action


def is_own_write(state: StoredState | None, token: str) -> bool:
    """The current item is the one the attempt ``token`` wrote (its answer may have been lost)."""
    return state is not None and state.write_id == token and not state.finished


def publication_uncertain(claim_uncertain: bool, state: StoredState | None, token: str) -> bool:
    """Whether publishing a stored result may repeat an event EventBridge already accepted.

    True when the claim said so (the result was marked uncertain, or the claim
    took over another attempt's), or when the batch read already showed it: a
    lost answer to our claim may have hidden that it took over another's.
    """
    return claim_uncertain or (
        state is not None
        and (state.publish_uncertain or (state.publish_claimed_at is not None and state.publish_claimed_by != token))
    )


# Retried records (transient faults) come back after a jittered delay that
# doubles with each receive, instead of the queue's 6-minute visibility
# timeout: 2.5-5 s, 5-10 s, 10-20 s, ... up to 150-300 s. Fast when a fault is
# brief (most are: one throttled call), while a fault that lasts minutes still
# spreads a message's receives over minutes: with the default maxReceiveCount
# of 10 a message survives a 10-minute throttling storm before the DLQ even at
# the shortest jitter (2.5 + 5 + ... + 150 + 150 + 150 s = 607 s).
RETRY_BASE_SECONDS = 5
RETRY_CAP_SECONDS = 300


def retry_delay_seconds(receive_count: int, draw: Callable[[float, float], float], *, not_before: float = 0.0) -> int:
    """Seconds until a record retried after its ``receive_count``-th receive is visible again.

    ``draw(low, high)`` picks the jitter (``random.uniform``): records that
    failed together (a throttled batch) do not all come back at once.
    ``not_before``: wait at least this long (a publish claim that must expire first).
    """
    ceiling = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, min(receive_count, 20) - 1))
    return max(1, math.ceil(max(draw(ceiling / 2, ceiling), not_before)))


def claim_expires_in(state: StoredState | None, *, now: float, claim_ttl_seconds: float) -> float:
    """Seconds until the publish claim on ``state`` expires (0 when there is none)."""
    if state is None or state.publish_claimed_at is None:
        return 0.0
    return max(0.0, state.publish_claimed_at + claim_ttl_seconds - now)
