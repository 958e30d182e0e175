"""The backfill job in the template: a valid state machine definition, least privilege, encryption, cdk-nag clean."""

from __future__ import annotations

import copy
import json
from typing import Any

import botocore.session
import pytest
from aws_cdk.assertions import Annotations, Match, Template
from botocore.validate import ParamValidator
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException

from local.backfill_job_emulator import EMULATED_FUNCTION_ARN, job_facts, resolved_definition
from local.sfn_interpreter import asl_problems
from tests.infra.conftest import synth


@pytest.fixture(scope="module")
def default() -> tuple[Any, Template]:
    return synth()


@pytest.fixture(scope="module")
def template(default: tuple[Any, Template]) -> Template:
    return default[1]


@pytest.fixture(scope="module")
def definition(template: Template) -> dict[str, Any]:
    bindings = {
        "ImageBucketImages": "images",
        "BackfillJobReports": "reports",
        "BackfillQueue": "https://sqs.us-east-1.amazonaws.com/123456789012/backfill",
        "BackfillJobFunction": EMULATED_FUNCTION_ARN,
    }
    return resolved_definition(job_facts(template.to_json()), bindings)


def policy_statements(template: Template, prefix: str) -> list[dict[str, Any]]:
    return [
        statement
        for logical_id, policy in template.find_resources("AWS::IAM::Policy").items()
        if logical_id.startswith(prefix)
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_definition_follows_the_states_language_rules(definition: dict[str, Any]) -> None:
    assert asl_problems(definition) == []
    assert list(definition["States"]) == [
        "ListAndEnqueue",
        "LaneDrained",
        "WaitForTheLabeler",
        "IsTheLaneDrained",
        "Reconcile",
        "Summarize",
    ]


def test_the_rules_catch_what_they_check(definition: dict[str, Any]) -> None:
    broken = copy.deepcopy(definition)
    broken["States"]["LaneDrained"]["Next"] = "Nowhere"
    enqueue = broken["States"]["ListAndEnqueue"]["ItemProcessor"]["States"]["EnqueueBatch"]
    enqueue["Retry"].append(enqueue["Retry"][0])  # after States.ALL
    assert len(asl_problems(broken)) == 2


def test_moto_parses_the_definition_but_for_the_item_batcher_its_grammar_lacks(definition: dict[str, Any]) -> None:
    # moto 5.2.5's ASL grammar (LocalStack's) has no ItemBatcher and reads ToleratedFailurePercentage
    # only as a decimal; everything else must parse.
    without_batcher = copy.deepcopy(definition)
    for state in ("ListAndEnqueue", "Reconcile"):
        del without_batcher["States"][state]["ItemBatcher"]
        without_batcher["States"][state]["ToleratedFailurePercentage"] = 5.0
    AmazonStateLanguageParser.parse(json.dumps(without_batcher))
    with pytest.raises(ASLParserException, match="ItemBatcher"):
        AmazonStateLanguageParser.parse(json.dumps(definition))


def test_the_sdk_calls_of_the_definition_match_the_botocore_service_models(definition: dict[str, Any]) -> None:
    session = botocore.session.get_session()
    validator = ParamValidator()
    lane = definition["States"]["LaneDrained"]
    sqs = session.get_service_model("sqs").operation_model("GetQueueAttributes").input_shape
    assert not validator.validate(lane["Parameters"], sqs).has_errors()
    s3 = session.get_service_model("s3").operation_model("ListObjectsV2").input_shape
    for state in ("ListAndEnqueue", "Reconcile"):
        reader = definition["States"][state]["ItemReader"]
        assert reader["Resource"] == "arn:aws:states:::s3:listObjectsV2"
        request = {key.removesuffix(".$"): "prefix/" for key in reader["Parameters"]}
        assert not validator.validate(request, s3).has_errors()


def test_batches_wait_for_a_full_queue_and_the_engine_tolerates_few_failures(definition: dict[str, Any]) -> None:
    listing = definition["States"]["ListAndEnqueue"]
    assert listing["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert (listing["MaxConcurrency"], listing["ItemBatcher"]["MaxItemsPerBatch"]) == (4, 100)
    assert listing["ToleratedFailurePercentage"] == 5
    assert listing["ItemBatcher"]["BatchInput"] == {"action": "enqueue", "job.$": "$"}
    retries = listing["ItemProcessor"]["States"]["EnqueueBatch"]["Retry"]
    queue_full = next(r for r in retries if r["ErrorEquals"] == ["BackfillQueueFull"])
    assert queue_full == {
        "ErrorEquals": ["BackfillQueueFull"],
        "IntervalSeconds": 60,
        "MaxAttempts": 99999999,
        "BackoffRate": 1,
    }
    assert retries[-1]["ErrorEquals"] == ["States.ALL"]  # ASL: States.ALL only alone and last
    assert listing["ResultWriter"]["Parameters"] == {"Bucket": "reports", "Prefix.$": "$.engineResults"}


def test_the_job_function_may_read_and_send_only_what_it_needs(template: Template) -> None:
    statements = {s.get("Sid"): s for s in policy_statements(template, "BackfillJobRole")}
    assert set(statements) == {
        "WriteOwnLogs",
        "VersioningOfTheImageBucket",
        "HeadObjectsUnderThePrefix",
        "ReadResults",
        "SendToTheBackfillQueue",
        "JobReports",
    }
    assert statements["ReadResults"]["Action"] == ["dynamodb:BatchGetItem", "dynamodb:Query"]
    assert statements["SendToTheBackfillQueue"]["Action"] == ["sqs:SendMessage", "sqs:GetQueueAttributes"]
    assert statements["HeadObjectsUnderThePrefix"]["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert all(s["Effect"] == "Allow" for s in statements.values())


def test_with_a_key_prefix_the_listing_and_reads_stay_under_it() -> None:
    _stack, template = synth(keyPrefix="archive/")
    deny = [s for s in policy_statements(template, "BackfillJobStateMachineRole") if s["Effect"] == "Deny"]
    assert len(deny) == 1 and deny[0]["Action"] == "s3:ListBucket"
    assert deny[0]["Condition"] == {"StringNotLike": {"s3:prefix": ["archive/*"]}}
    head = next(
        s for s in policy_statements(template, "BackfillJobRole") if s.get("Sid") == "HeadObjectsUnderThePrefix"
    )
    assert head["Resource"]["Fn::Join"][1][-1] == "/archive/*"


def test_reports_are_private_encrypted_tls_only_and_expire(template: Template) -> None:
    (reports,) = [
        r["Properties"]
        for logical_id, r in template.find_resources("AWS::S3::Bucket").items()
        if logical_id.startswith("BackfillJobReports")
    ]
    assert reports["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert reports["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert reports["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 90
    reports_id = next(k for k in template.find_resources("AWS::S3::Bucket") if k.startswith("BackfillJobReports"))
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in template.find_resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": reports_id}
    ]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in policy)


def test_the_state_machine_logs_and_traces_and_the_stack_exports_it(template: Template) -> None:
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "STANDARD",
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like({"Level": "ALL", "IncludeExecutionData": False}),
        },
    )
    outputs = template.to_json()["Outputs"]
    assert {"BackfillJobStateMachineArn", "BackfillReportBucketName"} <= set(outputs)


def test_cdk_nag_finds_nothing_unacknowledged(default: tuple[Any, Template]) -> None:
    stack, _ = default
    errors = Annotations.from_stack(stack).find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert errors == []


def test_backfill_job_false_leaves_it_out() -> None:
    _stack, template = synth(backfillJob="false")
    assert template.find_resources("AWS::StepFunctions::StateMachine") == {}
    assert "BackfillJobStateMachineArn" not in template.to_json()["Outputs"]
