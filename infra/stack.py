"""The repository's app: one image bucket and one AutolabelPipeline, with the stack outputs operators use."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from autolabel.cdk import AutolabelPipeline, ModelManagerSettings, ModelRoute
from infra.constructs.image_bucket import ImageBucket
from infra.settings import StackSettings

# The pipeline's id: "Default" is left out of logical ids, so the resources keep
# the ids they had before the pipeline was a construct (no replacement on upgrade).
PIPELINE_ID = "Default"
DEPLOYMENT_NAME = "Autolabel"


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
        self.pipeline = AutolabelPipeline(
            self,
            PIPELINE_ID,
            bucket=self.images.bucket,
            models=[ModelRoute(r.project_version_arn, r.prefix, r.project_arn) for r in settings.routes],
            min_confidence=settings.min_confidence,
            max_results=settings.max_results,
            event_source=settings.event_source,
            batch_size=settings.batch_size,
            max_concurrency=settings.max_concurrency,
            backfill_max_concurrency=settings.backfill_max_concurrency,
            max_receive_count=settings.max_receive_count,
            notifications=settings.notifications,
            notification_topic_arn=settings.notification_topic_arn,
            deletions=settings.deletions,
            model_manager=_manager_settings(settings),
            deployment_name=DEPLOYMENT_NAME,
            backfill_job=settings.backfill_job,
        )
        # The parts the tests and tools reach through the stack.
        self.ingest = self.pipeline.ingest
        self.backfill = self.pipeline.backfill
        self.results = self.pipeline.results
        self.events = self.pipeline.events
        self.labeler = self.pipeline.labeler
        self.model_manager = self.pipeline.model_manager
        self.monitoring = self.pipeline.monitoring
        self.backfill_job = self.pipeline.backfill_job
        # The app's own outputs (the construct creates none), with the ids operators and the CLI know.
        for output_id, value in self.pipeline.deployment_values.items():
            CfnOutput(self, output_id, value=value).override_logical_id(output_id)


def _manager_settings(settings: StackSettings) -> ModelManagerSettings | None:
    if not settings.model_manager:
        return None
    return ModelManagerSettings(
        idle_minutes=settings.idle_minutes,
        min_inference_units=settings.min_inference_units,
        max_inference_units=settings.max_inference_units,
        always_on=settings.always_on,
        always_on_windows=settings.always_on_windows,
        stop_models_started_elsewhere=settings.stop_models_started_elsewhere,
        model_outage_grace_hours=settings.model_outage_grace_hours,
    )
