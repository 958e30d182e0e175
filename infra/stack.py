"""The autolabel stack: assembles the constructs and exports stable outputs."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from constructs import Construct

from infra.constructs.backfill_job import BackfillJob
from infra.constructs.backfill_queue import BackfillQueue
from infra.constructs.event_bus import ResultsEventBus
from infra.constructs.image_bucket import ImageBucket
from infra.constructs.ingest_queue import IngestQueue
from infra.constructs.labeler_function import LabelerFunction
from infra.constructs.model_manager import ModelManager
from infra.constructs.monitoring import Monitoring
from infra.constructs.results_table import ResultsTable
from infra.nag import acknowledge_findings
from infra.settings import StackSettings


class AutolabelStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self.images = ImageBucket(
            self,
            "ImageBucket",
            existing_bucket_name=settings.bucket_name,
            event_bridge=settings.notifications == "eventbridge",
        )
        self.ingest = IngestQueue(
            self,
            "Ingest",
            bucket=self.images.bucket,
            key_prefix=settings.key_prefix,
            visibility_timeout=Duration.seconds(settings.queue_visibility_timeout_seconds),
            max_receive_count=settings.max_receive_count,
            notifications=settings.notifications,
            notification_topic_arn=settings.notification_topic_arn,
            deletions=settings.deletions,
        )
        self.backfill = BackfillQueue(
            self,
            "Backfill",
            visibility_timeout=Duration.seconds(settings.queue_visibility_timeout_seconds),
            max_receive_count=settings.max_receive_count,
        )
        self.results = ResultsTable(self, "Results")
        self.events = ResultsEventBus(self, "Events")
        self.labeler = LabelerFunction(
            self,
            "Labeler",
            settings=settings,
            bucket=self.images.bucket,
            queue=self.ingest.queue,
            backfill_queue=self.backfill.queue,
            table=self.results.table,
            bus=self.events.bus,
        )
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
                bus=self.events.bus,
            )
        self.backfill_job = (
            BackfillJob(
                self,
                "BackfillJob",
                image_bucket=self.images.bucket,
                key_prefix=settings.key_prefix,
                backfill_queue=self.backfill.queue,
                table=self.results.table,
                project_version_arn=settings.project_version_arn,
            )
            if settings.backfill_job
            else None
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            function=self.labeler.function,
            queue=self.ingest.queue,
            dead_letter_queue=self.ingest.dead_letter_queue,
            extra_alarms=[*self.backfill.alarms, *(self.model_manager.alarms if self.model_manager else [])],
        )
        outputs = {
            "ImageBucketName": self.images.bucket.bucket_name,
            "IngestQueueUrl": self.ingest.queue.queue_url,
            "DeadLetterQueueUrl": self.ingest.dead_letter_queue.queue_url,
            "ResultsTableName": self.results.table.table_name,
            "EventBusName": self.events.bus.event_bus_name,
            "LabelerFunctionName": self.labeler.function.function_name,
            "AlarmTopicArn": self.monitoring.topic.topic_arn,
            "DashboardName": self.monitoring.dashboard.dashboard_name,
            "ProjectVersionArn": settings.project_version_arn,
            "EventSourceMappingId": self.labeler.event_source.event_source_mapping_id,
            "BackfillQueueUrl": self.backfill.queue.queue_url,
            "BackfillDeadLetterQueueUrl": self.backfill.dead_letter_queue.queue_url,
            "BackfillEventSourceMappingId": self.labeler.backfill_event_source.event_source_mapping_id,
        }
        if self.backfill_job is not None:
            outputs["BackfillJobStateMachineArn"] = self.backfill_job.state_machine.state_machine_arn
            outputs["BackfillReportBucketName"] = self.backfill_job.reports.bucket_name
        if self.model_manager is not None:
            outputs["ModelManagerFunctionName"] = self.model_manager.function.function_name
            if settings.project_arn:
                outputs["ProjectArn"] = settings.project_arn
        for output_id, value in outputs.items():
            CfnOutput(self, output_id, value=value).override_logical_id(output_id)
        acknowledge_findings(self)
