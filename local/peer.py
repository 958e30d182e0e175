"""The peer design, as a baseline for the benchmarks: how the typical sample labels images.

S3 invokes the function asynchronously, once per S3 event; the function takes
the event's records in order and, for each image, calls DetectCustomLabels,
then ``put_item`` (the labels as one JSON string) and ``put_events``. No
batching, no dedupe, no ordering check.

Its honest setting (``run_peer``): as many concurrent invocations as there are
events, up to the default account concurrency of 1,000; boto3's default
client configuration (botocore's default retry mode, standard here: 3
attempts, exponential backoff with jitter on throttling); and Lambda's asynchronous-invocation retries for a function
error: two more attempts, one minute and then two minutes later, after which
the event is dropped ("How Lambda handles errors and retries with asynchronous
invocation", AWS Lambda Developer Guide). Cold starts are not emulated (in the
peer's favour).
"""

from __future__ import annotations

import heapq
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

DEFAULT_CONCURRENCY = 1000  # Lambda's default concurrent executions per account and Region
ASYNC_RETRY_DELAYS_SECONDS = (60.0, 120.0)  # after the first and the second failed attempt; then dropped
PEER_TABLE_KEY = [{"AttributeName": "pk", "KeyType": "HASH"}]


@dataclass(frozen=True)
class PeerClients:
    rekognition: Any
    dynamodb: Any
    events: Any


def peer_handler(event: dict[str, Any], clients: PeerClients, *, table: str, bus: str, arn: str) -> list[float]:
    """One invocation: every record in order. Returns when each image was announced (time.time())."""
    announced = []
    for record in event["Records"]:
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])
        labels = clients.rekognition.detect_custom_labels(
            ProjectVersionArn=arn, Image={"S3Object": {"Bucket": bucket, "Name": key}}
        )["CustomLabels"]
        clients.dynamodb.put_item(
            TableName=table,
            Item={"pk": {"S": f"{bucket}/{key}"}, "labels": {"S": json.dumps(labels)}, "at": {"N": str(time.time())}},
        )
        detail = {"bucket": bucket, "key": key, "labels": labels}
        clients.events.put_events(
            Entries=[
                {
                    "Source": "peer",
                    "DetailType": "Custom Labels Detected",
                    "Detail": json.dumps(detail),
                    "EventBusName": bus,
                }
            ]
        )
        announced.append(time.time())
    return announced


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    return {"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]}


@dataclass
class PeerRun:
    labeled: int = 0
    dropped: int = 0  # failed all three attempts
    failed_attempts: int = 0
    announced: list[float] = field(default_factory=list)
    started: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU while it ran (the peer's handlers and their SDK calls)

    @property
    def processing_seconds(self) -> float:
        """First to last announcement (as P4 measures autolabel)."""
        return max(self.announced) - min(self.announced) if len(self.announced) > 1 else 0.0


def run_peer(
    events: list[dict[str, Any]],
    invoke: Callable[[dict[str, Any]], list[float]],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    retry_delays: tuple[float, ...] = ASYNC_RETRY_DELAYS_SECONDS,
) -> PeerRun:
    """Lambda's asynchronous invocation of ``invoke`` for each event: up to ``concurrency`` at once,
    a failed one retried after each of ``retry_delays`` and then dropped."""
    result = PeerRun(started=time.time())
    due: list[tuple[float, int, int]] = [(0.0, n, 0) for n in range(len(events))]  # (when, event, attempt)
    heapq.heapify(due)
    lock = threading.Condition()
    in_flight = [0]

    def next_event() -> tuple[int, int] | None:
        with lock:
            while True:
                if not due and not in_flight[0]:
                    lock.notify_all()
                    return None
                if due and due[0][0] <= time.monotonic():
                    _, n, attempt = heapq.heappop(due)
                    in_flight[0] += 1
                    return n, attempt
                lock.wait(timeout=max(0.01, due[0][0] - time.monotonic()) if due else 0.5)

    def worker() -> None:
        while (work := next_event()) is not None:
            n, attempt = work
            try:
                stamps = invoke(events[n])
            except Exception:
                with lock:
                    result.failed_attempts += 1
                    if attempt < len(retry_delays):
                        heapq.heappush(due, (time.monotonic() + retry_delays[attempt], n, attempt + 1))
                    else:
                        result.dropped += 1
                    in_flight[0] -= 1
                    lock.notify_all()
                continue
            with lock:
                result.labeled += len(stamps)
                result.announced.extend(stamps)
                in_flight[0] -= 1
                lock.notify_all()

    cpu = time.process_time()
    with ThreadPoolExecutor(min(concurrency, len(events))) as pool:
        for _ in range(min(concurrency, len(events))):
            pool.submit(worker)
    result.cpu_seconds = time.process_time() - cpu
    return result
