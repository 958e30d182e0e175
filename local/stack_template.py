"""Synthesize the real stack and read back the facts the emulator needs.

The local run and the tests build their moto resources from these facts, so
they cannot drift from what ``cdk deploy`` would create (key schema, GSI,
queue timeouts, DLQ redrive, batch size, notification filter, environment).
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from typing import Any

# A syntactically valid model version ARN for synth without a real model.
PLACEHOLDER_PROJECT_VERSION_ARN = (
    "arn:aws:rekognition:us-east-1:123456789012:project/autolabel-local/version/autolabel-local.1/1700000000000"
)
PLACEHOLDER_PROJECT_ARN = "arn:aws:rekognition:us-east-1:123456789012:project/autolabel-local/1690000000000"
PLACEHOLDER_CONTEXT = {"projectVersionArn": PLACEHOLDER_PROJECT_VERSION_ARN, "projectArn": PLACEHOLDER_PROJECT_ARN}


@dataclass(frozen=True)
class StackFacts:
    table_key_schema: list[dict[str, str]]
    table_attribute_definitions: list[dict[str, str]]
    table_global_secondary_indexes: list[dict[str, Any]]
    queue_visibility_timeout: int
    max_receive_count: int
    batch_size: int
    max_concurrency: int
    backfill_max_concurrency: int
    function_environment: dict[str, str]  # literal values only (Refs resolved locally)
    notification_events: list[str]
    notification_prefix: str
    removal_events: list[str]  # the ObjectRemoved subscription (deletions on), else empty
    bucket_versioned: bool
    output_keys: tuple[str, ...] = ()  # the stack's CloudFormation outputs


def _resources_of(template: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [r.get("Properties", {}) for r in template["Resources"].values() if r["Type"] == resource_type]


def _only(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found = _resources_of(template, resource_type)
    if len(found) != 1:
        raise ValueError(f"expected one {resource_type} in the template, found {len(found)}")
    return found[0]


def _logical_id(template: dict[str, Any], resource_type: str, prefix: str) -> str:
    found = [rid for rid, r in template["Resources"].items() if r["Type"] == resource_type and rid.startswith(prefix)]
    if len(found) != 1:
        raise ValueError(f"expected one {resource_type} named {prefix}* in the template, found {len(found)}")
    return found[0]


def _mapping_of(template: dict[str, Any], queue_id: str) -> dict[str, Any]:
    """The event source mapping that reads the queue ``queue_id``."""
    return next(
        m
        for m in _resources_of(template, "AWS::Lambda::EventSourceMapping")
        if m.get("EventSourceArn") == {"Fn::GetAtt": [queue_id, "Arn"]}
    )


def facts_from_template(template: dict[str, Any]) -> StackFacts:
    table = template["Resources"][_logical_id(template, "AWS::DynamoDB::Table", "Results")]["Properties"]
    ingest_id = _logical_id(template, "AWS::SQS::Queue", "IngestQueue")
    ingest = template["Resources"][ingest_id]["Properties"]
    # The labeler's two triggers: the ingest queue's and the backfill queue's.
    mapping = _mapping_of(template, ingest_id)
    backfill_mapping = _mapping_of(template, _logical_id(template, "AWS::SQS::Queue", "BackfillQueue"))
    function = next(
        f for f in _resources_of(template, "AWS::Lambda::Function") if f.get("Handler") == "labeler.handler.handler"
    )
    notification = _only(template, "Custom::S3BucketNotifications")["NotificationConfiguration"]
    # The ObjectCreated notification; the ObjectRemoved one (deletions on) apart: the soak and benchmarks
    # drive uploads, and their "object gone" faults must not turn into deletions; the local run subscribes both.
    removal_events = [
        e for c in notification["QueueConfigurations"] for e in c["Events"] if e.startswith("s3:ObjectRemoved")
    ]
    queue_config = next(
        c for c in notification["QueueConfigurations"] if any(e.startswith("s3:ObjectCreated") for e in c["Events"])
    )
    rules = queue_config.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    prefix = next((rule["Value"] for rule in rules if rule["Name"].lower() == "prefix"), "")
    buckets = [b for b in _resources_of(template, "AWS::S3::Bucket") if "NotificationConfiguration" not in b]
    versioned = any(b.get("VersioningConfiguration", {}).get("Status") == "Enabled" for b in buckets)
    return StackFacts(
        table_key_schema=table["KeySchema"],
        table_attribute_definitions=table["AttributeDefinitions"],
        table_global_secondary_indexes=[
            {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
            for g in table.get("GlobalSecondaryIndexes", [])
        ],
        queue_visibility_timeout=int(ingest["VisibilityTimeout"]),
        max_receive_count=int(ingest["RedrivePolicy"]["maxReceiveCount"]),
        batch_size=int(mapping["BatchSize"]),
        max_concurrency=int(mapping.get("ScalingConfig", {}).get("MaximumConcurrency", 0)),
        backfill_max_concurrency=int(backfill_mapping.get("ScalingConfig", {}).get("MaximumConcurrency", 0)),
        function_environment={k: v for k, v in function["Environment"]["Variables"].items() if isinstance(v, str)},
        notification_events=list(queue_config["Events"]),
        notification_prefix=prefix,
        removal_events=removal_events,
        bucket_versioned=versioned,
        output_keys=tuple(template.get("Outputs", {})),
    )


def synthesize_template(context: dict[str, Any] | None = None, *, bundle: bool = False) -> dict[str, Any]:
    """The stack's CloudFormation template, synthesized in a temporary directory."""
    from infra.app import STACK_NAME, build_app  # imports aws-cdk-lib (slow): only when asked

    full_context: dict[str, Any] = {**PLACEHOLDER_CONTEXT, **(context or {})}
    if not bundle:
        full_context["aws:cdk:bundling-stacks"] = []
    with tempfile.TemporaryDirectory(prefix="autolabel-synth-") as outdir:
        app, _stack = build_app(full_context, outdir=outdir)
        template: dict[str, Any] = app.synth().get_stack_by_name(STACK_NAME).template
    return template


@functools.cache
def default_template() -> dict[str, Any]:
    """The template at the placeholder context, synthesized once per process."""
    return synthesize_template()


@functools.cache
def default_facts() -> StackFacts:
    return facts_from_template(default_template())
