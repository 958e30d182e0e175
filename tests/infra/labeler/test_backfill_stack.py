"""The backfill lane in the template: its queue and DLQ, its own trigger and concurrency share, outputs, alarms."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match, Template

from infra.settings import StackSettings
from tests.infra.conftest import ARN, PROJECT_ARN, synth


@pytest.fixture(scope="module")
def default() -> tuple[Any, Template]:
    return synth()


@pytest.fixture(scope="module")
def template(default: tuple[Any, Template]) -> Template:
    return default[1]


def queue_id(template: Template, prefix: str) -> str:
    (found,) = [rid for rid in template.find_resources("AWS::SQS::Queue") if rid.startswith(prefix)]
    return found


def backfill_mapping(template: Template) -> dict[str, Any]:
    backfill = queue_id(template, "BackfillQueue")
    (mapping,) = [
        m["Properties"]
        for m in template.find_resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [backfill, "Arn"]}
    ]
    return mapping


def test_the_backfill_queue_is_encrypted_with_its_own_dlq_and_the_ingest_queues_timeouts(template: Template) -> None:
    queues = template.find_resources("AWS::SQS::Queue")
    ingest = queues[queue_id(template, "IngestQueue")]["Properties"]
    backfill = queues[queue_id(template, "BackfillQueue")]["Properties"]
    dlq = queue_id(template, "BackfillDeadLetterQueue")
    assert backfill["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}, "maxReceiveCount": 10}
    assert backfill["VisibilityTimeout"] == ingest["VisibilityTimeout"]
    assert backfill["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert backfill["SqsManagedSseEnabled"] is True
    assert queues[dlq]["Properties"]["SqsManagedSseEnabled"] is True
    assert queues[dlq]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_the_backfill_queues_accept_tls_only_and_no_service_may_send(template: Template) -> None:
    for prefix in ("BackfillQueue", "BackfillDeadLetterQueue"):
        queue = queue_id(template, prefix)
        (policy,) = [
            p["Properties"]
            for p in template.find_resources("AWS::SQS::QueuePolicy").values()
            if p["Properties"]["Queues"] == [{"Ref": queue}]
        ]
        statements = policy["PolicyDocument"]["Statement"]
        assert [s["Effect"] for s in statements] == ["Deny"]
        assert statements[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_labeler_reads_the_backfill_queue_through_its_own_trigger_and_share() -> None:
    _stack, template = synth(maxConcurrency=8, backfillMaxConcurrency=3, batchSize=4)
    mapping = backfill_mapping(template)
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 3}
    assert mapping["BatchSize"] == 4
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Enabled"] is False  # the manager resumes it while the model runs
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [queue_id(template, "IngestQueue"), "Arn"]},
            "ScalingConfig": {"MaximumConcurrency": 8},
        },
    )


def test_the_backfill_share_defaults_to_two_and_is_on_without_the_manager(template: Template) -> None:
    assert backfill_mapping(template)["ScalingConfig"] == {"MaximumConcurrency": 2}
    _stack, unmanaged = synth(modelManager="false")
    assert backfill_mapping(unmanaged)["Enabled"] is True
    base = {"projectVersionArn": ARN, "projectArn": PROJECT_ARN}
    assert StackSettings.from_context(base.get).backfill_max_concurrency == 2
    assert StackSettings.from_context({**base, "backfillMaxConcurrency": "40"}.get).backfill_max_concurrency == 40


def test_the_backfill_outputs_name_the_queues_and_the_trigger(template: Template) -> None:
    outputs = template.to_json()["Outputs"]
    assert outputs["BackfillQueueUrl"]["Value"] == {"Ref": queue_id(template, "BackfillQueue")}
    assert outputs["BackfillDeadLetterQueueUrl"]["Value"] == {"Ref": queue_id(template, "BackfillDeadLetterQueue")}
    mapping_ids = list(template.find_resources("AWS::Lambda::EventSourceMapping"))
    assert outputs["BackfillEventSourceMappingId"]["Value"] == {
        "Ref": next(m for m in mapping_ids if "BackfillQueue" in m)
    }


@pytest.mark.parametrize(
    ("queue", "metric", "threshold"),
    [
        ("BackfillDeadLetterQueue", "ApproximateNumberOfMessagesVisible", 1),
        ("BackfillQueue", "ApproximateAgeOfOldestMessage", 10 * 24 * 3600),
    ],
)
def test_backfill_dead_letters_and_aging_messages_alarm(
    template: Template, queue: str, metric: str, threshold: int
) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": metric,
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id(template, queue), "QueueName"]}}],
            "Threshold": threshold,
            "AlarmActions": [{"Ref": Match.string_like_regexp("MonitoringAlarmTopic")}],
        },
    )


def test_the_manager_counts_and_pauses_the_backfill_lane(template: Template) -> None:
    mapping = next(m for m in template.find_resources("AWS::Lambda::EventSourceMapping") if "BackfillQueue" in m)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "manager.handler.handler",
            "Environment": {
                "Variables": Match.object_like({"BACKFILL_EVENT_SOURCE_MAPPING_ID": {"Ref": mapping}}),
            },
        },
    )


def test_the_stack_with_the_backfill_lane_is_nag_clean(default: tuple[Any, Template]) -> None:
    findings = Annotations.from_stack(default[0])
    assert [e.entry.data for e in findings.find_error("*", Match.string_like_regexp(r"AwsSolutions-"))] == []
    assert [w.entry.data for w in findings.find_warning("*", Match.string_like_regexp(r"AwsSolutions-"))] == []
