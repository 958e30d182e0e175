"""`autolabel backfill` against moto, labeled by the real handler through the backfill queue's poller.

The decisive test interrupts a backfill of 200 objects twice (once cleanly,
once between a send and its checkpoint, so a batch is sent again), resumes it,
and checks that every object was labeled and announced exactly once.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from autolabel import backfill
from local.samples import make_image
from tests.support.cli import RunCli
from tests.support.harness import ARN, Harness

IMAGE = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})


@pytest.fixture
def deployment(harness: Harness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Harness:
    """The emulated stack, its outputs in AUTOLABEL_* variables, and a clean working directory for checkpoints."""
    resources = harness.resources
    monkeypatch.setenv("AUTOLABEL_TABLE", resources.table_name)
    monkeypatch.setenv("AUTOLABEL_BACKFILL_QUEUE_URL", resources.backfill_queue_url)
    monkeypatch.setenv("AUTOLABEL_BACKFILL_DLQ_URL", resources.backfill_dead_letter_queue_url)
    monkeypatch.setenv("AUTOLABEL_PROJECT_VERSION_ARN", ARN)
    monkeypatch.setenv("AUTOLABEL_BUCKET", resources.bucket)
    monkeypatch.chdir(tmp_path)
    return harness


def existing(harness: Harness, count: int, prefix: str = "old/", extension: str = ".png") -> list[str]:
    """Objects already in the bucket before autolabel (their notifications discarded)."""
    keys = [f"{prefix}img-{i:04d}{extension}" for i in range(count)]
    for key in keys:
        harness.s3.put_object(Bucket=harness.resources.bucket, Key=key, Body=IMAGE)
    harness.discard_notifications()
    return keys


_capsys: list[pytest.CaptureFixture[str]] = []


@pytest.fixture(autouse=True)
def _drop_lambda_output(capsys: pytest.CaptureFixture[str]) -> Any:
    _capsys.append(capsys)
    yield
    _capsys.clear()


def label_backfill_queue(harness: Harness) -> None:
    """The labeler's backfill trigger: the real handler on the backfill queue until it is empty."""
    harness.trigger("backfill").run_until_idle(max_seconds=120)
    _capsys[-1].readouterr()  # the handler's logs are not the command's output


