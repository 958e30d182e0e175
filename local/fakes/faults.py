"""The one fault injector of the tests, the soak, the benchmarks and the local run.

``FaultyClient`` forwards every call to the wrapped client, counts it, and lets
a fault decide per call: raise an error, answer instead of the service, or
call through (possibly with changed arguments); an in-memory fake rather than
a mock. On top of it: faults by count (``fail_times``), partial PutEvents
failures, lost answers, and planned faults (``FaultPlan``: the n-th call about
one object, the same on every run). Below it, at the HTTP layer where
botocore's retries see them as in AWS: throttling and connection drops
(``inject_transport_faults``), and process kills (``install_kill_points``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
    SSLError,
)

Call = Callable[..., Any]
Fault = Callable[[dict[str, Any], Call], Any]


class _RawBody:
    """The streamed body botocore reads from an HTTP response."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self._body

    def read(self, *_args: Any) -> bytes:
        return self._body


def http_response(url: str, status: int, body: dict[str, Any]) -> AWSResponse:
    """A JSON-protocol HTTP response for a ``before-send`` hook to answer a request with."""
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "emulated"}
    return AWSResponse(url, status, headers, _RawBody(json.dumps(body).encode()))


def client_error(code: str, message: str = "injected fault", status: int = 400, operation: str = "Op") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


class FaultyClient:
    def __init__(self, client: Any, faults: dict[str, Fault] | None = None) -> None:
        self._client = client
        self.faults: dict[str, Fault] = dict(faults or {})
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if not callable(real) or name.startswith("_") or name in ("get_paginator", "can_paginate", "get_waiter"):
            return real

        def call(**kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] += 1
            fault = self.faults.get(name)
            if fault is None:
                return real(**kwargs)
            return fault(kwargs, real)

        return call

    def unused_faults(self) -> list[str]:
        """Operations given a fault that were never called: a test whose fault can no longer fire."""
        return sorted(name for name in self.faults if self.calls[name] == 0)


def fail_times(times: int, error: Callable[[], Exception]) -> Fault:
    """Raise ``error()`` on the first ``times`` calls, then call through."""
    remaining = [times]
    lock = threading.Lock()

    def fault(kwargs: dict[str, Any], call: Call) -> Any:
        with lock:
            if remaining[0] > 0:
                remaining[0] -= 1
                raise error()
        return call(**kwargs)

    return fault


def put_events_rejecting(predicate: Callable[[dict[str, Any]], bool], error_code: str = "InternalFailure") -> Fault:
    """PutEvents that refuses the entries matching ``predicate`` in a 200 response, like EventBridge does."""

    def fault(kwargs: dict[str, Any], call: Call) -> Any:
        entries = kwargs["Entries"]
        refused = [predicate(entry) for entry in entries]  # once each: predicates may keep state
        accepted = [entry for entry, no in zip(entries, refused, strict=True) if not no]
        real = call(**{**kwargs, "Entries": accepted}) if accepted else {"Entries": []}
        answers = iter(real.get("Entries", []))
        outcome = [
            {"ErrorCode": error_code, "ErrorMessage": "injected partial failure"} if no else next(answers)
            for no in refused
        ]
        return {"FailedEntryCount": sum(1 for o in outcome if "ErrorCode" in o), "Entries": outcome}

    return fault


def lost_after_applied(error: Callable[[], Exception]) -> Fault:
    """The ambiguous kind: the request reaches the service and is applied, then its answer is lost."""

    def fault(kwargs: dict[str, Any], call: Call) -> Any:
        call(**kwargs)
        raise error()

    return fault


# -- planned faults: the same call fails on every run, whatever the threads interleave --------------


class FaultKind(Enum):
    THROTTLE = "throttle"  # a clean ClientError, nothing applied
    CONNECTION_CLOSED = "connection-closed"  # botocore errors raised before the request is applied
    ENDPOINT_UNREACHABLE = "endpoint-unreachable"
    READ_TIMEOUT = "read-timeout"
    RESPONSE_LOST = "response-lost"  # applied (or delivered), then ReadTimeoutError: outcome unknown to the caller
    PARTIAL = "partial"  # PutEvents only: the object's entries refused in a 200 response


