"""Which transport errors leave a PutEvents outcome unknown: AMBIGUOUS_ERRORS is incomplete.

botocore's URLLib3Session maps errors raised while the request is in flight to:
ReadTimeoutError, ConnectionClosedError (urllib3 ProtocolError), but also
SSLError (an SSL error while reading the answer, e.g. "EOF occurred in
violation of protocol" or a bad record MAC after the request was written) and
the catch-all HTTPClientError (any other exception in send). The latter two can
occur after EventBridge received (and accepted) the request. Both are
transient for botocore's standard retry mode, so:

- the guarded events client (retry_ambiguous=False) still lets the SDK resend
  PutEvents after them: a duplicate nobody counts;
- EventPublisher does not report them as ambiguous: AmbiguousPublishes misses
  the republication the record's retry then makes.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import HTTPClientError, SSLError

from shared.aws_config import DATA_CONFIG
from shared.deadline import InvocationDeadline, guard_client
from shared.event_publisher import EventEntry, EventPublisher


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda _seconds: None)


def after_send(error: Any) -> tuple[Any, list[str]]:
    """A guarded events client whose every request is 'sent' and then fails with ``error``."""
    client = boto3.client("events", config=DATA_CONFIG, region_name="us-east-1")
    sent: list[str] = []

    def answer(request: Any, **_kwargs: Any) -> None:
        sent.append(request.url)
        raise error(request.url)

    client.meta.events.register_first("before-send", answer)
    guard_client(client, InvocationDeadline(), then_seconds=7, retry_ambiguous=False)
    return client, sent


ERRORS = {
    "ssl-error-reading-answer": lambda url: SSLError(endpoint_url=url, error="EOF occurred in violation of protocol"),
    "http-client-error": lambda url: HTTPClientError(error="IncompleteRead(0 bytes read)"),
}


@pytest.mark.parametrize("kind", list(ERRORS))
def test_putevents_is_not_resent_after_an_error_that_may_follow_delivery(kind: str) -> None:
    client, sent = after_send(ERRORS[kind])
    with pytest.raises(Exception):  # noqa: B017 - whatever the client raises
        client.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}])
    assert len(sent) == 1, f"PutEvents sent {len(sent)} times after {kind}: uncounted duplicates"


@pytest.mark.parametrize("kind", list(ERRORS))
def test_publisher_reports_such_an_error_as_ambiguous(kind: str) -> None:
    class Failing:
        def put_events(self, **_kwargs: Any) -> Any:
            raise ERRORS[kind]("https://events.us-east-1.amazonaws.com/")

    outcome = EventPublisher(Failing(), "bus", "autolabel").publish(
        [EventEntry("Custom Labels Detected", {}, "{}", "rid-1")]
    )
    assert "rid-1" in outcome.failures
    assert outcome.ambiguous == {"rid-1"}, f"{kind}: outcome unknown but not counted in AmbiguousPublishes"
