"""The deployed stack, one concern per test (aws_cdk.assertions)."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match, Template

from infra.settings import SettingsError
from shared import table_layout as layout
from tests.infra.conftest import ARN, PROJECT_ARN, synth

TLS_DENY = Match.object_like(
    {
        "Effect": "Deny",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
)


@pytest.fixture(scope="module")
def default() -> tuple[Any, Template]:
    return synth()


@pytest.fixture(scope="module")
def template(default: tuple[Any, Template]) -> Template:
    return default[1]


@pytest.fixture(scope="module")
def customized() -> Template:
    return synth(
        bucketName="acme-existing-images",
        keyPrefix="incoming/",
        minConfidence="0",
        maxResults=20,
        batchSize=5,
        maxConcurrency=7,
        eventSource="acme.autolabel",
    )[1]


def labeler_statements(template: Template) -> list[dict[str, Any]]:
    policies = template.find_resources("AWS::IAM::Policy")
    roles = template.find_resources("AWS::IAM::Role")
    role_id = next(rid for rid in roles if rid.startswith("LabelerRole"))
    statements: list[dict[str, Any]] = []
    for policy in policies.values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def actions_of(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def statement_with(template: Template, action: str) -> dict[str, Any]:
    (statement,) = [s for s in labeler_statements(template) if action in actions_of(s)]
    return statement


def test_labeler_may_detect_only_with_the_configured_model_version(template: Template) -> None:
    statement = statement_with(template, "rekognition:DetectCustomLabels")
    assert actions_of(statement) == ["rekognition:DetectCustomLabels"]
    assert statement["Resource"] == ARN


def test_labeler_reads_only_objects_of_the_image_bucket(template: Template) -> None:
    statement = statement_with(template, "s3:GetObject")
    assert sorted(actions_of(statement)) == ["s3:GetObject", "s3:GetObjectVersion"]
    bucket_id = next(
        iter(
            template.find_resources(
                "AWS::S3::Bucket", {"Properties": {"VersioningConfiguration": {"Status": "Enabled"}}}
            )
        )
    )
    assert statement["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/*"]]}


def test_labeler_uses_exactly_its_table_actions_on_its_table(template: Template) -> None:
    statement = statement_with(template, "dynamodb:BatchGetItem")
    table_id = next(iter(template.find_resources("AWS::DynamoDB::Table")))
    assert statement["Resource"] == {"Fn::GetAtt": [table_id, "Arn"]}
    assert sorted(actions_of(statement)) == sorted(
        [
            "dynamodb:BatchGetItem",
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
        ]
    )


def test_labeler_publishes_only_to_its_bus(template: Template) -> None:
    statement = statement_with(template, "events:PutEvents")
    bus_id = next(iter(template.find_resources("AWS::Events::EventBus")))
    assert statement["Resource"] == {"Fn::GetAtt": [bus_id, "Arn"]}


def test_labeler_consumes_only_its_two_queues_and_writes_only_its_logs(template: Template) -> None:
    consumed = [s["Resource"] for s in labeler_statements(template) if "sqs:ReceiveMessage" in actions_of(s)]
    assert sorted(consumed, key=str) == sorted(
        [{"Fn::GetAtt": [ingest_queue_id(template), "Arn"]}, {"Fn::GetAtt": [backfill_queue_id(template), "Arn"]}],
        key=str,
    )
    logs = statement_with(template, "logs:PutLogEvents")
    log_group_id = next(iter(template.find_resources("AWS::Logs::LogGroup")))
    assert logs["Resource"] == {"Fn::GetAtt": [log_group_id, "Arn"]}


def test_no_labeler_statement_uses_a_wildcard_resource_or_action(template: Template) -> None:
    for statement in labeler_statements(template):
        assert statement["Resource"] != "*"
        assert all("*" not in action for action in actions_of(statement))


def test_labeler_role_has_no_managed_policies(template: Template) -> None:
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "Description": Match.string_like_regexp("autolabel labeler"),
            "ManagedPolicyArns": Match.absent(),
        },
    )


def test_bucket_notifies_the_ingest_queue_of_every_created_and_removed_object(template: Template) -> None:
    queue_id = ingest_queue_id(template)
    template.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "NotificationConfiguration": {
                "QueueConfigurations": [
                    {
                        "Events": [event],
                        "QueueArn": {"Fn::GetAtt": [queue_id, "Arn"]},
                        "Filter": Match.absent(),
                    }
                    for event in ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")  # deletions are on by default
                ]
            },
        },
    )
    assert template.find_resources("AWS::Events::Rule", {"Properties": {"EventPattern": {"source": ["aws.s3"]}}}) == {}


def test_event_source_mapping_reports_batch_item_failures(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 2},
        },
    )


def test_queue_visibility_is_six_function_timeouts_with_a_dlq(template: Template) -> None:
    (function,) = [
        f
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "labeler.handler.handler"
    ]
    timeout = function["Properties"]["Timeout"]
    dlq_id = next(
        rid for rid, r in template.find_resources("AWS::SQS::Queue").items() if "RedrivePolicy" not in r["Properties"]
    )
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "VisibilityTimeout": 6 * timeout,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}, "maxReceiveCount": 10},
            "SqsManagedSseEnabled": True,
        },
    )
    template.has_resource_properties(
        "AWS::SQS::Queue", {"MessageRetentionPeriod": 14 * 24 * 3600, "SqsManagedSseEnabled": True}
    )


def test_queues_and_bucket_policies_deny_non_tls(template: Template) -> None:
    queue_policies = template.find_resources("AWS::SQS::QueuePolicy")
    assert len(queue_policies) == 4  # ingest, backfill and their DLQs
    for policy in queue_policies.values():
        assert any(
            s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy", {"PolicyDocument": {"Statement": Match.array_with([TLS_DENY])}}
    )


def test_image_bucket_is_private_encrypted_versioned_and_logged(template: Template) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LoggingConfiguration": Match.object_like({"LogFilePrefix": "images/"}),
        },
    )


def test_access_logs_arrive_under_a_bucket_policy_with_acls_disabled(template: Template) -> None:
    buckets = template.find_resources("AWS::S3::Bucket")
    (logs,) = [bucket for logical_id, bucket in buckets.items() if logical_id.startswith("ImageBucketAccessLogs")]
    assert "AccessControl" not in logs["Properties"]
    assert logs["Properties"]["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "s3:PutObject",
                                "Effect": "Allow",
                                "Principal": {"Service": "logging.s3.amazonaws.com"},
                                "Condition": Match.object_like(
                                    {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
                                ),
                            }
                        )
                    ]
                )
            }
        },
    )


def test_results_table_layout_encryption_and_pitr(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": layout.PARTITION_KEY, "KeyType": "HASH"},
                {"AttributeName": layout.SORT_KEY, "KeyType": "RANGE"},
            ],
            # The label index is in the table's own partitions: a secondary index would bill every entry twice.
            "GlobalSecondaryIndexes": Match.absent(),
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "BillingMode": "PAY_PER_REQUEST",
        },
    )


def test_every_function_runs_the_python_the_project_is_tested_with(template: Template) -> None:
    ours = {  # aws-cdk-lib's own bucket-notifications handler is not our code
        f["Properties"]["Handler"]: f["Properties"]["Runtime"]
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] in ("labeler.handler.handler", "manager.handler.handler")
    }
    tested_with = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert ours == {"labeler.handler.handler": tested_with, "manager.handler.handler": tested_with}


def test_function_environment_comes_from_resources_and_settings(template: Template) -> None:
    table_id = next(iter(template.find_resources("AWS::DynamoDB::Table")))
    bus_id = next(iter(template.find_resources("AWS::Events::EventBus")))
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "labeler.handler.handler",
            "Environment": {
                "Variables": {
                    "PROJECT_VERSION_ARN": ARN,
                    "RESULTS_TABLE_NAME": {"Ref": table_id},
                    "EVENT_BUS_NAME": {"Ref": bus_id},
                    "EVENT_SOURCE": "autolabel",
                    "MIN_CONFIDENCE": Match.absent(),
                    "MAX_RESULTS": Match.absent(),
                }
            },
        },
    )


def test_alarms_on_dlq_depth_message_age_and_function_errors(template: Template) -> None:
    for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "Errors"):
        template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "MetricName": metric,
                "AlarmActions": [{"Ref": Match.string_like_regexp("MonitoringAlarmTopic")}],
            },
        )
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    dashboard = json.dumps(template.find_resources("AWS::CloudWatch::Dashboard"))
    for metric in (
        "ImagesLabeled",
        "ImagesFailed",
        "ImagesSkipped",
        "LabelsPerImage",
        "RekognitionLatency",
        "RekognitionThrottles",
    ):
        assert metric in dashboard


def test_errors_alarm_means_a_bug_or_a_misconfiguration_not_throttling(template: Template) -> None:
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    (errors,) = [a for name, a in alarms.items() if name.startswith("MonitoringFunctionErrors")]
    metrics = {
        q["Id"]: q.get("MetricStat", {}).get("Metric", {}).get("MetricName") for q in errors["Properties"]["Metrics"]
    }
    assert metrics["raised"] == "Errors"
    assert metrics["unexpected"] == "UnexpectedErrors" and metrics["deployment"] == "DeploymentFaults"
    assert "RekognitionThrottles" not in json.dumps(errors)
    assert errors["Properties"]["Threshold"] == 1


def test_outputs_have_stable_ids(template: Template) -> None:
    outputs = template.find_outputs("*")
    assert {
        "ImageBucketName",
        "IngestQueueUrl",
        "DeadLetterQueueUrl",
        "ResultsTableName",
        "EventBusName",
        "LabelerFunctionName",
        "AlarmTopicArn",
        "DashboardName",
    } <= set(outputs)


def test_template_is_environment_agnostic(template: Template) -> None:
    text = json.dumps(template.to_json()).replace(ARN, "").replace(PROJECT_ARN, "")
    assert "123456789012" not in text  # only inside the model ARNs we were given
    assert "us-east-1" not in text


def test_cdk_nag_has_no_unacknowledged_finding(default: tuple[Any, Template]) -> None:
    stack, _template = default
    findings = Annotations.from_stack(stack)
    errors = findings.find_error("*", Match.string_like_regexp(r"AwsSolutions-"))
    warnings = findings.find_warning("*", Match.string_like_regexp(r"AwsSolutions-"))
    assert [e.entry.data for e in errors] == []
    assert [w.entry.data for w in warnings] == []


def test_every_acknowledged_finding_has_a_reason(template: Template) -> None:
    acknowledged = 0
    for resource in template.to_json()["Resources"].values():
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            acknowledged += 1
            assert len(rule["reason"]) > 40, rule
    assert acknowledged >= 2


def test_existing_bucket_prefix_and_settings(customized: Template) -> None:
    # No image bucket created, the existing one is used; the one bucket is the backfill job's reports.
    assert [rid[: len("BackfillJobReports")] for rid in customized.find_resources("AWS::S3::Bucket")] == [
        "BackfillJobReports"
    ]
    customized.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "BucketName": "acme-existing-images",
            "NotificationConfiguration": {
                "QueueConfigurations": [
                    Match.object_like(
                        {
                            "Events": [event],
                            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "incoming/"}]}},
                        }
                    )
                    for event in ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")
                ]
            },
        },
    )
    statement = statement_with(customized, "s3:GetObject")
    assert statement["Resource"] == {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::acme-existing-images/incoming/*"]]
    }
    customized.has_resource_properties(
        "AWS::Lambda::EventSourceMapping", {"BatchSize": 5, "ScalingConfig": {"MaximumConcurrency": 7}}
    )
    customized.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like(
                    {"MIN_CONFIDENCE": "0", "MAX_RESULTS": "20", "EVENT_SOURCE": "acme.autolabel"}
                )
            }
        },
    )


def test_customized_stack_is_nag_clean_too() -> None:
    stack, _template = synth(bucketName="acme-existing-images", keyPrefix="incoming/")
    assert Annotations.from_stack(stack).find_error("*", Match.string_like_regexp(r"AwsSolutions-")) == []


def ingest_queue_id(template: Template) -> str:
    (queue_id,) = [rid for rid in template.find_resources("AWS::SQS::Queue") if rid.startswith("IngestQueue")]
    return queue_id


def backfill_queue_id(template: Template) -> str:
    (queue_id,) = [rid for rid in template.find_resources("AWS::SQS::Queue") if rid.startswith("BackfillQueue")]
    return queue_id


def test_ingest_queue_keeps_messages_the_sqs_maximum_of_14_days(template: Template) -> None:
    queue = template.find_resources("AWS::SQS::Queue")[ingest_queue_id(template)]
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_s3_may_send_to_the_ingest_queue_only_for_buckets_of_this_account(template: Template) -> None:
    queue_id = ingest_queue_id(template)
    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": queue_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "s3.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
                            "Condition": {
                                "ArnLike": {"aws:SourceArn": Match.any_value()},
                                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                            },
                        }
                    ]
                )
            },
        },
    )


def test_existing_bucket_notifications_are_pinned_to_this_account_too(customized: Template) -> None:
    statements = [
        s
        for policy in customized.find_resources("AWS::SQS::QueuePolicy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": "s3.amazonaws.com"}
    ]
    assert len(statements) == 1
    assert statements[0]["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert "acme-existing-images" in json.dumps(statements[0]["Condition"]["ArnLike"])


def test_alarm_topic_key_is_customer_managed_rotated_and_usable_by_cloudwatch(template: Template) -> None:
    (key_id,) = template.find_resources("AWS::KMS::Key")
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]}})
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "EnableKeyRotation": True,
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                                "Resource": "*",
                                "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_cloudwatch_alarms_of_this_account_may_publish_to_the_alarm_topic(template: Template) -> None:
    (topic_id,) = template.find_resources("AWS::SNS::Topic")
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": topic_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                "Action": "sns:Publish",
                                "Resource": {"Ref": topic_id},
                                "Condition": Match.object_like(
                                    {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
                                ),
                            }
                        )
                    ]
                )
            },
        },
    )


def test_dead_letters_about_to_expire_alarm_days_before_sqs_would_delete_them(template: Template) -> None:
    queues = template.find_resources("AWS::SQS::Queue")
    (dlq,) = [rid for rid in queues if rid.startswith("IngestDeadLetterQueue")]
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateAgeOfOldestMessage",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}],
            "Threshold": 10 * 24 * 3600,  # the DLQ keeps messages 14 days
            "AlarmActions": [{"Ref": Match.string_like_regexp("MonitoringAlarmTopic")}],
        },
    )


def test_labeler_may_shorten_the_visibility_of_ingest_and_backfill_messages_only(template: Template) -> None:
    """Retried records' short delay (ChangeMessageVisibility) is allowed on the two queues it reads, not the DLQs."""
    resources = [s["Resource"] for s in labeler_statements(template) if "sqs:ChangeMessageVisibility" in actions_of(s)]
    assert sorted(resources, key=str) == sorted(
        [{"Fn::GetAtt": [ingest_queue_id(template), "Arn"]}, {"Fn::GetAtt": [backfill_queue_id(template), "Arn"]}],
        key=str,
    )


