"""The `models` context key: several models, one lane each; bad JSON, shape or overlap fail in one line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.app import build_app
from infra.settings import RouteSetting, SettingsError, StackSettings
from tests.infra.conftest import ARN, PROJECT_ARN

OTHER_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/q/version/q.1/1700000000001"
TWO = [
    {"prefix": "line-1/", "projectVersionArn": ARN, "projectArn": PROJECT_ARN},
    {"prefix": "line-2/", "projectVersionArn": OTHER_ARN},
]


def settings(**context: Any) -> StackSettings:
    return StackSettings.from_context(context.get)


def test_models_from_the_command_line_give_one_route_each() -> None:
    s = settings(models=json.dumps(TWO))
    assert s.routes == (RouteSetting("line-1/", ARN, PROJECT_ARN), RouteSetting("line-2/", OTHER_ARN))
    assert s.project_version_arn == ARN and s.backfill_job is False  # the backfill job takes one model


def test_models_from_cdk_json_are_a_list() -> None:
    assert len(settings(models=TWO).routes) == 2


def test_project_version_arn_alone_is_still_one_route() -> None:
    s = settings(projectVersionArn=ARN, keyPrefix="in/")
    assert s.routes == (RouteSetting("in/", ARN, None),) and s.backfill_job is True


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"models": "[{"}, r"^models must be a JSON list of routes like \[.*: Expecting"),
        ({"models": "{}"}, "^models must be a non-empty JSON list of routes"),
        ({"models": json.dumps(["line-1/"])}, "^models route 1 must be an object like"),
        (
            {"models": json.dumps([{"prefx": "a/", "projectVersionArn": ARN}])},
            "^models route 1: unknown key 'prefx'; did you mean 'prefix'\\?$",
        ),
        ({"models": json.dumps([{"prefix": "a/"}])}, "^models route 1 projectVersionArn is required"),
        (
            {"models": json.dumps([{"prefix": "/a", "projectVersionArn": ARN}])},
            "^models route 1: prefix must be a plain S3 key prefix",
        ),
        (
            {
                "models": json.dumps(
                    [{"prefix": "a/", "projectVersionArn": ARN}, {"prefix": "a/b/", "projectVersionArn": OTHER_ARN}]
                )
            },
            "^models: prefixes 'a/' and 'a/b/' overlap: every key must belong to one route$",
        ),
        (
            {
                "models": json.dumps(
                    [{"prefix": "", "projectVersionArn": ARN}, {"prefix": "b/", "projectVersionArn": OTHER_ARN}]
                )
            },
            "overlap",
        ),
        (
            {
                "models": json.dumps(
                    [{"prefix": "a/", "projectVersionArn": ARN}, {"prefix": "b/", "projectVersionArn": ARN}]
                )
            },
            "has two routes",
        ),
        (
            {"models": json.dumps(TWO), "projectVersionArn": ARN},
            "^models replaces projectVersionArn, keyPrefix and projectArn",
        ),
        ({"models": json.dumps(TWO), "backfillJob": "true"}, "^backfillJob=true takes one model"),
    ],
)
def test_bad_models_fail_in_one_line_naming_the_key(context: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings(**context)


def test_the_app_synthesizes_one_lane_per_model() -> None:
    _app, stack = build_app({"models": json.dumps(TWO), "aws:cdk:bundling-stacks": []})
    template = Template.from_stack(stack)
    assert len(template.find_resources("AWS::Lambda::EventSourceMapping")) == 3  # two lanes and the backfill lane
    assert "ModelRoutes" in template.to_json()["Outputs"]
