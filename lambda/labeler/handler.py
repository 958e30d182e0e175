"""Lambda entry point: SQS batch in, partial batch response out.

Thin on purpose: configuration and clients are built once per execution
environment (on the first invocation, never at import), the batch logic is
``pipeline.LabelingPipeline``, and this module only translates its report into
Powertools' partial batch response, structured logs and EMF metrics.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from labeler.clients import create_clients
from labeler.config import METRICS_NAMESPACE, SERVICE_NAME, LabelerConfig
from labeler.deadline import InvocationDeadline
from labeler.pipeline import BatchReport, InboundMessage, LabelingPipeline, build_pipeline

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
# A batch whose records are all retried (one throttled message alone, a model
# not running) is routine, not a function error: Powertools would raise, and
# the function-errors alarm would page on throttling. Each record still goes
# back to the queue through batchItemFailures; bugs and deployment faults
# have their own metrics (UnexpectedErrors, DeploymentFaults) and alarm.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

_pipeline: LabelingPipeline | None = None


class RecordRetry(Exception):
    """Marks a record for redelivery in the partial batch response."""


def use_pipeline(pipeline: LabelingPipeline | None) -> None:
    """Inject a pipeline (tests, local run); None rebuilds from the environment."""
    global _pipeline
    _pipeline = pipeline


def current_pipeline() -> LabelingPipeline:
    global _pipeline
    if _pipeline is None:
        # Fails the cold start with a message naming the bad variable.
        config = LabelerConfig.from_environ(os.environ)
        _pipeline = build_pipeline(config, create_clients(InvocationDeadline()))
    return _pipeline


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
    }
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for labels in report.labels_per_image:
        metrics.add_metric(name="LabelsPerImage", unit=MetricUnit.Count, value=labels)
    for latency in report.rekognition_latencies_ms:
        metrics.add_metric(name="RekognitionLatency", unit=MetricUnit.Milliseconds, value=latency)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    pipeline = current_pipeline()
    records = event.get("Records", [])
    messages = [InboundMessage(r["messageId"], r.get("body", "")) for r in records]
    report = pipeline.process(messages, remaining_ms=context.get_remaining_time_in_millis)
    emit_metrics(report)

    def record_handler(record: SQSRecord) -> None:
        reason = report.failed_messages.get(record.message_id)
        if reason is not None:
            raise RecordRetry(reason)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
