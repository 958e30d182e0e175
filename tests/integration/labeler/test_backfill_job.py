"""The backfill job in AWS, emulated: the template's state machine run by local.sfn_interpreter, its Lambda
steps the real labeler.backfill_job against moto, the real labeler draining the backfill queue.

Each test exercises an engine behaviour a guarantee rests on: a batch retried
after it sent, a batch the engine gives up on, a cancel and a resume, a
duplicate item, the pace; and --stale after a model version switch.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from autolabel import backfill as client_backfill
from autolabel.backfill_job import job_input, job_name, new_run_id
from labeler import handler
from labeler.adapters.clients import AwsClients
from labeler.backfill_job import BackfillQueueFull, BackfillSendFailed, queue_backlog
from labeler.wiring import build_pipeline
from local.backfill_job_emulator import EmulatedBackfillJob, job_facts
from local.poller import EventSourceMappingPoller
from local.samples import make_image
from local.sfn_interpreter import ExecutionAborted, Interpreter, StatesError
from local.stack_template import default_template
from tests.support.harness import ARN, Harness

IMAGE = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
REPORTS = "autolabel-backfill-reports"
PREFIX = "old/"


@pytest.fixture(autouse=True)
def _quiet(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    yield
    capsys.readouterr()  # the labeler's JSON logs


@dataclasses.dataclass
class Run:
    harness: Harness
    job: EmulatedBackfillJob
    labeler: EventSourceMappingPoller
    queue_depths: list[int] = dataclasses.field(default_factory=list)

    def wait(self, _seconds: float) -> None:
        """Virtual time passes: the labeler's backfill trigger drains what is queued."""
        self.labeler.run_until_idle(max_seconds=120)

    def start(
        self,
        *,
        name: str | None = None,
        run: str | None = None,
        force: bool = False,
        stale: bool = False,
        pace_limit: int = 100_000,
        filters: client_backfill.Filters | None = None,
        **services: Any,
    ) -> tuple[str, Any, Interpreter]:
        run = run or new_run_id()
        name = name or job_name(run, datetime.now(UTC))
        document = job_input(
            name=name,
            run=run,
            bucket=self.harness.resources.bucket,
            filters=filters or client_backfill.Filters(PREFIX),
            force=force,
            stale=stale,
            pace_limit=pace_limit,
        )
        interpreter = self.job.interpreter(wait=services.pop("wait", self.wait), **services)
        output = interpreter.run(document)
        return name, output, interpreter


def emulated(harness: Harness, *, items_per_batch: int | None = None, tolerated: int | None = None) -> Run:
    harness.s3.create_bucket(Bucket=REPORTS)
    job = EmulatedBackfillJob(
        job_facts(default_template()), harness.resources, REPORTS, ARN, harness.s3, harness.sqs, harness.dynamodb
    )
    if items_per_batch is not None or tolerated is not None:
        job.definition = copy.deepcopy(job.definition)
        enqueue = job.definition["States"]["ListAndEnqueue"]
        if items_per_batch is not None:
            enqueue["ItemBatcher"]["MaxItemsPerBatch"] = items_per_batch
            job.config = dataclasses.replace(job.config, batch_size=items_per_batch)
            job.job.config = job.config
        if tolerated is not None:
            enqueue["ToleratedFailurePercentage"] = tolerated
    return Run(harness, job, harness.trigger("backfill"))


def existing(harness: Harness, count: int, extension: str = ".png", start: int = 0) -> list[str]:
    keys = [f"{PREFIX}img-{i:04d}{extension}" for i in range(start, start + count)]
    for key in keys:
        harness.s3.put_object(Bucket=harness.resources.bucket, Key=key, Body=IMAGE)
    harness.discard_notifications()
    return keys


def announced(harness: Harness) -> Counter[str]:
    return Counter(event["detail"]["key"] for event in harness.new_events())


def counts(report: dict[str, Any]) -> tuple[int, int, int, int, int]:
    c = report["counts"]
    return c["listed"], c["skipped"], c["labeled"], c["failed"], c["deadLettered"]


