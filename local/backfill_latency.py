"""Fresh uploads during a backfill: upload-to-result latency with and without the backfill lane.

Three runs against moto (its own process), each with its own emulated
Lambdas (one poller thread per event source mapping, each its own pipeline):

- ``idle``: fresh uploads alone;
- ``lanes``: fresh uploads while a backlog of backfill messages is labeled
  from the backfill queue (the stack's design: two queues, two triggers);
- ``one-queue``: the same backlog put on the ingest queue instead (what a
  backfill without its own lane would do): fresh uploads wait behind it.

Latency: from the upload (``put_object`` returned) to the result's
``processedAt``. A benchmark, not a test: the figures depend on the machine.

    .venv/bin/python -m local.backfill_latency [--backlog 600] [--fresh 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3

from labeler.adapters.clients import create_clients
from labeler.domain.backfill_request import backfill_request
from labeler.handler import partial_batch_response
from labeler.logic.pipeline import InboundMessage, LabelingPipeline
from labeler.queries import get_result
from labeler.wiring import build_pipeline
from local.emulator import LocalResources, create_resources, drain_queue, labeler_config
from local.fakes.fake_model import FakeCustomLabelsModel
from local.moto_process import moto_server_process
from local.poller import EventSourceMappingPoller
from local.run import lambda_output_to
from local.samples import make_image
from local.stack_template import default_facts

# A Custom Labels call takes a few hundred milliseconds; the emulated model answers at once.
MODEL_SECONDS = 0.2


def _lane(pipeline: LabelingPipeline) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """One emulated Lambda (its own pipeline and deadline) behind one event source mapping."""

    def invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
        messages = [
            InboundMessage(
                r["messageId"],
                r["body"],
                receipt_handle=r["receiptHandle"],
                receive_count=int(r.get("attributes", {}).get("ApproximateReceiveCount", 1)),
                queue_arn=r["eventSourceARN"],
            )
            for r in event["Records"]
        ]
        return partial_batch_response(messages, pipeline.process(messages, context.get_remaining_time_in_millis))

    return invoke


def _poll(poller: EventSourceMappingPoller, stop: threading.Event) -> None:
    while not stop.is_set():
        if not poller.poll_once():
            time.sleep(0.02)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run_scenario(scenario: str, *, backlog: int, fresh: int, interval: float) -> list[float]:
    facts = default_facts()
    with moto_server_process():
        s3, sqs = boto3.client("s3"), boto3.client("sqs")
        resources: LocalResources = create_resources(
            facts,
            s3=s3,
            sqs=sqs,
            dynamodb=boto3.client("dynamodb"),
            events=boto3.client("events"),
            event_source="autolabel",
            visibility_timeout=5,
        )
        config = labeler_config(facts, resources)  # the Lambda's own cold-start validation

        def pipeline() -> LabelingPipeline:
            model = FakeCustomLabelsModel(s3, latency_seconds=MODEL_SECONDS)
            return build_pipeline(config, dataclasses.replace(create_clients(), rekognition=model))

        body = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
        if backlog:
            notifications = s3.get_bucket_notification_configuration(Bucket=resources.bucket)
            notifications.pop("ResponseMetadata", None)
            s3.put_bucket_notification_configuration(Bucket=resources.bucket, NotificationConfiguration={})
            bodies = []
            for i in range(backlog):
                put = s3.put_object(Bucket=resources.bucket, Key=f"archive/{i:05d}.png", Body=body)
                bodies.append(
                    backfill_request(
                        resources.bucket,
                        f"archive/{i:05d}.png",
                        version_id=put.get("VersionId"),
                        etag=put["ETag"],
                        size=len(body),
                        run_id="benchmark",
                    ).to_body()
                )
            s3.put_bucket_notification_configuration(Bucket=resources.bucket, NotificationConfiguration=notifications)
            drain_queue(sqs, resources.queue_url)
            target = resources.backfill_queue_url if scenario == "lanes" else resources.queue_url
            for start in range(0, len(bodies), 10):
                sqs.send_message_batch(
                    QueueUrl=target,
                    Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])],
                )
        stop = threading.Event()
        pollers = [
            EventSourceMappingPoller(
                sqs, resources.queue_url, resources.queue_arn, _lane(pipeline()), retry_delay_seconds=1
            ),
            EventSourceMappingPoller(
                sqs,
                resources.backfill_queue_url,
                resources.backfill_queue_arn,
                _lane(pipeline()),
                retry_delay_seconds=1,
            ),
        ]
        threads = [threading.Thread(target=_poll, args=(p, stop), daemon=True) for p in pollers]
        for thread in threads:
            thread.start()
        uploaded: dict[str, float] = {}
        for i in range(fresh):
            key = f"fresh/{i:03d}.png"
            s3.put_object(Bucket=resources.bucket, Key=key, Body=body)
            uploaded[key] = time.time()
            time.sleep(interval)
        dynamodb = boto3.client("dynamodb")
        latencies: dict[str, float] = {}
        deadline = time.time() + 600
        while len(latencies) < fresh and time.time() < deadline:
            for key, at in uploaded.items():
                if key in latencies:
                    continue
                result = get_result(resources.table_name, resources.bucket, key, client=dynamodb)
                if result is not None:
                    processed = datetime.fromisoformat(result["processedAt"].replace("Z", "+00:00")).timestamp()
                    latencies[key] = processed - at
            time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        return list(latencies.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fresh-upload latency with and without a running backfill.")
    parser.add_argument("--backlog", type=int, default=600, help="backfill messages waiting (default 600)")
    parser.add_argument("--fresh", type=int, default=20, help="fresh uploads per run (default 20)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between fresh uploads")
    args = parser.parse_args(argv)
    print(f"model {MODEL_SECONDS} s per call (emulated); one poller per queue; latency upload -> processedAt")
    print("| run | backlog | fresh uploads | median s | p95 s | max s |")
    print("|---|---|---|---|---|---|")
    for scenario, backlog in (("idle", 0), ("lanes", args.backlog), ("one-queue", args.backlog)):
        with open(os.devnull, "w") as quiet, lambda_output_to(quiet):  # the handler's logs are not the figures
            values = run_scenario(scenario, backlog=backlog, fresh=args.fresh, interval=args.interval)
        if not values:
            print(f"| {scenario} | {backlog} | 0 of {args.fresh} labeled in time | - | - | - |")
            continue
        print(
            f"| {scenario} | {backlog} | {len(values)} of {args.fresh} | {statistics.median(values):.2f} | "
            f"{_percentile(values, 0.95):.2f} | {max(values):.2f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
