"""The backfill's selection and skip rules, one copy for the command's listing and the job in AWS.

docs/behaviour.md#backfill: which listed objects a backfill sends (suffix,
LastModified window, size bounds), and how each one compares with its stored
result of the stack's model version: ``new`` (none), ``labeled`` (a result of
this very version), ``older`` (a result of a version the bucket shows to be
non-current: this one replaces it) or ``other`` (a version it cannot order:
left to that version's notification).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from labeler.domain.s3_notification import IMAGE_EXTENSIONS

NEW, LABELED, OLDER, OTHER = "new", "labeled", "older", "other"

# Why a listed object was not sent to the backfill queue (the job's report names each).
SKIP_SUFFIX = "suffix not selected"
SKIP_BEFORE = "last modified before --since"
SKIP_AFTER = "last modified at or after --until"
SKIP_SMALL = "smaller than --min-size"
SKIP_LARGE = "larger than --max-size"
SKIP_LABELED = "already labeled by this model version"
SKIP_OTHER_VERSION = "another object version's result is stored"
SKIP_GONE = "deleted since it was listed"
SKIP_NEVER_LABELED = "--stale: no result of any model version"
SKIP_NOT_STALE = "--stale: the current model version has a result of this object"


class Stored(Protocol):
    """What the rules read of a stored result (``results_store.StoredState``)."""

    @property
    def version_id(self) -> str | None: ...

    @property
    def object_version(self) -> str: ...


@dataclass(frozen=True)
class Selection:
    """Which listed objects a backfill considers, besides its prefix."""

    since: datetime | None = None
    until: datetime | None = None  # exclusive
    suffixes: tuple[str, ...] = IMAGE_EXTENSIONS  # compared lower-case, as the labeler does
    min_size: int | None = None  # bytes, inclusive
    max_size: int | None = None  # bytes, inclusive

    def reason_to_skip(self, key: str, size: int, modified: datetime) -> str | None:
        """None when the object is selected, else why not."""
        if not key.lower().endswith(self.suffixes):
            return SKIP_SUFFIX
        if self.since is not None and modified < self.since:
            return SKIP_BEFORE
        if self.until is not None and modified >= self.until:
            return SKIP_AFTER
        if self.min_size is not None and size < self.min_size:
            return SKIP_SMALL
        if self.max_size is not None and size > self.max_size:
            return SKIP_LARGE
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "suffixes": list(self.suffixes),
            "minSize": self.min_size,
            "maxSize": self.max_size,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Selection:
        def moment(value: Any) -> datetime | None:
            return datetime.fromisoformat(str(value)) if value else None

        return cls(
            since=moment(data.get("since")),
            until=moment(data.get("until")),
            suffixes=tuple(str(s).lower() for s in data.get("suffixes") or IMAGE_EXTENSIONS),
            min_size=_optional_int(data.get("minSize")),
            max_size=_optional_int(data.get("maxSize")),
        )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def listed_identity(version_id: str | None, etag: str) -> str:
    """The object version as ``S3ObjectEvent.object_identity`` names it: its versionId, else its ETag."""
    version = version_id if version_id and version_id != "null" else None
    return version or f"etag:{etag.strip(chr(34))}"


def classify(version_id: str | None, etag: str, older_versions: tuple[str, ...], state: Stored | None) -> str:
    """``new``, ``labeled``, ``older`` or ``other`` (module docstring); ``older_versions``: non-current ids."""
    if state is None:
        return NEW
    if state.object_version == listed_identity(version_id, etag):
        return LABELED
    if state.version_id is not None and state.version_id in older_versions:
        return OLDER
    return OTHER
