"""`make backfill-demo`: backfill a prefix of thousands of objects in the emulator, interrupted and resumed.

An embedded moto server holds the stack's resources (as `make local`). The
bucket gets N objects that were there "before autolabel" (their notifications
are discarded). Then the real command, `python -m autolabel backfill`, runs
as a subprocess against the emulator with its progress bar, while this
process plays the labeler's backfill trigger (the real handler, the emulated
model). The first run is interrupted (SIGINT, as Ctrl-C, or ``--stop-after``),
`backfill status` shows where it stopped, the same command resumes it with
``--wait``, and the end is checked: every object has one result, announced by
exactly one event, and was sent to the model once.

    .venv/bin/python -m local.backfill_demo [--objects 3000] [--interrupt-at 1000]

With ``--in-aws`` (``make backfill-demo IN_AWS=1``) the same prefix is
backfilled by the job in AWS, emulated (docs/backfill.md): `autolabel backfill
--in-aws` starts it in moto's Step Functions, this process runs the
template's state machine with local.sfn_interpreter and the real job
function; one batch's answer is lost after it sent (the engine retries it),
`autolabel backfill cancel` stops the job a third of the way, `--resume`
continues its run, and the end is checked: every object labeled once,
announced once, and the job's report reconciled.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3

from labeler import handler
from labeler.adapters.clients import create_clients
from labeler.queries import get_result
from labeler.wiring import build_pipeline
from local.emulator import (
    REGION,
    LocalResources,
    consumed_events,
    create_resources,
    drain_queue,
    labeler_config,
)
from local.fakes.fake_model import FakeCustomLabelsModel
from local.moto_process import moto_server_process
from local.poller import EventSourceMappingPoller
from local.run import lambda_output_to
from local.samples import make_image
from local.sfn_interpreter import ExecutionAborted
from local.stack_template import PLACEHOLDER_PROJECT_VERSION_ARN, default_facts

PREFIX = "archive/2026/"
JOB_REPORTS = "autolabel-backfill-reports"
# Slow enough that the queue fills to its pace limit and the command visibly waits for the model.
DEMO_IMAGES_PER_SECOND = 0.0005


@dataclasses.dataclass
class DemoReport:
    objects: int
    first_exit: int
    resumed_exit: int
    labeled: int
    events: int
    distinct_result_ids: int
    model_calls: int
    dead_letters: int

    @property
    def ok(self) -> bool:
        n = self.objects
        return (
            self.first_exit == 130
            and self.resumed_exit == 0
            and self.labeled == self.events == self.distinct_result_ids == self.model_calls == n
            and self.dead_letters == 0
        )


def _upload(s3: Any, bucket: str, count: int) -> list[str]:
    body = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
    keys = [f"{PREFIX}img-{i:05d}.png" for i in range(count)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=body), keys))
    return keys


def _command(endpoint: str, resources: LocalResources, checkpoint: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "autolabel",
        "backfill",
        *args,
        "--endpoint-url",
        endpoint,
        "--checkpoint",
        str(checkpoint),
    ]


def _cli_environment(resources: LocalResources) -> dict[str, str]:
    return {
        **os.environ,
        "AUTOLABEL_TABLE": resources.table_name,
        "AUTOLABEL_BACKFILL_QUEUE_URL": resources.backfill_queue_url,
        "AUTOLABEL_BACKFILL_DLQ_URL": resources.backfill_dead_letter_queue_url,
        "AUTOLABEL_PROJECT_VERSION_ARN": PLACEHOLDER_PROJECT_VERSION_ARN,
        "AUTOLABEL_BUCKET": resources.bucket,
    }


def _enqueued(checkpoint: Path) -> int:
    try:
        return int(json.loads(checkpoint.read_text())["progress"]["enqueued"])
    except (OSError, ValueError, KeyError):
        return 0


def _label_while(poller: EventSourceMappingPoller, process: subprocess.Popen[bytes], until: Any = None) -> None:
    """Play the labeler's backfill trigger while the command runs; ``until()`` True: interrupt it (SIGINT)."""
    interrupted = False
    while process.poll() is None:
        if until is not None and not interrupted and until():
            process.send_signal(signal.SIGINT)  # Ctrl-C
            interrupted = True
        if not poller.poll_once():
            time.sleep(0.05)


