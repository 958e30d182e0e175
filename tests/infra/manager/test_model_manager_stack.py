"""The model manager in the stack: on by default, exact permissions, schedule, alarms."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match, Template

from infra.settings import SettingsError, StackSettings
from tests.infra.conftest import ARN, PROJECT_ARN, synth


@pytest.fixture(scope="module")
def template() -> Template:
    return synth(idleMinutes=20, minInferenceUnits=2, maxInferenceUnits=4, alwaysOnWindows="Mon-Fri 08:00-18:00")[1]


def manager_statements(template: Template) -> list[dict[str, Any]]:
    roles = template.find_resources(
        "AWS::IAM::Role", {"Properties": {"Description": Match.string_like_regexp("model manager")}}
    )
    (role_id,) = roles
    statements: list[dict[str, Any]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return sorted([action] if isinstance(action, str) else action)


def granting(statements: list[dict[str, Any]], action: str) -> dict[str, Any]:
    (statement,) = [s for s in statements if action in _actions(s)]
    return statement


def resource(statement: dict[str, Any]) -> Any:
    """The one resource of a statement (L2 grants write a list of one)."""
    value = statement["Resource"]
    if isinstance(value, list):
        (value,) = value
    return value


def logical_id(template: Template, resource_type: str, name_part: str) -> str:
    return next(rid for rid in template.find_resources(resource_type) if name_part in rid)


def test_manager_may_touch_only_its_model_queue_trigger_state_and_bus(template: Template) -> None:
    statements = manager_statements(template)
    assert granting(statements, "rekognition:DescribeProjectVersions")["Resource"] == PROJECT_ARN
    start_stop = granting(statements, "rekognition:StartProjectVersion")
    assert start_stop["Resource"] == ARN
    assert _actions(start_stop) == ["rekognition:StartProjectVersion", "rekognition:StopProjectVersion"]
    mappings = [s["Resource"] for s in statements if "lambda:UpdateEventSourceMapping" in _actions(s)]
    assert len(mappings) == 2  # the ingest and the backfill triggers, each exactly
    for mapping_id in template.find_resources("AWS::Lambda::EventSourceMapping"):
        assert sum(mapping_id in str(resource) for resource in mappings) == 1
    # Granted through the L2 helpers, still exact actions on exactly one resource each.
    state = granting(statements, "dynamodb:UpdateItem")
    assert _actions(state) == ["dynamodb:UpdateItem"]
    assert resource(state) == {"Fn::GetAtt": [logical_id(template, "AWS::DynamoDB::Table", "ModelManagerState"), "Arn"]}
    for take in (s for s in statements if "sqs:ReceiveMessage" in _actions(s)):
        assert _actions(take) == ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    for dead_letters in (s for s in statements if "sqs:SendMessage" in _actions(s)):
        assert _actions(dead_letters) == ["sqs:SendMessage"]
    assert _actions(granting(statements, "events:PutEvents")) == ["events:PutEvents"]
    granted = sorted({action for statement in statements for action in _actions(statement)})
    assert granted == sorted(
        [
            "dynamodb:UpdateItem",
            "events:PutEvents",
            "lambda:GetEventSourceMapping",
            "lambda:UpdateEventSourceMapping",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "rekognition:DescribeProjectVersions",
            "rekognition:StartProjectVersion",
            "rekognition:StopProjectVersion",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
            "sqs:SendMessage",
        ]
    ), "nothing beyond the exact actions its code uses"
    for statement in statements:
        assert statement["Resource"] != "*"


def test_trigger_starts_paused_and_the_manager_runs_every_minute(template: Template) -> None:
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {"Enabled": False})
    function_id = next(
        rid
        for rid, r in template.find_resources("AWS::Lambda::Function").items()
        if r["Properties"].get("Handler") == "manager.handler.handler"
    )
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(1 minute)",
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [function_id, "Arn"]}})],
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "manager.handler.handler",
            "ReservedConcurrentExecutions": 1,
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "PROJECT_ARN": PROJECT_ARN,
                        "PROJECT_VERSION_ARN": ARN,
                        "IDLE_MINUTES": "20",
                        "MIN_INFERENCE_UNITS": "2",
                        "MAX_INFERENCE_UNITS": "4",
                        "ALWAYS_ON": "false",
                        "ALWAYS_ON_WINDOWS": "Mon-Fri 08:00-18:00",
                        "STOP_MODELS_STARTED_ELSEWHERE": "false",
                        "EVENT_SOURCE_MAPPING_ID": {"Ref": Match.string_like_regexp("SqsEventSource")},
                    }
                )
            },
        },
    )


def test_alarms_for_a_model_stuck_starting_failed_or_missing(template: Template) -> None:
    for metric in ("ModelStartingMinutes", "ModelFailed", "ModelNotFound"):
        template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "MetricName": metric,
                "Namespace": "Autolabel",
                "Dimensions": [{"Name": "service", "Value": "autolabel-model-manager"}],
                "AlarmActions": [{"Ref": Match.string_like_regexp("MonitoringAlarmTopic")}],
            },
        )


def test_manager_stack_is_nag_clean() -> None:
    stack, _template = synth()
    assert Annotations.from_stack(stack).find_error("*", Match.string_like_regexp(r"AwsSolutions-")) == []


def test_manager_can_be_switched_off() -> None:
    _stack, template = synth(modelManager="false", projectArn="")
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {"Enabled": True})
    assert not [
        f
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "manager.handler.handler"
    ]
    assert template.find_resources("AWS::Events::Rule") == {}


def test_without_project_arn_the_manager_looks_it_up_by_name() -> None:
    stack, template = synth(projectArn="")
    statements = manager_statements(template)
    assert granting(statements, "rekognition:DescribeProjects") == {
        "Sid": "FindTheProjectByName",
        "Effect": "Allow",
        "Action": "rekognition:DescribeProjects",
        "Resource": "*",
    }
    project = ARN.split("/version/", 1)[0]
    assert granting(statements, "rekognition:DescribeProjectVersions")["Resource"] == f"{project}/*"
    assert granting(statements, "rekognition:StartProjectVersion")["Resource"] == ARN  # still exact
    assert Annotations.from_stack(stack).find_error("*", Match.string_like_regexp(r"AwsSolutions-")) == []
    assert "ProjectArn" not in template.find_outputs("*")


def test_with_project_arn_there_is_no_lookup(template: Template) -> None:
    granted = {action for statement in manager_statements(template) for action in _actions(statement)}
    assert "rekognition:DescribeProjects" not in granted


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("projectArn", PROJECT_ARN.replace("autolabel-local", "another-project")),
        ("alwaysOnWindows", "weekdays 9 to 5"),
        ("maxInferenceUnits", "0"),
        ("idleMinutes", "0"),
        ("alwaysOn", "maybe"),
        ("modelManager", "perhaps"),
        ("modelOutageGraceHours", "0"),
        ("modelOutageGraceHours", "313"),  # past 13 days: too close to the queue's 14-day expiry
        ("modelOutageGraceHours", "a day"),
    ],
)
def test_invalid_manager_settings_name_their_key(key: str, value: str) -> None:
    with pytest.raises(SettingsError, match=key):
        StackSettings.from_context({"projectVersionArn": ARN, "projectArn": PROJECT_ARN, key: value}.get)


def test_max_units_below_min_units_is_refused() -> None:
    context = {"projectVersionArn": ARN, "projectArn": PROJECT_ARN, "minInferenceUnits": 3, "maxInferenceUnits": 2}
    with pytest.raises(SettingsError, match="maxInferenceUnits"):
        StackSettings.from_context(context.get)


def alarm_named(template: Template, fragment: str) -> dict[str, Any]:
    (alarm,) = [
        a["Properties"] for rid, a in template.find_resources("AWS::CloudWatch::Alarm").items() if fragment in rid
    ]
    return alarm


def test_a_single_manager_error_alarms(template: Template) -> None:
    alarm = alarm_named(template, "ManagerErrors")
    assert (alarm["MetricName"], alarm["Statistic"], alarm["Threshold"]) == ("Errors", "Sum", 1)
    assert alarm["EvaluationPeriods"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_cost_guard_alarms_on_a_model_running_with_an_empty_queue_past_idle_minutes_whatever_the_cause(
    template: Template,
) -> None:
    alarm = alarm_named(template, "ModelRunningIdle")
    # idleMinutes=20 in this stack, plus a 15-minute margin, in 5-minute periods: 7 periods in a row.
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 7
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"][0]["Ref"].startswith("MonitoringAlarmTopic")
    queries = {q["Id"]: q for q in alarm["Metrics"]}
    (expression,) = [q for q in queries.values() if "Expression" in q]
    assert expression["ReturnData"] is True
    text = expression["Expression"]
    assert "units" in text and "visible" in text and "inFlight" in text and "keptOn" in text
    units = queries["units"]["MetricStat"]["Metric"]
    # Rekognition's own metric, not the manager's: it alarms even when the manager is broken or absent.
    assert units["Namespace"] == "AWS/Rekognition" and units["MetricName"] == "InServiceInferenceUnits"
    assert {d["Name"]: d["Value"] for d in units["Dimensions"]} == {
        "ProjectName": "autolabel-local",
        "VersionName": "autolabel-local.1",
    }
    assert queries["visible"]["MetricStat"]["Metric"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert queries["inFlight"]["MetricStat"]["Metric"]["MetricName"] == "ApproximateNumberOfMessagesNotVisible"
    assert queries["keptOn"]["MetricStat"]["Metric"]["MetricName"] == "ModelKeptOn"
    for query in ("units", "visible", "inFlight", "keptOn"):
        assert queries[query]["ReturnData"] is False


def test_outage_grace_defaults_to_a_day_and_is_configurable() -> None:
    base = {"projectVersionArn": ARN, "projectArn": PROJECT_ARN}
    assert StackSettings.from_context(base.get).model_outage_grace_hours == 24
    assert StackSettings.from_context({**base, "modelOutageGraceHours": "72"}.get).model_outage_grace_hours == 72
    assert StackSettings.from_context({**base, "modelOutageGraceHours": 312}.get).model_outage_grace_hours == 312


def test_manager_may_move_waiting_work_from_each_queue_to_its_own_dlq_only(template: Template) -> None:
    statements = manager_statements(template)
    queues = template.find_resources("AWS::SQS::Queue")
    (ingest,) = [rid for rid in queues if rid.startswith("IngestQueue")]
    (dlq,) = [rid for rid in queues if rid.startswith("IngestDeadLetterQueue")]
    (backfill,) = [rid for rid in queues if rid.startswith("BackfillQueue")]
    (backfill_dlq,) = [rid for rid in queues if rid.startswith("BackfillDeadLetterQueue")]
    taken = [s for s in statements if "sqs:ReceiveMessage" in _actions(s)]
    assert all(_actions(s) == ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"] for s in taken)
    assert sorted(str(resource(s)) for s in taken) == sorted(
        str({"Fn::GetAtt": [queue, "Arn"]}) for queue in (ingest, backfill)
    )
    sent = [s for s in statements if "sqs:SendMessage" in _actions(s)]
    assert all(_actions(s) == ["sqs:SendMessage"] for s in sent)
    assert sorted(str(resource(s)) for s in sent) == sorted(
        str({"Fn::GetAtt": [queue, "Arn"]}) for queue in (dlq, backfill_dlq)
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "manager.handler.handler",
            "Environment": {
                "Variables": Match.object_like(
                    {"BACKFILL_QUEUE_URL": {"Ref": backfill}, "BACKFILL_DEAD_LETTER_QUEUE_URL": {"Ref": backfill_dlq}}
                )
            },
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "manager.handler.handler",
            "Environment": {
                "Variables": Match.object_like({"DEAD_LETTER_QUEUE_URL": {"Ref": dlq}, "OUTAGE_GRACE_MINUTES": "1440"})
            },
        },
    )


def test_work_waiting_on_a_model_that_cannot_run_alarms_and_the_grace_is_configurable() -> None:
    _stack, template = synth(modelOutageGraceHours="72")
    alarm = alarm_named(template, "WorkWaitsOnUnusableModel")
    assert (alarm["MetricName"], alarm["Threshold"], alarm["EvaluationPeriods"]) == ("WorkWaitingOnUnusableModel", 1, 1)
    assert "72 h" in alarm["AlarmDescription"]
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "manager.handler.handler",
            "Environment": {"Variables": Match.object_like({"OUTAGE_GRACE_MINUTES": str(72 * 60)})},
        },
    )
