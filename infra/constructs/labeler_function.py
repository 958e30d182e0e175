"""The labeler Lambda, its own exact-action role, and its SQS event source."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.bundling import labeler_code
from infra.settings import StackSettings

HANDLER = "labeler.handler.handler"
RUNTIME = lambda_.Runtime.PYTHON_3_14

# DynamoDB actions the labeler's code uses (store.py, queries.get_result);
# TransactWriteItems is authorized per contained Put/Update/Delete/ConditionCheck.
TABLE_ACTIONS = [
    "dynamodb:BatchGetItem",
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:BatchWriteItem",
]


class LabelerFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        bucket: s3.IBucket,
        queue: sqs.IQueue,
        table: dynamodb.ITable,
        bus: events.IEventBus,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="autolabel labeler: exactly the actions its code uses",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="DetectWithConfiguredModelVersion",
                actions=["rekognition:DetectCustomLabels"],
                resources=[settings.project_version_arn],
            )
        )
        # Rekognition reads the image with the caller's credentials.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadUploadedImages",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[bucket.arn_for_objects(f"{settings.key_prefix}*")],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(sid="ResultsTable", actions=TABLE_ACTIONS, resources=[table.table_arn])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(sid="PublishResults", actions=["events:PutEvents"], resources=[bus.event_bus_arn])
        )

        environment = {
            "PROJECT_VERSION_ARN": settings.project_version_arn,
            "RESULTS_TABLE_NAME": table.table_name,
            "EVENT_BUS_NAME": bus.event_bus_name,
            "EVENT_SOURCE": settings.event_source,
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        if settings.min_confidence is not None:
            environment["MIN_CONFIDENCE"] = _number(settings.min_confidence)
        if settings.max_results is not None:
            environment["MAX_RESULTS"] = str(settings.max_results)

        self.function = lambda_.Function(
            self,
            "Function",
            description="autolabel: label S3 images with Rekognition Custom Labels",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=HANDLER,
            code=labeler_code(),
            role=self.role,
            memory_size=512,
            timeout=Duration.seconds(settings.function_timeout_seconds),
            environment=environment,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
        )
        self.event_source = sources.SqsEventSource(
            queue,
            batch_size=settings.batch_size,
            report_batch_item_failures=True,
            max_concurrency=settings.max_concurrency,
            # With the model manager, the trigger starts paused: the manager
            # resumes it once the model is RUNNING (and pauses it again).
            enabled=not settings.model_manager,
        )
        # Also grants the role the queue's consume actions, on that queue only.
        self.function.add_event_source(self.event_source)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