def run_demo(count: int, interrupt_at: int, output_dir: Path, *, use_signal: bool = True) -> DemoReport:
    facts = default_facts()
    # moto in its own process (as the soak), patched so that thousands of results neither slow it
    # down nor fill the memory.
    with moto_server_process() as endpoint:
        print(f"autolabel backfill demo: AWS EMULATED by moto on {endpoint}; Custom Labels model EMULATED")
        return _demo(facts, endpoint, count, interrupt_at, output_dir, use_signal=use_signal)


def _demo(
    facts: Any, endpoint: str, count: int, interrupt_at: int, output_dir: Path, *, use_signal: bool
) -> DemoReport:
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    resources = create_resources(
        facts,
        s3=s3,
        sqs=sqs,
        dynamodb=boto3.client("dynamodb"),
        events=boto3.client("events"),
        event_source=facts.function_environment.get("EVENT_SOURCE", "autolabel"),
        visibility_timeout=5,
    )
    config = labeler_config(facts, resources)  # the Lambda's own cold-start validation
    model = FakeCustomLabelsModel(s3)
    handler.use_pipeline(build_pipeline(config, dataclasses.replace(create_clients(), rekognition=model)))
    poller = EventSourceMappingPoller(
        sqs,
        resources.backfill_queue_url,
        resources.backfill_queue_arn,
        handler.handler,
        batch_size=facts.batch_size,
        retry_delay_seconds=1,
        region=REGION,
    )
    print(f"Uploading {count} objects under s3://{resources.bucket}/{PREFIX} (there before autolabel)...")
    # They were there before autolabel: no notification (and moto's notifications slow big uploads down).
    notifications = s3.get_bucket_notification_configuration(Bucket=resources.bucket)
    notifications.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=resources.bucket, NotificationConfiguration={})
    keys = _upload(s3, resources.bucket, count)
    s3.put_bucket_notification_configuration(Bucket=resources.bucket, NotificationConfiguration=notifications)
    drain_queue(sqs, resources.queue_url)

    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = output_dir / "backfill-checkpoint.json"
    checkpoint.unlink(missing_ok=True)
    uri = f"s3://{resources.bucket}/{PREFIX}"
    env = _cli_environment(resources)
    pace = ["--images-per-second", str(DEMO_IMAGES_PER_SECOND), "--poll-seconds", "1"]
    first_args = [uri, *pace] + ([] if use_signal else ["--stop-after", str(interrupt_at)])
    log_path = output_dir / "backfill-lambda-logs.jsonl"
    with log_path.open("w") as log_file, lambda_output_to(log_file):
        print(f"\n$ autolabel backfill {uri}   # interrupted after about {interrupt_at} enqueued", file=sys.stderr)
        first = subprocess.Popen(_command(endpoint, resources, checkpoint, *first_args), env=env)
        _label_while(poller, first, (lambda: _enqueued(checkpoint) >= interrupt_at) if use_signal else None)
        print(f"\n$ autolabel backfill status {uri}", file=sys.stderr)
        subprocess.run(_command(endpoint, resources, checkpoint, "status"), env=env, check=False)
        print(f"\n$ autolabel backfill {uri} --wait   # resumes from the checkpoint", file=sys.stderr)
        resumed = subprocess.Popen(_command(endpoint, resources, checkpoint, uri, *pace, "--wait"), env=env)
        _label_while(poller, resumed)
        poller.run_until_idle(max_seconds=60)
    events = consumed_events(sqs, resources.consumer_queue_url)
    (output_dir / "backfill-events.json").write_text(json.dumps(events, indent=1))
    dynamodb = boto3.client("dynamodb")
    labeled = sum(
        1
        for key in keys
        if (result := get_result(resources.table_name, resources.bucket, key, client=dynamodb)) is not None
        and result["status"] == "LABELED"
    )
    per_result = Counter(e["detail"]["resultId"] for e in events)
    report = DemoReport(
        objects=count,
        first_exit=int(first.returncode),
        resumed_exit=int(resumed.returncode),
        labeled=labeled,
        events=len(events),
        distinct_result_ids=len(per_result),
        model_calls=len(model.calls),
        dead_letters=len(drain_queue(sqs, resources.backfill_dead_letter_queue_url)),
    )
    print(
        f"\n{report.objects} objects: first run exited {report.first_exit} (interrupted), resumed run exited "
        f"{report.resumed_exit}; {report.labeled} labeled, {report.events} events for {report.distinct_result_ids} "
        f"distinct results, {report.model_calls} model calls, {report.dead_letters} dead letters."
    )
    print(
        "OK: every object labeled once and announced once"
        if report.ok
        else "NOT OK: see the figures above and " + str(log_path)
    )
    return report


