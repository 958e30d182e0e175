"""`make backfill-demo` at small scale: 200 objects, interrupted and resumed, each labeled and announced once."""

from __future__ import annotations

from pathlib import Path

import pytest

from local import backfill_demo


@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_an_interrupted_and_resumed_backfill_labels_every_object_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = backfill_demo.run_demo(200, 70, tmp_path, use_signal=False)
    assert report.first_exit == 130  # interrupted after 70 enqueued
    assert report.resumed_exit == 0
    assert report.labeled == report.events == report.distinct_result_ids == report.model_calls == 200
    assert report.dead_letters == 0 and report.ok
    assert "OK: every object labeled once and announced once" in capsys.readouterr().out
    assert (tmp_path / "backfill-checkpoint.json").exists()


@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_the_job_in_aws_retried_cancelled_and_resumed_labels_every_object_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = backfill_demo.run_job_demo(60, tmp_path, items_per_batch=10)
    assert report.cancelled and report.retried_batches == 1
    assert report.labeled == report.events == report.distinct_result_ids == report.model_calls == 60
    counts = report.report["counts"]
    assert report.report["reconciled"] and counts["listed"] == 60 and counts["skipped"] > 0
    assert counts["failed"] == counts["deadLettered"] == 0 and report.ok
    assert "OK: every object labeled once, announced once, the report reconciled" in capsys.readouterr().out
