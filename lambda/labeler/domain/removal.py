"""A deletion of a labeled object: what is stored with the result, and what is announced.

docs/behaviour.md#deletions: the result is kept and marked deleted (``deletedAt``,
``deletion``, ``removalId``), its label-index items are removed, and consumers
get one ``Custom Labels Removed`` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from labeler.domain.s3_notification import DELETE, S3ObjectEvent
from labeler.domain.timestamps import iso_timestamp

# The status of a deleted result (its labels kept for history), and of a
# tombstone: a deletion recorded for an object that had no result yet, which
# keeps an older notification from labeling it.
DELETED = "DELETED"


@dataclass(frozen=True)
class Deletion:
    """The deletion event as stored on the result item and announced (its item form: ``adapters.result_items``)."""

    removal_id: str
    deleted_at: str
    event_name: str
    version_id: str | None
    sequencer: str | None

    @classmethod
    def of(cls, obj: S3ObjectEvent, project_version_arn: str, moment: datetime) -> Deletion:
        return cls(
            obj.removal_id(project_version_arn), iso_timestamp(moment), obj.event_name, obj.version_id, obj.sequencer
        )

    @property
    def removes_one_version(self) -> bool:
        """A permanent delete of one version: it orders that version's creation only."""
        return self.event_name == DELETE and self.version_id is not None


@dataclass(frozen=True)
class Removal:
    """What a ``Custom Labels Removed`` event announces: the removed result and the deletion."""

    result_id: str
    bucket: str
    key: str
    version_id: str | None
    project_version_arn: str
    label_names: list[str]
    deletion: Deletion
