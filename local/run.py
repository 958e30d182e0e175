"""`make local`: the whole pipeline on this machine, no AWS account.

An embedded moto server on 127.0.0.1 plays S3, SQS, DynamoDB and EventBridge,
with the resources of the synthesized stack; the real labeler handler is
driven by a poller that behaves like the SQS event source mapping. Only the
Custom Labels model is emulated (local/fakes/fake_model.py), and we say so.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer
from PIL import Image, ImageDraw

from autolabel.config import EMULATOR_OUTPUT
from labeler import handler
from labeler.adapters.clients import create_clients
from labeler.queries import find_by_label, get_result
from labeler.wiring import build_pipeline
from local import scenarios
from local.emulator import (
    REGION,
    LocalResources,
    consumed_events,
    create_resources,
    drain_queue,
    environment,
    labeler_config,
    local_aws_environment,
)
from local.fakes.fake_model import PALETTE, FakeCustomLabelsModel
from local.fakes.faults import client_error
from local.poller import EventSourceMappingPoller
from local.s3_notifications import S3LikeNotifications, s3_like_notifications
from local.samples import Sample, sample_set
from local.stack_template import default_facts
from local.watch import ServeWatch

BANNER = """\
================================================================================
 autolabel local run
 AWS services: EMULATED by an embedded moto server on {endpoint}
 Custom Labels model: EMULATED (local/fakes/fake_model.py finds coloured regions);
 no Rekognition call is made and no AWS account is used.
================================================================================"""


@contextlib.contextmanager
def lambda_output_to(stream: Any) -> Iterator[None]:
    """Send the handler's JSON logs and EMF metrics (stdout in Lambda) to a file."""
    log_handler = handler.logger.registered_handler
    previous = log_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        with contextlib.redirect_stdout(stream):  # EMF metrics are printed
            yield
    finally:
        log_handler.setStream(previous)  # type: ignore[attr-defined]


def throttle_first_call_of(key: str) -> Any:
    """Show a retry: the emulated model throttles the first call for one key."""
    seen: set[str] = set()

    def fault(request: dict[str, Any]) -> Exception | None:
        name = request["Image"]["S3Object"]["Name"]
        if name == key and name not in seen:
            seen.add(name)
            return client_error("ThrottlingException", "Rate exceeded (emulated)")
        return None

    return fault


def annotated_path(out_dir: Path, key: str) -> Path:
    return out_dir / (re.sub(r"[^A-Za-z0-9._-]+", "_", key) + ".annotated.png")


def annotate(s3: Any, bucket: str, result: dict[str, Any], out_dir: Path) -> Path:
    """The labeled version's image (a result or a Detected event's detail) with its boxes drawn."""
    version = {"VersionId": result["versionId"]} if result.get("versionId") else {}
    body = s3.get_object(Bucket=bucket, Key=result["key"], **version)["Body"].read()
    image = Image.open(io.BytesIO(body)).convert("RGB")
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for label in result["customLabels"]:
        box = label.get("Geometry", {}).get("BoundingBox")
        if not box:
            continue
        x0, y0 = box["Left"] * width, box["Top"] * height
        x1, y1 = x0 + box["Width"] * width, y0 + box["Height"] * height
        colour = tuple(255 - c for c in PALETTE.get(label["Name"], (0, 0, 0)))
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=3)
        caption = f"{label['Name']} {label['Confidence']:.1f}"
        left, top, right, bottom = draw.textbbox((x0 + 4, y0 + 4), caption)
        draw.rectangle([left - 2, top - 2, right + 2, bottom + 2], fill=(255, 255, 255))
        draw.text((x0 + 4, y0 + 4), caption, fill=(0, 0, 0))
    path = annotated_path(out_dir, result["key"])
    image.save(path)
    return path


def print_table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*headers))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))


