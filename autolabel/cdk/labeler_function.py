"""The labeler Lambda, its own exact-action role, and its SQS event sources: one per model lane, and the backfill lane.

One function serves every lane: each lane's trigger (event source mapping)
has its own queue and concurrency share, and the manager pauses it alone, so a
model that is not running holds back only its own lane. The function decides
each record's model from its key (the routes' prefixes, ``MODEL_ROUTES``),
the same rule that sent it to its lane.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from autolabel.cdk.exact_role_function import Grant, exact_role_function
from autolabel.cdk.settings import PipelineSettings

HANDLER = "labeler.handler.handler"

# DynamoDB actions the labeler's code uses (adapters/results_store.py): no
# transactions, no single-item reads or deletes.
TABLE_ACTIONS = [
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:BatchWriteItem",
]


class LabelerFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PipelineSettings,
        bucket: s3.IBucket,
        queues: Sequence[sqs.IQueue],
        backfill_queue: sqs.IQueue,
        table: dynamodb.ITable,
        bus: events.IEventBus,
    ) -> None:
        super().__init__(scope, construct_id)
        environment = {
            "PROJECT_VERSION_ARN": settings.project_version_arn,
            "RESULTS_TABLE_NAME": table.table_name,
            "EVENT_BUS_NAME": bus.event_bus_name,
            "EVENT_SOURCE": settings.event_source,
            "DELETIONS": "true" if settings.deletions else "false",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        if len(settings.routes) > 1:
            # Several models: each record's model is the route its key falls under (labeler/config.py).
            environment["MODEL_ROUTES"] = Stack.of(self).to_json_string(
                [{"prefix": route.prefix, "projectVersionArn": route.project_version_arn} for route in settings.routes]
            )
        if settings.min_confidence is not None:
            environment["MIN_CONFIDENCE"] = _number(settings.min_confidence)
        if settings.max_results is not None:
            environment["MAX_RESULTS"] = str(settings.max_results)

        built = exact_role_function(
            self,
            description="autolabel: label S3 images with Rekognition Custom Labels",
            role_description="autolabel labeler: exactly the actions its code uses",
            handler=HANDLER,
            grants=[
                Grant(
                    "DetectWithConfiguredModelVersion",
                    ["rekognition:DetectCustomLabels"],
                    _one_or_all([route.project_version_arn for route in settings.routes]),
                ),
                # Rekognition reads the image with the caller's credentials.
                Grant(
                    "ReadUploadedImages",
                    ["s3:GetObject", "s3:GetObjectVersion"],
                    _one_or_all([bucket.arn_for_objects(f"{route.prefix}*") for route in settings.routes]),
                ),
                # Explicit, exact actions on the table alone (table.grant would also cover its indexes).
                Grant("ResultsTable", TABLE_ACTIONS, table.table_arn),
            ],
            l2_grants=[bus.grant_put_events_to],  # events:PutEvents on this bus only
            environment=environment,
            memory_size=512,
            timeout=Duration.seconds(settings.function_timeout_seconds),
        )
        self.function, self.role, self.log_group = built.function, built.role, built.log_group
        # One trigger per model lane, each with its own concurrency share. With the
        # model manager, they start paused: the manager resumes a lane's trigger
        # once its model is RUNNING (and pauses it again).
        self.event_sources = [
            sources.SqsEventSource(
                queue,
                batch_size=settings.batch_size,
                report_batch_item_failures=True,
                max_concurrency=settings.max_concurrency,
                enabled=not settings.model_manager,
            )
            for queue in queues
        ]
        for event_source in self.event_sources:
            # Also grants the role the queue's consume actions, on that queue only.
            self.function.add_event_source(event_source)
        self.event_source = self.event_sources[0]
        # The backfill lane: its own mapping and concurrency share, so that
        # fresh uploads on the ingest queue never wait behind a backfill.
        self.backfill_event_source = sources.SqsEventSource(
            backfill_queue,
            batch_size=settings.batch_size,
            report_batch_item_failures=True,
            max_concurrency=settings.backfill_max_concurrency,
            enabled=not settings.model_manager,
        )
        self.function.add_event_source(self.backfill_event_source)


def _one_or_all(resources: list[str]) -> str | list[str]:
    # One route: the single resource the statement always had.
    return resources[0] if len(resources) == 1 else resources


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
