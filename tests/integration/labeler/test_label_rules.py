"""`pipeline.on_label(...)`: the rule the construct synthesizes, matched by moto's EventBridge against real events.

The pattern is taken from the synthesized template, put on the emulated bus
with a queue target, and the real pipeline labels images whose confidences
the emulated model derives from the pixels. moto has no TestEventPattern
(NotImplementedError in this version); its rule matching (numeric, exists,
array contents) decides which events the rule forwards, as EventBridge would.
"""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
from aws_cdk import App, Stack
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template
from PIL import Image, ImageDraw

from autolabel.cdk import AutolabelPipeline, ModelRoute
from local.emulator import drain_queue
from local.fakes.fake_model import PALETTE
from local.samples import BACKGROUND, make_image
from tests.support.harness import ARN, Harness


def synthesized_rules() -> dict[str, dict[str, Any]]:
    """Rule description -> its EventPattern, as `cdk synth` writes them."""
    app = App(context={"aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Host")
    pipeline = AutolabelPipeline(
        stack, "Labels", bucket=s3.Bucket.from_bucket_name(stack, "B", "acme-photos"), models=[ModelRoute(ARN)]
    )
    inbox = sqs.Queue(stack, "Inbox", enforce_ssl=True)
    pipeline.on_label("scratch", min_confidence=90, target=targets.SqsQueue(inbox))
    pipeline.on_label("logo", target=targets.SqsQueue(inbox))
    template = Template.from_stack(stack)
    ours = {
        rule["Properties"]["Description"]: rule["Properties"]
        for rule in template.find_resources("AWS::Events::Rule").values()
        if "Detected with" in rule["Properties"].get("Description", "")
    }
    [bus_id] = template.find_resources("AWS::Events::EventBus")
    assert len(ours) == 2
    assert all(rule["EventBusName"] == {"Ref": bus_id} for rule in ours.values())  # on the pipeline's own bus
    return {description: rule["EventPattern"] for description, rule in ours.items()}


def scattered(name: str) -> bytes:
    """Two small patches in opposite corners: one box around both, mostly empty, so a low confidence."""
    image = Image.new("RGB", (320, 240), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, 31, 23], fill=PALETTE[name])
    draw.rectangle([288, 216, 319, 239], fill=PALETTE[name])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def rule_to_a_queue(harness: Harness, pattern: dict[str, Any], rule: str) -> str:
    """The pattern as a rule on the emulated bus, forwarding to a new queue; returns the queue's URL."""
    queue_url = harness.sqs.create_queue(QueueName=f"{rule}-inbox")["QueueUrl"]
    queue_arn = harness.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = boto3.client("events")
    bus = harness.resources.event_bus_name
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "inbox", "Arn": queue_arn}])
    return queue_url


def received(harness: Harness, queue_url: str) -> list[dict[str, Any]]:
    return [json.loads(message["Body"]) for message in drain_queue(harness.sqs, queue_url)]


def test_on_label_rules_forward_exactly_the_labeled_events_they_describe(harness: Harness) -> None:
    patterns = synthesized_rules()
    scratch_pattern = patterns["autolabel: Detected with 'scratch' at 90 or more"]
    logo_pattern = patterns["autolabel: Detected with 'logo'"]
    assert scratch_pattern["detail"]["labelConfidence"] == {"scratch": [{"numeric": [">=", 90]}]}
    scratch_inbox = rule_to_a_queue(harness, scratch_pattern, "scratch-90")
    logo_inbox = rule_to_a_queue(harness, logo_pattern, "any-logo")

    harness.upload("clear-scratch.png", make_image({"scratch": (0.1, 0.1, 0.3, 0.25)}))
    harness.upload("faint-scratch.png", scattered("scratch"))
    harness.upload("logo-only.png", make_image({"logo": (0.6, 0.55, 0.3, 0.3)}))
    harness.run()

    published = {event["detail"]["key"]: event["detail"] for event in harness.new_events()}
    assert published["clear-scratch.png"]["labelConfidence"]["scratch"] >= 90
    assert 50 <= published["faint-scratch.png"]["labelConfidence"]["scratch"] < 90  # labeled, below the rule's bar
    assert set(published["logo-only.png"]["labelConfidence"]) == {"logo"}
    assert [e["detail"]["key"] for e in received(harness, scratch_inbox)] == ["clear-scratch.png"]
    assert [e["detail"]["key"] for e in received(harness, logo_inbox)] == ["logo-only.png"]


def test_a_rule_for_another_model_version_forwards_nothing(harness: Harness) -> None:
    pattern = synthesized_rules()["autolabel: Detected with 'logo'"]
    assert pattern["detail"]["projectVersionArn"] == [ARN]
    pattern["detail"]["projectVersionArn"] = [ARN + "9"]
    other_inbox = rule_to_a_queue(harness, pattern, "other-model")
    harness.upload("logo.png", make_image({"logo": (0.6, 0.55, 0.3, 0.3)}))
    harness.run()
    assert [e["detail"]["key"] for e in harness.new_events()] == ["logo.png"]
    assert received(harness, other_inbox) == []
