"""The ``reconcile`` step: once the backfill queue drained, what became of each object a ledger sent.

Each object sent is looked up in the results table: labeled, failed (a FAILED
result) or dead-lettered (no result of its version). The objects not labeled,
and why, are written next to the ledger.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from labeler.backfill.job_input import Job, JobConfig
from labeler.backfill.ledger import COUNTS, ENQUEUED, SENDING, SKIPPED, json_line
from labeler.backfill.ports import JobPorts
from labeler.domain import backfill_rules as rules
from labeler.domain.backfill_request import backfill_request, forced_result_id
from labeler.domain.label_result import FAILED, LABELED

PUBLIC_COLUMNS = ("key", "versionId", "etag", "size", "counted", "reason")
STORED_COLUMNS = ("resultId", "status", "versionId", "etag", "error", "key")
SEND_INCOMPLETE = "its batch failed while sending (engine-failures.jsonl names the engine's error)"
# Why a sent object has no result of its version after the lane drained.
DEAD_LETTERED = "dead-lettered: no result of this object version after the backfill queue drained (backfill DLQ)"


def reconcile(event: Mapping[str, Any], config: JobConfig, ports: JobPorts) -> dict[str, Any]:
    job = Job.from_json(event["BatchInput"]["job"])
    totals: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for raw in event.get("Items", []):
        ledger = str(raw["Key"])
        if not ledger.startswith(f"{job.report}ledger/"):
            raise ValueError(f"{ledger} is not a ledger of this job")
        lines = ports.reports.read_lines(ledger)
        rows = reconcile_rows(ports, config.project_version_arn, job, lines)
        totals.update(row["counted"] for row in rows)
        reasons.update(row["reason"] for row in rows if row["counted"] == SKIPPED)
        not_labeled = [row for row in rows if row["counted"] != LABELED.lower()]
        name = ledger.rsplit("/", 1)[-1]
        body = "".join(json_line({k: row[k] for k in PUBLIC_COLUMNS if k in row}) for row in not_labeled)
        ports.reports.write(f"{job.report}not-labeled/{name}", body)
        totals["listed"] += len(lines)
    return {name: totals[name] for name in COUNTS} | {"skippedBy": dict(reasons)}


def reconcile_rows(ports: JobPorts, model: str, job: Job, lines: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each ledger line with what it counts as (``counted``) and why."""
    sent = [line for line in lines if line["outcome"] in (ENQUEUED, SENDING)]
    refs = [(job.bucket, line["key"], model) for line in sent]
    stored = {item["key"]: item for item in ports.results.result_items(refs, STORED_COLUMNS)}
    rows = []
    for line in lines:
        if line["outcome"] == SKIPPED:
            rows.append({**line, "counted": SKIPPED})
            continue
        counted, reason = fate(model, job, line, stored.get(line["key"]))
        if line["outcome"] == SENDING and counted == "deadLettered":
            counted, reason = "failed", SEND_INCOMPLETE
        rows.append({**line, "counted": counted, "reason": reason})
    return rows


def fate(model: str, job: Job, line: Mapping[str, Any], item: Mapping[str, Any] | None) -> tuple[str, str]:
    """('labeled' | 'failed' | 'deadLettered', why) of one object sent."""
    if item is None:
        return "deadLettered", DEAD_LETTERED
    listed = rules.listed_identity(line.get("versionId"), str(line.get("etag", "")))
    stored = rules.listed_identity(item.get("versionId"), str(item.get("etag", "")))
    if stored != listed:
        return "deadLettered", DEAD_LETTERED + f"; the stored result is of {stored}"
    if job.force and item.get("resultId") != _forced_id(model, job, line):
        return "deadLettered", DEAD_LETTERED + " (the stored result is not this run's relabel)"
    if item.get("status") == FAILED:
        error = item.get("error") or {}
        return "failed", f"labeling failed: {error.get('code', '')}: {error.get('message', '')}".strip()
    return LABELED.lower(), ""


def _forced_id(model: str, job: Job, line: Mapping[str, Any]) -> str:
    """The result id this run's forced relabel of the line's object stores."""
    request = backfill_request(
        job.bucket,
        line["key"],
        version_id=line.get("versionId"),
        etag=str(line["etag"]),
        size=int(line.get("size", 0)),
        run_id=job.run,
        force=True,
    )
    return forced_result_id(request.obj, model, job.run)
