"""AutolabelPipeline as a user's CDK app holds it: side by side, nag-clean, no effect outside itself."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest
from aws_cdk import App, Aspects, CfnResource, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Annotations, Match, Template
from cdk_nag import AwsSolutionsChecks

from autolabel.cdk import AutolabelPipeline, ModelManagerSettings, ModelRoute, PipelineError
from tests.infra.conftest import ARN, PROJECT_ARN

OTHER_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/q/version/q.1/1700000000001"
NO_BUNDLING = {"aws:cdk:bundling-stacks": []}


def host_app(**context: Any) -> tuple[App, Stack]:
    app = App(context={**NO_BUNDLING, "myTeamsOwnKey": "kept", **context})
    return app, Stack(app, "Inspection")


@pytest.fixture(scope="module")
def two_pipelines() -> tuple[App, Stack, AutolabelPipeline, AutolabelPipeline, dict[str, str]]:
    environ_before = dict(os.environ)
    path_before = list(sys.path)
    app, stack = host_app()
    photos = s3.Bucket.from_bucket_name(stack, "PhotoBucket", "acme-photos")
    scans = s3.Bucket.from_bucket_name(stack, "ScanBucket", "acme-scans")
    first = AutolabelPipeline(stack, "Photos", bucket=photos, models=[ModelRoute(ARN, project_arn=PROJECT_ARN)])
    second = AutolabelPipeline(
        stack,
        "Scans",
        bucket=scans,
        models=[ModelRoute(OTHER_ARN, prefix="incoming/")],
        notifications="eventbridge",
        min_confidence=80,
        model_manager=ModelManagerSettings(idle_minutes=5),
        deployment_name="scans",
    )
    Aspects.of(stack).add(AwsSolutionsChecks(verbose=True))  # the user's choice, on the user's stack
    app.synth()
    assert dict(os.environ) == environ_before and sys.path == path_before
    return app, stack, first, second, environ_before


def template_of(stack: Stack) -> dict[str, Any]:
    return Template.from_stack(stack).to_json()


def test_two_pipelines_synthesize_side_by_side(two_pipelines: Any) -> None:
    _app, stack, first, second, _env = two_pipelines
    resources = template_of(stack)["Resources"]
    tables = [rid for rid, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table" and "Results" in rid]
    assert len(tables) == 2
    functions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Function"]
    handlers = sorted(f["Properties"]["Handler"] for f in functions if "autolabel" in f["Properties"]["Description"])
    assert (
        handlers
        == ["labeler.backfill_job.handler"] * 2 + ["labeler.handler.handler"] * 2 + ["manager.handler.handler"] * 2
    )
    assert first.table is not second.table and first.bus is not second.bus
    assert len(first.ingest_queues) == 1 and len(first.dead_letter_queues) == 2


def test_nothing_outside_the_construct_changes(two_pipelines: Any) -> None:
    app, stack, _first, _second, _env = two_pipelines
    assert Aspects.of(app).all == []  # no aspect on the App (the stack's nag is the test's own)
    assert app.node.try_get_context("myTeamsOwnKey") == "kept"  # an unknown context key is the host's business
    assert "Outputs" not in template_of(stack)  # no output, so no fixed logical id to collide


def test_cdk_nag_is_clean_with_findings_acknowledged_on_its_own_resources(two_pipelines: Any) -> None:
    _app, stack, first, second, _env = two_pipelines
    findings = Annotations.from_stack(stack)
    errors = findings.find_error("*", Match.string_like_regexp(r"AwsSolutions-"))
    warnings = findings.find_warning("*", Match.string_like_regexp(r"AwsSolutions-"))
    assert [e.entry.data for e in errors] == [] and [w.entry.data for w in warnings] == []
    ours = (first.node.path + "/", second.node.path + "/", f"{stack.node.path}/BucketNotificationsHandler")
    acknowledged = [
        node.node.path
        for node in stack.node.find_all()
        if isinstance(node, CfnResource) and node.get_metadata("cdk_nag") is not None
    ]
    assert len(acknowledged) >= 4
    assert [path for path in acknowledged if not path.startswith(ours)] == []


def test_each_pipeline_writes_its_names_to_one_ssm_parameter(two_pipelines: Any) -> None:
    _app, stack, first, _second, _env = two_pipelines
    parameters = Template.from_stack(stack).find_resources("AWS::SSM::Parameter")
    names = sorted(p["Properties"]["Name"] for p in parameters.values())
    assert names == ["/autolabel/deployments/Inspection-Photos", "/autolabel/deployments/scans"]
    assert first.deployment_name == "Inspection-Photos"
    value = json.dumps(next(iter(p["Properties"]["Value"] for p in parameters.values())))
    for key in ("ResultsTableName", "IngestQueueUrl", "DeadLetterQueueUrl", "EventBusName", "BackfillQueueUrl"):
        assert key in value


def test_a_bus_of_your_own_is_used_and_no_bus_is_created() -> None:
    _app, stack = host_app()
    bus = events.EventBus(stack, "Mine")
    pipeline = AutolabelPipeline(
        stack,
        "P",
        bucket=s3.Bucket.from_bucket_name(stack, "B", "acme-photos"),
        models=[ModelRoute(ARN)],
        event_bus=bus,
    )
    assert pipeline.bus is bus and pipeline.events is None
    assert len(Template.from_stack(stack).find_resources("AWS::Events::EventBus")) == 1


def test_add_source_bucket_notifies_the_queue_and_lets_the_labeler_read_exactly_there() -> None:
    _app, stack = host_app()
    pipeline = AutolabelPipeline(
        stack, "P", bucket=s3.Bucket.from_bucket_name(stack, "B", "acme-photos"), models=[ModelRoute(ARN)]
    )
    pipeline.add_source_bucket(s3.Bucket.from_bucket_name(stack, "More", "acme-more"), prefix="cam-7/")
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "BucketName": "acme-more",
            "NotificationConfiguration": {
                "QueueConfigurations": Match.array_with(
                    [Match.object_like({"Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "cam-7/"}]}}})]
                )
            },
        },
    )
    policies = json.dumps(template.find_resources("AWS::IAM::Policy"))
    assert "ReadUploadedImages2" in policies and ":s3:::acme-more/cam-7/*" in policies


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ([], "at least one ModelRoute"),
        ([ModelRoute(ARN, "a/"), ModelRoute(ARN, "b/")], "has two routes"),
        ([ModelRoute(ARN, "line-1/"), ModelRoute(OTHER_ARN, "line-1/left/")], "overlap"),
        ([ModelRoute(ARN, ""), ModelRoute(OTHER_ARN, "b/")], "overlap"),
        ([ModelRoute("not-an-arn")], "project_version_arn"),
        ([ModelRoute(ARN, "/abs")], "plain S3 key prefix"),
    ],
)
def test_bad_routes_fail_at_synth_with_one_clear_message(models: list[ModelRoute], message: str) -> None:
    _app, stack = host_app()
    with pytest.raises(PipelineError, match=message):
        AutolabelPipeline(stack, "P", bucket=s3.Bucket.from_bucket_name(stack, "B", "acme-photos"), models=models)


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"max_concurrency": 1}, "max_concurrency must be an integer between 2 and 1000"),
        ({"notifications": "sqs"}, "notifications must be one of"),
        ({"notifications": "sns"}, "needs notification_topic_arn"),
        ({"min_confidence": 120}, "min_confidence"),
        ({"model_manager": ModelManagerSettings(always_on_windows="Mon 25:00-26:00")}, "always_on_windows"),
        ({"deployment_name": "has space"}, "deployment_name"),
    ],
)
def test_bad_props_fail_with_one_clear_message(props: dict[str, Any], message: str) -> None:
    _app, stack = host_app()
    with pytest.raises(PipelineError, match=message):
        AutolabelPipeline(
            stack, "P", bucket=s3.Bucket.from_bucket_name(stack, "B", "acme-photos"), models=[ModelRoute(ARN)], **props
        )


@pytest.mark.parametrize(
    ("label", "min_confidence", "message"),
    [("", 90, "label must be a non-empty label name"), ("scratch", 120, "min_confidence must be 0-100")],
)
def test_on_label_refuses_what_no_event_could_match(label: str, min_confidence: float, message: str) -> None:
    _app, stack = host_app()
    pipeline = AutolabelPipeline(
        stack, "P", bucket=s3.Bucket.from_bucket_name(stack, "B", "acme-photos"), models=[ModelRoute(ARN)]
    )
    with pytest.raises(PipelineError, match=message):
        pipeline.on_label(label, min_confidence=min_confidence, target=targets.SnsTopic(pipeline.alarm_topic))
