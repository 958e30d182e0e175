"""The time the current invocation has left, and the guards that keep every call inside it.

Lambda ends an invocation at its timeout wherever it is; a batch cut off there
is retried whole, relabeled and possibly announced twice. So nothing may start
that cannot finish in time: the pipeline checks a step's budget before it
starts it, and each AWS client refuses a call, or a retry, whose worst case
(connect + read timeout, plus the backoff) would outlast the invocation. The
remaining time comes from the Lambda context at every check.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
    ProxyConnectionError,
    SSLError,
)

from shared.aws_config import attempt_seconds

RemainingMillis = Callable[[], int]

# Kept back for returning the batch response and flushing logs and metrics.
DEFAULT_RESERVE_SECONDS = 1.0


class DeadlineExceededError(BotoCoreError):
    """A call was not started because it could not finish before the invocation ends."""

    fmt = "Not started: {operation} could need {needed:.1f}s and the invocation has {left:.1f}s left"


# Errors known to happen before a request leaves the process or reaches the
# service: nothing was applied. Every other connection-level error (a read
# timeout, a closed connection, an SSL error while reading the answer, any
# HTTP client error) may come after the service applied the request.
_NOT_SENT_ERRORS: tuple[type[Exception], ...] = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ProxyConnectionError,
    ParamValidationError,
    DeadlineExceededError,
)


def outcome_unknown(error: BaseException | None) -> bool:
    """True when ``error`` leaves it unknown whether the service applied the request."""
    if not isinstance(error, BotoCoreError):
        return False  # an error answer (ClientError) or nothing: the service said what happened
    return isinstance(error, SSLError) or not isinstance(error, _NOT_SENT_ERRORS)


class InvocationDeadline:
    """Remaining time of the current invocation, from ``context.get_remaining_time_in_millis``.

    Unbounded until ``start`` is given a source (tests and tools without a context).
    """

    def __init__(self, reserve_seconds: float = DEFAULT_RESERVE_SECONDS) -> None:
        self._reserve = reserve_seconds
        self._remaining_ms: RemainingMillis | None = None
        self._lock = threading.Lock()

    def start(self, remaining_ms: RemainingMillis | None) -> None:
        with self._lock:
            self._remaining_ms = remaining_ms

    def remaining(self) -> float:
        """Seconds left before the reserve; infinite when no context was given."""
        with self._lock:
            source = self._remaining_ms
        if source is None:
            return math.inf
        return source() / 1000 - self._reserve

    def allows(self, seconds: float) -> bool:
        return self.remaining() >= seconds


# botocore's standard retry mode waits up to 20 s between attempts.
_MAX_BACKOFF_SECONDS = 20.0


def guard_client(
    client: Any, deadline: InvocationDeadline, *, then_seconds: float = 0.0, retry_ambiguous: bool = True
) -> None:
    """Make ``client`` respect the invocation's deadline.

    Before each call: refuse to start (DeadlineExceededError, nothing sent)
    unless one attempt plus ``then_seconds`` (what must still follow the call
    in the invocation) fits. Before each SDK retry: veto it unless the backoff,
    one more attempt and ``then_seconds`` fit. With ``retry_ambiguous=False``
    the SDK never resends a request whose outcome is unknown: the caller
    decides (PutEvents, which has no idempotency token).
    """
    one_attempt = attempt_seconds(client.meta.config)
    service = client.meta.service_model.service_id.hyphenize()

    def before_call(model: Any, **_kwargs: Any) -> None:
        needed = one_attempt + then_seconds
        left = deadline.remaining()
        if left < needed:
            raise DeadlineExceededError(operation=model.name, needed=needed, left=left)

    def needs_retry(attempts: int = 1, caught_exception: Exception | None = None, **_kwargs: Any) -> bool | None:
        if not retry_ambiguous and outcome_unknown(caught_exception):
            return False  # False (not None) stops botocore from asking its retry handler
        backoff = min(2.0**attempts, _MAX_BACKOFF_SECONDS)
        if not deadline.allows(backoff + one_attempt + then_seconds):
            return False
        return None  # no objection: botocore's standard retry handler decides

    client.meta.events.register_first(f"before-call.{service}", before_call)
    client.meta.events.register_first(f"needs-retry.{service}", needs_retry)
