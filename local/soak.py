"""Fault-injection soak: N images through the local pipeline; every object accounted for.

    python -m local.soak                      # 2,000 images, every fault type on
    python -m local.soak --images 200 --seed 3

An embedded moto server (own process, loopback) with the stack's resources;
``--concurrency`` worker processes, each a Lambda execution environment
running the real handler behind an ESM-like poller; an emulated model behind a
real botocore client (so the labeler's retry configuration runs). Injected:
Rekognition throttling and ProvisionedThroughputExceeded bursts, model-not-
running windows, DynamoDB throttling, PutEvents partial failures, duplicate
deliveries, out-of-order notifications for one key, invalid messages, and bad
objects (empty, corrupt, oversized, too small, non-image, deleted before
processing). At the end every object version must be in exactly one SPEC §5
terminal state: LABELED + one Detected event, FAILED + one Failed event (with
the right error), or its message in the DLQ; a non-image has nothing. Exits 1
on any object lost, duplicated or wrongly classified.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3

from local.emulator import consumed_events, create_resources, drain_queue
from local.moto_process import moto_server_process
from local.samples import make_image
from local.stack_template import PLACEHOLDER_PROJECT_VERSION_ARN, default_facts

ARN = PLACEHOLDER_PROJECT_VERSION_ARN
BAD_KINDS = {  # kind -> the error code its FAILED result must carry
    "empty": "InvalidImageFormatException",
    "corrupt": "InvalidImageFormatException",
    "oversized": "ImageTooLargeException",
    "tiny": "InvalidParameterException",
    "deleted": "InvalidS3ObjectException",
}


@dataclass(frozen=True)
class SoakConfig:
    images: int = 2000
    seed: int = 7
    concurrency: int = 2
    throttle_rate: float = 0.05  # per call: ThrottlingException
    burst_every_seconds: float = 15.0  # ProvisionedThroughputExceeded for burst_seconds every ...
    burst_seconds: float = 1.0
    not_ready_every_seconds: float = 20.0  # ResourceNotReady (model not running) windows
    not_ready_seconds: float = 2.0
    dynamodb_throttle_rate: float = 0.03
    put_events_failure_rate: float = 0.03
    duplicate_rate: float = 0.05
    out_of_order_rate: float = 0.03
    bad_rate: float = 0.10
    invalid_messages: int = 3
    retry_delay_seconds: int = 1
    max_seconds: float = 600.0
    batch_size: int = 0  # 0: the stack's
    model_latency_seconds: float = 0.0
    model_tps_cap: float = 0.0  # > 0: the model throttles above this many calls per second (all workers)
    log_dir: str = ""  # where each worker writes its Lambda logs (JSON lines); empty: discarded


@dataclass
class Version:
    key: str
    kind: str  # good, nonimage, or one of BAD_KINDS
    version_id: str = ""
    etag: str = ""
    size: int = 0
    sequencer: str = ""
    superseded: bool = False

    def record(self, bucket: str) -> dict[str, Any]:
        from urllib.parse import quote_plus

        return {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {
                "bucket": {"name": bucket},
                "object": {
                    "key": quote_plus(self.key),
                    "size": self.size,
                    "eTag": self.etag,
                    "versionId": self.version_id,
                    "sequencer": self.sequencer,
                },
            },
        }

    def result_id(self, bucket: str) -> str:
        from labeler.notifications import S3ObjectEvent

        return S3ObjectEvent(
            "ObjectCreated:Put", bucket, self.key, self.size, self.etag, self.version_id, self.sequencer
        ).result_id(ARN)


@dataclass
class Accounting:
    rows: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, outcome) -> count
    problems: list[str] = field(default_factory=list)
    dlq: int = 0
    events: int = 0
    elapsed: float = 0.0
    processing_seconds: float = 0.0  # first to last processedAt among the events
    worker_stats: list[dict[str, int]] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(n for (_kind, state), n in self.rows.items() if state == outcome)

    @property
    def ok(self) -> bool:
        return not self.problems


# -- worker processes: one Lambda execution environment each --------------------------------------


_capacity: Any = None  # (tokens, stamp, lock) shared by the worker processes


def _init_worker(tokens: Any, stamp: Any, lock: Any) -> None:
    global _capacity
    _capacity = (tokens, stamp, lock)


def _take_token(cap: float) -> bool:
    """A token bucket of ``cap`` calls per second (one second of burst), shared by all workers."""
    tokens, stamp, lock = _capacity
    with lock:
        now = time.time()
        tokens.value = min(cap, tokens.value + (now - stamp.value) * cap)
        stamp.value = now
        if tokens.value >= 1:
            tokens.value -= 1
            return True
        return False


def _windowed(now: float, every: float, length: float) -> bool:
    return every > 0 and (now % every) < length


def _worker(config: SoakConfig, worker: int, endpoint: str, names: dict[str, str], batch_size: int) -> dict[str, int]:
    import os

    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
        AWS_DEFAULT_REGION="us-east-1",
    )
    import io

    from labeler import handler
    from labeler.clients import REKOGNITION_CONFIG, AwsClients, create_clients
    from labeler.config import LabelerConfig
    from labeler.pipeline import build_pipeline
    from local.botocore_model import emulated_rekognition_client
    from local.fake_model import FakeCustomLabelsModel
    from local.faults import FaultyClient, client_error, inject_http_errors, put_events_rejecting
    from local.poller import EventSourceMappingPoller

    rng = random.Random(config.seed * 1000 + worker)
    lock = __import__("threading").Lock()

    def chance(rate: float) -> bool:
        with lock:
            return rng.random() < rate

    def model_fault(request: dict[str, Any]) -> Exception | None:
        now = time.time()
        if config.model_tps_cap > 0 and not _take_token(config.model_tps_cap):
            return client_error("ThrottlingException", "Rate exceeded (over the model's capacity)")
        if _windowed(now, config.not_ready_every_seconds, config.not_ready_seconds):
            return client_error("ResourceNotReadyException", "The model is not running (injected)")
        if _windowed(now + 7, config.burst_every_seconds, config.burst_seconds):
            return client_error("ProvisionedThroughputExceededException", "Burst (injected)")
        if chance(config.throttle_rate):
            return client_error("ThrottlingException", "Rate exceeded (injected)")
        return None

    real = create_clients()
    s3 = boto3.client("s3")
    model = FakeCustomLabelsModel(s3, fault=model_fault, latency_seconds=config.model_latency_seconds)
    # DynamoDB throttling at the HTTP layer: the labeler's botocore retry
    # configuration sees it as it would in AWS.
    inject_http_errors(
        real.dynamodb, lambda operation: chance(config.dynamodb_throttle_rate), "ProvisionedThroughputExceededException"
    )
    dynamodb = real.dynamodb
    events = FaultyClient(
        real.events, {"put_events": put_events_rejecting(lambda entry: chance(config.put_events_failure_rate))}
    )
    labeler_config = LabelerConfig(ARN, names["table"], names["bus"])
    clients = AwsClients(emulated_rekognition_client(model, REKOGNITION_CONFIG), dynamodb, events)
    handler.use_pipeline(build_pipeline(labeler_config, clients))
    sink = io.StringIO()
    handler.logger.registered_handler.setStream(sink)  # type: ignore[attr-defined]
    sqs = boto3.client("sqs")
    poller = EventSourceMappingPoller(
        sqs,
        names["queue_url"],
        names["queue_arn"],
        handler.handler,
        batch_size=batch_size,
        retry_delay_seconds=config.retry_delay_seconds,
    )
    import contextlib

    with contextlib.redirect_stdout(sink):
        poller.run_until_idle(max_seconds=config.max_seconds, pause_seconds=0.2)
    if config.log_dir:
        from pathlib import Path

        Path(config.log_dir).mkdir(parents=True, exist_ok=True)
        (Path(config.log_dir) / f"worker-{worker}.jsonl").write_text(sink.getvalue())
    return {**dataclasses.asdict(poller.stats), "model_calls": len(model.calls)}


# -- the driver ------------------------------------------------------------------------------------


def _plan(config: SoakConfig, rng: random.Random) -> list[Version]:
    bad = [*BAD_KINDS, "nonimage"]
    versions: list[Version] = []
    for n in range(config.images):
        if rng.random() < config.bad_rate:
            kind = rng.choice(bad)
            extension = ".txt" if kind == "nonimage" else rng.choice([".png", ".JPG", ".jpeg"])
            versions.append(Version(f"soak/{kind}/{n:05d}{extension}", kind))
        else:
            versions.append(Version(f"soak/good/{n:05d} img{rng.choice(['.png', '.PNG'])}", "good"))
    return versions


def run(config: SoakConfig) -> Accounting:
    rng = random.Random(config.seed)
    facts = default_facts()
    account = Accounting()
    images = [
        make_image({name: (0.1 * i, 0.1, 0.4, 0.4)}, size=(96, 96))
        for i, name in enumerate(("scratch", "dent", "logo"))
    ]
    bodies = {
        "good": images,
        "empty": [b""],
        "corrupt": [b"\xff\xd8\xff\xe0 not a jpeg" * 8],
        "tiny": [make_image({"logo": (0, 0, 1, 1)}, size=(40, 40))],
        "nonimage": [b"notes"],
        "deleted": images,
        "oversized": images,
    }
    with moto_server_process() as endpoint:
        s3, sqs = boto3.client("s3"), boto3.client("sqs")
        resources = create_resources(
            facts,
            s3=s3,
            sqs=sqs,
            dynamodb=boto3.client("dynamodb"),
            events=boto3.client("events"),
            event_source="autolabel",
            visibility_timeout=max(2, config.retry_delay_seconds * 2),
        )
        # The driver sends the notifications itself, as real S3 does (versionId,
        # sequencer), so it can duplicate and reorder them.
        s3.put_bucket_notification_configuration(Bucket=resources.bucket, NotificationConfiguration={})
        drain_queue(sqs, resources.queue_url)
        versions = _plan(config, rng)
        sequencer = 0x10000

        def upload(version: Version, body: bytes) -> None:
            nonlocal sequencer
            put = s3.put_object(Bucket=resources.bucket, Key=version.key, Body=body)
            sequencer += rng.randint(1, 50)
            version.version_id, version.etag = put["VersionId"], put["ETag"].strip('"')
            version.size = 15 * 1024 * 1024 + 1 if version.kind == "oversized" else len(body)
            version.sequencer = f"{sequencer:X}"
            if version.kind == "deleted":
                s3.delete_object(Bucket=resources.bucket, Key=version.key, VersionId=version.version_id)

        messages: list[str] = []
        late: list[str] = []
        all_versions: list[Version] = []
        for version in versions:
            upload(version, rng.choice(bodies[version.kind]))
            all_versions.append(version)
            body = json.dumps({"Records": [version.record(resources.bucket)]})
            if version.kind == "good" and rng.random() < config.out_of_order_rate:
                newer = Version(version.key, "good")
                upload(newer, rng.choice(images))
                version.superseded = True
                all_versions.append(newer)
                messages.append(json.dumps({"Records": [newer.record(resources.bucket)]}))
                late.append(body)  # the older notification arrives after the newer one
            else:
                messages.append(body)
            if rng.random() < config.duplicate_rate:
                late.append(messages[-1])
        messages.extend(late)
        messages.extend(
            [
                "not json (injected)",
                json.dumps({"Records": [{"eventSource": "aws:sns"}]}),
                json.dumps({"unexpected": True}),
            ][: config.invalid_messages]
        )
        for start in range(0, len(messages), 10):
            sqs.send_message_batch(
                QueueUrl=resources.queue_url,
                Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(messages[start : start + 10])],
            )

        names = {
            "table": resources.table_name,
            "bus": resources.event_bus_name,
            "queue_url": resources.queue_url,
            "queue_arn": resources.queue_arn,
        }
        started = time.monotonic()
        context = multiprocessing.get_context("spawn")
        shared = (context.Value("d", config.model_tps_cap), context.Value("d", time.time()), context.Lock())
        batch_size = config.batch_size or facts.batch_size
        with context.Pool(config.concurrency, initializer=_init_worker, initargs=shared) as pool:
            account.worker_stats = pool.starmap(
                _worker, [(config, w, endpoint, names, batch_size) for w in range(config.concurrency)]
            )
        account.elapsed = time.monotonic() - started
        _account(account, resources, all_versions, config)
    return account


def _dead_letters(sqs: Any, dlq_url: str) -> tuple[Counter[tuple[str, str]], int]:
    """(object versions whose notification is in the DLQ, count of invalid messages there)."""
    from urllib.parse import unquote_plus

    versions: Counter[tuple[str, str]] = Counter()
    invalid = 0
    for message in drain_queue(sqs, dlq_url):
        try:
            for record in json.loads(message["Body"])["Records"]:
                obj = record["s3"]["object"]
                versions[(unquote_plus(obj["key"]), obj["versionId"])] += 1
        except (ValueError, KeyError, TypeError):
            invalid += 1
    return versions, invalid


def _classify(
    version: Version, current: dict[str, Any] | None, mine: bool, events: list[dict[str, Any]], in_dlq: int
) -> tuple[str, str | None]:
    """(terminal state, problem or None) of one object version that was not superseded."""
    if version.kind == "nonimage":
        skipped = current is None and not events and not in_dlq
        return ("skipped", None) if skipped else ("NOT SKIPPED", f"{version.key}: non-image was not skipped")
    if len(events) > 1 or in_dlq > 1 or (in_dlq and events):
        return "DUPLICATED", f"{version.key}: DUPLICATED ({len(events)} events, {in_dlq} in the DLQ)"
    detail_types = [e["detail-type"] for e in events]
    status = current["status"] if mine and current is not None else None
    if status == "LABELED" and detail_types == ["Custom Labels Detected"]:
        outcome = "LABELED"
    elif status == "FAILED" and detail_types == ["Custom Labels Failed"]:
        outcome = "FAILED"
    elif in_dlq:
        return "DLQ (retries exhausted)", None
    else:
        return "LOST", f"{version.key}: LOST ({status or 'no row'}, {len(events)} events, not in the DLQ)"
    expected = "LABELED" if version.kind == "good" else "FAILED"
    code = current["error"]["code"] if outcome == "FAILED" and current is not None else None
    if outcome != expected or (code is not None and code != BAD_KINDS[version.kind]):
        return "WRONG CLASS", f"{version.key}: {outcome} {code or ''}, expected {expected}"
    return outcome, None


def _account(account: Accounting, resources: Any, versions: list[Version], config: SoakConfig) -> None:
    from labeler.queries import get_result

    sqs, ddb = boto3.client("sqs"), boto3.client("dynamodb")
    events = consumed_events(sqs, resources.consumer_queue_url)
    account.events = len(events)
    stamps = sorted(event["detail"]["processedAt"] for event in events)
    if len(stamps) > 1:
        from datetime import datetime

        first, last = (datetime.fromisoformat(stamp.replace("Z", "+00:00")) for stamp in (stamps[0], stamps[-1]))
        account.processing_seconds = (last - first).total_seconds()
    by_result: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_result.setdefault(event["detail"]["resultId"], []).append(event)
    dead_versions, invalid_in_dlq = _dead_letters(sqs, resources.dead_letter_queue_url)
    account.dlq = sum(dead_versions.values()) + invalid_in_dlq
    account.rows[("invalid message", "DLQ")] = invalid_in_dlq
    if invalid_in_dlq != config.invalid_messages:
        account.problems.append(f"{config.invalid_messages} invalid messages sent, {invalid_in_dlq} in the DLQ")
    for version in versions:
        current = get_result(resources.table_name, resources.bucket, version.key, ARN, client=ddb)
        mine = current is not None and current["resultId"] == version.result_id(resources.bucket)
        if version.superseded:
            account.rows[(f"{version.kind} (superseded)", "replaced by the newer version")] += 1
            if mine:
                account.problems.append(f"{version.key} {version.version_id}: an older version is current")
            continue
        outcome, problem = _classify(
            version,
            current,
            mine,
            by_result.get(version.result_id(resources.bucket), []),
            dead_versions.get((version.key, version.version_id), 0),
        )
        account.rows[(version.kind, outcome)] += 1
        if problem:
            account.problems.append(problem)


def print_accounting(config: SoakConfig, account: Accounting) -> None:
    print(
        f"Soak: {config.images} images, seed {config.seed}, {config.concurrency} workers, "
        f"{account.elapsed:.1f} s; {account.events} events, {account.dlq} DLQ messages"
    )
    invocations = sum(s["invocations"] for s in account.worker_stats)
    print(
        f"Workers: {invocations} invocations, {sum(s['messages'] for s in account.worker_stats)} messages "
        f"received, {sum(s['item_failures'] for s in account.worker_stats)} retried, "
        f"{sum(s['model_calls'] for s in account.worker_stats)} DetectCustomLabels calls (incl. botocore retries)"
    )
    width = max(len(kind) for kind, _ in account.rows) + 2
    print(f"\n{'object kind':<{width}}{'terminal state':<34}count")
    for (kind, outcome), count in sorted(account.rows.items()):
        print(f"{kind:<{width}}{outcome:<34}{count}")
    if account.problems:
        print(f"\nFAILED: {len(account.problems)} object(s) lost, duplicated or wrongly classified:")
        for problem in account.problems[:30]:
            print(f"  {problem}")
    else:
        print("\nOK: every object version in exactly one terminal state; nothing lost, nothing duplicated.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = SoakConfig()
    for f in dataclasses.fields(SoakConfig):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)), default=getattr(defaults, f.name)
        )
    args = parser.parse_args(argv)
    config = SoakConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SoakConfig)})
    account = run(config)
    print_accounting(config, account)
    return 0 if account.ok else 1


if __name__ == "__main__":
    sys.exit(main())