@dataclasses.dataclass
class JobDemoReport:
    objects: int
    cancelled: bool
    retried_batches: int
    labeled: int
    events: int
    distinct_result_ids: int
    model_calls: int
    report: dict[str, Any]

    @property
    def ok(self) -> bool:
        n, counts = self.objects, self.report.get("counts", {})
        return (
            self.cancelled
            and self.retried_batches >= 1
            and self.labeled == self.events == self.distinct_result_ids == self.model_calls == n
            and bool(self.report.get("reconciled"))
            and counts.get("listed") == n
            and counts.get("failed") == counts.get("deadLettered") == 0
        )


class LostAnswer(Exception):
    """The job function's answer lost after it sent its messages: Step Functions retries the batch."""

    error_name = "Lambda.ServiceException"


def run_job_demo(count: int, output_dir: Path, *, items_per_batch: int | None = None) -> JobDemoReport:
    """``items_per_batch``: a smaller ItemBatcher than the template's 100 (the test: several batches of few)."""
    facts = default_facts()
    with moto_server_process() as endpoint:
        print(
            f"autolabel backfill --in-aws demo: AWS EMULATED by moto on {endpoint}; Step Functions EMULATED by "
            "local.sfn_interpreter; Custom Labels model EMULATED"
        )
        return _job_demo(facts, endpoint, count, output_dir, items_per_batch)


@dataclasses.dataclass
class _JobDeployment:
    resources: LocalResources
    job: Any  # local.backfill_job_emulator.EmulatedBackfillJob
    machine: str
    labeler: EventSourceMappingPoller
    model: FakeCustomLabelsModel
    keys: list[str]