SERVE_BANNER = """\
================================================================================
 The emulator keeps running (Ctrl-C stops it); new uploads are labeled.
 In another shell:

{exports}

 then e.g.  .venv/bin/autolabel find scratch --min-confidence 50
            .venv/bin/autolabel show "s3://{bucket}/{key}"
            .venv/bin/autolabel render "s3://{bucket}/{key}" -o labeled.png
            .venv/bin/autolabel detect --image-bytes fileb://{photo}
 The stack's outputs are registered in the emulator's CloudFormation as stack
 {stack!r}; for an emulator without CloudFormation set AUTOLABEL_TABLE,
 AUTOLABEL_BUCKET, AUTOLABEL_QUEUE_URL, AUTOLABEL_DLQ_URL and
 AUTOLABEL_PROJECT_VERSION_ARN instead.
================================================================================"""
SERVE_STACK_NAME = "Autolabel"


def register_stack_outputs(cloudformation: Any, outputs: dict[str, str], stack_name: str = SERVE_STACK_NAME) -> None:
    """A CloudFormation stack in the emulator that carries the stack's outputs, for `autolabel --stack-name`."""
    template = {
        "Description": "autolabel local emulator: the real stack's outputs, resources created by local/run.py",
        "Resources": {  # CloudFormation wants one resource; this one marks the emulated stack
            "Emulated": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": f"/{stack_name}/emulated", "Type": "String", "Value": "moto"},
            }
        },
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloudformation.create_stack(StackName=stack_name, TemplateBody=json.dumps(template))


def serve_environment(endpoint: str) -> dict[str, str]:
    """What a shell needs to point `autolabel` (and the aws CLI) at the emulator."""
    values = local_aws_environment(endpoint)
    return {
        "AWS_ENDPOINT_URL": values["AWS_ENDPOINT_URL"],
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": values["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": values["AWS_SECRET_ACCESS_KEY"],
        "AUTOLABEL_STACK_NAME": SERVE_STACK_NAME,
    }


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


# The stack's outputs of what the emulator does not have: no Lambda functions, event source
# mappings, alarms, dashboard or model manager (its model is emulated in-process), and no
# Step Functions backfill job (`make backfill-demo IN_AWS=1` runs that one with its own interpreter).
NOT_EMULATED_OUTPUTS = frozenset(
    {
        "BackfillJobStateMachineArn",
        "BackfillReportBucketName",
        "LabelerFunctionName",
        "AlarmTopicArn",
        "DashboardName",
        "EventSourceMappingId",
        "BackfillEventSourceMappingId",
        "ModelManagerFunctionName",
        "ProjectArn",
    }
)


def serve_outputs(resources: LocalResources, project_version_arn: str, endpoint: str) -> dict[str, str]:
    """Every output of the stack the emulator has a resource for, and the mark of the emulator."""
    return {
        "ImageBucketName": resources.bucket,
        "IngestQueueUrl": resources.queue_url,
        "DeadLetterQueueUrl": resources.dead_letter_queue_url,
        "ResultsTableName": resources.table_name,
        "EventBusName": resources.event_bus_name,
        "ProjectVersionArn": project_version_arn,
        "BackfillQueueUrl": resources.backfill_queue_url,
        "BackfillDeadLetterQueueUrl": resources.backfill_dead_letter_queue_url,
        EMULATOR_OUTPUT: f"moto on {endpoint}, make local SERVE=1",
    }


@dataclasses.dataclass(frozen=True)
class Serving:
    """What serve mode runs: the emulator's endpoint and resources, and the labeler's two triggers."""

    endpoint: str
    resources: LocalResources
    project_version_arn: str
    pollers: list[EventSourceMappingPoller]
    watch: ServeWatch
    log_path: Path
    photo: Path  # a sample image the run wrote, for the banner's `detect --image-bytes` example


def serve_banner(serving: Serving) -> str:
    """The environment to export, and examples that work as printed (the photo is one the run wrote)."""
    exports = "\n".join(f"export {name}={value}" for name, value in serve_environment(serving.endpoint).items())
    return SERVE_BANNER.format(
        exports=exports,
        bucket=serving.resources.bucket,
        key="line-1/part-0001.png",
        stack=SERVE_STACK_NAME,
        photo=serving.photo,
    )