# The kinds raised before the request is applied, as the transport drop each one is.
_DROPPED_BEFORE = {
    FaultKind.CONNECTION_CLOSED: "connection-closed",
    FaultKind.ENDPOINT_UNREACHABLE: "connect-error",
    FaultKind.READ_TIMEOUT: "read-timeout",
}


@dataclass(frozen=True)
class PlannedFault:
    """Fail the ``occurrence``-th call of ``operation`` that concerns object ``key_index`` in one invocation."""

    operation: str
    key_index: int
    occurrence: int
    kind: FaultKind

    def __repr__(self) -> str:
        return f"Fault({self.operation}, key#{self.key_index}, call {self.occurrence}, {self.kind.value})"

    def error(self, endpoint: str) -> Exception:
        """What the caller gets for a fault raised before the request is applied."""
        if self.kind is FaultKind.THROTTLE:
            if self.operation == "put_events":
                return client_error("ThrottlingException", "Rate exceeded", operation="PutEvents")
            return client_error("ProvisionedThroughputExceededException", "injected throttle", operation=self.operation)
        return transport_error(_DROPPED_BEFORE[self.kind], endpoint)


Concerns = Callable[[str, dict[str, Any]], list[int]]  # (operation, request) -> indexes of the objects it concerns


@dataclass
class FaultPlan:
    """The faults of one invocation, each fired at most once.

    Calls are attributed to the objects they concern (``concerns``); counting
    per (operation, object) keeps the targeted call the same whatever order the
    pipeline's worker threads make their calls in.
    """

    faults: Sequence[PlannedFault]
    concerns: Concerns
    fired: list[PlannedFault] = field(default_factory=list)
    lost_responses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pick(self, operation: str, kwargs: dict[str, Any]) -> PlannedFault | None:
        with self._lock:
            chosen: PlannedFault | None = None
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
    """``client`` behind a FaultyClient failing the calls the switch's current plan names."""

    def hook(operation: str) -> Fault:
        def fault(kwargs: dict[str, Any], call: Call) -> Any:
            plan = switch.plan
            chosen = plan.pick(operation, kwargs) if plan is not None else None
            if chosen is None or plan is None:
                return call(**kwargs)
            if chosen.kind is FaultKind.RESPONSE_LOST:
                call(**kwargs)
                plan.lost_responses.append((operation, kwargs))
                raise transport_error("read-timeout", endpoint)
            if chosen.kind is FaultKind.PARTIAL:
                key_index, concerns = chosen.key_index, plan.concerns
                return put_events_rejecting(lambda entry: key_index in concerns(operation, {"Entries": [entry]}))(
                    kwargs, call
                )
            raise chosen.error(endpoint)

        return fault

    return FaultyClient(client, {operation: hook(operation) for operation in operations})


DYNAMODB_ENDPOINT = "https://dynamodb.us-east-1.amazonaws.com"
EVENTS_ENDPOINT = "https://events.us-east-1.amazonaws.com"


def objects_concerned(bucket: str, keys: Sequence[str]) -> Concerns:
    """Which of ``keys`` (by index) a DynamoDB request or a PutEvents request concerns: a FaultPlan's ``concerns``."""
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


# -- process-level faults: a journal that survives os._exit, transport faults, kill points -----------


