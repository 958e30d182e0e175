"""Several models: `model status` lists every model, `--model` picks one, `find --model` keeps its results."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.fakes.fake_model import FakeCustomLabelsModel
from local.fakes.model_lifecycle import FakeModelLifecycle
from local.samples import make_image
from local.two_models import FakeModels, FakeTriggers
from tests.integration.labeler.test_model_routes import OTHER_ARN, with_routes
from tests.support.cli import RunCli
from tests.support.harness import ARN, Harness

VERSION_A = "arn:aws:rekognition:us-east-1:123456789012:project/widgets/version/widgets.1/1700000000000"
VERSION_B = "arn:aws:rekognition:us-east-1:123456789012:project/gadgets/version/gadgets.1/1700000000001"


@pytest.fixture
def two_models(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mock_aws():
        sqs = boto3.client("sqs")
        urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("a", "a-dlq", "b", "b-dlq")}
        lanes = [
            {
                "prefix": prefix,
                "projectVersionArn": version,
                "projectArn": "",
                "ingestQueueUrl": urls[name],
                "deadLetterQueueUrl": urls[f"{name}-dlq"],
                "eventSourceMappingId": f"esm-{name}",
            }
            for name, prefix, version in (("a", "line-1/", VERSION_A), ("b", "line-2/", VERSION_B))
        ]
        for variable, value in {
            "AUTOLABEL_PROJECT_VERSION_ARN": VERSION_A,
            "AUTOLABEL_QUEUE_URL": urls["a"],
            "AUTOLABEL_DLQ_URL": urls["a-dlq"],
            "AUTOLABEL_EVENT_SOURCE_MAPPING_ID": "esm-a",
            "AUTOLABEL_MODEL_ROUTES": json.dumps(lanes),
        }.items():
            monkeypatch.setenv(variable, value)
        sqs.send_message(QueueUrl=urls["b"], MessageBody="waiting")
        lifecycles = {
            VERSION_A: FakeModelLifecycle(time.time),
            VERSION_B: FakeModelLifecycle(time.time, status="RUNNING"),
        }
        models = FakeModels(lifecycles, FakeCustomLabelsModel(boto3.client("s3")))
        triggers = FakeTriggers(["esm-a", "esm-b"])
        clients = {
            "rekognition": models,
            "sqs": sqs,
            "lambda": triggers,
            "cloudformation": boto3.client("cloudformation"),
        }
        yield {"clients": clients, "lifecycles": lifecycles, "triggers": triggers}


def test_model_status_lists_every_model_with_its_lane(cli: RunCli, two_models: dict[str, Any]) -> None:
    run = cli("model", "status", "--output", "json", clients=two_models["clients"])
    assert run.code == 0, run.err
    rows = json.loads(run.out)
    assert [(r["model"], r["prefix"], r["status"], r["waiting"]) for r in rows] == [
        (VERSION_A, "line-1/", "STOPPED", 0),
        (VERSION_B, "line-2/", "RUNNING", 1),
    ]
    table = cli("model", "status", clients=two_models["clients"]).out
    assert VERSION_A in table and VERSION_B in table


def test_model_status_with_model_shows_that_model_only(cli: RunCli, two_models: dict[str, Any]) -> None:
    run = cli("model", "status", "--model", VERSION_B, "--output", "json", clients=two_models["clients"])
    assert [row["model"] for row in json.loads(run.out)] == [VERSION_B]


def test_start_and_stop_need_model_when_there_are_several(cli: RunCli, two_models: dict[str, Any]) -> None:
    run = cli("model", "start", clients=two_models["clients"])
    assert run.code == 252 and "this deployment has 2 models: pass --model ARN" in run.err
    started = cli("model", "start", "--model", VERSION_A, clients=two_models["clients"])
    assert started.code == 0 and two_models["lifecycles"][VERSION_A].starts == [
        {"ProjectVersionArn": VERSION_A, "MinInferenceUnits": 1}
    ]
    assert two_models["lifecycles"][VERSION_B].starts == []
    stopped = cli("model", "stop", "--model", VERSION_B, clients=two_models["clients"])
    assert stopped.code == 0 and two_models["triggers"].enabled == {"esm-a": False, "esm-b": False}


def test_an_unknown_model_is_refused_naming_the_deployments_models(cli: RunCli, two_models: dict[str, Any]) -> None:
    other = VERSION_A.replace("widgets", "other")
    run = cli("model", "status", "--model", other, clients=two_models["clients"])
    assert (
        run.code == 252 and f"--model {other} is none of this deployment's models: {VERSION_A}, {VERSION_B}" in run.err
    )


def test_find_with_model_keeps_that_models_results(
    cli: RunCli, harness: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with_routes(harness)
    scratch = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
    harness.upload("line-1/a.png", scratch)
    harness.upload("line-2/b.png", scratch)
    harness.run()
    capsys.readouterr()
    monkeypatch.setenv("AUTOLABEL_TABLE", harness.resources.table_name)
    every = json.loads(cli("find", "scratch", "--output", "json").out)
    assert sorted(e["key"] for e in every) == ["line-1/a.png", "line-2/b.png"]
    only_b = json.loads(cli("find", "scratch", "--model", OTHER_ARN, "--output", "json").out)
    assert [(e["key"], e["projectVersionArn"]) for e in only_b] == [("line-2/b.png", OTHER_ARN)]
    assert (
        json.loads(cli("find", "scratch", "--model", ARN, "--limit", "1", "--output", "json").out)[0]["key"]
        == "line-1/a.png"
    )
