"""The ``summarize`` step: the reconcile batches' counts and the batches the engine gave up on, in report.json.

listed = skipped + labeled + failed + dead-lettered; the Distributed Maps'
ResultWriter output (a manifest and its result files) names each child's
output, and each failed child's input and error.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from labeler.backfill.job_input import REPORT_ROOT, Job
from labeler.backfill.ledger import COUNTS, Item, Outcome, json_line, ledger_key
from labeler.backfill.ports import Reports


def summarize(event: Mapping[str, Any], reports: Reports) -> dict[str, Any]:
    job = Job.from_json(event["job"])
    totals: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for output in _outputs(reports, event["reconcile"], "SUCCEEDED"):
        totals.update({k: int(v) for k, v in output.items() if isinstance(v, int)})
        reasons.update(output.get("skippedBy", {}))
    engine_failures = [row for batch in _failures(reports, event["enqueue"]) for row in batch]
    engine_failures += [row for batch in _failures(reports, event["reconcile"]) for row in batch]
    for row in engine_failures:
        if row.pop("ledgered", False):
            row["counted"] = "see its ledger"  # counted by the reconcile (failed: sending did not complete)
    if engine_failures:
        body = "".join(json_line(row) for row in engine_failures)
        reports.write(f"{job.report}not-labeled/engine-failures.jsonl", body)
        totals["listed"] += sum(1 for row in engine_failures if row.get("counted") == "failed")
        totals["failed"] += sum(1 for row in engine_failures if row.get("counted") == "failed")
        totals["unreconciledLedgers"] += sum(1 for row in engine_failures if row.get("counted") == "unreconciled")
    report = _report(job, reports.bucket, totals, reasons)
    reports.write(f"{job.report}report.json", json.dumps(report, indent=1))
    return report


def _report(job: Job, report_bucket: str, totals: Counter[str], reasons: Counter[str]) -> dict[str, Any]:
    counts = {name: totals[name] for name in COUNTS}
    parts = counts["skipped"] + counts["labeled"] + counts["failed"] + counts["deadLettered"]
    return {
        "job": job.report.removeprefix(REPORT_ROOT).rstrip("/"),
        "run": job.run,
        "bucket": job.bucket,
        "prefix": job.prefix,
        "counts": counts,
        "skippedBy": dict(reasons),
        "notLabeled": f"s3://{report_bucket}/{job.report}not-labeled/",
        # A ledger the engine could not reconcile leaves its objects out of every count.
        "unreconciledLedgers": totals["unreconciledLedgers"],
        "reconciled": counts["listed"] == parts and not totals["unreconciledLedgers"],
    }


def _result_files(reports: Reports, written: Mapping[str, Any], status: str) -> Iterable[dict[str, Any]]:
    details = written["ResultWriterDetails"]
    manifest = dict(reports.read_json(details["Bucket"], details["Key"]))
    bucket = manifest.get("DestinationBucket", details["Bucket"])
    for entry in manifest.get("ResultFiles", {}).get(status, []):
        yield from reports.read_json(bucket, entry["Key"])


def _outputs(reports: Reports, written: Mapping[str, Any], status: str) -> Iterable[dict[str, Any]]:
    for child in _result_files(reports, written, status):
        yield json.loads(child.get("Output") or "{}")


def _failures(reports: Reports, written: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
    """Per failed child: its objects (enqueue) or ledger files (reconcile), each with the engine's error."""
    failures = []
    for child in _result_files(reports, written, "FAILED"):
        batch = json.loads(child.get("Input") or "{}")
        why = f"the engine gave up on its batch: {child.get('Error', '')}: {child.get('Cause', '')}"[:1000]
        action = batch.get("BatchInput", {}).get("action")
        counted = "failed" if action == "enqueue" else "unreconciled"
        ledgered = action == "enqueue" and _ledger_exists(reports, batch)
        rows = [
            {"key": raw.get("Key"), "counted": counted, "reason": why, "ledgered": ledgered}
            for raw in batch.get("Items", [])
        ]
        failures.append(rows)
    return failures


def _ledger_exists(reports: Reports, batch: Mapping[str, Any]) -> bool:
    """Whether the failed batch wrote its ledger (it failed while sending): then the reconcile counted it."""
    job = Job.from_json(batch["BatchInput"]["job"])
    outcomes = [Outcome(Item.from_reader(raw), "") for raw in batch.get("Items", [])]
    return reports.exists(ledger_key(job, outcomes))
