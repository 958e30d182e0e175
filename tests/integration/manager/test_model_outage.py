"""A model that cannot run for days: no waiting image is lost (simulated, scaled clock, moto)."""

from __future__ import annotations

from typing import Any

import pytest

from local.fakes.model_lifecycle import DELETED
from local.outage_sim import simulate_outage
from tests.infra.conftest import synth

SCALE = 48.0  # a 14.5-day outage in about 7 simulated hours; the manager still runs every simulated minute


@pytest.fixture(scope="module")
def deployed() -> tuple[int, float]:
    """(ingest queue retention in seconds, outage grace in hours) as the stack deploys them by default."""
    _stack, template = synth()
    resources: dict[str, Any] = template.to_json()["Resources"]
    (ingest,) = [r for rid, r in resources.items() if r["Type"] == "AWS::SQS::Queue" and rid.startswith("IngestQueue")]
    (manager,) = [
        r["Properties"]["Environment"]["Variables"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("Handler") == "manager.handler.handler"
    ]
    return int(ingest["Properties"]["MessageRetentionPeriod"]), int(manager.get("OUTAGE_GRACE_MINUTES", 0)) / 60


def test_model_failed_longer_than_the_queue_keeps_messages_loses_no_image(deployed: tuple[int, float]) -> None:
    retention, grace_hours = deployed
    assert grace_hours == 24
    # Longer than the ingest queue keeps a message (14 days), shorter than grace + the DLQ's 14 days.
    result = simulate_outage(outage_days=14.5, grace_hours=grace_hours, retention_seconds=retention, scale=SCALE)
    assert result.uploaded > 100
    assert result.lost == 0, f"{result.lost} images expired from the ingest queue"
    assert len(result.labeled) == result.uploaded  # after the repair and the redrive
    assert result.moved_by_manager >= len(result.dead_lettered) > 0
    # Each waiting image reached the DLQ within the grace period (plus a manager tick or two), not days later.
    assert result.longest_wait_before_dlq_minutes <= grace_hours * 60 / SCALE + 2
    assert result.minutes_waiting_on_unusable_model > 0  # the alarm's signal was on
    assert result.receives_while_not_running == 0


def test_deleted_model_version_leaves_every_image_labeled_or_in_the_dlq(deployed: tuple[int, float]) -> None:
    retention, grace_hours = deployed
    result = simulate_outage(
        outage_days=14.5,
        grace_hours=grace_hours,
        retention_seconds=retention,
        scale=SCALE,
        status_during_outage=DELETED,
        redrive_after_repair=False,
    )
    assert result.lost == 0
    assert result.dead_lettered and result.labeled
    assert len(result.labeled | result.dead_lettered) == result.uploaded
