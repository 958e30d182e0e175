"""The one wiring of the local runs: the stack in the emulator, the real handler, its triggers.

Every script (the local run, the demos, the soak, the benchmarks) and the test
harness set the emulator up through here: ``deploy`` makes the synthesized
stack's resources with this process's boto3 clients (pointed at moto),
``labeler`` builds the Lambda's pipeline as its cold start does with only the
model emulated, ``trigger`` is the event source mapping of one of the
labeler's two queues, and ``lambda_output_to`` sends what the handler prints
(JSON logs, EMF metrics) where the script keeps it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any, Literal

import boto3

from labeler import handler
from labeler.adapters.clients import create_clients
from labeler.config import LabelerConfig
from labeler.logic.pipeline import LabelingPipeline
from labeler.wiring import build_pipeline
from local.emulator import REGION, LocalResources, create_resources, drain_queue
from local.poller import EventSourceMappingPoller, Handler
from local.stack_template import StackFacts

Lane = Literal["ingest", "backfill"]


def deploy(
    facts: StackFacts,
    *,
    visibility_timeout: int | None = None,
    subscribe_deletions: bool = False,
    prefix: str = "autolabel",
) -> LocalResources:
    """The stack's resources in the emulator, its event source the template's."""
    return create_resources(
        facts,
        s3=boto3.client("s3"),
        sqs=boto3.client("sqs"),
        dynamodb=boto3.client("dynamodb"),
        events=boto3.client("events"),
        event_source=facts.function_environment.get("EVENT_SOURCE", "autolabel"),
        prefix=prefix,
        visibility_timeout=visibility_timeout,
        subscribe_deletions=subscribe_deletions,
    )


def labeler(config: LabelerConfig, model: Any) -> LabelingPipeline:
    """The Lambda's pipeline, its clients as its cold start makes them, only the model emulated."""
    return build_pipeline(config, dataclasses.replace(create_clients(), rekognition=model))


def install_labeler(config: LabelerConfig, model: Any) -> Handler:
    """The real handler (``labeler.handler.handler``) running ``labeler(config, model)``."""
    handler.use_pipeline(labeler(config, model))
    return handler.handler


def trigger(
    resources: LocalResources,
    lane: Lane,
    invoke: Handler,
    *,
    batch_size: int = 10,
    retry_delay_seconds: int | None = 1,
) -> EventSourceMappingPoller:
    """The event source mapping of the labeler's ingest or backfill queue, invoking ``invoke``."""
    url, arn = (
        (resources.queue_url, resources.queue_arn)
        if lane == "ingest"
        else (resources.backfill_queue_url, resources.backfill_queue_arn)
    )
    return EventSourceMappingPoller(
        boto3.client("sqs"),
        url,
        arn,
        invoke,
        batch_size=batch_size,
        retry_delay_seconds=retry_delay_seconds,
        region=REGION,
    )


@contextlib.contextmanager
def unannounced(s3: Any, sqs: Any, resources: LocalResources) -> Iterator[None]:
    """Objects uploaded in the block were there "before autolabel": S3 sends no notification for them.

    (Turning notifications off also spares moto the work for big uploads.)
    The bucket's notification configuration is put back afterwards, and
    whatever reached the ingest queue meanwhile is discarded.
    """
    notifications = s3.get_bucket_notification_configuration(Bucket=resources.bucket)
    notifications.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=resources.bucket, NotificationConfiguration={})
    try:
        yield
    finally:
        s3.put_bucket_notification_configuration(Bucket=resources.bucket, NotificationConfiguration=notifications)
        drain_queue(sqs, resources.queue_url)


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
