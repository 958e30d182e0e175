"""Several model routes: one lane (queue, DLQ, trigger) per route, fed by notifications under its prefix."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Annotations, Match, Template
from cdk_nag import AwsSolutionsChecks

from autolabel.cdk import AutolabelPipeline, ModelRoute, PipelineError
from tests.infra.conftest import ARN, PROJECT_ARN

OTHER_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/q/version/q.1/1700000000001"
OTHER_PROJECT_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/q/1690000000001"
ROUTES = [ModelRoute(ARN, "line-1/", PROJECT_ARN), ModelRoute(OTHER_ARN, "line-2/", OTHER_PROJECT_ARN)]


def two_route_stack(**props: Any) -> tuple[Stack, AutolabelPipeline]:
    app = App(context={"aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Lanes")
    bucket = s3.Bucket.from_bucket_name(stack, "Photos", "acme-photos")
    pipeline = AutolabelPipeline(stack, "P", bucket=bucket, models=ROUTES, **props)
    return stack, pipeline


@pytest.fixture(scope="module")
def lanes() -> tuple[Stack, AutolabelPipeline, Template]:
    stack, pipeline = two_route_stack()
    pipeline.add_source_bucket(s3.Bucket.from_bucket_name(stack, "More", "acme-more"))
    Aspects.of(stack).add(AwsSolutionsChecks(verbose=True))
    return stack, pipeline, Template.from_stack(stack)


def _ref_id(arn_value: dict[str, Any]) -> str:
    return str(arn_value["Fn::GetAtt"][0])


def test_two_routes_give_two_ingest_queues_each_with_its_own_dlq(lanes: Any) -> None:
    _stack, pipeline, template = lanes
    queues = template.find_resources("AWS::SQS::Queue")
    ingest = {qid: q for qid, q in queues.items() if "RedrivePolicy" in q["Properties"] and "Ingest" in qid}
    dead_letter_targets = {_ref_id(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]) for q in ingest.values()}
    assert len(ingest) == 2 and len(dead_letter_targets) == 2
    assert len(pipeline.ingest_queues) == 2 and len(pipeline.dead_letter_queues) == 3  # and the backfill lane's


def test_each_lane_has_its_own_event_source_mapping_on_the_one_labeler(lanes: Any) -> None:
    _stack, pipeline, template = lanes
    mappings = template.find_resources("AWS::Lambda::EventSourceMapping")
    sources = {_ref_id(m["Properties"]["EventSourceArn"]) for m in mappings.values()}
    functions = {m["Properties"]["FunctionName"]["Ref"] for m in mappings.values()}
    assert len(mappings) == 3 and len(sources) == 3  # two lanes and the backfill lane
    assert len(functions) == 1
    assert len({lane.event_source.event_source_mapping_id for lane in pipeline.lanes}) == 2


def test_notifications_go_to_each_lane_under_its_prefix_only(lanes: Any) -> None:
    _stack, pipeline, template = lanes
    [photos] = [
        n["Properties"]
        for n in template.find_resources("Custom::S3BucketNotifications").values()
        if n["Properties"]["BucketName"] == "acme-photos"
    ]
    by_prefix: dict[str, set[str]] = {}
    for config in photos["NotificationConfiguration"]["QueueConfigurations"]:
        [rule] = config["Filter"]["Key"]["FilterRules"]
        by_prefix.setdefault(rule["Value"], set()).add(_ref_id(config["QueueArn"]))
    queue_ids = [Stack.of(lane.queue).get_logical_id(lane.queue.node.default_child) for lane in pipeline.lanes]
    assert by_prefix == {"line-1/": {queue_ids[0]}, "line-2/": {queue_ids[1]}}


def test_add_source_bucket_notifies_every_lane_under_its_prefix(lanes: Any) -> None:
    _stack, _pipeline, template = lanes
    [more] = [
        n["Properties"]
        for n in template.find_resources("Custom::S3BucketNotifications").values()
        if n["Properties"]["BucketName"] == "acme-more"
    ]
    prefixes = {
        rule["Value"]
        for config in more["NotificationConfiguration"]["QueueConfigurations"]
        for rule in config["Filter"]["Key"]["FilterRules"]
    }
    assert prefixes == {"line-1/", "line-2/"}


def test_labeler_may_detect_with_both_model_versions_only(lanes: Any) -> None:
    _stack, _pipeline, template = lanes
    statements = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "rekognition:DetectCustomLabels" in json.dumps(statement["Action"])
    ]
    assert len(statements) == 1
    assert statements[0]["Action"] == "rekognition:DetectCustomLabels"
    assert sorted(statements[0]["Resource"]) == sorted([ARN, OTHER_ARN])


def test_labeler_reads_images_under_the_routes_prefixes_only(lanes: Any) -> None:
    _stack, _pipeline, template = lanes
    [read] = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement.get("Sid") == "ReadUploadedImages"
    ]
    resources = json.dumps(read["Resource"])
    assert "acme-photos/line-1/*" in resources and "acme-photos/line-2/*" in resources
    assert "acme-photos/*" not in resources


def test_labeler_gets_the_routes_in_its_environment(lanes: Any) -> None:
    _stack, _pipeline, template = lanes
    [labeler] = [
        f["Properties"]
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "labeler.handler.handler"
    ]
    routes = json.loads(labeler["Environment"]["Variables"]["MODEL_ROUTES"])
    assert routes == [
        {"prefix": "line-1/", "projectVersionArn": ARN},
        {"prefix": "line-2/", "projectVersionArn": OTHER_ARN},
    ]


def test_every_lane_has_its_dlq_and_age_alarms(lanes: Any) -> None:
    _stack, _pipeline, template = lanes
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    for name in ("DeadLetterQueueNotEmpty", "OldestMessageTooOld", "DeadLettersExpiringSoon"):
        assert sum(1 for alarm_id in alarms if alarm_id.startswith(f"PMonitoring{name}")) == 2, name


def test_cdk_nag_stays_clean_with_two_lanes(lanes: Any) -> None:
    stack, _pipeline, _template = lanes
    errors = Annotations.from_stack(stack).find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert errors == []


def test_the_deployment_parameter_lists_every_lane(lanes: Any) -> None:
    _stack, pipeline, _template = lanes
    assert "ModelRoutes" in pipeline.deployment_values


def test_a_lane_is_named_by_its_prefix_so_adding_a_route_keeps_the_others() -> None:
    _stack, pipeline = two_route_stack()
    app = App(context={"aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Lanes")
    bucket = s3.Bucket.from_bucket_name(stack, "Photos", "acme-photos")
    three = AutolabelPipeline(
        stack,
        "P",
        bucket=bucket,
        models=[*ROUTES, ModelRoute("arn:aws:rekognition:us-east-1:123456789012:project/r/version/r.1/1", "line-3/")],
    )
    assert [lane.queue.node.path for lane in three.lanes[:2]] == [lane.queue.node.path for lane in pipeline.lanes]


def test_several_routes_refuse_the_backfill_job_with_one_clear_message() -> None:
    with pytest.raises(PipelineError, match="backfill_job=True takes one model route"):
        two_route_stack(backfill_job=True)


def test_several_routes_refuse_sns_notifications_with_one_clear_message() -> None:
    with pytest.raises(PipelineError, match="notifications='sns' takes one model route"):
        two_route_stack(notifications="sns", notification_topic_arn="arn:aws:sns:us-east-1:123456789012:t")


def test_the_manager_may_start_stop_and_describe_both_model_versions_only(lanes: Any) -> None:
    _stack, pipeline, template = lanes
    assert pipeline.model_manager is not None
    statements = {
        statement.get("Sid"): statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    }
    assert sorted(statements["StartStopTheModelVersion"]["Resource"]) == sorted([ARN, OTHER_ARN])
    assert sorted(statements["DescribeTheProject"]["Resource"]) == sorted([PROJECT_ARN, OTHER_PROJECT_ARN])
    assert "FindTheProjectByName" not in statements


def test_the_manager_may_pause_and_resume_each_lanes_trigger_and_no_other(lanes: Any) -> None:
    _stack, _pipeline, template = lanes
    [triggers] = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement.get("Sid") == "PauseResumeTheLabelerTrigger"
    ]
    assert len(triggers["Resource"]) == 2


def test_the_manager_gets_every_lane_in_its_environment(lanes: Any) -> None:
    _stack, _pipeline, template = lanes
    [manager] = [
        f["Properties"]
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "manager.handler.handler"
    ]
    variables = manager["Environment"]["Variables"]
    assert "PROJECT_VERSION_ARN" not in variables and "QUEUE_URL" not in variables
    lanes_json = json.dumps(variables["MODEL_LANES"])
    assert ARN in lanes_json and OTHER_ARN in lanes_json


def test_each_model_has_its_own_cost_guard(lanes: Any) -> None:
    _stack, _pipeline, template = lanes
    guards = [a for a in template.find_resources("AWS::CloudWatch::Alarm") if "ModelRunningIdle" in a]
    assert len(guards) == 2


def test_cdk_nag_stays_clean_when_the_manager_finds_both_projects_by_name() -> None:
    app = App(context={"aws:cdk:bundling-stacks": []})
    stack = Stack(app, "ByName")
    bucket = s3.Bucket.from_bucket_name(stack, "Photos", "acme-photos")
    AutolabelPipeline(stack, "P", bucket=bucket, models=[ModelRoute(ARN, "line-1/"), ModelRoute(OTHER_ARN, "line-2/")])
    Aspects.of(stack).add(AwsSolutionsChecks(verbose=True))
    errors = Annotations.from_stack(stack).find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert errors == []
