"""Test doubles for driving the real labeler pipeline step by step.

- ``FakeClock``: the pipeline's and the store's time, advanced by the test.
- ``ScriptedRekognition``: DetectCustomLabels answering the label list chosen
  for each object version.
- ``RecordingEventBus``: PutEvents that records every entry it accepts.
- ``FaultPlan`` + ``with_faults``: failures injected into chosen calls of a
  client (moto DynamoDB or the bus), targeted by operation, object and
  occurrence so that the same plan fails the same call on every run, whatever
  the pipeline's threads interleave.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from local.fakes.faults import Call, FaultyClient, client_error
from tests.support.builders import load_event

DYNAMODB_ENDPOINT = "https://dynamodb.us-east-1.amazonaws.com"
EVENTS_ENDPOINT = "https://events.us-east-1.amazonaws.com"


class FakeClock:
    """Seconds since the epoch, moved only by ``advance``."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class ScriptedRekognition:
    """DetectCustomLabels returning, for each (bucket, key, version), the labels set with ``script``."""

    def __init__(self) -> None:
        self._answers: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        # Called with (bucket, key, version) before answering; may raise AssertionError.
        self.on_call: Callable[[str, str, str], None] | None = None

    def script(self, bucket: str, key: str, version_id: str, labels: list[dict[str, Any]]) -> None:
        self._answers[(bucket, key, version_id)] = copy.deepcopy(labels)

    def detect_custom_labels(self, **request: Any) -> dict[str, Any]:
        s3_object = request["Image"]["S3Object"]
        target = (s3_object["Bucket"], s3_object["Name"], s3_object.get("Version", ""))
        with self._lock:
            self.calls.append(target)
        if self.on_call is not None:
            self.on_call(*target)
        if target not in self._answers:
            raise client_error("InvalidS3ObjectException", f"no such object version {target}")
        return {"CustomLabels": copy.deepcopy(self._answers[target])}


@dataclass(frozen=True)
class Announcement:
    """One event EventBridge accepted."""

    invocation: int
    detail_type: str
    detail: dict[str, Any]

    @property
    def result_id(self) -> str:
        return str(self.detail["resultId"])


