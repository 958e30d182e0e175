"""`autolabel backfill ... --in-aws`, `backfill status JOB`, `backfill cancel JOB` against moto.

moto's Step Functions (not executing) holds the state machine with the
template's definition and records executions; the job the command started is
then run by the emulator (local.backfill_job_emulator) from the input the
command gave it, so what the command starts is what the job runs.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from autolabel import backfill_job
from local.backfill_job_emulator import EmulatedBackfillJob, job_facts
from local.samples import make_image
from local.stack_template import default_template
from tests.support.cli import RunCli
from tests.support.harness import ARN, Harness

IMAGE = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
REPORTS = "autolabel-backfill-reports"


@pytest.fixture
def deployment(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[Harness, EmulatedBackfillJob]:
    resources = harness.resources
    harness.s3.create_bucket(Bucket=REPORTS)
    job = EmulatedBackfillJob(
        job_facts(default_template()), resources, REPORTS, ARN, harness.s3, harness.sqs, harness.dynamodb
    )
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="autolabel-backfill",
        definition=json.dumps(job.definition),
        roleArn="arn:aws:iam::123456789012:role/autolabel-backfill",
    )["stateMachineArn"]
    for name, value in {
        "AUTOLABEL_TABLE": resources.table_name,
        "AUTOLABEL_BACKFILL_QUEUE_URL": resources.backfill_queue_url,
        "AUTOLABEL_BACKFILL_DLQ_URL": resources.backfill_dead_letter_queue_url,
        "AUTOLABEL_PROJECT_VERSION_ARN": ARN,
        "AUTOLABEL_BUCKET": resources.bucket,
        "AUTOLABEL_BACKFILL_JOB_ARN": machine,
        "AUTOLABEL_BACKFILL_REPORT_BUCKET": REPORTS,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return harness, job


def existing(harness: Harness, count: int) -> list[str]:
    keys = [f"old/img-{i:04d}.png" for i in range(count)]
    for key in keys:
        harness.s3.put_object(Bucket=harness.resources.bucket, Key=key, Body=IMAGE)
    harness.discard_notifications()
    return keys


def started_input(job_id: str) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions")
    (execution,) = [e for e in sfn.list_executions(stateMachineArn=_machine())["executions"] if e["name"] == job_id]
    return dict(json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"]))


def _machine() -> str:
    return str(boto3.client("stepfunctions").list_state_machines()["stateMachines"][0]["stateMachineArn"])


def run_job(harness: Harness, job: EmulatedBackfillJob, document: dict[str, Any]) -> None:
    labeler = harness.trigger("backfill")
    job.interpreter(wait=lambda _s: labeler.run_until_idle(max_seconds=60)).run(document)


def test_in_aws_estimates_starts_the_job_and_returns_its_id(
    deployment: tuple[Harness, EmulatedBackfillJob], cli: RunCli, capsys: pytest.CaptureFixture[str]
) -> None:
    harness, job = deployment
    keys = existing(harness, 25)
    uri = f"s3://{harness.resources.bucket}/old/"
    run = cli("backfill", uri, "--in-aws", "--yes", "--output", "json", "--min-size", "1")
    assert run.code == 0, run.err
    started = json.loads(run.out)
    assert started["estimate"]["objectsMatching"] == 25
    assert started["estimate"]["modelStartAndIdleMinutes"] == 35
    assert "25 object(s) to label" in run.err
    document = started_input(started["job"])
    assert document["prefix"] == "old/" and document["report"] == f"jobs/{started['job']}/"
    retention = int(
        harness.sqs.get_queue_attributes(
            QueueUrl=harness.resources.backfill_queue_url, AttributeNames=["MessageRetentionPeriod"]
        )["Attributes"]["MessageRetentionPeriod"]
    )
    assert document["selection"]["minSize"] == 1
    assert document["paceLimit"] == retention // 2  # what 1 image/s (assumed, 1 unit) labels in half the retention
    status = json.loads(cli("backfill", "status", started["job"], "--output", "json", "--no-progress").out)
    assert status["status"] == "RUNNING" and "report" not in status
    run_job(harness, job, document)
    capsys.readouterr()
    done = cli("backfill", "status", started["job"], "--no-progress")
    assert done.code == 0, done.err
    assert "listed 25, skipped 0, labeled 25, failed 0, deadLettered 0 (reconciled: True)" in done.out
    assert all(harness.result(key) is not None for key in keys)


def test_an_expensive_job_asks_first_and_refuses_without_a_terminal(
    deployment: tuple[Harness, EmulatedBackfillJob], cli: RunCli
) -> None:
    harness, _job = deployment
    uri = f"s3://{harness.resources.bucket}/old/"
    refused = cli("backfill", uri, "--in-aws", "--objects", "10000000")
    assert refused.code == 252 and "pass --yes" in refused.err
    assert boto3.client("stepfunctions").list_executions(stateMachineArn=_machine())["executions"] == []
    dry = json.loads(cli("backfill", uri, "--in-aws", "--dry-run", "--objects", "10000000", "--output", "json").out)
    # 10M at the assumed 1 image/s: 2,777.8 hours, plus 35 minutes of start and idle, at $4 per unit-hour.
    assert dry["modelHours"] == round(10_000_000 / 3600 + 35 / 60, 2)
    assert dry["estimatedModelCostUsd"] == round((10_000_000 / 3600 + 35 / 60) * 4, 2)
    assert 0 < dry["estimatedEngineCostUsd"] < 20


def test_confirmation_on_a_terminal(deployment: tuple[Harness, EmulatedBackfillJob]) -> None:
    shape = backfill_job.JobShape(4, 100)
    estimate = backfill_job.Estimate(10_000, 1.0, "assumed", 1, shape)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    backfill_job.confirm(estimate, 5.0, stdin=Terminal("y\n"), stderr=io.StringIO())
    with pytest.raises(KeyboardInterrupt):
        backfill_job.confirm(estimate, 5.0, stdin=Terminal("n\n"), stderr=io.StringIO())
    backfill_job.confirm(estimate, 1_000_000.0, stdin=io.StringIO(""), stderr=io.StringIO())  # below: no question


def test_cancel_stops_the_job_and_resume_continues_its_run(
    deployment: tuple[Harness, EmulatedBackfillJob], cli: RunCli
) -> None:
    harness, _job = deployment
    existing(harness, 3)
    uri = f"s3://{harness.resources.bucket}/old/"
    first = json.loads(cli("backfill", uri, "--in-aws", "--yes", "--force", "--output", "json").out)
    cancelled = cli("backfill", "cancel", first["job"])
    assert cancelled.code == 0 and "ABORTED" in cancelled.out and f"--resume {first['job']}" in cancelled.out
    status = json.loads(cli("backfill", "status", first["job"], "--output", "json", "--no-progress").out)
    assert status["status"] == "ABORTED"
    resumed = json.loads(cli("backfill", uri, "--in-aws", "--yes", "--resume", first["job"], "--output", "json").out)
    assert resumed["job"] != first["job"] and resumed["run"] == first["run"]
    assert started_input(resumed["job"])["force"] is True  # the run's options, not this command line's
    assert (
        cli(
            "backfill", f"s3://{harness.resources.bucket}/elsewhere/", "--in-aws", "--yes", "--resume", first["job"]
        ).code
        == 252
    )


def test_bad_job_commands_are_refused(deployment: tuple[Harness, EmulatedBackfillJob], cli: RunCli) -> None:
    harness, _job = deployment
    uri = f"s3://{harness.resources.bucket}/old/"
    assert cli("backfill", "status", "backfill-nope").code == 1
    assert cli("backfill", "cancel").code == 252
    assert cli("backfill", uri, "--stale").code == 252  # --stale is for a job
    assert cli("backfill", uri, "--in-aws", "--stale", "--force", "--yes").code == 252
    assert cli("backfill", uri, "--in-aws", "--yes", "--images-per-second", "0.0001").code == 252  # pace < batches
