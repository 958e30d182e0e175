"""What the labeler knows of an object's stored result before deciding: a value, read by the result repository.

``ObjectRef`` names one object's result for one model version; ``StoredState``
is what the decisions (``logic.decisions``) need of it; a ``Claim`` is the
right to publish it, taken by one attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labeler.domain.removal import Deletion

ObjectRef = tuple[str, str, str]  # (bucket, key, projectVersionArn)
# What mark_published records: (ref, writeId of the stored result or deletion announced, its resultId or removalId).
Publication = tuple[ObjectRef, str, str]


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