class RecordingEventBus:
    """PutEvents accepting every entry; ``announcements`` is what consumers received."""

    def __init__(self) -> None:
        self.announcements: list[Announcement] = []
        self.invocation = 0
        self._lock = threading.Lock()

    def put_events(self, Entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
        answers = []
        with self._lock:
            for entry in Entries:
                self.announcements.append(
                    Announcement(self.invocation, entry["DetailType"], json.loads(entry["Detail"]))
                )
                answers.append({"EventId": f"event-{len(self.announcements)}"})
        return {"FailedEntryCount": 0, "Entries": answers}


class FaultKind(Enum):
    THROTTLE = "throttle"  # a clean ClientError, nothing applied
    CONNECTION_CLOSED = "connection-closed"  # botocore errors raised before the request is applied
    ENDPOINT_UNREACHABLE = "endpoint-unreachable"
    READ_TIMEOUT = "read-timeout"
    RESPONSE_LOST = "response-lost"  # applied (or delivered), then ReadTimeoutError: outcome unknown to the caller
    PARTIAL = "partial"  # PutEvents only: the object's entries refused in a 200 response


@dataclass(frozen=True)
class Fault:
    """Fail the ``occurrence``-th call of ``operation`` that concerns object ``key_index`` in one invocation."""

    operation: str
    key_index: int
    occurrence: int
    kind: FaultKind

    def __repr__(self) -> str:
        return f"Fault({self.operation}, key#{self.key_index}, call {self.occurrence}, {self.kind.value})"


def _throttle(operation: str) -> Exception:
    if operation == "put_events":
        return client_error("ThrottlingException", "Rate exceeded", operation="PutEvents")
    return client_error("ProvisionedThroughputExceededException", "injected throttle", operation=operation)


def _before(kind: FaultKind, operation: str, endpoint: str) -> Exception:
    if kind is FaultKind.THROTTLE:
        return _throttle(operation)
    if kind is FaultKind.CONNECTION_CLOSED:
        return ConnectionClosedError(endpoint_url=endpoint)
    if kind is FaultKind.ENDPOINT_UNREACHABLE:
        return EndpointConnectionError(endpoint_url=endpoint)
    return ReadTimeoutError(endpoint_url=endpoint)


@dataclass
class FaultPlan:
    """The faults of one invocation, each fired at most once.

    Calls are attributed to the objects they concern (``concerns``); counting
    per (operation, object) keeps the targeted call the same whatever order the
    pipeline's worker threads make their calls in.
    """

    faults: Sequence[Fault]
    concerns: Callable[[str, dict[str, Any]], list[int]]
    fired: list[Fault] = field(default_factory=list)
    lost_responses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pick(self, operation: str, kwargs: dict[str, Any]) -> Fault | None:
        with self._lock:
            chosen: Fault | None = None
            for key_index in self.concerns(operation, kwargs):
                self._counts[(operation, key_index)] += 1
                for fault in self.faults:
                    if (
                        chosen is None
                        and fault not in self.fired
                        and (fault.operation, fault.key_index, fault.occurrence)
                        == (operation, key_index, self._counts[(operation, key_index)])
                    ):
                        chosen = fault
            if chosen is not None:
                self.fired.append(chosen)
            return chosen


class FaultSwitch:
    """Holds the current invocation's plan; the injected client consults it on every call."""

    def __init__(self) -> None:
        self.plan: FaultPlan | None = None


def with_faults(client: Any, operations: Sequence[str], switch: FaultSwitch, endpoint: str) -> FaultyClient:
    """``client`` behind local.fakes.faults.FaultyClient, failing the calls the switch's plan names."""

    def hook(operation: str) -> Callable[[dict[str, Any], Call], Any]:
        def fault(kwargs: dict[str, Any], call: Call) -> Any:
            plan = switch.plan
            chosen = plan.pick(operation, kwargs) if plan is not None else None
            if chosen is None or plan is None:
                return call(**kwargs)
            if chosen.kind is FaultKind.RESPONSE_LOST:
                call(**kwargs)
                plan.lost_responses.append((operation, kwargs))
                raise ReadTimeoutError(endpoint_url=endpoint)
            if chosen.kind is FaultKind.PARTIAL:
                return _refuse_entries(kwargs, call, lambda entry: chosen.key_index in plan.concerns(operation, entry))
            raise _before(chosen.kind, operation, endpoint)

        return fault

    return FaultyClient(client, {operation: hook(operation) for operation in operations})


def _refuse_entries(kwargs: dict[str, Any], call: Call, refuse: Callable[[dict[str, Any]], bool]) -> Any:
    """PutEvents answering 200 with the chosen entries refused, as EventBridge reports partial failure."""
    entries = list(kwargs["Entries"])
    refused = [refuse({"Entries": [entry]}) for entry in entries]
    accepted = [entry for entry, no in zip(entries, refused, strict=True) if not no]
    answers = iter(call(**{**kwargs, "Entries": accepted})["Entries"] if accepted else [])
    outcome = [
        {"ErrorCode": "InternalFailure", "ErrorMessage": "injected partial failure"} if no else next(answers)
        for no in refused
    ]
    return {"FailedEntryCount": sum(refused), "Entries": outcome}


def objects_concerned(bucket: str, keys: Sequence[str]) -> Callable[[str, dict[str, Any]], list[int]]:
    """Which of ``keys`` (by index) a DynamoDB request or a PutEvents request concerns."""
    partitions = [json.dumps(f"{bucket}/{key}") for key in keys]
    key_attributes = [f'"key": {json.dumps({"S": key})}' for key in keys]

    def concerns(operation: str, kwargs: dict[str, Any]) -> list[int]:
        if operation == "put_events":
            details = [json.loads(entry["Detail"]) for entry in kwargs.get("Entries", [])]
            return [
                index
                for index, key in enumerate(keys)
                if any(d.get("bucket") == bucket and d.get("key") == key for d in details)
            ]
        text = json.dumps(kwargs, default=str)
        # An object's own partition, or a label-index entry naming it (in its label's partition).
        return [
            index
            for index, (partition, attribute) in enumerate(zip(partitions, key_attributes, strict=True))
            if partition in text or attribute in text
        ]

    return concerns


def sqs_event(messages: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """An SQS event for the handler: (messageId, body) pairs, in this order."""
    template = load_event("sqs_event.json")["Records"][0]
    return {
        "Records": [{**copy.deepcopy(template), "messageId": message_id, "body": body} for message_id, body in messages]
    }
