"""The real handler path inside moto: bucket -> SQS -> handler -> table + bus -> consumer queue."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import boto3

from labeler import handler
from labeler.adapters.clients import AwsClients
from labeler.config import LabelerConfig
from labeler.logic.pipeline import LabelingPipeline
from labeler.queries import find_by_label, get_result
from labeler.wiring import build_pipeline
from local.emulator import LocalResources, consumed_events, drain_queue
from local.fakes.fake_model import FakeCustomLabelsModel
from local.fakes.faults import FaultyClient
from local.poller import EventSourceMappingPoller
from local.stack_template import PLACEHOLDER_PROJECT_VERSION_ARN, StackFacts
from local.wiring import Lane, deploy, trigger
from tests.support.builders import s3_record

ARN = PLACEHOLDER_PROJECT_VERSION_ARN


@dataclass
class Harness:
    facts: StackFacts
    min_confidence: float | None = None
    max_results: int | None = None
    resources: LocalResources = field(init=False)

    def __post_init__(self) -> None:
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        self.dynamodb = FaultyClient(boto3.client("dynamodb"))
        self.events = FaultyClient(boto3.client("events"))
        self.model = FakeCustomLabelsModel(self.s3)
        self.resources = deploy(self.facts)
        self.config = LabelerConfig(
            project_version_arn=ARN,
            results_table_name=self.resources.table_name,
            event_bus_name=self.resources.event_bus_name,
            min_confidence=self.min_confidence,
            max_results=self.max_results,
        )
        self.pipeline: LabelingPipeline = self.build_pipeline()
        handler.use_pipeline(self.pipeline)
        self.poller = self.trigger("ingest")
        self._events_seen: list[dict[str, Any]] = []

    def trigger(self, lane: Lane) -> EventSourceMappingPoller:
        """The event source mapping of the ingest or backfill queue, invoking the real handler."""
        return trigger(self.resources, lane, handler.handler, batch_size=self.facts.batch_size, retry_delay_seconds=0)

    def build_pipeline(self, **overrides: Any) -> LabelingPipeline:
        pipeline = build_pipeline(self.config, AwsClients(self.model, self.dynamodb, self.events))
        for name, value in overrides.items():  # the phases' context: claim_ttl, clock, sleep...
            if not hasattr(pipeline.ctx, name):
                raise AttributeError(f"the pipeline's context has no {name!r}")
            setattr(pipeline.ctx, name, value)
        return pipeline

    # -- driving ---------------------------------------------------------------

    def upload(self, key: str, body: bytes) -> dict[str, Any]:
        response: dict[str, Any] = self.s3.put_object(Bucket=self.resources.bucket, Key=key, Body=body)
        return response

    def upload_quietly(self, key: str, body: bytes) -> dict[str, Any]:
        """Upload without moto's notification (which has no versionId/sequencer), for hand-made ones."""
        response = self.upload(key, body)
        self.discard_notifications()
        return response

    def discard_notifications(self) -> None:
        drain_queue(self.sqs, self.resources.queue_url)

    def record_for(
        self,
        key: str,
        upload: dict[str, Any],
        *,
        sequencer: str | None = None,
        size: int | None = None,
        with_version: bool = True,
    ) -> dict[str, Any]:
        """A real-S3-shaped record for an uploaded object (versionId and sequencer present)."""
        head = self.s3.head_object(Bucket=self.resources.bucket, Key=key, VersionId=upload["VersionId"])
        return s3_record(
            key,
            bucket=self.resources.bucket,
            size=head["ContentLength"] if size is None else size,
            etag=upload["ETag"].strip('"'),
            version_id=upload["VersionId"] if with_version else None,
            sequencer=sequencer,
        )

    def send(self, body: str) -> None:
        """Put a hand-made notification on the ingest queue (e.g. with sequencer/versionId)."""
        self.sqs.send_message(QueueUrl=self.resources.queue_url, MessageBody=body)

    def run(self) -> None:
        self.poller.run_until_idle(max_seconds=60)

    # -- observing -------------------------------------------------------------

    def result(self, key: str) -> dict[str, Any] | None:
        return get_result(self.resources.table_name, self.resources.bucket, key, ARN, client=boto3.client("dynamodb"))

    def by_label(self, label: str, min_confidence: float = 0.0, **kwargs: Any) -> list[dict[str, Any]]:
        return find_by_label(
            self.resources.table_name, label, min_confidence, client=boto3.client("dynamodb"), **kwargs
        )

    def new_events(self) -> list[dict[str, Any]]:
        events = consumed_events(self.sqs, self.resources.consumer_queue_url)
        self._events_seen.extend(events)
        return events

    def dead_letters(self) -> list[dict[str, Any]]:
        return [
            json.loads(m["Body"]) if m["Body"].startswith("{") else {"raw": m["Body"]}
            for m in drain_queue(self.sqs, self.resources.dead_letter_queue_url)
        ]

    def rekognition_calls(self) -> int:
        return len(self.model.calls)
