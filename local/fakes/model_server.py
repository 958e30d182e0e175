"""The emulated Custom Labels model in its own process, over HTTP (for the soak and the benchmarks).

In Lambda, the model's work (reading the image from S3, decoding it, finding
labels) happens in Rekognition, not in the function. Run inside a worker
process, the emulated model's S3 read, PIL decode and pixel loop would be
billed to the labeler's CPU per image; here they run in their own process and
the worker waits for an HTTP answer, as it waits for Rekognition.

The server also enforces the model's capacity: above ``cap`` calls per second
(a token bucket with one second of burst, shared by every caller) it answers
ThrottlingException at once, as the service does.

    python -m local.fakes.model_server PORT [--latency SECONDS] [--cap CALLS_PER_SECOND]

``RemoteModel`` duck-types ``FakeCustomLabelsModel`` on the caller's side (so
``local.botocore_model`` serves it to a real boto3 client), with the same
``fault`` / ``lost_response`` / ``extra_labels`` hooks, which run in the caller
because they journal what they inject.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.exceptions import ClientError

from labeler.ports import CustomLabelsClient
from local.fakes.fake_model import OPERATION, ExtraLabels, Fault
from local.fakes.faults import client_error
from local.server_process import server_process

EXTRA_LABELS_HEADER = "X-Extra-Labels"
_EXTRA = "_extraLabels"  # request key the server's model reads its extra-label count from


class TokenBucket:
    """``rate`` tokens per second, at most ``rate`` banked (one second of burst); 0: unlimited."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = rate
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        with self._lock:
            now = self._clock()
            self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


def serve(port: int, latency: float, cap: float) -> None:
    import boto3

    from local.fakes.fake_model import FakeCustomLabelsModel

    model = FakeCustomLabelsModel(
        boto3.client("s3"), latency_seconds=latency, extra_labels=lambda request: int(request.get(_EXTRA, 0))
    )
    bucket = TokenBucket(cap)
    calls = {"answered": 0, "throttled": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection per caller thread

        def log_message(self, *_args: Any) -> None:
            return

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # the counters, for the benchmarks
            with lock:
                self._answer(200, dict(calls))

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if not bucket.take():
                with lock:
                    calls["throttled"] += 1
                self._answer(400, {"__type": "ThrottlingException", "Message": "Rate exceeded (over the capacity)"})
                return
            request[_EXTRA] = int(self.headers.get(EXTRA_LABELS_HEADER, 0))
            try:
                status, body = 200, model.detect_custom_labels(**request)
            except ClientError as error:
                status = 400
                body = {"__type": error.response["Error"]["Code"], "Message": error.response["Error"]["Message"]}
            with lock:
                calls["answered"] += 1
            self._answer(status, body)

    ThreadingHTTPServer.request_queue_size = 1024  # the peer opens up to 1,000 connections at once
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


class RemoteModel(CustomLabelsClient):
    """``detect_custom_labels`` answered by a model server; faults decided (and journaled) here."""

    def __init__(
        self,
        url: str,
        *,
        fault: Fault | None = None,
        lost_response: Fault | None = None,
        extra_labels: ExtraLabels | None = None,
    ) -> None:
        self._host, _, port = url.removeprefix("http://").partition(":")
        self._port = int(port)
        self.fault = fault
        self.lost_response = lost_response
        self.extra_labels = extra_labels
        self._local = threading.local()

    def _post(self, request: dict[str, Any], extra: int) -> tuple[int, dict[str, Any]]:
        body = json.dumps(request)
        headers = {"Content-Type": "application/json", EXTRA_LABELS_HEADER: str(extra)}
        for attempt in (1, 2):  # a kept-alive connection the server closed: reconnect once
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = http.client.HTTPConnection(self._host, self._port, timeout=120)
            try:
                connection.request("POST", "/", body, headers)
                response = connection.getresponse()
                return response.status, json.loads(response.read())
            except (OSError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def detect_custom_labels(self, **request: Any) -> dict[str, Any]:
        if self.fault is not None and (error := self.fault(request)) is not None:
            raise error
        extra = self.extra_labels(request) if self.extra_labels is not None else 0
        status, answer = self._post(request, extra)
        if status != 200:
            raise client_error(
                answer.get("__type", "InternalServerError"), answer.get("Message", ""), status, OPERATION
            )
        if self.lost_response is not None and (error := self.lost_response(request)) is not None:
            raise error
        return answer


def model_counters(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        counters: dict[str, int] = json.loads(answer.read())
    return counters


@contextlib.contextmanager
def model_server_process(latency: float = 0.0, cap: float = 0.0) -> Iterator[str]:
    """Start a model server (reading images from this process's AWS endpoint); yield its URL; stop it."""
    with server_process(
        lambda port: ["local.fakes.model_server", str(port), "--latency", str(latency), "--cap", str(cap)],
        model_counters,
        "model server",
    ) as url:
        yield url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The emulated Custom Labels model over HTTP (local runs only).")
    parser.add_argument("port", type=int)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answered call (default 0)")
    parser.add_argument("--cap", type=float, default=0.0, help="calls per second before throttling (0: none)")
    args = parser.parse_args(argv)
    serve(args.port, args.latency, args.cap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
