"""Operator commands: model status / start / stop, and DLQ redrive.

Each command takes its boto3 clients and the stack outputs, so it is tested
against moto and fakes; ``ops.__main__`` wires them from your AWS credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from manager.adapters import CustomLabelsModel, IngestQueue, LabelerTrigger


@dataclass(frozen=True)
class StackOutputs:
    project_version_arn: str
    project_arn: str | None
    queue_url: str
    dead_letter_queue_url: str
    event_source_mapping_id: str
    model_manager: bool

    @classmethod
    def from_cloudformation(cls, cloudformation: Any, stack_name: str) -> StackOutputs:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        return cls(
            project_version_arn=outputs["ProjectVersionArn"],
            project_arn=outputs.get("ProjectArn") or None,
            queue_url=outputs["IngestQueueUrl"],
            dead_letter_queue_url=outputs["DeadLetterQueueUrl"],
            event_source_mapping_id=outputs["EventSourceMappingId"],
            model_manager="ModelManagerFunctionName" in outputs,
        )


def _model(rekognition: Any, outputs: StackOutputs) -> CustomLabelsModel:
    return CustomLabelsModel(rekognition, outputs.project_arn, outputs.project_version_arn)


def model_status(outputs: StackOutputs, *, rekognition: Any, sqs: Any, lambda_client: Any) -> dict[str, Any]:
    visible, in_flight = IngestQueue(sqs, outputs.queue_url).depth()
    dead, _ = IngestQueue(sqs, outputs.dead_letter_queue_url).depth()
    return {
        "model": outputs.project_version_arn,
        "status": _model(rekognition, outputs).status() or "NOT FOUND",
        "labelerTrigger": "enabled"
        if LabelerTrigger(lambda_client, outputs.event_source_mapping_id).enabled()
        else "paused",
        "waiting": visible,
        "inFlight": in_flight,
        "deadLetters": dead,
        "modelManager": "on" if outputs.model_manager else "off",
    }


def model_start(outputs: StackOutputs, *, rekognition: Any, min_units: int, max_units: int | None) -> str:
    started = _model(rekognition, outputs).start(min_units, max_units)
    if not started:
        return "a start or stop is already under way; nothing done"
    note = (
        " The model manager will not stop a model it did not start: stop it with `python -m ops model stop`."
        if outputs.model_manager
        else ""
    )
    return f"starting with {min_units} inference unit(s); the labeler resumes once it is RUNNING.{note}"


def model_stop(outputs: StackOutputs, *, rekognition: Any, lambda_client: Any) -> str:
    LabelerTrigger(lambda_client, outputs.event_source_mapping_id).set_enabled(False)  # before the model stops
    stopped = _model(rekognition, outputs).stop()
    return (
        "stopping; the labeler's trigger is paused, images wait in the queue"
        if stopped
        else "the model is not RUNNING; trigger paused, nothing else done"
    )


def redrive(outputs: StackOutputs, *, sqs: Any, limit: int | None = None) -> int:
    """Move DLQ messages back to the ingest queue (bodies unchanged); returns how many."""
    moved = 0
    while limit is None or moved < limit:
        wanted = 10 if limit is None else min(10, limit - moved)  # never hold back what we won't move
        batch = sqs.receive_message(
            QueueUrl=outputs.dead_letter_queue_url, MaxNumberOfMessages=wanted, VisibilityTimeout=60
        ).get("Messages", [])
        if not batch:
            return moved
        sent = sqs.send_message_batch(
            QueueUrl=outputs.queue_url, Entries=[{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(batch)]
        )
        ok = {entry["Id"] for entry in sent.get("Successful", [])}
        done = [m for i, m in enumerate(batch) if str(i) in ok]
        if done:  # only what reached the ingest queue leaves the DLQ
            sqs.delete_message_batch(
                QueueUrl=outputs.dead_letter_queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        moved += len(done)
        if len(done) < len(batch):
            raise RuntimeError(f"{len(batch) - len(done)} message(s) could not be sent back; they stay in the DLQ")
    return moved
