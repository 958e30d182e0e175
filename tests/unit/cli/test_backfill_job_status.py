"""`autolabel backfill status JOB` reads the engine's Map Run counts (botocore Stubber, the real service model)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import boto3
from botocore.stub import Stubber

from autolabel import backfill_job

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:autolabel-backfill:backfill-20261207T180000-6f1c2a9b"
STARTED = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)


def counts(total: int, succeeded: int, failed: int = 0) -> dict[str, int]:
    return {
        "pending": total - succeeded - failed,
        "running": 0,
        "succeeded": succeeded,
        "failed": failed,
        "timedOut": 0,
        "aborted": 0,
        "total": total,
        "resultsWritten": succeeded,
    }


def test_status_reads_the_listing_map_run_and_computes_rate_and_eta() -> None:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    runs = [
        {"executionArn": EXECUTION, "mapRunArn": f"{EXECUTION}-map/{name}", "stateMachineArn": "x", "startDate": when}
        for name, when in (("b", STARTED + timedelta(hours=2)), ("a", STARTED))
    ]
    with Stubber(sfn) as stub:
        stub.add_response("list_map_runs", {"mapRuns": runs}, {"executionArn": EXECUTION})
        for arn, total, done in ((f"{EXECUTION}-map/a", 1000, 400), (f"{EXECUTION}-map/b", 4, 1)):
            stub.add_response(
                "describe_map_run",
                {
                    "mapRunArn": arn,
                    "executionArn": EXECUTION,
                    "status": "RUNNING",
                    "startDate": STARTED,
                    "maxConcurrency": 4,
                    "toleratedFailurePercentage": 5.0,
                    "toleratedFailureCount": 0,
                    "itemCounts": counts(total, done, 2),
                    "executionCounts": counts(total, done, 2),
                },
                {"mapRunArn": arn},
            )
        maps = backfill_job.map_run_counts(sfn, EXECUTION)
    assert maps["ListAndEnqueue"]["total"] == 1000 and maps["Reconcile"]["total"] == 4
    described = {"name": "backfill-20261207T180000-6f1c2a9b", "status": "RUNNING", "startDate": STARTED}
    data = backfill_job.status(described, maps, None, backlog=120, now=STARTED + timedelta(seconds=100))
    assert (data["listed"], data["processed"], data["failedItems"]) == (1000, 402, 2)
    assert data["itemsPerSecond"] == 4.02 and data["eta"] == "2m28s"
    stream = io.StringIO()
    backfill_job.progress_line(data, stream)
    assert "402/1000" in stream.getvalue() and "queued=120" in stream.getvalue()


def test_without_map_runs_the_status_still_answers() -> None:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    with Stubber(sfn) as stub:
        stub.add_client_error("list_map_runs", "UnknownOperationException")
        assert backfill_job.map_run_counts(sfn, EXECUTION) == {}


def test_a_resume_in_the_same_second_gets_its_own_execution_name() -> None:
    # Step Functions refuses a second execution of the same name (ExecutionAlreadyExists).
    run = backfill_job.new_run_id()
    first, resumed = backfill_job.job_name(run, STARTED), backfill_job.job_name(run, STARTED)
    assert first != resumed
    assert first.startswith(f"backfill-20261207T180000-{run[:8]}-") and len(first) <= 80