def serve(serving: Serving) -> None:
    """Keep the emulator up, label new uploads (and backfill messages), one line per image, until interrupted."""
    resources, endpoint = serving.resources, serving.endpoint
    register_stack_outputs(
        boto3.client("cloudformation"), serve_outputs(resources, serving.project_version_arn, endpoint)
    )
    print(serve_banner(serving))
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as Ctrl-C does: the server shuts down
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even when started in the background
    try:
        with serving.log_path.open("a") as log_file, lambda_output_to(log_file):
            while True:
                handled = sum(poller.poll_once() for poller in serving.pollers)
                serving.watch.after_poll()
                if not handled:
                    time.sleep(0.5)  # an idle emulator, not a test: poll twice a second
    except KeyboardInterrupt:
        print(f"\n{serving.watch.summary()}", flush=True)


def run(output_dir: Path, *, serve_after: bool = False) -> int:
    facts = default_facts()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log lines
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    print(BANNER.format(endpoint=endpoint))
    try:
        with environment(local_aws_environment(endpoint)), s3_like_notifications() as notifier:
            return _run(facts, output_dir, notifier, endpoint if serve_after else None)
    finally:
        server.stop()


def _run(facts: Any, output_dir: Path, notifier: S3LikeNotifications, serve_endpoint: str | None = None) -> int:
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    resources: LocalResources = create_resources(
        facts,
        s3=s3,
        sqs=sqs,
        dynamodb=boto3.client("dynamodb"),
        events=boto3.client("events"),
        event_source=facts.function_environment.get("EVENT_SOURCE", "autolabel"),
        visibility_timeout=2,
        subscribe_deletions=facts.function_environment.get("DELETIONS", "true") == "true",
    )
    print(
        f"Resources from the synthesized stack: bucket {resources.bucket}, ingest queue + DLQ "
        f"(maxReceiveCount {facts.max_receive_count}), table {resources.table_name} (template key schema), "
        f"bus {resources.event_bus_name} with a consumer queue. Batch size {facts.batch_size}."
    )
    config = labeler_config(facts, resources)  # the Lambda's own cold-start validation
    model = FakeCustomLabelsModel(s3, fault=throttle_first_call_of("line-1/part-0001.png"))
    handler.use_pipeline(build_pipeline(config, dataclasses.replace(create_clients(), rekognition=model)))
    poller = EventSourceMappingPoller(
        sqs,
        resources.queue_url,
        resources.queue_arn,
        handler.handler,
        batch_size=facts.batch_size,
        retry_delay_seconds=1,
        region=REGION,
    )
    samples = sample_set()
    print(
        f"\nUploading {len(samples)} sample objects (one is throttled once, to show a retry), an overwrite "
        "delivered out of order and a deletion..."
    )
    for sample in samples:
        s3.put_object(Bucket=resources.bucket, Key=sample.key, Body=sample.body)
    output_dir.mkdir(parents=True, exist_ok=True)
    log_path = output_dir / "lambda-logs.jsonl"
    with log_path.open("w") as log_file, lambda_output_to(log_file):

        def drain() -> None:
            poller.run_until_idle(max_seconds=120)

        drain()
        # The same notification delivered again (S3 and SQS deliver at least once).
        again = next(s for s in samples if s.expected_status == "LABELED")
        duplicate = notifier.records_for(again.key)[0]
        sqs.send_message(QueueUrl=resources.queue_url, MessageBody=json.dumps({"Records": [duplicate]}))
        drain()
        overwrite = scenarios.overwrite_out_of_order(s3, resources.bucket, notifier, drain)
        scenarios.delete_after_labeling(s3, resources.bucket, drain)
    print(
        f"Poller: {poller.stats.invocations} invocations, {poller.stats.messages} messages, "
        f"{poller.stats.item_failures} retried; {len(model.calls)} emulated DetectCustomLabels calls "
        f"(Lambda logs and EMF metrics: {log_path})"
    )
    code = report(s3, sqs, resources, samples, output_dir, overwrite=overwrite)
    if serve_endpoint is not None:
        annotated_dir = output_dir / "annotated"
        watch = ServeWatch(
            sqs=sqs,
            consumer_queue_url=resources.consumer_queue_url,
            events_path=output_dir / "events.json",
            annotate=lambda detail: annotate(s3, resources.bucket, detail, annotated_dir),
            annotated_path=lambda key: annotated_path(annotated_dir, key),
            out=sys.stdout,  # the terminal: the handler's own output goes to the log file
        )
        pollers = [  # the labeler's two triggers: the ingest queue and the backfill queue
            EventSourceMappingPoller(
                sqs,
                url,
                arn,
                watch.wrap(handler.handler),
                batch_size=facts.batch_size,
                retry_delay_seconds=1,
                region=REGION,
            )
            for url, arn in (
                (resources.queue_url, resources.queue_arn),
                (resources.backfill_queue_url, resources.backfill_queue_arn),
            )
        ]
        photo = output_dir / "photo.png"
        photo.write_bytes(samples[0].body)
        serve(Serving(serve_endpoint, resources, config.project_version_arn, pollers, watch, log_path, photo))
    return code