class Journal:
    """Append-only JSON lines shared by processes: what was injected, read back by the soak's accounting.

    Each record is one ``os.write`` on an O_APPEND descriptor, so lines from
    several processes never interleave and a record written just before
    ``os._exit`` is not lost in a buffer.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, kind: str, **fields: Any) -> None:
        line = (json.dumps({"kind": kind, **fields}, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, encoding="utf-8") as lines:
                return [json.loads(line) for line in lines if line.strip()]
        except FileNotFoundError:
            return []


# Connection faults at the HTTP layer. Clean: the request never reached the
# service. Ambiguous: the service applied it and the response was lost.
CLEAN_DROPS = ("connect-error", "connect-timeout")
AMBIGUOUS_DROPS = ("read-timeout", "connection-closed", "ssl-error", "http-client-error")
DROP_KINDS = CLEAN_DROPS + AMBIGUOUS_DROPS


def transport_error(kind: str, url: str) -> BotoCoreError:
    """The error botocore's URLLib3Session raises for each kind (an SSL error or any other
    HTTP client error while reading the answer may come after the request was applied)."""
    if kind == "ssl-error":
        return SSLError(endpoint_url=url, error="EOF occurred in violation of protocol")
    if kind == "http-client-error":
        return HTTPClientError(error="IncompleteRead(0 bytes read)")
    errors: dict[str, type[BotoCoreError]] = {
        "connect-error": EndpointConnectionError,
        "connect-timeout": ConnectTimeoutError,
        "read-timeout": ReadTimeoutError,
        "connection-closed": ConnectionClosedError,
    }
    return errors[kind](endpoint_url=url)


def timeout_wait(kind: str, config: Any, time_scale: float) -> float:
    """How long a timeout takes to happen: the client's own (scaled) connect or read timeout."""
    if kind == "connect-timeout":
        return float(config.connect_timeout or 0) * time_scale
    if kind == "read-timeout":
        return float(config.read_timeout or 0) * time_scale
    return 0.0


def dropped(kind: str, url: str, config: Any, time_scale: float = 1.0) -> BotoCoreError:
    """A connection fault as a caller sees it: after the client's (scaled) timeout for the
    timeout kinds, at once for the others, the error its HTTP session raises."""
    time.sleep(timeout_wait(kind, config, time_scale))
    return transport_error(kind, url)


# operation name -> None (call through), "throttle", or one of DROP_KINDS
TransportDecision = Callable[[str], str | None]
TransportObserver = Callable[[str, str, Any], None]  # (operation, kind, prepared request)


def inject_transport_faults(
    client: Any,
    decide: TransportDecision,
    *,
    throttle_code: str = "ThrottlingException",
    time_scale: float = 1.0,
    observe: TransportObserver | None = None,
) -> None:
    """Faults on a real boto3 client at the HTTP layer, seen by botocore's retry handler as in AWS.

    "throttle" answers with a throttling error response; a clean drop raises
    EndpointConnectionError / ConnectTimeoutError before anything is sent; an
    ambiguous one sends the request for real (the service applies it), then
    raises ReadTimeoutError / ConnectionClosedError. Timeouts take the client's
    configured timeout times ``time_scale`` to happen. ``observe`` is told of
    each fault before it takes effect.
    """
    from botocore.httpsession import URLLib3Session

    sessions = threading.local()

    def before_send(request: Any, **kwargs: Any) -> Any:
        operation = kwargs.get("event_name", "").rsplit(".", 1)[-1]
        kind = decide(operation)
        if kind is None:
            return None
        if observe is not None:
            observe(operation, kind, request)
        if kind == "throttle":
            return http_response(request.url, 400, {"__type": throttle_code, "message": "injected fault"})
        if kind in AMBIGUOUS_DROPS:
            if not hasattr(sessions, "session"):
                sessions.session = URLLib3Session()
            sessions.session.send(request)  # applied by the service; its answer is dropped
        raise dropped(kind, request.url, client.meta.config, time_scale)

    client.meta.events.register_first("before-send", before_send)


def put_events_result_ids(entries: list[dict[str, Any]]) -> list[str]:
    """The resultIds announced by PutEvents entries (from each entry's Detail JSON)."""
    ids = []
    for entry in entries:
        try:
            ids.append(str(json.loads(entry.get("Detail", "{}"))["resultId"]))
        except (ValueError, KeyError, TypeError):
            continue
    return ids


# Where a worker process may die (os._exit, no clean-up), as a Lambda execution
# environment can at any instruction.
KILL_POINTS = ("after-detect", "after-store", "after-put-events", "before-mark-published")
KillDecision = Callable[[str], bool]
KillObserver = Callable[[str, list[str]], None]  # (point, resultIds announced but not marked published)
KILLED_EXIT_CODE = 137