# -- notifications and deletions (docs/behaviour.md#configuration) ------------------------------


def labeler_environment(template: Template) -> dict[str, str]:
    functions = template.find_resources("AWS::Lambda::Function")
    (variables,) = [
        f["Properties"]["Environment"]["Variables"]
        for f in functions.values()
        if f["Properties"].get("Handler") == "labeler.handler.handler"
    ]
    return dict(variables)


def s3_rules(template: Template) -> dict[str, Any]:
    return template.find_resources("AWS::Events::Rule", {"Properties": {"EventPattern": {"source": ["aws.s3"]}}})


def test_deletions_on_by_default_reach_the_labeler(template: Template) -> None:
    assert labeler_environment(template)["DELETIONS"] == "true"


@pytest.fixture(scope="module")
def without_deletions() -> Template:
    return synth(deletions="false")[1]


def test_without_deletions_only_created_objects_are_notified(without_deletions: Template) -> None:
    without_deletions.has_resource_properties(
        "Custom::S3BucketNotifications",
        {"NotificationConfiguration": {"QueueConfigurations": [Match.object_like({"Events": ["s3:ObjectCreated:*"]})]}},
    )
    assert labeler_environment(without_deletions)["DELETIONS"] == "false"


@pytest.fixture(scope="module")
def eventbridge() -> tuple[Any, Template]:
    return synth(notifications="eventbridge")


