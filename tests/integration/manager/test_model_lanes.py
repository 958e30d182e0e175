"""Several models: a model that is stopped, starting or failing never delays another model's images.

The real labeler handler and the real manager (``ModelFleet``) in moto, with
one lane per model (local/two_models.py): model A is stopped and slow to
start, model B runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.fakes.faults import client_error
from local.two_models import MODEL_A, MODEL_B, PREFIX_A, PREFIX_B, TwoModels, build, quiet_lambda_output


@pytest.fixture
def world() -> Iterator[TwoModels]:
    with mock_aws(), quiet_lambda_output():
        yield build(a_start_minutes=30)


def upload_both(world: TwoModels, count: int = 3) -> None:
    for i in range(count):
        world.upload(f"{PREFIX_A}part-{i}.png")
        world.upload(f"{PREFIX_B}part-{i}.png")


def minutes(world: TwoModels, count: int) -> None:
    for _ in range(count):
        world.minute()
        world.clock.advance(1)


def test_model_a_stopped_while_model_bs_images_are_labeled_and_announced(world: TwoModels) -> None:
    lane_a, lane_b = world.lanes
    upload_both(world)
    minutes(world, 3)
    assert world.labeled(lane_b) == [f"{PREFIX_B}part-{i}.png" for i in range(3)]
    assert world.labeled(lane_a) == [] and world.waiting(lane_a) == 3
    assert world.models.lifecycles[MODEL_A].status == "STARTING"  # started on work, not yet running
    assert world.triggers.enabled == {"esm-a": False, "esm-b": True}  # only A's lane is paused
    called = {call["ProjectVersionArn"] for call in world.models.detector.calls}
    assert called == {MODEL_B}  # no record of A's lane met its stopped model


def test_once_model_a_runs_its_lane_resumes_and_its_images_are_labeled_with_it(world: TwoModels) -> None:
    lane_a, _lane_b = world.lanes
    world.models.lifecycles[MODEL_A].start_minutes = 3
    upload_both(world)
    minutes(world, 6)
    assert world.labeled(lane_a) == [f"{PREFIX_A}part-{i}.png" for i in range(3)]
    assert world.waiting(lane_a) == 0 and world.triggers.enabled == {"esm-a": True, "esm-b": True}
    announced = {
        e["detail"]["key"]: e["detail"]["projectVersionArn"]
        for e in world.announced
        if e["detail-type"] == "Custom Labels Detected"
    }
    assert {announced[f"{PREFIX_A}part-0.png"], announced[f"{PREFIX_B}part-0.png"]} == {MODEL_A, MODEL_B}


def test_a_failing_run_for_one_model_does_not_hold_back_the_other(world: TwoModels) -> None:
    _lane_a, lane_b = world.lanes
    lifecycle = world.models.lifecycles[MODEL_A]

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise client_error("InternalServerError", "try again", operation="DescribeProjectVersions")

    lifecycle.describe_project_versions = broken  # type: ignore[method-assign]
    upload_both(world)
    with pytest.raises(Exception, match="InternalServerError"):
        world.fleet.run_once()  # raises after every model ran: ManagerErrors alarms
    for lane in world.lanes:
        if world.triggers.enabled[lane.trigger_id]:
            while lane.poller.poll_once():
                pass
    assert world.triggers.enabled == {"esm-a": False, "esm-b": True}
    assert world.waiting(lane_b) == 0


def test_each_model_keeps_its_own_state_item(world: TwoModels) -> None:
    upload_both(world, count=1)
    minutes(world, 1)
    items = boto3.client("dynamodb").scan(TableName="autolabel-manager-state")["Items"]
    assert {item["pk"]["S"] for item in items} == {MODEL_A, MODEL_B}