def test_a_job_labels_what_is_not_labeled_skips_the_rest_and_reconciles(harness: Harness) -> None:
    run = emulated(harness)
    images = existing(harness, 50)
    existing(harness, 10, extension=".txt", start=100)
    first, _, _ = run.start(filters=client_backfill.Filters(f"{PREFIX}img-000"))  # img-0000 to img-0009
    assert counts(run.job.report(first)) == (10, 0, 10, 0, 0)
    harness.new_events()
    name, output, interpreter = run.start()
    report = run.job.report(name)
    assert report == output["report"]
    assert report["reconciled"] is True
    assert counts(report) == (60, 20, 40, 0, 0)
    assert report["skippedBy"] == {"suffix not selected": 10, "already labeled by this model version": 10}
    assert harness.rekognition_calls() == 50
    assert set(announced(harness).values()) == {1}
    not_labeled = run.job.not_labeled(name)
    assert {row["key"] for row in not_labeled} == set(images[:10]) | {
        f"{PREFIX}img-{i:04d}.txt" for i in range(100, 110)
    }
    assert interpreter.map_runs["ListAndEnqueue"].total == 60
    # A third job finds everything labeled and sends nothing.
    third, _, _ = run.start()
    assert counts(run.job.report(third)) == (60, 60, 0, 0, 0)
    assert harness.rekognition_calls() == 50


def test_the_pace_holds_the_queue_under_the_limit_and_a_full_queue_retries_the_batch(harness: Harness) -> None:
    run = emulated(harness, items_per_batch=10)
    run.job.config = run.job.job.config = dataclasses.replace(run.job.config, max_concurrency=1)
    existing(harness, 40)
    full_answers = Counter[str]()
    real = run.job.function

    def watched(event: Any) -> Any:
        try:
            result = real(event)
        except BackfillQueueFull:
            full_answers["full"] += 1
            raise
        run.queue_depths.append(queue_backlog(harness.sqs, harness.resources.backfill_queue_url))
        return result

    # Each wait lets the labeler take only a few: the queue stays near its limit.
    def slow_labeler(_seconds: float) -> None:
        run.labeler.poll_once()

    name, _, _ = run.start(pace_limit=15, function=watched, wait=slow_labeler)
    run.labeler.run_until_idle(max_seconds=60)
    assert full_answers["full"] >= 1  # a batch found the queue full and was retried later
    assert max(run.queue_depths) <= 15
    assert counts(run.job.report(name)) == (40, 0, 40, 0, 0)


def test_a_batch_retried_after_it_sent_labels_and_announces_each_object_once(harness: Harness) -> None:
    run = emulated(harness, items_per_batch=10)
    existing(harness, 30)
    real = run.job.function
    attempts = Counter[str]()

    class LambdaTimeout(Exception):
        error_name = "Lambda.ServiceException"

    def times_out_after_sending(event: Any) -> Any:
        result = real(event)
        if event.get("BatchInput", {}).get("action") != "enqueue":
            return result
        first_key = event["Items"][0]["Key"]
        attempts[first_key] += 1
        if attempts[first_key] == 1:
            raise LambdaTimeout("the answer was lost after the messages were sent")
        return result

    name, _, _ = run.start(function=times_out_after_sending)
    assert list(attempts.values()) == [2, 2, 2]  # every enqueue batch ran twice
    assert harness.rekognition_calls() == 30
    assert set(announced(harness).values()) == {1} and len(harness.new_events()) == 0
    assert counts(run.job.report(name)) == (30, 0, 30, 0, 0)


def test_a_batch_the_engine_gives_up_on_is_reported_failed_and_the_counts_reconcile(harness: Harness) -> None:
    run = emulated(harness, items_per_batch=10, tolerated=50)
    keys = existing(harness, 30)
    real = run.job.function

    def one_batch_breaks(event: Any) -> Any:
        if event.get("BatchInput", {}).get("action") == "enqueue" and event["Items"][0]["Key"] == keys[10]:
            raise RuntimeError("this batch always fails")
        return real(event)

    name, _, _ = run.start(function=one_batch_breaks)
    report = run.job.report(name)
    assert counts(report) == (30, 0, 20, 10, 0) and report["reconciled"]
    failed = [row for row in run.job.not_labeled(name) if row["counted"] == "failed"]
    assert sorted(row["key"] for row in failed) == keys[10:20]
    assert all("RuntimeError" in row["reason"] for row in failed)
    # Past the tolerated share the job fails instead.
    strict = emulated_again(run, tolerated=0)
    with pytest.raises(StatesError, match="ExceedToleratedFailureThreshold"):
        strict.start(function=one_batch_breaks)