def _job_deployment(facts: Any, count: int, items_per_batch: int | None) -> _JobDeployment:
    """The stack's resources, its backfill state machine (in moto) and job, the labeler, and N objects."""
    from local.backfill_job_emulator import EmulatedBackfillJob, job_facts
    from local.stack_template import default_template

    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    resources = create_resources(
        facts,
        s3=s3,
        sqs=sqs,
        dynamodb=boto3.client("dynamodb"),
        events=boto3.client("events"),
        event_source=facts.function_environment.get("EVENT_SOURCE", "autolabel"),
        visibility_timeout=5,
    )
    model = FakeCustomLabelsModel(s3)
    handler.use_pipeline(
        build_pipeline(labeler_config(facts, resources), dataclasses.replace(create_clients(), rekognition=model))
    )
    labeler = EventSourceMappingPoller(
        sqs,
        resources.backfill_queue_url,
        resources.backfill_queue_arn,
        handler.handler,
        batch_size=facts.batch_size,
        retry_delay_seconds=1,
        region=REGION,
    )
    s3.create_bucket(Bucket=JOB_REPORTS)
    job = EmulatedBackfillJob(
        job_facts(default_template()),
        resources,
        JOB_REPORTS,
        PLACEHOLDER_PROJECT_VERSION_ARN,
        s3,
        sqs,
        boto3.client("dynamodb"),
    )
    if items_per_batch is not None:
        job.definition["States"]["ListAndEnqueue"]["ItemBatcher"]["MaxItemsPerBatch"] = items_per_batch
        job.config = job.job.config = dataclasses.replace(job.config, batch_size=items_per_batch)
    machine = boto3.client("stepfunctions").create_state_machine(
        name="autolabel-backfill",
        definition=json.dumps(job.definition),
        roleArn="arn:aws:iam::123456789012:role/autolabel-backfill",
    )["stateMachineArn"]
    print(f"Uploading {count} objects under s3://{resources.bucket}/{PREFIX} (there before autolabel)...")
    notifications = s3.get_bucket_notification_configuration(Bucket=resources.bucket)
    notifications.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=resources.bucket, NotificationConfiguration={})
    keys = _upload(s3, resources.bucket, count)
    s3.put_bucket_notification_configuration(Bucket=resources.bucket, NotificationConfiguration=notifications)
    drain_queue(sqs, resources.queue_url)
    return _JobDeployment(resources, job, machine, labeler, model, keys)


class _Cli:
    """`python -m autolabel backfill ...` against the emulator, its output shown."""

    def __init__(self, endpoint: str, deployment: _JobDeployment) -> None:
        self.endpoint = endpoint
        self.env = {
            **_cli_environment(deployment.resources),
            "AUTOLABEL_BACKFILL_JOB_ARN": deployment.machine,
            "AUTOLABEL_BACKFILL_REPORT_BUCKET": JOB_REPORTS,
        }

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "autolabel", "backfill", *args, "--endpoint-url", self.endpoint]
        print(f"\n$ autolabel backfill {' '.join(args)}", file=sys.stderr)
        done = subprocess.run(command, env=self.env, check=False, capture_output=True, text=True)
        sys.stderr.write(done.stderr)
        print(done.stdout, end="")
        return done


def _execution(machine: str, name: str) -> dict[str, Any]:
    arn = f"{machine.replace(':stateMachine:', ':execution:')}:{name}"
    return dict(boto3.client("stepfunctions").describe_execution(executionArn=arn))


