"""What the backfill job's steps need of the world, as ports: ``aws.py`` implements them with boto3 clients.

The results table is read through the read side (``labeler.read_side``), which
fills ``ResultReads``; a missing S3 object is an answer (``None``, ``False``),
every other AWS error is raised as it came and the step retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from labeler.domain.stored_state import ObjectRef, StoredState


class ResultReads(Protocol):
    """The results table, read only."""

    def current_states(self, refs: Sequence[ObjectRef]) -> dict[ObjectRef, StoredState | None]: ...

    def model_versions(self, bucket: str, key: str) -> list[str]: ...

    def result_items(self, refs: Sequence[ObjectRef], projection: Sequence[str]) -> list[dict[str, Any]]: ...


class ImageObjects(Protocol):
    """The image bucket: its versioning and its objects' current state."""

    def is_versioned(self, bucket: str) -> bool: ...

    def head(self, bucket: str, key: str, version_id: str | None = None) -> dict[str, Any] | None: ...


class Reports(Protocol):
    """The job's report bucket, and the Distributed Maps' ResultWriter output."""

    @property
    def bucket(self) -> str: ...

    def write(self, key: str, text: str) -> None: ...

    def read_lines(self, key: str) -> list[dict[str, Any]]: ...

    def read_lines_if_any(self, key: str) -> list[dict[str, Any]] | None: ...

    def exists(self, key: str) -> bool: ...

    def read_json(self, bucket: str, key: str) -> Any: ...


class BackfillQueue(Protocol):
    """The backfill queue: its backlog (the pace) and batches of up to 10 messages."""

    def backlog(self) -> int: ...

    def send_batch(self, entries: Sequence[dict[str, str]]) -> set[str]:
        """The ids of the entries SQS refused."""
        ...


@dataclass(frozen=True)
class JobPorts:
    """What the steps read and write, one port each (the wiring in ``labeler.backfill_job`` fills them)."""

    results: ResultReads
    objects: ImageObjects
    reports: Reports
    queue: BackfillQueue
