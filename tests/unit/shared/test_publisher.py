"""EventBridge adapter: requests of at most 10 entries / 256 KB; partial failures reported."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from local.fakes.faults import client_error
from shared.event_publisher import EventEntry, EventPublisher


class FakeEvents:
    """In-memory PutEvents that refuses the entries whose detail contains a marker."""

    def __init__(
        self, refuse_marker: str | None = None, raise_on_call: int | None = None, error: Exception | None = None
    ) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        self._refuse = refuse_marker
        self._raise_on = raise_on_call
        self._error = error or client_error("InternalException", status=500, operation="PutEvents")

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.requests.append(Entries)
        if self._raise_on == len(self.requests):
            raise self._error
        answers = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "nope"}
            if self._refuse and self._refuse in entry["Detail"]
            else {"EventId": f"id-{i}"}
            for i, entry in enumerate(Entries)
        ]
        return {"FailedEntryCount": sum("ErrorCode" in a for a in answers), "Entries": answers}


def entry(n: int, size: int = 10) -> EventEntry:
    detail = {"n": n, "pad": "x" * size}
    import json

    return EventEntry("Custom Labels Detected", detail, json.dumps(detail), f"r{n}")


def test_entries_go_in_requests_of_at_most_ten() -> None:
    events = FakeEvents()
    failures = EventPublisher(events, "bus", "autolabel").publish([entry(n) for n in range(23)]).failures
    assert failures == {}
    assert [len(r) for r in events.requests] == [10, 10, 3]
    assert all(e["EventBusName"] == "bus" and e["Source"] == "autolabel" for r in events.requests for e in r)


def test_requests_stay_under_256_kb() -> None:
    events = FakeEvents()
    EventPublisher(events, "bus", "autolabel").publish([entry(n, size=100_000) for n in range(5)])
    assert [len(r) for r in events.requests] == [2, 2, 1]
    assert all(sum(len(e["Detail"]) for e in r) <= 256 * 1024 for r in events.requests)


def test_partial_failure_names_exactly_the_refused_entries() -> None:
    events = FakeEvents(refuse_marker='"n": 3,')
    failures = EventPublisher(events, "bus", "autolabel").publish([entry(n) for n in range(12)]).failures
    assert set(failures) == {"r3"}
    assert "InternalFailure" in failures["r3"]


def test_a_failed_call_fails_only_its_own_request() -> None:
    events = FakeEvents(raise_on_call=2)
    outcome = EventPublisher(events, "bus", "autolabel").publish([entry(n) for n in range(15)])
    assert set(outcome.failures) == {f"r{n}" for n in range(10, 15)}
    assert outcome.ambiguous == set()  # a 500 answer: the service said it did not take them


URL = "https://events.us-east-1.amazonaws.com/"


@pytest.mark.parametrize(
    ("error", "ambiguous"),
    [
        (ReadTimeoutError(endpoint_url=URL), True),  # sent; the answer never came
        (ConnectionClosedError(endpoint_url=URL), True),
        (EndpointConnectionError(endpoint_url=URL), False),  # never sent
    ],
)
def test_a_call_whose_outcome_is_unknown_is_failed_and_reported_ambiguous(error: Exception, ambiguous: bool) -> None:
    events = FakeEvents(raise_on_call=1, error=error)
    outcome = EventPublisher(events, "bus", "autolabel").publish([entry(n) for n in range(12)])
    assert set(outcome.failures) == {f"r{n}" for n in range(10)}
    assert outcome.ambiguous == ({f"r{n}" for n in range(10)} if ambiguous else set())
