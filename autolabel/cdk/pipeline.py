"""AutolabelPipeline: every image uploaded to a bucket labeled, stored and announced, as one construct.

Its resources are its own children; it changes nothing outside itself (no
environment variable, no aspect, no context key read, no stack output). It
acknowledges its own cdk-nag findings, each scoped to its resource, so a stack
that applies ``AwsSolutionsChecks`` stays clean. Its deployment's names go to
one SSM parameter, ``/autolabel/deployments/<deployment_name>``, that
``autolabel --deployment NAME`` reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from autolabel.cdk._functions import result_event
from autolabel.cdk.backfill_job import BackfillJob
from autolabel.cdk.backfill_queue import BackfillQueue
from autolabel.cdk.event_bus import ResultsEventBus
from autolabel.cdk.ingest_queue import IngestQueue
from autolabel.cdk.labeler_function import LabelerFunction
from autolabel.cdk.lanes import ModelLane, lane_id
from autolabel.cdk.model_manager import ModelManager
from autolabel.cdk.monitoring import Monitoring
from autolabel.cdk.nag import acknowledge_findings
from autolabel.cdk.results_table import ResultsTable
from autolabel.cdk.settings import (
    ModelManagerSettings,
    ModelRoute,
    PipelineError,
    PipelineSettings,
    pipeline_settings,
)

# The SSM parameter the command line reads (`autolabel --deployment NAME`).
DEPLOYMENT_PARAMETER_PREFIX = "/autolabel/deployments/"
_DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


def deployment_parameter_name(deployment_name: str) -> str:
    return DEPLOYMENT_PARAMETER_PREFIX + deployment_name


def label_event_pattern(
    label: str, *, min_confidence: float | None, event_source: str, project_version_arns: Sequence[str]
) -> events.EventPattern:
    """The Detected events carrying ``label`` (at ``min_confidence`` or more), as an EventBridge pattern."""
    if not isinstance(label, str) or not label:
        raise PipelineError(f"on_label: label must be a non-empty label name, got {label!r}")
    detail: dict[str, object] = {"projectVersionArn": list(project_version_arns)}
    if min_confidence is None:
        detail["labelNames"] = [label]
    else:
        if isinstance(min_confidence, bool) or not 0 <= float(min_confidence) <= 100:
            raise PipelineError(f"on_label: min_confidence must be 0-100, got {min_confidence!r}")
        detail["labelConfidence"] = {label: [{"numeric": [">=", float(min_confidence)]}]}
    return events.EventPattern(source=[event_source], detail_type=[result_event.DETECTED], detail=detail)


class AutolabelPipeline(Construct):
    """S3 -> SQS -> labeler Lambda (Rekognition Custom Labels) -> DynamoDB + EventBridge, with a model manager.

    ``bucket``: the images' bucket (yours; more with :meth:`add_source_bucket`).
    ``models``: the model routes; each gets its own lane (queue, DLQ, trigger), fed by the bucket's
    notifications under its prefix. Prefixes must not overlap; keep the first route first (its lane
    keeps the one-model pipeline's ids).
    ``event_bus``: announce on your bus instead of one the pipeline creates.
    ``model_manager``: ``None`` runs no manager (the triggers start enabled, you run the model).
    ``deployment_name``: the SSM parameter's name; default ``<stack name>-<id>``.
    ``backfill_job``: the backfill run in AWS (``autolabel backfill --in-aws``, docs/backfill.md); it
    costs nothing while no job runs. Default: on with one route; it does not yet route listed objects
    by key, so with several routes it is off (True then fails at synth).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        models: Sequence[ModelRoute],
        min_confidence: float | None = None,
        max_results: int | None = None,
        event_source: str = "autolabel",
        batch_size: int = 10,
        max_concurrency: int = 2,
        backfill_max_concurrency: int = 2,
        max_receive_count: int = 10,
        notifications: str = "s3",
        notification_topic_arn: str | None = None,
        deletions: bool = True,
        model_manager: ModelManagerSettings | None = ModelManagerSettings(),  # noqa: B008 (frozen)
        event_bus: events.IEventBus | None = None,
        deployment_name: str | None = None,
        backfill_job: bool | None = None,
    ) -> None:
        settings = pipeline_settings(
            models,
            min_confidence=min_confidence,
            max_results=max_results,
            event_source=event_source,
            batch_size=batch_size,
            max_concurrency=max_concurrency,
            backfill_max_concurrency=backfill_max_concurrency,
            max_receive_count=max_receive_count,
            notifications=notifications,
            notification_topic_arn=notification_topic_arn,
            deletions=deletions,
            model_manager=model_manager,
        )
        several = len(settings.routes) > 1
        if several and backfill_job:
            raise PipelineError(
                "backfill_job=True takes one model route: the backfill job does not route listed objects by key yet"
            )
        super().__init__(scope, construct_id)
        self.settings: PipelineSettings = settings
        self.models: tuple[ModelRoute, ...] = tuple(models)
        self.bucket = bucket
        self.deployment_name = self._deployment_name(deployment_name)
        visibility_timeout = Duration.seconds(settings.queue_visibility_timeout_seconds)
        # One lane per model route: its queue and DLQ, fed by notifications under its prefix.
        self.ingest_lanes = [
            IngestQueue(
                self,
                lane_id(index, route),
                bucket=bucket,
                key_prefix=route.prefix,
                visibility_timeout=visibility_timeout,
                max_receive_count=settings.max_receive_count,
                notifications=settings.notifications,
                notification_topic_arn=settings.notification_topic_arn,
                deletions=settings.deletions,
            )
            for index, route in enumerate(settings.routes)
        ]
        self.ingest = self.ingest_lanes[0]
        self.backfill = BackfillQueue(
            self, "Backfill", visibility_timeout=visibility_timeout, max_receive_count=settings.max_receive_count
        )
        self.results = ResultsTable(self, "Results")
        self.events: ResultsEventBus | None = None
        if event_bus is None:
            self.events = ResultsEventBus(self, "Events")
            event_bus = self.events.bus
        self.bus: events.IEventBus = event_bus
        self.labeler = LabelerFunction(
            self,
            "Labeler",
            settings=settings,
            bucket=bucket,
            queues=[lane.queue for lane in self.ingest_lanes],
            backfill_queue=self.backfill.queue,
            table=self.results.table,
            bus=self.bus,
        )
        self.lanes = [
            ModelLane(route, ingest.queue, ingest.dead_letter_queue, event_source)
            for route, ingest, event_source in zip(
                settings.routes, self.ingest_lanes, self.labeler.event_sources, strict=True
            )
        ]
        self.model_manager: ModelManager | None = None
        if settings.model_manager:
            self.model_manager = ModelManager(
                self,
                "ModelManager",
                settings=settings,
                queue=self.ingest.queue,
                dead_letter_queue=self.ingest.dead_letter_queue,
                event_source_mapping_id=self.labeler.event_source.event_source_mapping_id,
                event_source_mapping_arn=self.labeler.event_source.event_source_mapping_arn,
                backfill_queue=self.backfill.queue,
                backfill_dead_letter_queue=self.backfill.dead_letter_queue,
                backfill_event_source_mapping_id=self.labeler.backfill_event_source.event_source_mapping_id,
                backfill_event_source_mapping_arn=self.labeler.backfill_event_source.event_source_mapping_arn,
                bus=self.bus,
                other_lanes=self.lanes[1:],
            )
        self.backfill_job: BackfillJob | None = None
        if backfill_job or (backfill_job is None and not several):
            self.backfill_job = BackfillJob(
                self,
                "BackfillJob",
                image_bucket=bucket,
                key_prefix=settings.key_prefix,
                backfill_queue=self.backfill.queue,
                table=self.results.table,
                project_version_arn=settings.project_version_arn,
            )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            function=self.labeler.function,
            queue=self.ingest.queue,
            dead_letter_queue=self.ingest.dead_letter_queue,
            other_lanes=[(lane.route.prefix, lane.queue, lane.dead_letter_queue) for lane in self.lanes[1:]],
            extra_alarms=[*self.backfill.alarms, *(self.model_manager.alarms if self.model_manager else [])],
        )
        self._source_buckets = 1
        self._label_rules = 0
        self.deployment_parameter = ssm.StringParameter(
            self,
            "Deployment",
            parameter_name=deployment_parameter_name(self.deployment_name),
            description="autolabel: this deployment's resource names, read by `autolabel --deployment NAME`",
            string_value=Stack.of(self).to_json_string(dict(self.deployment_values)),
        )
        acknowledge_findings(self)

    # The parts users wire to.
    @property
    def table(self) -> dynamodb.ITable:
        return self.results.table

    @property
    def ingest_queues(self) -> list[sqs.IQueue]:
        """One per model route, in the routes' order."""
        return [lane.queue for lane in self.lanes]

    @property
    def dead_letter_queues(self) -> list[sqs.IQueue]:
        """The ingest lanes' DLQs (one per route), then the backfill lane's."""
        return [*(lane.dead_letter_queue for lane in self.lanes), self.backfill.dead_letter_queue]

    @property
    def backfill_queue(self) -> sqs.IQueue:
        return self.backfill.queue

    @property
    def labeler_function(self) -> lambda_.IFunction:
        return self.labeler.function

    @property
    def alarm_topic(self) -> sns.ITopic:
        return self.monitoring.topic

    @property
    def deployment_values(self) -> Mapping[str, str]:
        """Resource names by the repository app's stack output ids: the SSM parameter's JSON, and those outputs."""
        values = {
            "ImageBucketName": self.bucket.bucket_name,
            "IngestQueueUrl": self.ingest.queue.queue_url,
            "DeadLetterQueueUrl": self.ingest.dead_letter_queue.queue_url,
            "ResultsTableName": self.results.table.table_name,
            "EventBusName": self.bus.event_bus_name,
            "LabelerFunctionName": self.labeler.function.function_name,
            "AlarmTopicArn": self.monitoring.topic.topic_arn,
            "DashboardName": self.monitoring.dashboard.dashboard_name,
            "ProjectVersionArn": self.settings.project_version_arn,
            "EventSourceMappingId": self.labeler.event_source.event_source_mapping_id,
            "BackfillQueueUrl": self.backfill.queue.queue_url,
            "BackfillDeadLetterQueueUrl": self.backfill.dead_letter_queue.queue_url,
            "BackfillEventSourceMappingId": self.labeler.backfill_event_source.event_source_mapping_id,
        }
        if len(self.lanes) > 1:
            # Every lane, for `autolabel model status` and `--model` (one route: the keys above say it all).
            values["ModelRoutes"] = Stack.of(self).to_json_string(
                [
                    {
                        "prefix": lane.route.prefix,
                        "projectVersionArn": lane.route.project_version_arn,
                        "projectArn": lane.route.project_arn or "",
                        "ingestQueueUrl": lane.queue.queue_url,
                        "deadLetterQueueUrl": lane.dead_letter_queue.queue_url,
                        "eventSourceMappingId": lane.event_source.event_source_mapping_id,
                    }
                    for lane in self.lanes
                ]
            )
        if self.backfill_job is not None:
            values["BackfillJobStateMachineArn"] = self.backfill_job.state_machine.state_machine_arn
            values["BackfillReportBucketName"] = self.backfill_job.reports.bucket_name
        if self.model_manager is not None:
            values["ModelManagerFunctionName"] = self.model_manager.function.function_name
            if self.settings.project_arn:
                values["ProjectArn"] = self.settings.project_arn
        return values

    def on_label(
        self,
        label: str,
        *,
        target: events.IRuleTarget,
        min_confidence: float | None = None,
        rule_id: str | None = None,
    ) -> events.Rule:
        """A rule on the results bus: every ``Custom Labels Detected`` of this pipeline with ``label``
        (at ``min_confidence`` or more, when given) goes to ``target``.

        Matches ``detail.labelConfidence.<label> >= min_confidence`` (without a
        threshold: ``detail.labelNames`` contains ``label``), for this
        pipeline's event source and model versions only.
        """
        pattern = label_event_pattern(
            label,
            min_confidence=min_confidence,
            event_source=self.settings.event_source,
            project_version_arns=[route.project_version_arn for route in self.models],
        )
        self._label_rules += 1
        return events.Rule(
            self,
            rule_id or f"OnLabel{self._label_rules}",
            description=f"autolabel: Detected with {label!r}"
            + (f" at {min_confidence:g} or more" if min_confidence is not None else ""),
            event_bus=self.bus,
            event_pattern=pattern,
            targets=[target],
        )

    def add_source_bucket(self, bucket: s3.IBucket, *, prefix: str = "") -> None:
        """Label the images of another bucket too (under ``prefix``), with the pipeline's notifications mode.

        The labeler may read exactly those objects; with ``notifications='s3'``
        the bucket gets a notification to the ingest queue, with
        ``'eventbridge'`` a rule on the default bus forwards its events (turn
        EventBridge notifications on for that bucket). ``'sns'`` cannot add a
        bucket: subscribe the queue to that bucket's topic yourself.
        """
        if prefix.startswith("/") or "*" in prefix:
            raise PipelineError(f"add_source_bucket: prefix must be a plain S3 key prefix, got {prefix!r}")
        # Each lane gets the bucket's keys that are both under `prefix` and under its route's prefix.
        lane_prefixes = [
            (lane, narrowed) for lane in self.lanes if (narrowed := _narrower(prefix, lane.route.prefix)) is not None
        ]
        if not lane_prefixes:
            routes = ", ".join(repr(lane.route.prefix) for lane in self.lanes)
            raise PipelineError(f"add_source_bucket: prefix {prefix!r} is outside every model route ({routes})")
        if self.settings.notifications == "sns":
            raise PipelineError("add_source_bucket is not available with notifications='sns'")
        self._source_buckets += 1
        number = self._source_buckets
        self.labeler.role.add_to_policy(
            iam.PolicyStatement(
                sid=f"ReadUploadedImages{number}",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[bucket.arn_for_objects(f"{narrowed}*") for _, narrowed in lane_prefixes],
            )
        )
        for lane, narrowed in lane_prefixes:
            ingest = self.ingest_lanes[self.lanes.index(lane)]
            ingest.add_bucket(bucket, key_prefix=narrowed, deletions=self.settings.deletions, rule_id=f"Source{number}")

    def _deployment_name(self, given: str | None) -> str:
        if given is None:
            return re.sub(r"[^A-Za-z0-9_.-]", "-", f"{Stack.of(self).stack_name}-{self.node.id}")[:200]
        if not _DEPLOYMENT_NAME.match(given):
            raise PipelineError(f"deployment_name must be 1-200 of A-Z a-z 0-9 _ . -, got {given!r}")
        return given


def _narrower(prefix: str, route_prefix: str) -> str | None:
    """The keys under both prefixes, as one prefix; None when no key is under both."""
    if prefix.startswith(route_prefix):
        return prefix
    if route_prefix.startswith(prefix):
        return route_prefix
    return None