def test_a_batch_that_fails_while_sending_is_counted_once_as_failed(harness: Harness) -> None:
    run = emulated(harness, items_per_batch=10, tolerated=50)
    keys = existing(harness, 30)
    job = run.job.job
    real_send = job._send

    def send_fails_for_one_batch(the_job: Any, outcomes: Any) -> None:
        if outcomes[0].item.key == keys[20]:
            raise BackfillSendFailed("SQS refused the batch")
        real_send(the_job, outcomes)

    job._send = send_fails_for_one_batch  # type: ignore[method-assign]
    name, _, _ = run.start()
    report = run.job.report(name)
    assert counts(report) == (30, 0, 20, 10, 0) and report["reconciled"]
    rows = run.job.not_labeled(name)
    failed = sorted(row["key"] for row in rows if row["counted"] == "failed")
    assert failed == keys[20:30]
    assert all("while sending" in row["reason"] for row in rows if row["counted"] == "failed")
    engine = [row for row in rows if row["counted"] == "see its ledger"]
    assert len(engine) == 10 and all("BackfillSendFailed" in row["reason"] for row in engine)


def emulated_again(run: Run, *, tolerated: int) -> Run:
    again = copy.copy(run)
    again.job = copy.copy(run.job)
    again.job.definition = copy.deepcopy(run.job.definition)
    again.job.definition["States"]["ListAndEnqueue"]["ToleratedFailurePercentage"] = tolerated
    return again


def test_a_cancelled_job_resumed_with_its_run_labels_every_object_once(harness: Harness) -> None:
    run = emulated(harness, items_per_batch=10)
    existing(harness, 60)
    real = run.job.function
    calls = Counter[str]()

    def counted(event: Any) -> Any:
        calls["enqueue"] += event.get("BatchInput", {}).get("action") == "enqueue"
        return real(event)

    run_id = new_run_id()
    with pytest.raises(ExecutionAborted):
        run.start(run=run_id, function=counted, stop_requested=lambda: calls["enqueue"] >= 3)
    run.labeler.run_until_idle(max_seconds=60)
    assert 0 < harness.rekognition_calls() < 60
    name, _, _ = run.start(run=run_id)  # `--resume`: the same run, a new job
    assert harness.rekognition_calls() == 60
    assert set(announced(harness).values()) == {1}
    listed, skipped, labeled, failed, dead = counts(run.job.report(name))
    assert (listed, failed, dead) == (60, 0, 0) and skipped + labeled == 60 and skipped >= 20


def test_a_duplicate_item_is_labeled_and_announced_once(harness: Harness) -> None:
    run = emulated(harness, items_per_batch=10)
    keys = existing(harness, 20)

    def duplicate_one(state: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [*items, dict(items[3])] if state == "ListAndEnqueue" else items

    name, _, _ = run.start(reader_items=duplicate_one)
    assert harness.rekognition_calls() == 20
    assert announced(harness)[keys[3]] == 1
    report = run.job.report(name)
    assert counts(report) == (21, 0, 21, 0, 0) and report["reconciled"]  # listed twice, labeled once


def test_stale_relabels_exactly_the_objects_of_another_model_version(harness: Harness) -> None:
    run = emulated(harness)
    old_model = ARN.replace("/1700000000000", "/1600000000000")
    labeled_before = existing(harness, 12)
    never_labeled = existing(harness, 5, start=50)
    old = dataclasses.replace(harness.config, project_version_arn=old_model)
    handler.use_pipeline(build_pipeline(old, AwsClients(harness.model, harness.dynamodb, harness.events)))
    name_old, _, _ = run.start(filters=client_backfill.Filters(PREFIX, suffixes=(".png",)))
    # The old model labeled everything (this job runs as if deployed with the old version).
    handler.use_pipeline(harness.pipeline)
    harness.new_events()
    del name_old
    # Now only the objects with a result of the old version: the never-labeled ones are no business of --stale.
    for key in never_labeled:
        harness.dynamodb.delete_item(
            TableName=harness.resources.table_name,
            Key={"pk": {"S": f"{harness.resources.bucket}/{key}"}, "sk": {"S": f"RESULT#{old_model}"}},
        )
    calls_before = harness.rekognition_calls()
    name, _, _ = run.start(stale=True)
    assert harness.rekognition_calls() - calls_before == 12
    relabeled = {key for key, n in announced(harness).items() if n == 1}
    assert relabeled == set(labeled_before)
    report = run.job.report(name)
    assert counts(report) == (17, 5, 12, 0, 0)
    assert report["skippedBy"] == {"--stale: no result of any model version": 5}
    assert all(harness.result(key) is not None for key in labeled_before)