@pytest.fixture(scope="module")
def eventbridge_existing() -> tuple[Any, Template]:
    return synth(notifications="eventbridge", bucketName="acme-existing-images", keyPrefix="incoming/", deletions=False)


def test_eventbridge_created_bucket_sends_to_eventbridge_and_has_no_queue_notification(
    eventbridge: tuple[Any, Template],
) -> None:
    _, template = eventbridge
    (notifications,) = template.find_resources("Custom::S3BucketNotifications").values()
    assert notifications["Properties"]["NotificationConfiguration"] == {"EventBridgeConfiguration": {}}


def test_eventbridge_rule_forwards_the_buckets_object_events_to_the_ingest_queue(
    eventbridge: tuple[Any, Template],
) -> None:
    _, template = eventbridge
    queue_id = ingest_queue_id(template)
    ((rule_id, rule),) = s3_rules(template).items()
    properties = rule["Properties"]
    assert "EventBusName" not in properties  # the default bus, where S3 sends
    pattern = properties["EventPattern"]
    assert pattern["detail-type"] == ["Object Created", "Object Deleted"]
    bucket_id = next(iter(template.find_resources("AWS::S3::Bucket", {"Properties": {"VersioningConfiguration": {}}})))
    assert pattern["detail"] == {"bucket": {"name": [{"Ref": bucket_id}]}}
    (target,) = properties["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    dlq_id = next(rid for rid in template.find_resources("AWS::SQS::Queue") if rid != queue_id)
    # Undeliverable events reach the DLQ (which alarms), and only through this rule.
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq_id, "Arn"]}}
    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": dlq_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Action": "sqs:SendMessage",
                                "Condition": {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_eventbridge_may_send_to_the_ingest_queue_only_for_its_rule(eventbridge: tuple[Any, Template]) -> None:
    _, template = eventbridge
    queue_id = ingest_queue_id(template)
    (rule_id,) = s3_rules(template)
    statements = [
        statement
        for policy in template.find_resources("AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in policy["Properties"]["Queues"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
    ]
    assert statements == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
            "Condition": {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}},
        }
    ]  # and no s3.amazonaws.com statement: S3 sends nothing to the queue itself