def _written_items(params: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        request["PutRequest"]["Item"]
        for requests in params.get("RequestItems", {}).values()
        for request in requests
        if "PutRequest" in request
    ]


def _write_kind(operation: str, params: dict[str, Any]) -> str:
    """'store' (a result item), 'mark' (publication items: events recorded as published) or ''."""
    if operation == "PutItem":
        return "store" if params.get("Item", {}).get("itemType") == {"S": "RESULT"} else ""
    if operation == "BatchWriteItem":
        items = _written_items(params)
        if items and all(item.get("itemType") == {"S": "PUBLISHED"} for item in items):
            return "mark"
    return ""


def _marked_result_ids(operation: str, params: dict[str, Any]) -> list[str]:
    return [item["announcedId"]["S"] for item in _written_items(params) if "announcedId" in item]


def install_kill_points(
    rekognition: Any, dynamodb: Any, events: Any, should_kill: KillDecision, observe: KillObserver
) -> None:
    """Kill this process (``os._exit(137)``) at the KILL_POINTS, through botocore event hooks on the clients.

    No production hook is needed: 'after-call' fires once a call succeeded
    (DetectCustomLabels answered, the result item's PutItem applied, before
    its label-index entries; PutEvents accepted), 'before-call' just before the mark-published write
    is sent. ``observe(point, resultIds)`` is called first (e.g. to journal
    it); for the last two points the ids are those whose events were accepted
    and are not yet marked published.
    """

    def die(point: str, result_ids: list[str]) -> None:
        observe(point, result_ids)
        os._exit(KILLED_EXIT_CODE)

    def after_detect(http_response: Any, **_kwargs: Any) -> None:
        if http_response is not None and http_response.status_code == 200 and should_kill("after-detect"):
            die("after-detect", [])

    def classify(params: dict[str, Any], model: Any, context: dict[str, Any], **_kwargs: Any) -> None:
        context["soak_write"] = _write_kind(model.name, params)
        if context["soak_write"] == "mark":
            context["soak_marked"] = _marked_result_ids(model.name, params)

    def before_write(context: dict[str, Any], **_kwargs: Any) -> None:
        if context.get("soak_write") == "mark" and should_kill("before-mark-published"):
            die("before-mark-published", list(context.get("soak_marked", [])))

    def after_write(http_response: Any, context: dict[str, Any], **_kwargs: Any) -> None:
        ok = http_response is not None and http_response.status_code == 200
        if ok and context.get("soak_write") == "store" and should_kill("after-store"):
            die("after-store", [])

    def remember_entries(params: dict[str, Any], context: dict[str, Any], **_kwargs: Any) -> None:
        context["soak_result_ids"] = put_events_result_ids(params.get("Entries", []))

    def after_put_events(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_kwargs: Any) -> None:
        if http_response is None or http_response.status_code != 200:
            return
        ids = context.get("soak_result_ids", [])
        accepted = [rid for rid, out in zip(ids, parsed.get("Entries", []), strict=False) if out.get("EventId")]
        if accepted and should_kill("after-put-events"):
            die("after-put-events", accepted)

    rekognition_id = rekognition.meta.service_model.service_id.hyphenize()
    rekognition.meta.events.register(f"after-call.{rekognition_id}.DetectCustomLabels", after_detect)
    dynamodb_id = dynamodb.meta.service_model.service_id.hyphenize()
    for operation in ("PutItem", "BatchWriteItem"):
        dynamodb.meta.events.register(f"before-parameter-build.{dynamodb_id}.{operation}", classify)
        dynamodb.meta.events.register(f"before-call.{dynamodb_id}.{operation}", before_write)
        dynamodb.meta.events.register(f"after-call.{dynamodb_id}.{operation}", after_write)
    events_id = events.meta.service_model.service_id.hyphenize()
    events.meta.events.register(f"before-parameter-build.{events_id}.PutEvents", remember_entries)
    events.meta.events.register(f"after-call.{events_id}.PutEvents", after_put_events)