def report(
    s3: Any,
    sqs: Any,
    resources: LocalResources,
    samples: list[Sample],
    output_dir: Path,
    *,
    overwrite: scenarios.Overwrite,
) -> int:
    ddb = boto3.client("dynamodb")
    rows, mismatches = [], 0
    annotated_dir = output_dir / "annotated"
    annotated_dir.mkdir(parents=True, exist_ok=True)
    for sample in samples:
        result = get_result(resources.table_name, resources.bucket, sample.key, client=ddb)
        status = result["status"] if result else "SKIPPED"
        mismatches += status != sample.expected_status
        detail = ""
        if result and result["status"] == "LABELED":
            detail = ", ".join(f"{x['Name']} {x['Confidence']:.1f}" for x in result["customLabels"]) or "(none)"
            annotate(s3, resources.bucket, result, annotated_dir)
        elif result:
            detail = f"{result['error']['code']}: {result['error']['message']}"
        rows.append([sample.key, status, detail, sample.note])
    events = consumed_events(sqs, resources.consumer_queue_url)
    checks = [
        scenarios.check_overwrite(resources.table_name, resources.bucket, overwrite, events, ddb),
        scenarios.check_deletion(resources.table_name, resources.bucket, events, ddb),
    ]
    rows += [[c.key, c.status, c.detail, c.note] for c in checks]
    mismatches += sum(not c.ok for c in checks)
    print("\nResults in DynamoDB (labeler.queries.get_result):")
    print_table(rows, ["object key", "status", "labels / error", "sample"])
    print(f"\nEvents the example consumer received from EventBridge ({len(events)}):")
    print_table(
        [
            [
                e["detail-type"],
                e["detail"]["key"],
                ", ".join(e["detail"].get("labelNames", [])) or e["detail"].get("error", {}).get("code", "-"),
            ]
            for e in events
        ],
        ["detail-type", "key", "labelNames / error"],
    )
    (output_dir / "events.json").write_text(json.dumps(events, indent=2))
    dead = drain_queue(sqs, resources.dead_letter_queue_url)
    print(f"\nDead-letter queue: {len(dead)} message(s)")
    found = find_by_label(resources.table_name, "scratch", 50, client=ddb)
    print(f"find_by_label('scratch', min_confidence=50): {[(f['key'], round(f['confidence'], 1)) for f in found]}")
    print(f"Annotated images (bounding boxes drawn): {annotated_dir}/")
    print(f"Events as JSON: {output_dir / 'events.json'}")
    expected_events = sum(s.expected_status != "SKIPPED" for s in samples) + scenarios.EXPECTED_EVENTS
    ok = mismatches == 0 and len(events) == expected_events and not dead
    print(
        "\nOK: every sample ended as expected, one event each, nothing in the DLQ."
        if ok
        else f"\nUNEXPECTED: {mismatches} sample(s) ended otherwise, {len(events)} events "
        f"(expected {expected_events}), {len(dead)} in the DLQ."
    )
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path(".local-run"),
        help="where annotated images, events and Lambda logs go (default: .local-run)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="afterwards keep the emulator running, keep labeling uploads, and print the environment "
        "to export for `autolabel` (make local SERVE=1)",
    )
    args = parser.parse_args(argv)
    return run(args.output_dir, serve_after=args.serve)


if __name__ == "__main__":
    sys.exit(main())
