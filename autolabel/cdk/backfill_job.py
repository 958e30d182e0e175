"""The backfill run in AWS (docs/backfill.md): a Step Functions Distributed Map feeding the backfill queue.

    List and enqueue (Distributed Map: ItemReader listObjectsV2 over the job's prefix,
    |   ItemBatcher, MaxConcurrency; each batch one Lambda call, retried on
    |   BackfillQueueFull every minute while the queue is full; ResultWriter)
    Lane drained? (SQS GetQueueAttributes) --not yet--> Wait --> Lane drained?
    Reconcile (Distributed Map over the job's ledger files; ResultWriter)
    Summarize (report.json)

Takes its resources as explicit props and changes nothing outside itself.
Nothing here costs anything while no job runs (a state machine, a function,
an empty bucket and log groups), so the stack deploys it by default.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Annotations, Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import Construct

from autolabel.cdk._functions import queue_backlog
from autolabel.cdk.exact_role_function import Grant, exact_role_function
from autolabel.cdk.runtime import RUNTIME

HANDLER = "labeler.backfill_job.handler"
RESULT_WRITER_V2_FLAG = "@aws-cdk/aws-stepfunctions:useDistributedMapResultWriterV2"
# How long a batch waits before asking again when the backfill queue is full.
QUEUE_FULL_RETRY = Duration.seconds(60)
# ASL's largest MaxAttempts: a batch waits for the model as long as it takes.
MAX_RETRY_ATTEMPTS = 99_999_999
LANE_ATTRIBUTES = queue_backlog.BACKLOG_ATTRIBUTES  # the lane is clear when all three are 0
LAMBDA_TRANSIENT_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]


@dataclass(frozen=True)
class BackfillJobTuning:
    """How fast a job may go. The pace itself comes with each job (its paceLimit)."""

    max_concurrency: int = 4  # child workflows (batches) at once
    items_per_batch: int = 100  # objects per enqueue call
    ledgers_per_batch: int = 50  # ledger files per reconcile call
    tolerated_failure_percentage: int = 5  # of batches the engine gives up on before the job fails
    drain_poll_minutes: int = 5  # how often a finished listing checks whether the labeler drained the lane


class BackfillJob(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        image_bucket: s3.IBucket,
        key_prefix: str | None,
        backfill_queue: sqs.IQueue,
        table: dynamodb.ITable,
        project_version_arn: str,
        tuning: BackfillJobTuning | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # Within this construct only: render ResultWriter from ResultWriterV2 (aws-cdk-lib's flag; the
        # deprecated ResultWriter prints warnings at every synth).
        self.node.set_context(RESULT_WRITER_V2_FLAG, True)
        tuning = tuning or BackfillJobTuning()
        self.tuning = tuning
        self.reports = s3.Bucket(
            self,
            "Reports",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
        )
        objects = image_bucket.arn_for_objects(f"{key_prefix or ''}*")
        made = exact_role_function(
            self,
            description="autolabel backfill job: selects, paces and enqueues listed objects; reconciles and reports",
            role_description="autolabel backfill job Lambda: reads the image bucket's listing and results, "
            "sends to the backfill queue, writes the job's reports",
            handler=HANDLER,
            grants=[
                Grant("VersioningOfTheImageBucket", ["s3:GetBucketVersioning"], image_bucket.bucket_arn),
                Grant("HeadObjectsUnderThePrefix", ["s3:GetObject", "s3:GetObjectVersion"], objects),
                Grant("ReadResults", ["dynamodb:BatchGetItem", "dynamodb:Query"], table.table_arn),
                Grant(
                    "SendToTheBackfillQueue", ["sqs:SendMessage", "sqs:GetQueueAttributes"], backfill_queue.queue_arn
                ),
                Grant("JobReports", ["s3:GetObject", "s3:PutObject"], self.reports.arn_for_objects("*")),
            ],
            environment={
                "PROJECT_VERSION_ARN": project_version_arn,
                "RESULTS_TABLE_NAME": table.table_name,
                "BACKFILL_QUEUE_URL": backfill_queue.queue_url,
                "REPORT_BUCKET": self.reports.bucket_name,
                "IMAGE_BUCKET": image_bucket.bucket_name,
                "MAX_CONCURRENCY": str(tuning.max_concurrency),
                "ITEMS_PER_BATCH": str(tuning.items_per_batch),
            },
            memory_size=512,
            timeout=Duration.minutes(5),
        )
        self.function, self.role = made.function, made.role
        self.state_machine = self._state_machine(image_bucket, key_prefix, backfill_queue, tuning)
        self._acknowledge(image_bucket, key_prefix)

    def _invoke(self, construct_id: str, payload: sfn.TaskInput | None = None, **options: object) -> tasks.LambdaInvoke:
        """The function called with the state's input (or ``payload``); its answer is the task's result."""
        task = tasks.LambdaInvoke(
            self,
            construct_id,
            lambda_function=self.function,
            payload=payload,
            payload_response_only=True,
            retry_on_service_exceptions=False,
            **options,  # type: ignore[arg-type]
        )
        task.add_retry(errors=LAMBDA_TRANSIENT_ERRORS, interval=Duration.seconds(2), max_attempts=6, backoff_rate=2)
        return task

    def _state_machine(
        self, image_bucket: s3.IBucket, key_prefix: str | None, queue: sqs.IQueue, tuning: BackfillJobTuning
    ) -> sfn.StateMachine:
        enqueue = self._invoke("EnqueueBatch")
        enqueue.add_retry(
            errors=["BackfillQueueFull"],
            interval=QUEUE_FULL_RETRY,
            max_attempts=MAX_RETRY_ATTEMPTS,
            backoff_rate=1,
        )
        enqueue.add_retry(errors=["States.ALL"], interval=Duration.seconds(10), max_attempts=3, backoff_rate=2)
        list_and_enqueue = sfn.DistributedMap(
            self,
            "ListAndEnqueue",
            item_reader=sfn.S3ObjectsItemReader(bucket=image_bucket, prefix=sfn.JsonPath.string_at("$.prefix")),
            item_batcher=sfn.ItemBatcher(
                max_items_per_batch=tuning.items_per_batch,
                batch_input={"action": "enqueue", "job.$": "$"},
            ),
            max_concurrency=tuning.max_concurrency,
            tolerated_failure_percentage=tuning.tolerated_failure_percentage,
            result_writer_v2=sfn.ResultWriterV2(bucket=self.reports, prefix=sfn.JsonPath.string_at("$.engineResults")),
            map_execution_type=sfn.StateMachineType.STANDARD,
            result_path="$.enqueue",
        )
        list_and_enqueue.item_processor(
            enqueue, mode=sfn.ProcessorMode.DISTRIBUTED, execution_type=sfn.ProcessorType.STANDARD
        )
        lane = tasks.CallAwsService(
            self,
            "LaneDrained",
            service="sqs",
            action="getQueueAttributes",
            parameters={"QueueUrl": queue.queue_url, "AttributeNames": list(LANE_ATTRIBUTES)},
            iam_resources=[queue.queue_arn],
            result_selector={"Attributes.$": "$.Attributes"},
            result_path="$.lane",
        )
        wait = sfn.Wait(
            self, "WaitForTheLabeler", time=sfn.WaitTime.duration(Duration.minutes(tuning.drain_poll_minutes))
        )
        reconcile_task = self._invoke("ReconcileLedgers")
        reconcile_task.add_retry(errors=["States.ALL"], interval=Duration.seconds(10), max_attempts=3, backoff_rate=2)
        reconcile = sfn.DistributedMap(
            self,
            "Reconcile",
            item_reader=sfn.S3ObjectsItemReader(bucket=self.reports, prefix=sfn.JsonPath.string_at("$.ledgers")),
            item_batcher=sfn.ItemBatcher(
                max_items_per_batch=tuning.ledgers_per_batch,
                batch_input={"action": "reconcile", "job.$": "$"},
            ),
            max_concurrency=tuning.max_concurrency,
            tolerated_failure_percentage=tuning.tolerated_failure_percentage,
            result_writer_v2=sfn.ResultWriterV2(bucket=self.reports, prefix=sfn.JsonPath.string_at("$.engineResults")),
            map_execution_type=sfn.StateMachineType.STANDARD,
            result_path="$.reconcile",
        )
        for distributed in (list_and_enqueue, reconcile):
            # aws-cdk-lib's own validation requires ProcessorConfig.executionType, then warns it is ignored.
            Annotations.of(distributed).acknowledge_warning("@aws-cdk/aws-stepfunctions:propertyIgnored")
        reconcile.item_processor(
            reconcile_task, mode=sfn.ProcessorMode.DISTRIBUTED, execution_type=sfn.ProcessorType.STANDARD
        )
        summarize = self._invoke(
            "Summarize",
            sfn.TaskInput.from_object(
                {
                    "action": "summarize",
                    "job": sfn.JsonPath.object_at("$"),
                    "enqueue": sfn.JsonPath.object_at("$.enqueue"),
                    "reconcile": sfn.JsonPath.object_at("$.reconcile"),
                }
            ),
            result_path="$.report",
        )
        drained = sfn.Condition.and_(
            *(sfn.Condition.string_equals(f"$.lane.Attributes.{name}", "0") for name in LANE_ATTRIBUTES)
        )
        definition = list_and_enqueue.next(lane).next(
            sfn.Choice(self, "IsTheLaneDrained").when(drained, reconcile.next(summarize)).otherwise(wait.next(lane))
        )
        log_group = logs.LogGroup(
            self, "StateMachineLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
            comment="autolabel backfill job (docs/backfill.md)",
        )
        self._list_only_the_prefix(machine, image_bucket, key_prefix)
        return machine

    def _list_only_the_prefix(
        self, machine: sfn.StateMachine, image_bucket: s3.IBucket, key_prefix: str | None
    ) -> None:
        """The ItemReader's s3:ListBucket, narrowed to the configured key prefix when there is one."""
        if not key_prefix:
            return
        machine.add_to_role_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=["s3:ListBucket"],
                resources=[image_bucket.bucket_arn],
                conditions={"StringNotLike": {"s3:prefix": [f"{key_prefix}*"]}},
            )
        )

    def _acknowledge(self, image_bucket: s3.IBucket, key_prefix: str | None) -> None:
        NagSuppressions.add_resource_suppressions(
            self.reports,
            [
                NagPackSuppression(
                    id="AwsSolutions-S1",
                    reason="The report bucket holds only the backfill jobs' own ledgers and reports, written by "
                    "the job's function and state machine; they expire after 90 days. Server access logs of it "
                    "would log the job's own writes.",
                )
            ],
        )
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The job reads the current version (HeadObject) of listed objects it cannot know in "
                    "advance, under the configured key prefix of the one image bucket; it writes and reads its "
                    "ledgers and reports in its own report bucket.",
                    applies_to=[
                        RegexAppliesTo(
                            regex=r"/^Resource::(<[A-Za-z0-9]+\.Arn>|arn:<AWS::Partition>:s3:::[a-z0-9.-]+)\/.*\*$/"
                        )
                    ],
                )
            ],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions(
            self.state_machine,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="What a Distributed Map needs, as aws-cdk-lib grants it: to start, describe, stop and "
                    "redrive its own child executions (named at run time), to write its ResultWriter files "
                    "under the report bucket, to call the job function's versions; log delivery and X-Ray "
                    "actions support no resource-level permissions.",
                    applies_to=[
                        "Resource::*",
                        RegexAppliesTo(regex=r"/^Resource::<[A-Za-z0-9]+\.Arn>:\*$/"),
                        RegexAppliesTo(regex=r"/^Resource::arn:<AWS::Partition>:s3:::<[A-Za-z0-9]+>\/\*$/"),
                        RegexAppliesTo(
                            regex=r"/^Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:.*\*$/"
                        ),
                    ],
                )
            ],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions(
            self.function,
            [
                NagPackSuppression(
                    id="AwsSolutions-L1",
                    reason=f"{RUNTIME.name}: the Python the project builds, tests and type-checks with "
                    "(.python-version), as the labeler's.",
                )
            ],
        )
