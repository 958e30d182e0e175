"""A batch's ledger: each listed object and what became of it, one JSON line each, and the batch's counts."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from labeler.backfill.job_input import Job

# What became of a listed object (the ledger's "outcome").
ENQUEUED, SKIPPED = "enqueued", "skipped"
SENDING = "sending"  # written before the send; "enqueued" once every message was accepted
# What the reconcile and the report count: listed = skipped + labeled + failed + deadLettered.
COUNTS = ("listed", "skipped", "labeled", "failed", "deadLettered")


@dataclass
class Item:
    """A listed object as the ItemReader gives it (listObjectsV2; an S3 Inventory manifest's rows alike)."""

    key: str
    etag: str
    size: int
    last_modified: datetime
    version_id: str | None = None

    @classmethod
    def from_reader(cls, raw: Mapping[str, Any]) -> Item:
        modified = raw.get("LastModified", raw.get("LastModifiedDate"))
        if isinstance(modified, int | float):
            moment = datetime.fromtimestamp(float(modified), UTC)
        else:
            moment = datetime.fromisoformat(str(modified).replace("Z", "+00:00"))
        version = raw.get("VersionId")
        return cls(
            key=str(raw["Key"]),
            etag=str(raw.get("Etag", raw.get("ETag", ""))).strip('"'),
            size=int(raw.get("Size", 0)),
            last_modified=moment if moment.tzinfo else moment.replace(tzinfo=UTC),
            version_id=str(version) if version and version != "null" else None,
        )


@dataclass
class Outcome:
    item: Item
    outcome: str
    reason: str = ""
    replaces: str | None = None

    def ledger_line(self) -> dict[str, Any]:
        line = {"key": self.item.key, "versionId": self.item.version_id, "etag": self.item.etag}
        return {**line, "size": self.item.size, "outcome": self.outcome, "reason": self.reason}


def ledger_key(job: Job, outcomes: Sequence[Outcome]) -> str:
    """The same batch (a retry) writes the same ledger file."""
    digest = hashlib.sha256("\0".join(o.item.key for o in outcomes).encode()).hexdigest()[:24]
    return f"{job.report}ledger/{digest}.jsonl"


def ledger_text(outcomes: Sequence[Outcome], *, sending: bool) -> str:
    """The ledger's lines; while ``sending``, what is to be sent says so (not yet "enqueued")."""
    lines = []
    for outcome in outcomes:
        line = outcome.ledger_line()
        if sending and line["outcome"] == ENQUEUED:
            line["outcome"] = SENDING
        lines.append(json_line(line))
    return "".join(lines)


def json_line(row: Mapping[str, Any]) -> str:
    return json.dumps(row, separators=(",", ":")) + "\n"


def sent_keys(lines: Sequence[Mapping[str, Any]]) -> set[str]:
    """The objects a ledger says were sent, or were being sent."""
    return {str(line["key"]) for line in lines if line.get("outcome") in (ENQUEUED, SENDING)}


def counts_of(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    reasons = Counter(o.reason for o in outcomes if o.outcome == SKIPPED)
    enqueued = sum(1 for o in outcomes if o.outcome == ENQUEUED)
    return {
        "listed": len(outcomes),
        "enqueued": enqueued,
        "skipped": len(outcomes) - enqueued,
        "skippedBy": dict(reasons),
    }
