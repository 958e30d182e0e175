"""Lambda entry point: SQS batch in, partial batch response out.

Thin on purpose: configuration and clients are built once per execution
environment (on the first invocation, never at import), the batch logic is
``logic.pipeline.LabelingPipeline`` (wired in ``labeler.wiring``), and this module only translates its report into
the SQS partial batch response, structured logs and EMF metrics.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from labeler.adapters.clients import create_clients
from labeler.config import LabelerConfig
from labeler.logic.pipeline import BatchReport, InboundMessage, LabelingPipeline
from labeler.wiring import build_pipeline
from shared.deadline import InvocationDeadline
from shared.lambda_setup import BuiltOnFirstUse
from shared.names import LABELER_SERVICE, METRICS_NAMESPACE

logger = Logger(service=LABELER_SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=LABELER_SERVICE)


def _pipeline_from_environment() -> LabelingPipeline:
    # Fails the invocation with a message naming the bad variable.
    config = LabelerConfig.from_environ(os.environ)
    return build_pipeline(config, create_clients(InvocationDeadline()))


_pipeline = BuiltOnFirstUse(_pipeline_from_environment)
# Tests and the local run inject their own pipeline; None rebuilds from the environment.
use_pipeline = _pipeline.use
current_pipeline = _pipeline.get


def emit_metrics(report: BatchReport) -> None:
    counts = {
        "ImagesLabeled": report.labeled,
        "ImagesFailed": report.failed_images,
        "ImagesSkipped": report.skipped,
        "DuplicatesIgnored": report.duplicates,
        "StaleEventsIgnored": report.stale,
        "RecordsRetried": report.retries,
        "RekognitionThrottles": report.throttles,
        "InvalidMessages": report.invalid_messages,
        "RecordsOutOfTime": report.out_of_time,
        "UnexpectedErrors": report.unexpected_errors,
        "DeploymentFaults": report.deployment_faults,
        "PublishMarksFailed": report.publish_marks_failed,
        "AmbiguousPublishes": report.ambiguous_publishes,
        "RetryDelaysNotSet": report.retry_delays_not_set,
        "ResultsRemoved": report.removed,
        "DeletionsNotAnnounced": report.deletions_not_announced,
        "LabelsDiscarded": report.labels_discarded,
    }
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for labels in report.labels_per_image:
        metrics.add_metric(name="LabelsPerImage", unit=MetricUnit.Count, value=labels)
    for latency in report.rekognition_latencies_ms:
        metrics.add_metric(name="RekognitionLatency", unit=MetricUnit.Milliseconds, value=latency)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    pipeline = current_pipeline()
    records = event.get("Records", [])
    messages = [
        InboundMessage(
            r["messageId"],
            r.get("body", ""),
            receipt_handle=r.get("receiptHandle", ""),
            receive_count=int(r.get("attributes", {}).get("ApproximateReceiveCount", 1)),
            queue_arn=r.get("eventSourceARN", ""),
        )
        for r in records
    ]
    report = pipeline.process(messages, remaining_ms=context.get_remaining_time_in_millis)
    emit_metrics(report)
    return partial_batch_response(messages, report)


def partial_batch_response(messages: list[InboundMessage], report: BatchReport) -> dict[str, Any]:
    """SQS partial batch response naming exactly the messages to retry (the rest are deleted).

    The pipeline decides a batch as a whole (one read, shared batch writes),
    so the response is built from its report rather than per record. A batch
    whose records are all retried (one throttled message alone, a model not
    running) is returned like any other, not raised: it is routine, and the
    function-errors alarm must mean a bug or a misconfiguration. Bugs and
    deployment faults have their own metrics (UnexpectedErrors,
    DeploymentFaults), which alarm.
    """
    return {
        "batchItemFailures": [
            {"itemIdentifier": m.message_id} for m in messages if m.message_id in report.failed_messages
        ]
    }