def test_eventbridge_with_an_existing_bucket_leaves_its_notifications_untouched(
    eventbridge_existing: tuple[Any, Template],
) -> None:
    _, template = eventbridge_existing
    assert template.find_resources("Custom::S3BucketNotifications") == {}
    assert all(rid.startswith("BackfillJobReports") for rid in template.find_resources("AWS::S3::Bucket"))
    (rule,) = s3_rules(template).values()
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],  # deletions off
        "detail": {"bucket": {"name": ["acme-existing-images"]}, "object": {"key": [{"prefix": "incoming/"}]}},
    }
    assert labeler_environment(template)["DELETIONS"] == "false"


@pytest.mark.parametrize("fixture", ["eventbridge", "eventbridge_existing"])
def test_eventbridge_stacks_are_nag_clean(fixture: str, request: pytest.FixtureRequest) -> None:
    stack, _template = request.getfixturevalue(fixture)
    assert Annotations.from_stack(stack).find_error("*", Match.string_like_regexp(r"AwsSolutions-")) == []
    assert Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp(r"AwsSolutions-")) == []


def test_labeler_iam_is_the_same_whatever_the_notifications(
    template: Template, eventbridge: tuple[Any, Template], without_deletions: Template
) -> None:
    def shape(t: Template) -> list[list[str]]:
        return sorted(sorted(actions_of(s)) for s in labeler_statements(t))

    assert shape(template) == shape(eventbridge[1]) == shape(without_deletions)


TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:acme-image-events"


@pytest.fixture(scope="module")
def sns_fan_out() -> tuple[Any, Template]:
    return synth(notifications="sns", notificationTopicArn=TOPIC_ARN, bucketName="acme-existing-images")


def test_sns_mode_subscribes_the_ingest_queue_to_the_topic_with_raw_delivery(
    sns_fan_out: tuple[Any, Template],
) -> None:
    stack, template = sns_fan_out
    queues = template.find_resources("AWS::SQS::Queue")
    ingest = next(rid for rid in queues if "IngestQueue" in rid)
    template.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "sqs",
            "TopicArn": TOPIC_ARN,
            "RawMessageDelivery": True,
            "Endpoint": {"Fn::GetAtt": [ingest, "Arn"]},
        },
    )
    # The bucket's notification configuration is its owner's: no S3 notification resource.
    assert template.find_resources("Custom::S3BucketNotifications") == {}
    assert Annotations.from_stack(stack).find_error("*", Match.string_like_regexp(r"AwsSolutions-")) == []


def test_sns_mode_lets_only_that_topic_send_to_the_ingest_queue_and_its_dlq(sns_fan_out: tuple[Any, Template]) -> None:
    """The queue receives the topic's messages; what SNS cannot deliver goes to the DLQ (which alarms)."""
    _, template = sns_fan_out
    granted: dict[str, dict[str, Any]] = {}
    for policy in template.find_resources("AWS::SQS::QueuePolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement.get("Principal") == {"Service": "sns.amazonaws.com"}:
                (queue,) = policy["Properties"]["Queues"]
                granted[json.dumps(queue)] = statement
    assert len(granted) == 2
    assert any("IngestQueue" in queue and "DeadLetter" not in queue for queue in granted)
    for statement in granted.values():
        assert statement["Action"] == "sqs:SendMessage"
        assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": TOPIC_ARN}}


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"notifications": "sns", "bucketName": "acme-existing-images"}, "notificationTopicArn is required"),
        (
            {"notifications": "sns", "notificationTopicArn": "arn:aws:sqs:us-east-1:123456789012:q"},
            "not a standard SNS",
        ),
        ({"notifications": "sns", "notificationTopicArn": TOPIC_ARN}, "existing bucket"),
        ({"notificationTopicArn": TOPIC_ARN}, "only read with notifications=sns"),
    ],
)
def test_sns_mode_settings_name_what_is_wrong(context: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        synth(**context)
