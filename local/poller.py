"""A local stand-in for Lambda's SQS event source mapping.

Like the real one: receives up to ``batch_size`` messages, invokes the handler
with an SQS event and a context whose ``get_remaining_time_in_millis()`` counts
down from the function timeout, and deletes the messages not named in
``batchItemFailures``. The others are left alone, as Lambda leaves them: they
reappear when their visibility timeout expires, the queue's own or whatever the
handler set with ChangeMessageVisibility (``retry_delay_seconds`` may shorten
that for quick local runs; the soak leaves it None). The queue's redrive policy
moves a message to the DLQ after maxReceiveCount receives. A handler exception
fails the whole batch, as it does in Lambda.

``ProcessEnvironment`` runs the handler in its own process, one Lambda
execution environment: an invocation past its deadline gets the process
killed (as Lambda does on a timeout) and a process that died is replaced on the
next invocation (a new execution environment, cold start included). Either way
the invocation is aborted and its messages stay untouched until their
visibility timeout expires. In-process handlers cannot be killed; a response
that comes back after the deadline is discarded the same way. It also counts
the CPU time its process spends in invocations (all threads, the init phase
apart): the labeler's CPU, when nothing else runs in that process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]
DEFAULT_FUNCTION_TIMEOUT_SECONDS = 60.0


@dataclass
class FakeLambdaContext:
    function_name: str = "autolabel-labeler-local"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:autolabel-labeler-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_seconds: float = DEFAULT_FUNCTION_TIMEOUT_SECONDS  # real seconds
    deadline: float = 0.0  # time.time() at which Lambda ends the invocation; 0: now + timeout_seconds
    # Function seconds per real second: on a scaled clock (the soak runs the stack's
    # 60 s timeout in 20 real seconds: rate 3) the handler sees the function's own
    # timeout counting down, as fast as the scaled world around it runs.
    clock_rate: float = 1.0

    def __post_init__(self) -> None:
        if not self.deadline:
            self.deadline = time.time() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * self.clock_rate * 1000))


class InvocationAborted(Exception):
    """The execution environment died or was killed at the deadline: no response."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "timeout" or "crash"


class HandlerError(Exception):
    """The handler raised (reported by an out-of-process environment)."""


@dataclass
class PollerStats:
    invocations: int = 0
    messages: int = 0
    deleted: int = 0
    item_failures: int = 0
    handler_errors: int = 0
    timeouts: int = 0
    crashes: int = 0
    busy_seconds: float = 0.0  # time spent in invocations (cold starts included)
    slowest_seconds: float = 0.0


class EventSourceMappingPoller:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        retry_delay_seconds: int | None = 0,
        function_timeout_seconds: float = DEFAULT_FUNCTION_TIMEOUT_SECONDS,
        clock_rate: float = 1.0,
        region: str = "us-east-1",
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._handler = handler
        self._batch_size = batch_size
        self._retry_delay = retry_delay_seconds
        self._timeout = function_timeout_seconds
        self._clock_rate = clock_rate
        self._region = region
        self.stats = PollerStats()

    def _event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m.get("MD5OfBody", ""),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self._queue_arn,
                    "awsRegion": self._region,
                }
                for m in messages
            ]
        }

    def poll_once(self) -> int:
        """One receive + invoke; returns how many messages it handled."""
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=self._batch_size, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return 0
        self.stats.invocations += 1
        self.stats.messages += len(messages)
        context = FakeLambdaContext(timeout_seconds=self._timeout, clock_rate=self._clock_rate)
        started = time.monotonic()
        try:
            response = self._handler(self._event(messages), context) or {}
            if time.time() > context.deadline:  # in-process: Lambda would have ended it; nothing came back
                raise InvocationAborted("timeout")
            failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        except InvocationAborted as aborted:
            if aborted.reason == "timeout":
                self.stats.timeouts += 1
            else:
                self.stats.crashes += 1
            return len(messages)  # untouched: they reappear after their visibility timeout
        except Exception:
            self.stats.handler_errors += 1
            failed = {m["MessageId"] for m in messages}
        finally:
            took = time.monotonic() - started
            self.stats.busy_seconds += took
            self.stats.slowest_seconds = max(self.stats.slowest_seconds, took)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
            self.stats.deleted += len(done)
        retry = [m for m in messages if m["MessageId"] in failed]
        self.stats.item_failures += len(retry)
        if retry and self._retry_delay is not None:
            self._sqs.change_message_visibility_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self._retry_delay}
                    for i, m in enumerate(retry)
                ],
            )
        return len(messages)

    def in_flight(self) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def run_until_idle(
        self,
        *,
        max_seconds: float = 120.0,
        pause_seconds: float = 0.05,
        more_coming: Callable[[], bool] | None = None,
    ) -> None:
        """Poll until no message is left, visible or waiting for a retry (and ``more_coming()``, if
        given, says no more will be sent: messages that arrive over time).

        Idle means two empty looks in a row: moto counts the visible and the
        invisible messages of one GetQueueAttributes at two instants, so a
        retried message that becomes visible between them is counted by
        neither, and one look could stop while it is about to reappear.
        """
        deadline = time.monotonic() + max_seconds
        empty_looks = 0
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"queue not drained within {max_seconds}s")
            if self.poll_once():
                empty_looks = 0
                continue
            waiting = more_coming is not None and more_coming()
            empty_looks = empty_looks + 1 if not waiting and self.in_flight() == 0 else 0
            if empty_looks == 2:
                return
            time.sleep(pause_seconds)


