"""Operator actions: model status / start / stop, and the DLQ redrive.

Each takes its boto3 clients and the stack outputs, so it is tested against
moto, botocore's Stubber and fakes; ``autolabel.cli`` wires them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from autolabel.errors import ParameterError, ServiceError
from autolabel.function_code import function_names

if TYPE_CHECKING:
    from manager.adapters import CustomLabelsModel, LabelerTrigger, QueueBacklog
else:  # the functions' packages, imported without changing sys.path (autolabel.function_code)
    CustomLabelsModel, QueueBacklog, LabelerTrigger = function_names(
        "manager.adapters", "CustomLabelsModel", "QueueBacklog", "LabelerTrigger"
    )

# ListMessageMoveTasks statuses after which a task does not change any more.
FINAL_TASK_STATUSES = frozenset({"COMPLETED", "CANCELLED", "FAILED"})


@dataclass(frozen=True)
class StackOutputs:
    project_version_arn: str
    project_arn: str | None
    queue_url: str
    dead_letter_queue_url: str
    event_source_mapping_id: str
    model_manager: bool
    prefix: str | None = None  # the model's route (several models); None: the one model of the deployment

    @classmethod
    def from_outputs(cls, get: Callable[[str], str], get_optional: Callable[[str], str | None]) -> StackOutputs:
        return cls(
            project_version_arn=get("ProjectVersionArn"),
            project_arn=get_optional("ProjectArn"),
            queue_url=get("IngestQueueUrl"),
            dead_letter_queue_url=get("DeadLetterQueueUrl"),
            event_source_mapping_id=get("EventSourceMappingId"),
            model_manager=get_optional("ModelManagerFunctionName") is not None,
        )

    @classmethod
    def from_cloudformation(cls, cloudformation: Any, stack_name: str) -> StackOutputs:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        return cls.from_outputs(outputs.__getitem__, lambda key: outputs.get(key) or None)


def model_outputs(outputs: StackOutputs, model_routes: str | None) -> list[StackOutputs]:
    """Every model of the deployment: its lanes from ``ModelRoutes`` (several models), else the one model."""
    if not model_routes:
        return [outputs]
    try:
        lanes = json.loads(model_routes)
        return [
            replace(
                outputs,
                project_version_arn=str(lane["projectVersionArn"]),
                project_arn=str(lane.get("projectArn") or "") or None,
                queue_url=str(lane["ingestQueueUrl"]),
                dead_letter_queue_url=str(lane["deadLetterQueueUrl"]),
                event_source_mapping_id=str(lane["eventSourceMappingId"]),
                prefix=str(lane.get("prefix", "")),
            )
            for lane in lanes
        ]
    except (ValueError, KeyError, TypeError) as error:
        raise ParameterError(f"the deployment's ModelRoutes is not a list of model lanes: {error}") from None


def select_models(models: list[StackOutputs], model: str | None, *, one: bool) -> list[StackOutputs]:
    """The models ``--model`` names (all when not given); ``one``: exactly one is needed."""
    known = ", ".join(m.project_version_arn for m in models)
    if model is not None:
        chosen = [m for m in models if m.project_version_arn == model]
        if not chosen:
            raise ParameterError(f"--model {model} is none of this deployment's models: {known}")
        return chosen
    if one and len(models) > 1:
        raise ParameterError(f"this deployment has {len(models)} models: pass --model ARN (one of: {known})")
    return models


def _model(rekognition: Any, outputs: StackOutputs) -> CustomLabelsModel:
    return CustomLabelsModel(rekognition, outputs.project_arn, outputs.project_version_arn)


def model_status(outputs: StackOutputs, *, rekognition: Any, sqs: Any, lambda_client: Any) -> dict[str, Any]:
    visible, in_flight = QueueBacklog(sqs, outputs.queue_url).depth()
    dead, _ = QueueBacklog(sqs, outputs.dead_letter_queue_url).depth()
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
        **({"prefix": outputs.prefix} if outputs.prefix is not None else {}),
    }


def model_start(outputs: StackOutputs, *, rekognition: Any, min_units: int, max_units: int | None) -> str:
    if min_units < 1 or (max_units is not None and max_units < min_units):
        raise ParameterError("--min-units must be >= 1 and --max-units >= --min-units")
    started = _model(rekognition, outputs).start(min_units, max_units)
    if not started:
        return "a start or stop is already under way; nothing done"
    note = (
        " The model manager will not stop a model it did not start: stop it with `autolabel model stop`."
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


# --- DLQ redrive: SQS's own message move task ---------------------------------------------------


def _queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def _task(sqs: Any, source_arn: str, handle: str | None = None) -> dict[str, Any] | None:
    """The most recent move task of the DLQ (or the one with ``handle``)."""
    results = sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=10).get("Results", [])
    for task in results:
        if handle is None or task.get("TaskHandle") == handle:
            return dict(task)
    return None


def progress_line(task: dict[str, Any]) -> str:
    moved = task.get("ApproximateNumberOfMessagesMoved", 0)
    total = task.get("ApproximateNumberOfMessagesToMove")
    return f"redrive {task.get('Status')}: {moved} of {total if total is not None else '?'} message(s) moved"


def redrive(
    outputs: StackOutputs,
    *,
    sqs: Any,
    max_per_second: int | None = None,
    wait: bool = True,
    progress: Callable[[str], None] = lambda line: None,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = 5.0,
) -> dict[str, Any]:
    """Move the DLQ's messages back to the ingest queue with StartMessageMoveTask.

    Returns the task as ListMessageMoveTasks last described it (or, without
    ``wait``, as started). A FAILED task is a ServiceError with SQS's reason.
    """
    source = _queue_arn(sqs, outputs.dead_letter_queue_url)
    destination = _queue_arn(sqs, outputs.queue_url)
    running = _task(sqs, source)
    if running is not None and running.get("Status") == "RUNNING":
        raise ParameterError(
            f"a redrive of this DLQ is already running ({progress_line(running)}); "
            "wait for it or cancel it with `autolabel dlq redrive --cancel`"
        )
    request: dict[str, Any] = {"SourceArn": source, "DestinationArn": destination}
    if max_per_second is not None:
        request["MaxNumberOfMessagesPerSecond"] = max_per_second
    handle = str(sqs.start_message_move_task(**request)["TaskHandle"])
    task: dict[str, Any] = {"TaskHandle": handle, "Status": "RUNNING", "SourceArn": source}
    while wait:
        described = _task(sqs, source, handle)
        if described is not None:
            task = described
        progress(progress_line(task))
        if task.get("Status") in FINAL_TASK_STATUSES:
            break
        sleep(poll_seconds)
    if task.get("Status") == "FAILED":
        raise ServiceError(f"the redrive failed: {task.get('FailureReason', 'no reason given')}")
    return task


def cancel_redrive(outputs: StackOutputs, *, sqs: Any) -> str:
    source = _queue_arn(sqs, outputs.dead_letter_queue_url)
    task = _task(sqs, source)
    if task is None or task.get("Status") != "RUNNING":
        return "no redrive is running"
    moved = sqs.cancel_message_move_task(TaskHandle=task["TaskHandle"]).get("ApproximateNumberOfMessagesMoved", 0)
    return f"cancelling the redrive; {moved} message(s) were moved"


def redrive_by_copy(outputs: StackOutputs, *, sqs: Any, limit: int | None = None) -> int:
    """Receive/send/delete, for endpoints without message move tasks (e.g. moto); returns how many moved."""
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
            raise ServiceError(f"{len(batch) - len(done)} message(s) could not be sent back; they stay in the DLQ")
    return moved