def queued(harness: Harness) -> int:
    attributes = harness.sqs.get_queue_attributes(
        QueueUrl=harness.resources.backfill_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def checkpoint_file() -> Path:
    (path,) = Path(".autolabel/backfill").glob("*.json")
    return path


def test_an_interrupted_backfill_resumes_and_labels_every_object_exactly_once(deployment: Harness, cli: RunCli) -> None:
    harness = deployment
    keys = existing(harness, 200)
    uri = f"s3://{harness.resources.bucket}/old/"

    first = cli("backfill", uri, "--no-progress", "--stop-after", "60")
    assert first.code == 130 and "run the same command to resume" in first.err
    saved = json.loads(checkpoint_file().read_text())
    assert saved["progress"]["enqueued"] == 60 and saved["listed_after"] == keys[59]
    label_backfill_queue(harness)  # the labeler works while the operator is away

    # Interrupted again, and this time the last checkpoint write is lost: the
    # resumption sends that batch of 10 a second time.
    before = checkpoint_file().read_text()
    shutil.copy(checkpoint_file(), "before.json")
    second = cli("backfill", uri, "--no-progress", "--stop-after", "80")
    assert second.code == 130 and queued(harness) == 20
    assert json.loads(before)["progress"]["enqueued"] == 60
    checkpoint_file().write_text(Path("before.json").read_text().replace('"enqueued": 60', '"enqueued": 70'))
    saved = json.loads(checkpoint_file().read_text())
    saved["listed_after"] = keys[69]  # the write after keys[79] never happened
    checkpoint_file().write_text(json.dumps(saved))

    last = cli("backfill", uri, "--no-progress", "--output", "json")
    assert last.code == 0, last.err
    summary = json.loads(last.out)
    assert summary["enqueued"] == 200  # 60 + 10 + 130: the batch after keys[69] counted once in the checkpoint
    label_backfill_queue(harness)

    results = [harness.result(key) for key in keys]
    assert all(r is not None and r["status"] == "LABELED" for r in results)
    events = harness.new_events()
    per_result = Counter(e["detail"]["resultId"] for e in events)
    assert len(per_result) == 200 and set(per_result.values()) == {1}  # each announced once
    assert {r["resultId"] for r in results if r} == set(per_result)
    assert harness.rekognition_calls() == 200  # each labeled once, the re-sent batch included
    assert harness.dead_letters() == []

    status = cli("backfill", "status", uri, "--output", "json")
    report = json.loads(status.out)
    assert report["listing"] == "complete" and report["labeled"] == report["enqueued"] == 200
    assert report["percentDone"] == 100.0

    again = cli("backfill", uri, "--no-progress")
    assert again.code == 0 and queued(harness) == 0  # a finished backfill does nothing


def test_objects_with_a_result_are_skipped_unless_forced(deployment: Harness, cli: RunCli) -> None:
    harness = deployment
    keys = existing(harness, 15)
    uri = f"s3://{harness.resources.bucket}/old/"
    assert cli("backfill", uri, "--no-progress").code == 0
    label_backfill_queue(harness)
    harness.new_events()

    rerun = cli("backfill", uri, "--no-progress", "--restart", "--output", "json")
    summary = json.loads(rerun.out)
    assert (summary["alreadyLabeled"], summary["enqueued"]) == (15, 0)

    first_ids = {key: harness.result(key)["resultId"] for key in keys}  # type: ignore[index]
    forced = cli("backfill", uri, "--no-progress", "--force", "--output", "json")
    assert json.loads(forced.out)["enqueued"] == 15
    label_backfill_queue(harness)
    assert all(harness.result(key)["resultId"] != first_ids[key] for key in keys)  # type: ignore[index]
    assert len(harness.new_events()) == 15  # one new announcement per forced relabel
    assert harness.rekognition_calls() == 30


def test_a_result_of_a_non_current_version_is_replaced_by_the_current_one(deployment: Harness, cli: RunCli) -> None:
    harness = deployment
    bucket = harness.resources.bucket
    old = harness.upload_quietly("old/a.png", IMAGE)
    harness.send(json.dumps({"Records": [harness.record_for("old/a.png", old, sequencer="0A")]}))
    harness.run()
    _capsys[-1].readouterr()
    new = harness.upload_quietly("old/a.png", make_image({"dent": (0.5, 0.5, 0.4, 0.4)}))  # its notification lost
    harness.new_events()
    summary = json.loads(cli("backfill", f"s3://{bucket}/old/", "--no-progress", "--output", "json").out)
    assert summary["enqueued"] == 1
    label_backfill_queue(harness)
    result = harness.result("old/a.png")
    assert result is not None and result["versionId"] == new["VersionId"] and result["labelNames"] == ["dent"]


def test_filters_by_suffix_and_last_modified(deployment: Harness, cli: RunCli) -> None:
    harness = deployment
    existing(harness, 3, extension=".png")
    existing(harness, 2, prefix="old/jpg-", extension=".JPG")
    existing(harness, 4, extension=".txt")
    uri = f"s3://{harness.resources.bucket}/old/"
    only_jpg = json.loads(cli("backfill", uri, "--no-progress", "--suffix", ".jpg", "--output", "json").out)
    assert (only_jpg["listed"], only_jpg["matched"], only_jpg["enqueued"]) == (9, 2, 2)
    past = json.loads(
        cli("backfill", uri, "--no-progress", "--until", "2001-01-01", "--restart", "--output", "json").out
    )
    assert (past["matched"], past["enqueued"]) == (0, 0)


def test_filters_by_size_bounds(deployment: Harness, cli: RunCli) -> None:
    harness = deployment
    bucket = harness.resources.bucket
    for key, body in (("old/tiny.png", IMAGE[:10]), ("old/mid.png", IMAGE), ("old/big.png", IMAGE * 3)):
        harness.s3.put_object(Bucket=bucket, Key=key, Body=body)
    harness.discard_notifications()
    sizes = {o["Key"]: o["Size"] for o in harness.s3.list_objects_v2(Bucket=bucket)["Contents"]}
    low, high = sizes["old/mid.png"], sizes["old/big.png"]
    run = cli("backfill", f"s3://{bucket}/old/", "--no-progress", "--min-size", str(low), "--max-size", str(high - 1))
    assert run.code == 0, run.err
    summary = json.loads(cli("backfill", "status", "--output", "json").out)
    assert (summary["listed"], summary["matched"], summary["enqueued"]) == (3, 1, 1)
    assert cli("backfill", f"s3://{bucket}/old/", "--min-size", "5M", "--max-size", "1k").code == 252
    assert cli("backfill", f"s3://{bucket}/old/", "--min-size", "lots").code == 252


def test_size_bounds_parse_decimal_and_binary_units() -> None:
    assert [backfill.parse_size(v, "--min-size") for v in ("2048", "500k", "5M", "1Gi", "2KiB")] == [
        2048,
        500_000,
        5_000_000,
        1024**3,
        2048,
    ]
    assert backfill.parse_size(None, "--min-size") is None


def test_dry_run_counts_and_estimates_without_sending(deployment: Harness, cli: RunCli) -> None:
    harness = deployment
    existing(harness, 6)
    existing(harness, 2, prefix="old/x-", extension=".txt")
    uri = f"s3://{harness.resources.bucket}/old/"
    assert cli("backfill", uri, "--no-progress", "--suffix", ".png", "--stop-after", "1").code == 130  # 6 sent
    label_backfill_queue(harness)
    existing(harness, 4, prefix="old/new-")
    run = cli("backfill", uri, "--dry-run", "--images-per-second", "0.5", "--inference-units", "2", "--output", "json")
    assert run.code == 0, run.err
    estimate: dict[str, Any] = json.loads(run.out)
    assert estimate["byExtension"] == {".png": 10, ".txt": 2}
    assert (estimate["matched"], estimate["alreadyLabeled"], estimate["toLabel"]) == (10, 6, 4)
    assert estimate["modelHours"] == round(4 / 0.5 / 3600, 2)
    assert estimate["estimatedCostUsd"] == round(4 / 0.5 / 3600 * 2 * 4.0, 2)
    assert queued(harness) == 0
    text = cli("backfill", uri, "--dry-run", "--images-per-second", "0.5")
    assert "by extension: .png 10, .txt 2" in text.out and "to label 4" in text.out


def test_a_progress_bar_shows_listed_enqueued_labeled_rate_and_eta(deployment: Harness, cli: RunCli) -> None:
    harness = deployment
    existing(harness, 12)
    run = cli("backfill", f"s3://{harness.resources.bucket}/old/")
    assert run.code == 0
    bar = run.err.replace("\r", "\n").strip().splitlines()[-1]
    assert "backfill enqueued: 12" in bar and "listed=12" in bar and "labeled=" in bar and "eta=" in bar


def test_bad_arguments_are_refused(deployment: Harness, cli: RunCli) -> None:
    assert cli("backfill", "not-a-uri").code == 252
    assert cli("backfill", "s3://b/", "--since", "yesterday").code == 252
    assert cli("backfill", "s3://b/", "--since", "2026-02-01", "--until", "2026-01-01").code == 252
    assert cli("backfill", "status").code == 1  # nothing to report yet


def test_the_queue_never_holds_more_than_the_pace_allows(deployment: Harness) -> None:
    """With room for 20 messages, sending waits for the labeler (here: a sleep that drains 10 messages)."""
    harness = deployment
    resources = harness.resources
    existing(harness, 55)
    seen: list[int] = []
    sqs = harness.sqs

    class CountingSqs:
        def __getattr__(self, name: str) -> Any:
            return getattr(sqs, name)

        def send_message_batch(self, **request: Any) -> Any:
            seen.append(backfill.queue_backlog(sqs, resources.backfill_queue_url) + len(request["Entries"]))
            return sqs.send_message_batch(**request)

    waits: list[float] = []

    def labeler_works_meanwhile(seconds: float) -> None:
        waits.append(seconds)
        messages = sqs.receive_message(QueueUrl=resources.backfill_queue_url, MaxNumberOfMessages=10)["Messages"]
        sqs.delete_message_batch(
            QueueUrl=resources.backfill_queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )

    pace = backfill.decide_pace(
        given=20 / (14 * 24 * 3600 * 0.5), measured=None, inference_units=1, retention_seconds=14 * 24 * 3600
    )
    assert pace.limit == 20
    run = backfill.BackfillRun(
        s3=harness.s3,
        sqs=CountingSqs(),
        dynamodb=harness.dynamodb,
        table_name=resources.table_name,
        queue_url=resources.backfill_queue_url,
        model=ARN,
        bucket=resources.bucket,
        filters=backfill.Filters("old/"),
        pace=pace,
        sleep=labeler_works_meanwhile,
        pace_poll_seconds=7.0,
    )
    checkpoint = run.run()
    assert checkpoint.done and checkpoint.progress.enqueued == 55
    assert max(seen) <= 20 and waits and set(waits) == {7.0}


def test_the_pace_is_given_measured_or_assumed_per_inference_unit() -> None:
    retention = 14 * 24 * 3600
    assert backfill.decide_pace(given=None, measured=None, inference_units=3, retention_seconds=retention) == (
        backfill.Pace(3.0, "assumed", 3 * retention // 2)
    )
    assert backfill.decide_pace(given=None, measured=2.0, inference_units=3, retention_seconds=retention).source == (
        "measured"
    )
    assert backfill.decide_pace(given=0.5, measured=2.0, inference_units=1, retention_seconds=retention).limit == (
        retention // 4
    )


def test_the_throughput_is_the_labelers_best_hour_of_the_week() -> None:
    class CloudWatch:
        def get_metric_statistics(self, **request: Any) -> dict[str, Any]:
            assert request["Dimensions"] == [{"Name": "service", "Value": "autolabel-labeler"}]
            sums = {"ImagesLabeled": [3600.0, 7200.0], "ImagesFailed": [36.0]}[request["MetricName"]]
            return {"Datapoints": [{"Sum": value} for value in sums]}

    assert backfill.measured_images_per_second(CloudWatch(), datetime.now(UTC)) == 2.0

    class Empty:
        def get_metric_statistics(self, **_request: Any) -> dict[str, Any]:
            return {"Datapoints": []}

    assert backfill.measured_images_per_second(Empty(), datetime.now(UTC)) is None


def test_a_checkpoint_of_another_model_version_is_not_resumed(deployment: Harness, cli: RunCli) -> None:
    harness = deployment
    existing(harness, 3)
    uri = f"s3://{harness.resources.bucket}/old/"
    assert cli("backfill", uri, "--no-progress", "--checkpoint", "mine.json").code == 0
    saved = json.loads(Path("mine.json").read_text())
    saved["model"] = ARN.replace("/1700000000000", "/1800000000000")
    saved["done"] = False
    Path("mine.json").write_text(json.dumps(saved))
    refused = cli("backfill", uri, "--no-progress", "--checkpoint", "mine.json")
    assert refused.code == 252 and "--restart" in refused.err
    assert cli("backfill", uri, "--no-progress", "--checkpoint", "mine.json", "--restart").code == 0