# -- out-of-process execution environments ---------------------------------------------------------

EnvironmentInit = Callable[..., Handler]
INIT_TIMEOUT_SECONDS = 120.0  # the init phase has its own limit in Lambda; here a generous one


def _serve(connection: Connection, init: EnvironmentInit, args: tuple[Any, ...]) -> None:
    """The execution environment's main loop (in the child process)."""
    handler = init(*args)
    connection.send(("ready", None))
    while True:
        try:
            event, deadline, timeout, clock_rate = connection.recv()
        except EOFError:
            return
        context = FakeLambdaContext(timeout_seconds=timeout, deadline=deadline, clock_rate=clock_rate)
        cpu = time.process_time()  # every thread of this process: the handler's pool included
        try:
            answer = handler(event, context)
            connection.send(("ok", answer, time.process_time() - cpu))
        except Exception as error:
            connection.send(("error", f"{type(error).__name__}: {error}", time.process_time() - cpu))


class ProcessEnvironment:
    """A handler in its own process: ``init(*args)`` (at module level, picklable) returns it there.

    Callable like a handler. Started on first use (the init phase is not
    counted against the function timeout, as in Lambda); killed when an
    invocation passes its deadline; replaced after it died.
    """

    def __init__(
        self, init: EnvironmentInit, args: tuple[Any, ...], *, start_method: str = "spawn", preload: Any = ()
    ) -> None:
        self._init = init
        self._args = args
        self._mp: Any = multiprocessing.get_context(start_method)
        if start_method == "forkserver" and preload:
            # New environments fork from a server that imported these once: a cold start
            # costs what it does in Lambda (the init phase), not a fresh interpreter's imports.
            self._mp.set_forkserver_preload(list(preload))
        self._process: Any = None
        self._connection: Connection | None = None
        self.starts = 0
        self.cpu_seconds = 0.0  # CPU time of invocations that answered (a killed one cannot tell)

    def _start(self) -> Connection:
        parent, child = self._mp.Pipe()
        process = self._mp.Process(target=_serve, args=(child, self._init, self._args), daemon=True)
        process.start()
        child.close()
        self.starts += 1
        if not parent.poll(INIT_TIMEOUT_SECONDS):
            process.kill()
            raise RuntimeError("execution environment did not finish its init phase")
        try:
            parent.recv()
        except EOFError:
            raise RuntimeError("execution environment died during its init phase") from None
        self._process, self._connection = process, parent
        return parent

    def _discard(self, kill: bool) -> None:
        if self._process is not None:
            if kill:
                self._process.kill()
            self._process.join(timeout=10)
        if self._connection is not None:
            self._connection.close()
        self._process, self._connection = None, None

    def __call__(self, event: dict[str, Any], context: FakeLambdaContext) -> Any:
        connection = self._connection or self._start()
        # The clock starts once the environment is ready (a cold start's init is not billed to the timeout).
        deadline = context.deadline = time.time() + context.timeout_seconds
        try:
            connection.send((event, deadline, context.timeout_seconds, context.clock_rate))
            answered = connection.poll(max(0.0, deadline - time.time()))
            status, value, cpu = connection.recv() if answered else ("timeout", None, 0.0)
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
            self._discard(kill=False)
            raise InvocationAborted("crash") from None
        if status == "timeout":
            self._discard(kill=True)
            raise InvocationAborted("timeout")
        self.cpu_seconds += cpu
        if status == "error":
            raise HandlerError(value)
        return value

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
        self._discard(kill=True)
