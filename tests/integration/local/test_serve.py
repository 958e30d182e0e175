"""`make local SERVE=1` as `autolabel` sees it: the stack's outputs registered, what the emulator cannot do said
in one line, and S3-like notifications (versions, sequencers) so that a backfill knows what is labeled."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from labeler import handler
from local.run import (
    NOT_EMULATED_OUTPUTS,
    Serving,
    annotate,
    annotated_path,
    register_stack_outputs,
    serve_banner,
    serve_outputs,
    throttle_first_call_of,
)
from local.s3_notifications import s3_like_notifications
from local.samples import make_image
from local.stack_template import StackFacts
from local.watch import ServeWatch
from local.wiring import trigger
from tests.integration.labeler.test_formats_and_deletions import with_deletions
from tests.support.cli import RunCli
from tests.support.harness import ARN, Harness

ENDPOINT = "http://127.0.0.1:4566"


@pytest.fixture
def served(harness: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Harness]:
    """The emulator after `make local`: labeled uploads, its stack registered as serve mode does."""
    with s3_like_notifications():
        harness.upload("line-1/part-0001.png", make_image({"scratch": (0.1, 0.1, 0.3, 0.25)}))
        harness.upload("line-1/part-0002.png", make_image({"logo": (0.5, 0.5, 0.3, 0.3)}))
        harness.run()
        register_stack_outputs(boto3.client("cloudformation"), serve_outputs(harness.resources, ARN, ENDPOINT))
        monkeypatch.setenv("AUTOLABEL_STACK_NAME", "Autolabel")
        capsys.readouterr()
        yield harness


def test_every_output_the_emulator_has_is_registered(stack_facts: StackFacts, harness: Harness) -> None:
    outputs = serve_outputs(harness.resources, ARN, ENDPOINT)
    assert "BackfillQueueUrl" in stack_facts.output_keys
    assert set(stack_facts.output_keys) - NOT_EMULATED_OUTPUTS == set(outputs) - {"EmulatedBy"}
    assert all(outputs.values())


@pytest.mark.parametrize("action", ["status", "start", "stop"])
def test_model_commands_say_the_emulator_has_no_model_lifecycle(served: Harness, cli: RunCli, action: str) -> None:
    run = cli("model", action)
    assert run.code == 253 and run.out == ""
    assert run.err == (
        f"autolabel: the local emulator (moto on {ENDPOINT}, make local SERVE=1) has no Custom Labels model "
        "lifecycle (its model is emulated and always runs): `model status|start|stop` need a deployed stack\n"
    )


def test_a_backfill_in_aws_says_the_emulator_has_no_job_engine(served: Harness, cli: RunCli) -> None:
    for argv in (
        ["backfill", f"s3://{served.resources.bucket}/line-1/", "--in-aws", "--yes"],
        ["backfill", "status", "backfill-20261207T180000-6f1c2a9b-0a1b2c"],
    ):
        run = cli(*argv)
        assert (run.code, run.out) == (253, ""), argv
        assert run.err == (
            f"autolabel: the local emulator (moto on {ENDPOINT}, make local SERVE=1) has no Step Functions backfill "
            "job: use `autolabel backfill` without --in-aws (`make backfill-demo IN_AWS=1` emulates the job)\n"
        ), argv


def test_a_redrive_without_by_copy_says_to_use_it(served: Harness, cli: RunCli) -> None:
    for argv in (["dlq", "redrive"], ["dlq", "redrive", "--cancel"]):
        run = cli(*argv)
        assert run.code == 253 and run.err.endswith(
            "has no SQS message move tasks: use `autolabel dlq redrive --by-copy`\n"
        )
    assert cli("dlq", "redrive", "--by-copy").out == "moved 0 message(s) back\n"


def test_a_backfill_knows_what_is_labeled_and_sends_to_the_registered_queue(
    served: Harness, cli: RunCli, tmp_path: Path
) -> None:
    bucket = served.resources.bucket
    dry = json.loads(cli("backfill", f"s3://{bucket}/", "--dry-run", "--output", "json").out)
    assert (dry["alreadyLabeled"], dry["otherVersionStored"], dry["toLabel"]) == (2, 0, 0)
    served.upload_quietly("line-1/part-0003.png", make_image({"dent": (0.2, 0.2, 0.4, 0.4)}))
    run = cli(
        "backfill", f"s3://{bucket}/", "--no-progress", "--output", "json", "--checkpoint", str(tmp_path / "cp.json")
    )
    assert run.code == 0, run.err
    assert json.loads(run.out)["enqueued"] == 1
    queued = served.sqs.get_queue_attributes(
        QueueUrl=served.resources.backfill_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert queued == "1"


def test_serve_mode_prints_one_line_per_image_and_keeps_the_files_current(
    harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resources = harness.resources
    harness.s3.put_bucket_notification_configuration(  # deletions on, as the local run subscribes them
        Bucket=resources.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": resources.queue_arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
            ]
        },
    )
    harness.discard_notifications()
    with_deletions(harness)
    annotated = tmp_path / "annotated"
    annotated.mkdir()
    (tmp_path / "events.json").write_text("[]")
    lines = io.StringIO()
    watch = ServeWatch(
        sqs=harness.sqs,
        consumer_queue_url=resources.consumer_queue_url,
        events_path=tmp_path / "events.json",
        annotate=lambda detail: annotate(harness.s3, resources.bucket, detail, annotated),
        annotated_path=lambda key: annotated_path(annotated, key),
        out=lines,
    )
    poller = trigger(resources, "ingest", watch.wrap(handler.handler), retry_delay_seconds=0)
    harness.model.fault = throttle_first_call_of("a.png")

    def serve_until_idle() -> None:
        poller.run_until_idle(max_seconds=60)
        watch.after_poll()

    with s3_like_notifications():
        harness.upload("a.png", make_image({"scratch": (0.1, 0.1, 0.3, 0.25)}))
        harness.upload("bad.jpg", b"\xff\xd8\xff not a jpeg")
        serve_until_idle()
        assert annotated_path(annotated, "a.png").exists()
        harness.s3.delete_object(Bucket=resources.bucket, Key="a.png")
        serve_until_idle()
    capsys.readouterr()
    printed = [line.split(None, 3)[1:] for line in lines.getvalue().splitlines()]
    seen = [tuple(p[:2]) for p in printed]
    assert sorted(seen) == [("failed", "bad.jpg"), ("labeled", "a.png"), ("removed", "a.png"), ("retried", "a.png")]
    assert seen.index(("retried", "a.png")) < seen.index(("labeled", "a.png")) < seen.index(("removed", "a.png"))
    labeled = next(p[2] for p in printed if p[0] == "labeled")
    assert labeled.startswith("scratch 9") and labeled.endswith(" s)")  # labels, then the latency
    assert not annotated_path(annotated, "a.png").exists()  # removed with its object
    kinds = [e["detail-type"] for e in json.loads((tmp_path / "events.json").read_text())]
    assert sorted(kinds) == ["Custom Labels Detected", "Custom Labels Failed", "Custom Labels Removed"]
    assert (
        watch.summary().startswith("stopped after 0m")
        and "1 labeled, 1 failed, 1 removed, 1 retried" in watch.summary()
    )


def test_the_banners_examples_name_files_that_exist(harness: Harness, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(make_image({"logo": (0.5, 0.5, 0.3, 0.3)}))
    watch = ServeWatch(
        sqs=harness.sqs,
        consumer_queue_url=harness.resources.consumer_queue_url,
        events_path=tmp_path / "events.json",
        annotate=lambda detail: tmp_path,
        annotated_path=lambda key: tmp_path / key,
        out=io.StringIO(),
    )
    serving = Serving(ENDPOINT, harness.resources, ARN, [], watch, tmp_path / "log", photo)
    banner = serve_banner(serving)
    named = [word.removeprefix("fileb://") for word in banner.split() if word.startswith("fileb://")]
    assert named == [str(photo)] and photo.is_file()
