"""Several models: each record is labeled, stored and announced with the model of the route its key is under."""

from __future__ import annotations

import dataclasses
from urllib.parse import unquote_plus

import boto3

from labeler import handler
from labeler.config import KeyRoute
from labeler.queries import get_result
from local.samples import make_image
from tests.support.harness import ARN, Harness

OTHER_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/line-2/version/line-2.1/1700000000001"
SCRATCH = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})


def with_routes(harness: Harness) -> Harness:
    harness.config = dataclasses.replace(
        harness.config, routes=(KeyRoute("line-1/", ARN), KeyRoute("line-2/", OTHER_ARN))
    )
    harness.pipeline = harness.build_pipeline()
    handler.use_pipeline(harness.pipeline)
    return harness


def test_each_key_is_labeled_stored_and_announced_with_its_routes_model(harness: Harness) -> None:
    with_routes(harness)
    harness.upload("line-1/a.png", SCRATCH)
    harness.upload("line-2/b.png", SCRATCH)
    harness.run()
    called = {call["Image"]["S3Object"]["Name"]: call["ProjectVersionArn"] for call in harness.model.calls}
    assert called == {"line-1/a.png": ARN, "line-2/b.png": OTHER_ARN}
    announced = {e["detail"]["key"]: e["detail"]["projectVersionArn"] for e in harness.new_events()}
    assert announced == {"line-1/a.png": ARN, "line-2/b.png": OTHER_ARN}
    client = boto3.client("dynamodb")
    stored = get_result(
        harness.resources.table_name, harness.resources.bucket, "line-2/b.png", OTHER_ARN, client=client
    )
    assert stored is not None and stored["projectVersionArn"] == OTHER_ARN and stored["labelNames"] == ["scratch"]
    assert harness.dead_letters() == []


def test_a_key_under_no_route_reaches_the_dlq_unlabeled_and_nothing_else_is_held_back(harness: Harness) -> None:
    with_routes(harness)
    harness.upload("line-3/c.png", SCRATCH)
    harness.upload("line-1/a.png", SCRATCH)
    harness.run()
    assert [call["Image"]["S3Object"]["Name"] for call in harness.model.calls] == ["line-1/a.png"]
    assert [e["detail"]["key"] for e in harness.new_events()] == ["line-1/a.png"]
    [dead] = harness.dead_letters()
    assert unquote_plus(dead["Records"][0]["s3"]["object"]["key"]) == "line-3/c.png"  # as S3 encodes it
