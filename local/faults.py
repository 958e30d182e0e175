"""Fault injection and call counting around real (moto) boto3 clients.

``FaultyClient`` forwards every call to the wrapped client, counts it, and lets
a fault decide per call: raise an error, answer instead of the service, or
call through (possibly with changed arguments). Used by the tests, the soak
and the benchmarks; an in-memory fake rather than a mock.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

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


def inject_http_errors(client: Any, should_fail: Callable[[str], bool], code: str, status: int = 400) -> None:
    """Answer some calls of a real boto3 client with an error response at the HTTP layer.

    Unlike FaultyClient, botocore sees a real service error, so the client's
    retry configuration (standard/adaptive) handles it as it would in AWS.
    """

    def answer(request: Any, **kwargs: Any) -> Any:
        operation = kwargs.get("event_name", "").rsplit(".", 1)[-1]
        if not should_fail(operation):
            return None
        return http_response(request.url, status, {"__type": code, "message": "injected fault"})

    client.meta.events.register_first("before-send", answer)
