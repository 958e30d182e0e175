"""A small interpreter of the backfill job's state machine: the subset of Amazon States Language it uses.

Emulated (docs/backfill.md#what-the-emulator-covers): Task (a Lambda function
by ARN, called with the state's input, its answer the result; and
``aws-sdk:sqs:getQueueAttributes`` on a real SQS client), Retry (ErrorEquals,
IntervalSeconds, MaxAttempts, BackoffRate; ``States.ALL``), Wait (Seconds),
Choice (``And``, ``StringEquals``, Default), ResultPath, ResultSelector,
Parameters with ``.$`` paths, and the Distributed Map: ItemReader
``s3:listObjectsV2`` (the items AWS documents: Etag, Key, LastModified,
Size, StorageClass), ItemBatcher (MaxItemsPerBatch, BatchInput),
ToleratedFailurePercentage, ResultWriter (manifest.json, SUCCEEDED_0.json,
FAILED_0.json). Paths are ``$`` and ``$.a.b`` only.

Not emulated: MaxConcurrency (children run one after another), Catch,
timeouts, heartbeats, intrinsic functions, the execution history. Time is
virtual: a Wait or a retry interval calls ``wait(seconds)`` (the emulator
lets the labeler work meanwhile) instead of sleeping.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

LambdaFunction = Callable[[Any], Any]


class StatesError(Exception):
    """An error as Step Functions names it (``States.TaskFailed``, a Lambda's errorType...)."""

    def __init__(self, name: str, cause: str = "") -> None:
        super().__init__(f"{name}: {cause}")
        self.name = name
        self.cause = cause


class ExecutionAborted(Exception):
    """StopExecution: the execution and its children stop where they are."""


def error_name(error: BaseException) -> str:
    """A Lambda's error as Step Functions reports it: its errorType, the exception's class name."""
    if isinstance(error, StatesError):
        return error.name
    return str(getattr(error, "error_name", type(error).__name__))


def read_path(document: Any, path: str) -> Any:
    if path == "$":
        return document
    if not path.startswith("$."):
        raise ValueError(f"unsupported path {path!r}")
    value = document
    for part in path[2:].split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise StatesError("States.Runtime", f"the path {path} found nothing")
        value = value[part]
    return value


def write_path(document: Any, path: str | None, result: Any) -> Any:
    if path is None or path == "$":
        return result
    out = copy.deepcopy(document) if isinstance(document, dict) else {}
    target = out
    parts = path[2:].split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = result
    return out


def resolve(template: Any, document: Any) -> Any:
    """Parameters, BatchInput, ResultSelector: keys ending in ``.$`` take the value at their path."""
    if isinstance(template, dict):
        resolved = {}
        for key, value in template.items():
            if key.endswith(".$"):
                resolved[key[:-2]] = copy.deepcopy(read_path(document, str(value)))
            else:
                resolved[key] = resolve(value, document)
        return resolved
    if isinstance(template, list):
        return [resolve(value, document) for value in template]
    return template


@dataclass
class ChildRecord:
    name: str
    input: Any
    status: str
    output: Any = None
    error: str = ""
    cause: str = ""

    def result_entry(self, map_run: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "ExecutionArn": f"{map_run}:{self.name}",
            "Name": self.name,
            "Input": json.dumps(self.input),
            "Status": self.status,
        }
        if self.status == "SUCCEEDED":
            entry["Output"] = json.dumps(self.output)
        else:
            entry.update({"Error": self.error, "Cause": self.cause})
        return entry


@dataclass
class MapRunCounts:
    """What DescribeMapRun's itemCounts would show, per Map state."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0


@dataclass
class Services:
    """What the definition's resources are bound to."""

    lambdas: dict[str, LambdaFunction]
    s3: Any
    sqs: Any
    wait: Callable[[float], None] = lambda seconds: None
    stop_requested: Callable[[], bool] = lambda: False
    # Tests and the demo: a hook over each ItemReader page (e.g. a duplicate item).
    reader_items: Callable[[str, list[dict[str, Any]]], list[dict[str, Any]]] = lambda state, items: items


@dataclass
class Interpreter:
    definition: dict[str, Any]
    services: Services
    map_runs: dict[str, MapRunCounts] = field(default_factory=dict)
    transitions: int = 0  # state transitions, each retry included: what Step Functions bills

    def run(self, execution_input: Any) -> Any:
        return self._run_states(self.definition, execution_input)

    def _run_states(self, machine: Mapping[str, Any], document: Any) -> Any:
        name = machine["StartAt"]
        while True:
            if self.services.stop_requested():
                raise ExecutionAborted(name)
            state = machine["States"][name]
            self.transitions += 1
            document, following = self._run_state(name, state, document)
            if following is None:
                return document
            name = following

    def _run_state(self, name: str, state: Mapping[str, Any], document: Any) -> tuple[Any, str | None]:
        kind = state["Type"]
        if kind == "Choice":
            return document, self._choose(state, document)
        if kind == "Wait":
            self.services.wait(float(state["Seconds"]))
        elif kind == "Task":
            document = self._with_retries(state, lambda: self._task(state, document), document)
        elif kind == "Map":
            document = self._map(name, state, document)
        elif kind == "Pass":
            document = write_path(
                document, state.get("ResultPath", "$"), resolve(state.get("Result", document), document)
            )
        elif kind == "Succeed":
            return document, None
        elif kind == "Fail":
            raise StatesError(str(state.get("Error", "States.Fail")), str(state.get("Cause", "")))
        else:
            raise ValueError(f"state type {kind} is not emulated")
        return document, None if state.get("End") else str(state["Next"])

    def _with_retries(self, state: Mapping[str, Any], attempt: Callable[[], Any], document: Any) -> Any:
        tries: dict[int, int] = {}
        while True:
            try:
                result = attempt()
                break
            except ExecutionAborted:
                raise
            except Exception as error:
                name = error_name(error)
                for index, retrier in enumerate(state.get("Retry", [])):
                    if name in retrier["ErrorEquals"] or "States.ALL" in retrier["ErrorEquals"]:
                        used = tries.get(index, 0)
                        if used >= int(retrier.get("MaxAttempts", 3)):
                            raise StatesError(name, str(error)) from error
                        tries[index] = used + 1
                        self.transitions += 1  # a retry is billed as a transition
                        interval = float(retrier.get("IntervalSeconds", 1))
                        self.services.wait(interval * float(retrier.get("BackoffRate", 2.0)) ** used)
                        if self.services.stop_requested():
                            raise ExecutionAborted(str(state.get("Resource", ""))) from error
                        break
                else:
                    raise StatesError(name, str(error)) from error
        if "ResultSelector" in state:
            result = resolve(state["ResultSelector"], result)
        return write_path(document, state.get("ResultPath", "$"), result)

    def _task(self, state: Mapping[str, Any], document: Any) -> Any:
        resource = str(state["Resource"])
        payload = resolve(state["Parameters"], document) if "Parameters" in state else document
        if resource.endswith(":states:::aws-sdk:sqs:getQueueAttributes"):
            response = dict(self.services.sqs.get_queue_attributes(**payload))
            response.pop("ResponseMetadata", None)
            return response
        function = self.services.lambdas.get(resource)
        if function is None:
            raise ValueError(f"no emulated function for {resource}")
        return function(copy.deepcopy(payload))

    def _choose(self, state: Mapping[str, Any], document: Any) -> str:
        for rule in state["Choices"]:
            if self._holds(rule, document):
                return str(rule["Next"])
        if "Default" not in state:
            raise StatesError("States.NoChoiceMatched")
        return str(state["Default"])

    def _holds(self, rule: Mapping[str, Any], document: Any) -> bool:
        if "And" in rule:
            return all(self._holds(part, document) for part in rule["And"])
        if "StringEquals" in rule:
            try:
                return read_path(document, rule["Variable"]) == rule["StringEquals"]
            except StatesError:
                return False
        raise ValueError(f"choice rule not emulated: {sorted(rule)}")

    # -- Distributed Map ----------------------------------------------------------

    def _map(self, name: str, state: Mapping[str, Any], document: Any) -> Any:
        items = self.services.reader_items(name, self._read_items(state["ItemReader"], document))
        batcher = state.get("ItemBatcher", {})
        size = int(batcher.get("MaxItemsPerBatch", 1))
        batch_input = resolve(batcher.get("BatchInput", {}), document)
        map_run = f"arn:aws:states:emulated:000000000000:mapRun:backfill/{name}:{uuid.uuid4()}"
        counts = self.map_runs.setdefault(name, MapRunCounts())
        counts.total += len(items)
        children = []
        for start in range(0, len(items), size):
            batch = items[start : start + size]
            child_input = {"BatchInput": batch_input, "Items": batch} if batcher else batch[0]
            child = ChildRecord(f"{start // size:08d}", child_input, "SUCCEEDED")
            try:
                child.output = self._run_states(state["ItemProcessor"], copy.deepcopy(child_input))
                counts.succeeded += len(batch)
            except ExecutionAborted:
                raise
            except StatesError as error:
                child.status, child.error, child.cause = "FAILED", error.name, error.cause
                counts.failed += len(batch)
            children.append(child)
        failed = sum(1 for child in children if child.status == "FAILED")
        tolerated = float(state.get("ToleratedFailurePercentage", 0))
        if children and 100.0 * failed / len(children) > tolerated:
            raise StatesError("States.ExceedToleratedFailureThreshold", f"{failed} of {len(children)} batches failed")
        if "ResultWriter" in state:
            result: Any = self._write_results(state["ResultWriter"], document, map_run, children)
        else:
            result = [child.output for child in children]
        return write_path(document, state.get("ResultPath", "$"), result)

    def _read_items(self, reader: Mapping[str, Any], document: Any) -> list[dict[str, Any]]:
        if not str(reader["Resource"]).endswith(":states:::s3:listObjectsV2"):
            raise ValueError(f"ItemReader {reader['Resource']} is not emulated")
        request = resolve(reader["Parameters"], document)
        items: list[dict[str, Any]] = []
        while True:
            page = self.services.s3.list_objects_v2(**request)
            items += [
                {
                    "Etag": o["ETag"],
                    "Key": o["Key"],
                    "LastModified": int(o["LastModified"].timestamp()),
                    "Size": o["Size"],
                    "StorageClass": o.get("StorageClass", "STANDARD"),
                }
                for o in page.get("Contents", [])
            ]
            if not page.get("IsTruncated"):
                return items
            request["ContinuationToken"] = page["NextContinuationToken"]

    def _write_results(
        self, writer: Mapping[str, Any], document: Any, map_run: str, children: list[ChildRecord]
    ) -> dict[str, Any]:
        target = resolve(writer["Parameters"], document)
        bucket, prefix = target["Bucket"], str(target.get("Prefix", "")).rstrip("/")
        folder = f"{prefix}/{map_run.rsplit(':', 1)[-1]}"
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        for status in ("SUCCEEDED", "FAILED"):
            entries = [child.result_entry(map_run) for child in children if child.status == status]
            if entries:
                key = f"{folder}/{status}_0.json"
                body = json.dumps(entries).encode()
                self.services.s3.put_object(Bucket=bucket, Key=key, Body=body)
                files[status].append({"Key": key, "Size": len(body)})
        manifest = {"DestinationBucket": bucket, "MapRunArn": map_run, "ResultFiles": files}
        self.services.s3.put_object(Bucket=bucket, Key=f"{folder}/manifest.json", Body=json.dumps(manifest).encode())
        return {"MapRunArn": map_run, "ResultWriterDetails": {"Bucket": bucket, "Key": f"{folder}/manifest.json"}}


# -- the ASL rules the definition must follow (the parts this interpreter runs) -----------------------

# The fields every state that moves on has, and those of the states that produce a result (Task, Map).
_FLOW_FIELDS = {"Type", "Next", "End", "Comment", "InputPath", "OutputPath"}
_RESULT_FIELDS = _FLOW_FIELDS | {"ResultPath", "ResultSelector", "Retry", "Catch"}
STATE_FIELDS = {
    "Task": _RESULT_FIELDS | {"Resource", "Parameters", "TimeoutSeconds", "HeartbeatSeconds"},
    "Wait": _FLOW_FIELDS | {"Seconds"},
    "Choice": {"Type", "Choices", "Default", "Comment", "InputPath", "OutputPath"},
    "Map": _RESULT_FIELDS
    | {
        "ItemProcessor",
        "ItemReader",
        "ItemBatcher",
        "ItemSelector",
        "MaxConcurrency",
        "ToleratedFailurePercentage",
        "ToleratedFailureCount",
        "ResultWriter",
        "Label",
    },
    "Pass": _FLOW_FIELDS | {"Result", "ResultPath", "Parameters"},
    "Succeed": {"Type", "Comment", "InputPath", "OutputPath"},
    "Fail": {"Type", "Error", "Cause", "Comment"},
}
MAX_RETRY_ATTEMPTS = 99_999_999


def asl_problems(machine: Mapping[str, Any], where: str = "") -> list[str]:
    """Breaches of the Amazon States Language rules (spec: states-language.net) in the subset used here."""
    problems: list[str] = []
    states = machine.get("States", {})
    if machine.get("StartAt") not in states:
        problems.append(f"{where}StartAt {machine.get('StartAt')!r} is not a state")
    for name, state in states.items():
        at = f"{where}{name}: "
        kind = state.get("Type")
        if kind not in STATE_FIELDS:
            problems.append(f"{at}unknown Type {kind!r}")
            continue
        problems += [f"{at}field {f!r} is not allowed in a {kind}" for f in set(state) - STATE_FIELDS[kind]]
        terminal = kind in ("Choice", "Succeed", "Fail")
        if not terminal and ("Next" in state) == bool(state.get("End")):
            problems.append(f"{at}needs exactly one of Next and End")
        targets = [state.get("Next"), state.get("Default"), *(c.get("Next") for c in state.get("Choices", []))]
        problems += [f"{at}goes to {t!r}, which is not a state" for t in targets if t is not None and t not in states]
        retriers = state.get("Retry", [])
        for index, retrier in enumerate(retriers):
            if "States.ALL" in retrier["ErrorEquals"] and (
                len(retrier["ErrorEquals"]) > 1 or index != len(retriers) - 1
            ):
                problems.append(f"{at}States.ALL must be alone in the last retrier")
            if (
                not 0 <= int(retrier.get("MaxAttempts", 3)) <= MAX_RETRY_ATTEMPTS
                or float(retrier.get("BackoffRate", 2)) < 1
            ):
                problems.append(f"{at}a retrier's MaxAttempts or BackoffRate is out of range")
        if kind == "Map":
            processor = state.get("ItemProcessor", {})
            distributed = processor.get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED"
            if not distributed and any(f in state for f in ("ItemReader", "ItemBatcher", "ResultWriter")):
                problems.append(f"{at}ItemReader, ItemBatcher and ResultWriter need Mode DISTRIBUTED")
            if not 0 <= float(state.get("ToleratedFailurePercentage", 0)) <= 100:
                problems.append(f"{at}ToleratedFailurePercentage is not 0-100")
            problems += asl_problems(processor, f"{at}ItemProcessor.")
    return problems