def _job_demo(facts: Any, endpoint: str, count: int, output_dir: Path, items_per_batch: int | None) -> JobDemoReport:
    deployment = _job_deployment(facts, count, items_per_batch)
    job, labeler = deployment.job, deployment.labeler
    autolabel = _Cli(endpoint, deployment)
    uri = f"s3://{deployment.resources.bucket}/{PREFIX}"
    # The pace: what 0.003 images/s labels in half the queue's retention (518 messages in moto's 4 days), so
    # that batches find the queue full and wait for the labeler.
    pace = ["--images-per-second", "0.003"]
    first = json.loads(autolabel(uri, "--in-aws", "--yes", *pace, "--output", "json").stdout)["job"]
    batch = job.definition["States"]["ListAndEnqueue"]["ItemBatcher"]["MaxItemsPerBatch"]
    cancel_after = max(2, math.ceil(count / batch) // 3)
    enqueued: list[str] = []
    retried: list[str] = []

    def function(event: Any) -> Any:
        result = job.function(event)
        if event.get("BatchInput", {}).get("action") != "enqueue":
            return result
        if len(enqueued) == 1 and not retried:
            retried.append(event["Items"][0]["Key"])
            print(
                f"  (engine) the answer of the batch from {retried[0]} is lost after it sent: retried", file=sys.stderr
            )
            raise LostAnswer("answer lost")
        enqueued.append(event["Items"][0]["Key"])
        if len(enqueued) == cancel_after:
            autolabel("cancel", first)
        return result

    output_dir.mkdir(parents=True, exist_ok=True)
    with (output_dir / "backfill-job-lambda-logs.jsonl").open("w") as log_file, lambda_output_to(log_file):

        def wait(_seconds: float) -> None:  # virtual time: the labeler works meanwhile
            labeler.run_until_idle(max_seconds=120)

        stopped = lambda: _execution(deployment.machine, first)["status"] == "ABORTED"  # noqa: E731
        cancelled = False
        try:
            job.interpreter(function=function, wait=wait, stop_requested=stopped).run(
                json.loads(_execution(deployment.machine, first)["input"])
            )
        except ExecutionAborted:
            cancelled = True
            print(f"  (engine) job {first} stopped after {len(enqueued)} batch(es)", file=sys.stderr)
        labeler.run_until_idle(max_seconds=120)
        resumed = json.loads(autolabel(uri, "--in-aws", "--yes", *pace, "--resume", first, "--output", "json").stdout)
        job.interpreter(wait=wait).run(json.loads(_execution(deployment.machine, resumed["job"])["input"]))
        labeler.run_until_idle(max_seconds=60)
    autolabel("status", resumed["job"], "--no-progress")
    runs = {"cancelled": cancelled, "retried": len(retried), "first": first, "resumed": resumed["job"]}
    return _job_outcome(deployment, output_dir, runs | {"batches_before_cancel": len(enqueued)})


def _job_outcome(deployment: _JobDeployment, output_dir: Path, runs: dict[str, Any]) -> JobDemoReport:
    resources = deployment.resources
    first, resumed, retried = runs["first"], runs["resumed"], runs["retried"]
    events = consumed_events(boto3.client("sqs"), resources.consumer_queue_url)
    (output_dir / "backfill-job-events.json").write_text(json.dumps(events, indent=1))
    dynamodb = boto3.client("dynamodb")
    labeled = sum(
        1
        for key in deployment.keys
        if (result := get_result(resources.table_name, resources.bucket, key, client=dynamodb)) is not None
        and result["status"] == "LABELED"
    )
    report = JobDemoReport(
        objects=len(deployment.keys),
        cancelled=runs["cancelled"],
        retried_batches=retried,
        labeled=labeled,
        events=len(events),
        distinct_result_ids=len(Counter(e["detail"]["resultId"] for e in events)),
        model_calls=len(deployment.model.calls),
        report=deployment.job.report(resumed),
    )
    print(
        f"\n{report.objects} objects: job {first} cancelled after {runs['batches_before_cancel']} batch(es), "
        f"{retried} batch retried by the engine, job {resumed} resumed the run; {report.labeled} labeled, "
        f"{report.events} events for {report.distinct_result_ids} distinct results, {report.model_calls} model "
        f"calls; the report: {report.report.get('counts')} reconciled={report.report.get('reconciled')}."
    )
    print("OK: every object labeled once, announced once, the report reconciled" if report.ok else "NOT OK")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, default=3000, help="objects in the prefix (default 3000)")
    parser.add_argument("--interrupt-at", type=int, default=None, help="enqueued before the interruption (N/3)")
    parser.add_argument("--output-dir", type=Path, default=Path(".local-run"))
    parser.add_argument(
        "--stop-after", action="store_true", help="interrupt with the command's --stop-after instead of SIGINT"
    )
    parser.add_argument("--in-aws", action="store_true", help="the job in AWS (emulated), cancelled and resumed")
    args = parser.parse_args(argv)
    if args.in_aws:
        with contextlib.suppress(KeyboardInterrupt):
            return 0 if run_job_demo(args.objects, args.output_dir).ok else 1
        return 130
    interrupt_at = args.interrupt_at or max(10, args.objects // 3)
    with contextlib.suppress(KeyboardInterrupt):
        report = run_demo(args.objects, interrupt_at, args.output_dir, use_signal=not args.stop_after)
        return 0 if report.ok else 1
    return 130


if __name__ == "__main__":
    sys.exit(main())
