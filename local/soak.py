"""Fault-injection soak: N images through the local pipeline; every object accounted for.

    python -m local.soak                      # 2,000 images, every fault type on
    python -m local.soak --images 200 --seed 3
    python -m local.soak --help               # every fault is an option (a rate of 0 turns it off)

An embedded moto server (own process, loopback) with the stack's resources;
``--concurrency`` event source mapping pollers, each invoking the real handler
in its own worker process (one Lambda execution environment, replaced when it
dies or is killed at its timeout); an emulated model behind a real botocore
client (so the labeler's retry configuration runs). Time is scaled by
``--time-scale``: the function timeout, the queue's visibility timeout, the
publish-claim lease, botocore's retry backoff and the clients' connect/read
timeouts all shrink by the same factor.

Injected: Rekognition throttling and ProvisionedThroughputExceeded bursts,
model-not-running windows, model stalls (calls hang until the read timeout),
DynamoDB throttling, PutEvents partial failures, connection drops on
DynamoDB, EventBridge and Rekognition (clean: never applied; ambiguous:
applied, response lost), network outage windows, worker processes killed
after DetectCustomLabels answered, after the store, after PutEvents accepted
and before the mark-published write, Lambda timeouts, duplicate deliveries,
out-of-order and in-order newer versions of a key with S3-format sequencers
of varying length, results with 100-300 labels, invalid messages, and bad
objects (empty, corrupt, oversized, too small, non-image, deleted before
processing).

At the end every object version must be in exactly one terminal state (see
docs/performance.md): LABELED + one Detected event, FAILED + one Failed event
(with the right error), or its message in the DLQ; a non-image has nothing; a
superseded version is not the current result. A duplicate announcement is
allowed only for a resultId whose PutEvents outcome was unknown to the
labeler (response lost, or its process died after PutEvents accepted). The
label index must agree with every current result. Exits 1 on any object lost,
duplicated without that excuse, or wrongly classified.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import math
import os
import random
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import boto3

from local.emulator import drain_queue, local_aws_environment
from local.fakes.faults import (
    AMBIGUOUS_DROPS,
    CLEAN_DROPS,
    KILL_POINTS,
    FaultyClient,
    Journal,
    client_error,
    dropped,
    inject_transport_faults,
    install_kill_points,
    put_events_rejecting,
    put_events_result_ids,
)
from local.fakes.model_server import model_server_process
from local.moto_process import moto_server_process
from local.poller import EventSourceMappingPoller, Handler, ProcessEnvironment
from local.samples import make_image
from local.stack_template import PLACEHOLDER_PROJECT_VERSION_ARN, default_facts
from local.wiring import deploy

ARN = PLACEHOLDER_PROJECT_VERSION_ARN
BAD_KINDS = {  # kind -> the error code its FAILED result must carry
    "empty": "InvalidImageFormatException",
    "corrupt": "InvalidImageFormatException",
    "oversized": "ImageTooLargeException",
    "tiny": "InvalidParameterException",
    "deleted": "InvalidS3ObjectException",
}
STACK_FUNCTION_TIMEOUT_SECONDS = 60.0  # infra/settings.py; the stack's visibility timeout is 6x this
STACK_CLAIM_TTL_SECONDS = 120.0  # the labeler's publish-claim lease (labeler.pipeline), scaled like the rest
SEQUENCER_WIDTH = 22


@dataclass(frozen=True)
class SoakConfig:
    images: int = 2000
    seed: int = 7
    concurrency: int = 2
    # Scaled clock: 1/3 runs the stack's 60 s function timeout as 20 s, its 360 s
    # visibility timeout as 120 s; botocore backoff and client timeouts alike.
    time_scale: float = 1 / 3
    # The fault windows below recur every prime number of seconds: a period that divides the
    # visibility timeout (120 s) would redeliver a failed message in the same window every time.
    visibility_timeout_seconds: int = 0  # 0: the stack's, scaled
    retry_delay_seconds: int = -1  # -1: failed messages wait their visibility timeout, as in Lambda
    throttle_rate: float = 0.05  # per call: ThrottlingException
    burst_every_seconds: float = 17.0  # ProvisionedThroughputExceeded for burst_seconds every ...
    burst_seconds: float = 1.0
    not_ready_every_seconds: float = 23.0  # ResourceNotReady (model not running) windows
    not_ready_seconds: float = 2.0
    stall_every_seconds: float = 97.0  # model stalls: every call hangs until the (scaled) read timeout
    stall_seconds: float = 8.0
    dynamodb_throttle_rate: float = 0.03
    put_events_failure_rate: float = 0.03
    drop_rate: float = 0.005  # per call and service: clean connection drop (never applied)
    ambiguous_drop_rate: float = 0.005  # per call and service: applied, then the response is lost
    outage_every_seconds: float = 47.0  # DynamoDB / EventBridge unreachable (clean drops) for outage_seconds
    outage_seconds: float = 1.5
    kill_after_detect_rate: float = 0.002  # per call: the worker process dies (os._exit) at this point
    kill_after_store_rate: float = 0.01
    kill_after_put_events_rate: float = 0.01
    kill_before_mark_rate: float = 0.01
    duplicate_rate: float = 0.05
    out_of_order_rate: float = 0.03  # a newer version of the key notified before the older one
    newer_version_rate: float = 0.04  # a newer version of the key notified after the older one
    # Of good images: an unversioned key (no versionId: resultId from the ETag) uploaded X, then Y or
    # deleted, then X again (the same bytes), its three notifications in a random order (issue 16).
    reupload_rate: float = 0.04
    variable_sequencers: bool = True  # S3-format sequencers of 14-22 hex digits
    shorter_sequencer_rate: float = 0.5  # of newer versions: a shorter (still newer) sequencer
    many_labels_rate: float = 0.1  # of good images: 100-300 distinct labels, some with polygons
    bad_rate: float = 0.10
    invalid_messages: int = 3
    index_check_labels: int = 24  # find_by_label checked for the palette's labels + this many part-NNN (-1: all)
    # Outage phase (after the main run): the model version cannot run for this many days
    # against the manager's grace period and the ingest queue's retention, on a clock
    # scaled down by outage_scale (local/outage_sim.py); 0 turns the phase off.
    outage_days: float = 14.5
    outage_grace_hours: float = 24.0
    outage_retention_days: float = 14.0
    outage_scale: float = 48.0
    manager_state_failure_rate: float = 0.1  # per state-table write of the manager: refused
    manager_death_after_start_rate: float = 0.5  # per StartProjectVersion: the manager dies before saving
    max_seconds: float = 2400.0  # then whatever is left in the queue is reported (not done)
    batch_size: int = 0  # 0: the stack's
    model_latency_seconds: float = 0.0
    model_tps_cap: float = 0.0  # > 0: the model throttles above this many calls per second (all workers)
    log_dir: str = ""  # where each worker writes its Lambda logs (JSON lines); empty: discarded
    arrival_rate: float = 0.0  # > 0: notifications arrive at this many per second while the pollers run; 0: all first
    arrival_burst: int = 1  # with arrival_rate: they arrive this many at a time (same average rate)

    @property
    def function_timeout_seconds(self) -> float:
        return STACK_FUNCTION_TIMEOUT_SECONDS * self.time_scale


def many_labels(config: SoakConfig, name: str, version_id: str) -> int:
    """How many synthetic labels the emulated model adds for this object version (0 for most)."""
    if config.many_labels_rate <= 0 or "/good/" not in name:
        return 0
    digest = hashlib.sha256(f"{config.seed}\0{name}\0{version_id}".encode()).digest()
    if int.from_bytes(digest[:4], "big") / 2**32 >= config.many_labels_rate:
        return 0
    return 100 + int.from_bytes(digest[4:8], "big") % 201


@dataclass
class Version:
    key: str
    kind: str  # good, nonimage, or one of BAD_KINDS
    version_id: str = ""
    etag: str = ""
    size: int = 0
    sequencer: str = ""
    superseded: bool = False
    extra_labels: int = 0
    copies: int = 0  # notifications sent for it (more than one: a duplicate delivery)
    unversioned: bool = False  # notified without a versionId (an unversioned bucket)
    sent_at: float = 0.0  # time.time() its first notification was sent (its upload, for latency)

    def record(self, bucket: str) -> dict[str, Any]:
        return _s3_record(
            bucket,
            "ObjectCreated:Put",
            key=self.key,
            size=self.size,
            eTag=self.etag,
            **({} if self.unversioned else {"versionId": self.version_id}),
            sequencer=self.sequencer,
        )

    def result_id(self, bucket: str) -> str:
        from labeler.domain.s3_notification import S3ObjectEvent

        version_id = None if self.unversioned else self.version_id
        return S3ObjectEvent(
            "ObjectCreated:Put", bucket, self.key, self.size, self.etag, version_id, self.sequencer
        ).result_id(ARN)


@dataclass
class Reupload:
    """X, then Y (another content) or a deletion, then X again, on one unversioned key: S3 holds X."""

    first: Version  # X
    middle: Version | None  # Y, or None: a deletion (``deletion_sequencer``)
    again: Version  # X again: the same bytes, so the same resultId as ``first``
    deletion_sequencer: str = ""

    @property
    def kind(self) -> str:
        return "re-upload X,Y,X" if self.middle is not None else "re-upload X,delete,X"

    def deletion_record(self, bucket: str) -> dict[str, Any]:
        return _s3_record(bucket, "ObjectRemoved:Delete", key=self.first.key, sequencer=self.deletion_sequencer)


def _s3_record(bucket: str, event_name: str, *, key: str, **object_fields: Any) -> dict[str, Any]:
    """An S3 notification record as the ingest queue receives it (the key URL-encoded, as S3 does)."""
    from urllib.parse import quote_plus

    s3_object = {"key": quote_plus(key), **object_fields}
    return {"eventSource": "aws:s3", "eventName": event_name, "s3": {"bucket": {"name": bucket}, "object": s3_object}}


class Sequencers:
    """S3-format sequencers (hex), increasing under S3's rule: right-pad the shorter with zeros, compare.

    Each value is a multiple of 16^(22 - length), so cutting it to ``length``
    digits drops only zeros. ``after`` gives a newer version of a key a
    shorter sequencer (still newer) at ``shorter_rate``.
    """

    def __init__(self, rng: random.Random, *, variable: bool, shorter_rate: float) -> None:
        self._rng = rng
        self._variable = variable
        self._shorter_rate = shorter_rate
        self._value = int("0055AED6DCD90281E50000", 16)

    def next(self, after: str | None = None) -> str:
        if not self._variable:
            length = 18
        elif after is not None and len(after) > 14 and self._rng.random() < self._shorter_rate:
            length = self._rng.randint(14, len(after) - 1)
        else:
            length = self._rng.randint(14, SEQUENCER_WIDTH)
        unit = 16 ** (SEQUENCER_WIDTH - length)
        self._value = (self._value // unit + self._rng.randint(1, 40)) * unit
        return f"{self._value:0{SEQUENCER_WIDTH}X}"[:length]


def s3_order(sequencer: str) -> str:
    """S3's order key for a sequencer (what the accounting checks the labeler against)."""
    return sequencer.upper().ljust(SEQUENCER_WIDTH * 2, "0")


@dataclass
class Accounting:
    rows: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, outcome) -> count
    problems: list[str] = field(default_factory=list)
    dlq: int = 0
    events: int = 0
    elapsed: float = 0.0
    processing_seconds: float = 0.0  # first to last processedAt among the events
    worker_stats: list[dict[str, Any]] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)  # injected fault -> count
    ambiguous_put_events: int = 0  # resultIds whose PutEvents response was lost
    died_after_put_events: int = 0  # resultIds accepted by PutEvents whose worker died before marking them
    duplicates: Counter[str] = field(default_factory=Counter)  # cause -> extra announcements
    index_checked: int = 0
    index_names_checked: int = 0
    # Label-index entries of replaced or deleted writes that a fault left in the table (find_by_label skips them).
    index_leftovers: int = 0
    # Results stored but never announced whose record is in the DLQ: unfinished, so their entries may be missing.
    index_unfinished: int = 0
    many_label_results: int = 0
    visibility_timeout: int = 0
    outage: dict[str, float] = field(default_factory=dict)  # the outage phase's figures
    latencies: list[float] = field(default_factory=list)  # upload -> first event, seconds, per announced version
    unannounced: int = 0  # versions that should have had an event and had none (yet)
    visibility_changes: list[int] = field(default_factory=list)  # VisibilityTimeout the handler set, per message
    labels_discarded: int = 0  # model answers thrown away: another delivery of the version stored it first
    removed_events: int = 0  # Custom Labels Removed events (the re-upload groups' deletions)

    @property
    def labeler_cpu_seconds(self) -> float:
        """CPU time of the worker processes in invocations (the labeler's, botocore's and the fault hooks')."""
        return sum(float(stats.get("cpu_seconds", 0.0)) for stats in self.worker_stats)

    def count(self, outcome: str) -> int:
        return sum(n for (_kind, state), n in self.rows.items() if state == outcome)

    @property
    def ok(self) -> bool:
        return not self.problems


# -- worker processes: one Lambda execution environment each --------------------------------------


def _windowed(now: float, every: float, length: float) -> bool:
    return every > 0 and length > 0 and (now % every) < length


def _scale_botocore_backoff(time_scale: float) -> None:
    """botocore's retry backoff runs on the soak's scaled clock too."""
    from botocore.retries import standard

    original = standard.ExponentialBackoff.delay_amount

    def delay_amount(self: Any, context: Any) -> float:
        return float(original(self, context)) * time_scale

    standard.ExponentialBackoff.delay_amount = delay_amount


@dataclass(frozen=True)
class WorkerSetup:
    """What an execution environment's process gets (pickled once, when it is spawned)."""

    config: SoakConfig
    worker: int
    endpoint: str
    table: str
    bus: str
    journal_path: str
    model_url: str  # the emulated model's server (local.fakes.model_server), which also enforces its capacity


class _Faults:
    """The faults one execution environment injects, each decision journaled."""

    def __init__(self, setup: WorkerSetup) -> None:
        import threading

        self.config = setup.config
        self.journal = Journal(setup.journal_path)
        self.scale = setup.config.time_scale
        self._rng = random.Random(f"{setup.config.seed}-{setup.worker}-{os.getpid()}")  # a new environment draws anew
        self._lock = threading.Lock()
        self.kill_rates = dict(
            zip(
                KILL_POINTS,
                (
                    self.config.kill_after_detect_rate,
                    self.config.kill_after_store_rate,
                    self.config.kill_after_put_events_rate,
                    self.config.kill_before_mark_rate,
                ),
                strict=True,
            )
        )

    def chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def drop_kind(self, *, ambiguous: bool) -> str:
        with self._lock:
            return self._rng.choice(AMBIGUOUS_DROPS if ambiguous else CLEAN_DROPS)

    def model_fault(self, request: dict[str, Any]) -> Exception | None:
        """Before the model runs: clean drops, not-running windows, bursts, throttling (its capacity
        is the model server's)."""
        config = self.config
        self.journal.write("model-call")
        now = time.time()
        if self.chance(config.drop_rate):
            return self._model_dropped(self.drop_kind(ambiguous=False))
        if _windowed(now, config.not_ready_every_seconds, config.not_ready_seconds):
            return client_error("ResourceNotReadyException", "The model is not running (injected)")
        if _windowed(now + 7, config.burst_every_seconds, config.burst_seconds):
            return client_error("ProvisionedThroughputExceededException", "Burst (injected)")
        if self.chance(config.throttle_rate):
            return client_error("ThrottlingException", "Rate exceeded (injected)")
        return None

    def lost_response(self, request: dict[str, Any]) -> Exception | None:
        """After the model answered: a stall (hangs until the read timeout) or an ambiguous drop."""
        from shared.aws_config import REKOGNITION_CONFIG

        if _windowed(time.time() + 31, self.config.stall_every_seconds, self.config.stall_seconds):
            self.journal.write("stall", service="rekognition")
            return dropped("read-timeout", EMULATED_MODEL_URL, REKOGNITION_CONFIG, self.scale)
        if self.chance(self.config.ambiguous_drop_rate):
            return self._model_dropped(self.drop_kind(ambiguous=True))
        return None

    def _model_dropped(self, kind: str) -> Exception:
        from shared.aws_config import REKOGNITION_CONFIG

        self.journal.write("drop", service="rekognition", operation="DetectCustomLabels", drop=kind)
        return dropped(kind, EMULATED_MODEL_URL, REKOGNITION_CONFIG, self.scale)

    def extra_labels(self, request: dict[str, Any]) -> int:
        s3_object = request["Image"]["S3Object"]
        return many_labels(self.config, s3_object["Name"], s3_object.get("Version", ""))

    def transport(self, client: Any, service: str, throttle_rate: float, outage_offset: float) -> None:
        """Outage windows, clean and ambiguous drops and throttling at the HTTP layer of a moto client."""
        config = self.config

        def decide(operation: str) -> str | None:
            if _windowed(time.time() + outage_offset, config.outage_every_seconds, config.outage_seconds):
                return "connect-error"
            if self.chance(config.drop_rate):
                return self.drop_kind(ambiguous=False)
            if self.chance(config.ambiguous_drop_rate):
                return self.drop_kind(ambiguous=True)
            return "throttle" if self.chance(throttle_rate) else None

        def observe(operation: str, kind: str, request: Any) -> None:
            if kind == "throttle":
                return
            self.journal.write("drop", service=service, operation=operation, drop=kind)
            if operation == "PutEvents" and kind in AMBIGUOUS_DROPS:
                entries = json.loads(request.body or b"{}").get("Entries", [])
                self.journal.write("ambiguous-put-events", resultIds=put_events_result_ids(entries))

        throttle_code = "ProvisionedThroughputExceededException" if service == "dynamodb" else "ThrottlingException"
        inject_transport_faults(client, decide, throttle_code=throttle_code, time_scale=self.scale, observe=observe)

    def kill(self, point: str) -> bool:
        return self.chance(self.kill_rates[point])

    def killed(self, point: str, result_ids: list[str]) -> None:
        self.journal.write("kill", point=point, resultIds=result_ids)


EMULATED_MODEL_URL = "https://rekognition.emulated.invalid"
# Imported once by the fork server the execution environments are forked from.
PRELOADED_MODULES = (
    "local.fakes.faults",
    "local.fakes.model_server",
    "local.botocore_model",
    "labeler.handler",
    "labeler.logic.pipeline",
    "labeler.adapters.clients",
    "botocore.httpsession",
)


def _watch_visibility_changes(journal: Journal, time_scale: float) -> None:
    """Any SQS client created in this process from now on (the handler's, if it has one):
    each ChangeMessageVisibility it makes is journaled and runs on the scaled clock."""

    def scaled(seconds: Any) -> int:
        return max(0, round(int(seconds) * time_scale)) if seconds else 0

    def change(params: dict[str, Any], **_kwargs: Any) -> None:
        entries = params.get("Entries", [params])
        for entry in entries:
            entry["VisibilityTimeout"] = scaled(entry.get("VisibilityTimeout", 0))
        journal.write("visibility-change", seconds=[entry["VisibilityTimeout"] for entry in entries])

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session: Any = boto3.DEFAULT_SESSION  # boto3.client() creates its clients from this session
    events = session.events
    for operation in ("ChangeMessageVisibility", "ChangeMessageVisibilityBatch"):
        events.register(f"before-parameter-build.sqs.{operation}", change)


def _emitted(printed: str, metric: str) -> int:
    """The sum of one EMF metric's values in what the handler printed."""
    total = 0
    for line in printed.splitlines():
        if line.startswith('{"_aws"'):
            value = json.loads(line).get(metric, 0)
            total += int(sum(value) if isinstance(value, list) else value)
    return total


def _environment(setup: WorkerSetup) -> Handler:
    """The init phase of one execution environment (in its own process): the real handler, faults wired in."""
    os.environ.update(local_aws_environment(setup.endpoint))
    import warnings

    from labeler import handler
    from labeler.adapters.clients import create_clients
    from labeler.config import LabelerConfig
    from labeler.wiring import build_pipeline
    from local.botocore_model import emulated_rekognition_client
    from local.fakes.model_server import RemoteModel
    from shared.aws_config import REKOGNITION_CONFIG

    warnings.filterwarnings("ignore", message="No application metrics to publish")  # batches with nothing new
    config = setup.config
    _scale_botocore_backoff(config.time_scale)
    faults = _Faults(setup)
    # The model's own work (S3 read, decode, detection, latency, capacity) runs in the model
    # server's process, so this process's CPU is the labeler's (and botocore's), as in Lambda.
    model = RemoteModel(
        setup.model_url, fault=faults.model_fault, lost_response=faults.lost_response, extra_labels=faults.extra_labels
    )
    _watch_visibility_changes(faults.journal, config.time_scale)
    # The labeler builds its clients as in Lambda (create_clients: retry configuration,
    # deadline guards); only its Rekognition client is the emulated model's.
    emulated = emulated_rekognition_client(model, REKOGNITION_CONFIG)
    real_client = boto3.client

    def client(service_name: str, *args: Any, **kwargs: Any) -> Any:
        return emulated if service_name == "rekognition" else real_client(service_name, *args, **kwargs)

    boto3.client = client
    try:
        clients = create_clients()
    finally:
        boto3.client = real_client
    faults.transport(clients.dynamodb, "dynamodb", config.dynamodb_throttle_rate, 0.0)
    faults.transport(clients.events, "events", 0.0, config.outage_every_seconds / 2)
    install_kill_points(clients.rekognition, clients.dynamodb, clients.events, faults.kill, faults.killed)
    refuse = put_events_rejecting(lambda entry: faults.chance(config.put_events_failure_rate))
    clients = dataclasses.replace(clients, events=FaultyClient(clients.events, {"put_events": refuse}))
    # Deletions on, as the stack's default: the re-upload groups delete between uploads.
    pipeline = build_pipeline(LabelerConfig(ARN, setup.table, setup.bus, deletions=True), clients)
    pipeline.ctx.claim_ttl = STACK_CLAIM_TTL_SECONDS * config.time_scale  # the claim lease runs on the scaled clock
    handler.use_pipeline(pipeline)
    if config.log_dir:
        from pathlib import Path

        Path(config.log_dir).mkdir(parents=True, exist_ok=True)
        sink: Any = (Path(config.log_dir) / f"worker-{setup.worker}.jsonl").open("a", buffering=1)
    else:
        sink = open(os.devnull, "w")  # noqa: SIM115 - open for the environment's lifetime
    handler.logger.registered_handler.setStream(sink)  # type: ignore[attr-defined]

    return _invoker(handler.handler, sink, faults.journal)


def _invoker(handler: Handler, sink: Any, journal: Journal) -> Handler:
    """The handler, its printed logs and metrics to ``sink``; LabelsDiscarded journaled (a measure)."""
    import contextlib
    import io

    def invoke(event: dict[str, Any], context: Any) -> Any:
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):  # EMF metrics are printed
                return handler(event, context)
        finally:
            sink.write(printed.getvalue())
            discarded = _emitted(printed.getvalue(), "LabelsDiscarded")
            if discarded:
                journal.write("labels-discarded", count=discarded)

    return invoke


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


Notification = tuple[str, "Version | None"]  # a message body and the object version it announces


def _sent(notifications: list[Notification]) -> None:
    now = time.time()
    for _body, version in notifications:
        if version is not None and not version.sent_at:
            version.sent_at = now  # its first copy: the upload, as far as latency goes


def _send_all(sqs: Any, queue_url: str, notifications: list[Notification]) -> None:
    for start in range(0, len(notifications), 10):
        chunk = notifications[start : start + 10]
        _sent(chunk)
        sqs.send_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": body} for i, (body, _) in enumerate(chunk)]
        )


def _send_over_time(sqs: Any, queue_url: str, notifications: list[Notification], rate: float, burst: int = 1) -> None:
    """Notifications at ``rate`` per second on average, ``burst`` at a time (uploads arriving), on schedule."""
    started = time.monotonic()
    for start in range(0, len(notifications), burst):
        time.sleep(max(0.0, started + start / rate - time.monotonic()))
        chunk = notifications[start : start + burst]
        for offset in range(0, len(chunk), 10):
            _sent(chunk[offset : offset + 10])
            sqs.send_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "MessageBody": body} for i, (body, _) in enumerate(chunk[offset : offset + 10])
                ],
            )


def _reupload(
    version: Version,
    rng: random.Random,
    *,
    images: list[bytes],
    upload: Any,
    s3: Any,
    bucket: str,
    sequencers: Sequencers,
    positions: list[list[str]],
    reuploads: list[Reupload],
) -> Reupload:
    """Upload X, then Y or delete, then X again under ``version``'s key; queue the three notifications
    in one of the six orders (each in turn), one among each block of ``positions``."""
    version.unversioned = True
    x_bytes = rng.choice(images)
    first = upload(version, x_bytes)
    middle: Version | None = None
    deletion_sequencer = ""
    if rng.random() < 0.5:
        middle = upload(Version(version.key, "good", unversioned=True), rng.choice([i for i in images if i != x_bytes]))
        middle.superseded = True
    else:
        s3.delete_object(Bucket=bucket, Key=version.key)
        deletion_sequencer = sequencers.next()
    again = upload(Version(version.key, "good", unversioned=True), x_bytes)
    group = Reupload(first, middle, again, deletion_sequencer)
    bodies = [
        json.dumps({"Records": [first.record(bucket)]}),
        json.dumps({"Records": [middle.record(bucket) if middle is not None else group.deletion_record(bucket)]}),
        json.dumps({"Records": [again.record(bucket)]}),
    ]
    # Every order in turn: the n-th group of its kind takes the n-th of the six permutations.
    done = sum(1 for other in reuploads if other.kind == group.kind)
    order = list(itertools.permutations(bodies))[done % 6]
    for at, body in zip(positions, order, strict=True):
        at.append(body)
    reuploads.append(group)
    return group


def _notifications(
    config: SoakConfig, rng: random.Random, s3: Any, bucket: str, reuploads: list[Reupload]
) -> tuple[list[Notification], list[Version]]:
    """Upload every object version and write the notifications S3 would send (versionId, sequencer).

    moto's own notifications carry neither, so the driver sends S3-shaped ones
    itself, and can duplicate and reorder them.
    """
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
    sequencers = Sequencers(rng, variable=config.variable_sequencers, shorter_rate=config.shorter_sequencer_rate)

    def upload(version: Version, body: bytes, after: str | None = None) -> Version:
        put = s3.put_object(Bucket=bucket, Key=version.key, Body=body)
        version.version_id, version.etag = put["VersionId"], put["ETag"].strip('"')
        version.size = 15 * 1024 * 1024 + 1 if version.kind == "oversized" else len(body)
        version.sequencer = sequencers.next(after)
        version.extra_labels = many_labels(config, version.key, version.version_id)
        if version.kind == "deleted":
            s3.delete_object(Bucket=bucket, Key=version.key, VersionId=version.version_id)
        return version

    sent: list[Version] = []
    late: list[Version] = []
    all_versions: list[Version] = []
    positions: list[list[str]] = [[], [], []]  # the re-upload groups' messages: first, second, last
    for version in _plan(config, rng):
        if version.kind == "good" and rng.random() < config.reupload_rate:
            _reupload(
                version,
                rng,
                images=images,
                upload=upload,
                s3=s3,
                bucket=bucket,
                sequencers=sequencers,
                positions=positions,
                reuploads=reuploads,
            )
            continue
        older = upload(version, rng.choice(bodies[version.kind]))
        all_versions.append(version)
        draw = rng.random()
        if version.kind == "good" and draw < config.out_of_order_rate + config.newer_version_rate:
            newer = upload(Version(version.key, "good"), rng.choice(images), after=version.sequencer)
            if s3_order(newer.sequencer) <= s3_order(version.sequencer):
                raise AssertionError("sequencers must increase under S3's rule")
            version.superseded = True
            all_versions.append(newer)
            if draw < config.out_of_order_rate:  # the older notification arrives after the newer one
                sent.append(newer)
                late.append(older)
            else:  # in order, in different batches
                sent.append(older)
                late.append(newer)
        else:
            sent.append(older)
        if rng.random() < config.duplicate_rate:
            late.append(sent[-1])
    messages: list[Notification] = []
    for version in [*sent, *late]:
        version.copies += 1
        messages.append((json.dumps({"Records": [version.record(bucket)]}), version))
    # Each re-upload group's three notifications: one among the first sent, one among the late, one last.
    for bodies_at in positions:
        messages.extend((body, None) for body in bodies_at)
    invalid = ["not json (injected)", json.dumps({"Records": [{"eventSource": "aws:sns"}]}), json.dumps({"x": True})]
    messages.extend((body, None) for body in invalid[: config.invalid_messages])
    return messages, all_versions


def _drive(
    config: SoakConfig,
    resources: Any,
    endpoint: str,
    journal: Journal,
    *,
    batch_size: int,
    model_url: str,
    arriving: list[Notification],
) -> list[dict[str, Any]]:
    """Pollers (threads here) invoking execution environments (processes) until the queue is drained
    (and every notification in ``arriving`` was sent, at ``config.arrival_rate``)."""
    environments = [
        ProcessEnvironment(
            _environment,
            start_method="forkserver",
            preload=PRELOADED_MODULES,
            args=(
                WorkerSetup(
                    config=config,
                    worker=w,
                    endpoint=endpoint,
                    table=resources.table_name,
                    bus=resources.event_bus_name,
                    journal_path=journal.path,
                    model_url=model_url,
                ),
            ),
        )
        for w in range(config.concurrency)
    ]
    pollers = [
        EventSourceMappingPoller(
            boto3.client("sqs"),
            resources.queue_url,
            resources.queue_arn,
            environment,
            batch_size=batch_size,
            retry_delay_seconds=None if config.retry_delay_seconds < 0 else config.retry_delay_seconds,
            function_timeout_seconds=config.function_timeout_seconds,
            clock_rate=1 / config.time_scale,
        )
        for environment in environments
    ]
    undrained: list[str] = []
    try:
        with ThreadPoolExecutor(len(pollers) + 1) as threads:
            sending = threads.submit(
                _send_over_time,
                boto3.client("sqs"),
                resources.queue_url,
                arriving,
                config.arrival_rate or 1.0,
                config.arrival_burst,
            )
            runs = [
                threads.submit(
                    poller.run_until_idle,
                    max_seconds=config.max_seconds,
                    pause_seconds=0.2,
                    more_coming=lambda: not sending.done(),
                )
                for poller in pollers
            ]
            for each in runs:
                try:
                    each.result()
                except TimeoutError as error:  # accounted for below: whatever is left is not done
                    undrained.append(str(error))
            sending.result()  # a failed send is the driver's error, not a lost image
    finally:
        for environment in environments:
            environment.close()
    return [
        {
            **dataclasses.asdict(poller.stats),
            "starts": environment.starts,
            "cpu_seconds": environment.cpu_seconds,
            "undrained": bool(undrained),
        }
        for poller, environment in zip(pollers, environments, strict=True)
    ]


def run(config: SoakConfig) -> Accounting:
    rng = random.Random(config.seed)
    facts = default_facts()
    account = Accounting()
    account.visibility_timeout = config.visibility_timeout_seconds or max(
        1, math.ceil(facts.queue_visibility_timeout * config.time_scale)
    )
    with (
        moto_server_process() as endpoint,
        model_server_process(config.model_latency_seconds, config.model_tps_cap) as model_url,
        tempfile.TemporaryDirectory(prefix="autolabel-soak-") as scratch,
    ):
        s3, sqs = boto3.client("s3"), boto3.client("sqs")
        resources = deploy(facts, visibility_timeout=account.visibility_timeout)
        s3.put_bucket_notification_configuration(Bucket=resources.bucket, NotificationConfiguration={})
        drain_queue(sqs, resources.queue_url)
        reuploads: list[Reupload] = []
        messages, versions = _notifications(config, rng, s3, resources.bucket, reuploads)
        arriving = messages if config.arrival_rate > 0 else []
        if not arriving:
            _send_all(sqs, resources.queue_url, messages)
        journal = Journal(os.path.join(scratch, "journal.jsonl"))
        started = time.monotonic()
        account.worker_stats = _drive(
            config,
            resources,
            endpoint,
            journal,
            batch_size=config.batch_size or facts.batch_size,
            model_url=model_url,
            arriving=arriving,
        )
        account.elapsed = time.monotonic() - started
        if any(stats["undrained"] for stats in account.worker_stats):
            account.problems.append(f"ingest queue not drained within {config.max_seconds:g} s (LOST below if so)")
        _account(account, resources, versions, config, journal.read(), reuploads=reuploads)
    if config.outage_days > 0:
        _outage_phase(config, account)
    return account


class DeadLetters(NamedTuple):
    versions: Counter[tuple[str, str]]  # object versions whose notification is in the DLQ ("": unversioned)
    sequencers: set[tuple[str, str]]  # (key, sequencer) of those notifications: which upload of a key
    invalid: int  # messages that are no S3 notification


def _dead_letters(sqs: Any, dlq_url: str) -> DeadLetters:
    from urllib.parse import unquote_plus

    dead = DeadLetters(Counter(), set(), 0)
    invalid = 0
    for message in drain_queue(sqs, dlq_url):
        try:
            for record in json.loads(message["Body"])["Records"]:
                obj = record["s3"]["object"]
                key = unquote_plus(obj["key"])
                dead.versions[(key, obj.get("versionId", ""))] += 1
                dead.sequencers.add((key, obj.get("sequencer", "")))
        except (ValueError, KeyError, TypeError):
            invalid += 1
    return dead._replace(invalid=invalid)


def _classify(
    version: Version,
    current: dict[str, Any] | None,
    *,
    mine: bool,
    events: list[dict[str, Any]],
    in_dlq: int,
    excused: bool,
) -> tuple[str, str | None]:
    """(terminal state, problem or None) of one object version that was not superseded.

    ``excused``: its PutEvents outcome was unknown to the labeler at least once,
    so more than one announcement (same resultId) is allowed.
    """
    if version.kind == "nonimage":
        if current is not None or events:
            return "NOT SKIPPED", f"{version.key}: non-image was not skipped"
        # Its invocations died or timed out every time (whole batches are lost then).
        return ("DLQ (retries exhausted)", None) if in_dlq else ("skipped", None)
    detail_types = sorted({e["detail-type"] for e in events})
    # A copy of a duplicate delivery may exhaust its receives after the other copy was announced.
    spare_copy_in_dlq = bool(events) and 0 < in_dlq < version.copies
    lone_copy_in_dlq = bool(in_dlq and events) and not (spare_copy_in_dlq or excused)
    if (len(events) > 1 and not excused) or in_dlq > version.copies or lone_copy_in_dlq:
        return "DUPLICATED", f"{version.key}: DUPLICATED ({len(events)} events, {in_dlq} in the DLQ)"
    status = current["status"] if mine and current is not None else None
    if status == "LABELED" and detail_types == ["Custom Labels Detected"]:
        outcome = "LABELED"
    elif status == "FAILED" and detail_types == ["Custom Labels Failed"]:
        outcome = "FAILED"
    elif in_dlq and not events:
        return "DLQ (retries exhausted)", None
    else:
        return "LOST", f"{version.key}: LOST ({status or 'no row'}, {len(events)} events, {in_dlq} in the DLQ)"
    expected = "LABELED" if version.kind == "good" else "FAILED"
    code = current["error"]["code"] if outcome == "FAILED" and current is not None else None
    if outcome != expected or (code is not None and code != BAD_KINDS[version.kind]):
        return "WRONG CLASS", f"{version.key}: {outcome} {code or ''}, expected {expected}"
    if len(events) > 1:
        return f"{outcome} (announced {len(events)}x)", None
    if spare_copy_in_dlq:
        return f"{outcome} (+ duplicate delivery in DLQ)", None
    return outcome, None


def _read_journal(account: Accounting, journal: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """Fault counters; (resultIds with a lost PutEvents response, resultIds whose worker died after PutEvents)."""
    lost_response: set[str] = set()
    died_after: set[str] = set()
    for record in journal:
        kind = record["kind"]
        if kind == "kill":
            account.faults[f"worker killed {record['point']}"] += 1
            if record["point"] in ("after-put-events", "before-mark-published"):
                died_after.update(record["resultIds"])
        elif kind == "drop":
            clean = "clean" if record["drop"] in CLEAN_DROPS else "ambiguous"
            account.faults[f"{record['service']} {clean} drop ({record['drop']})"] += 1
        elif kind == "ambiguous-put-events":
            lost_response.update(record["resultIds"])
            account.faults["PutEvents calls with a lost response"] += 1
        elif kind == "stall":
            account.faults["model calls stalled to the read timeout"] += 1
        elif kind == "visibility-change":
            account.visibility_changes.extend(record["seconds"])
        elif kind == "model-call":
            account.faults["DetectCustomLabels calls (incl. botocore retries)"] += 1
        elif kind == "labels-discarded":  # measured, not injected: a concurrent delivery stored it first
            account.labels_discarded += int(record["count"])
    account.ambiguous_put_events = len(lost_response)
    account.died_after_put_events = len(died_after)
    return lost_response, died_after


def _check_label_index(
    account: Accounting,
    config: SoakConfig,
    table: str,
    currents: dict[str, dict[str, Any] | None],
    ddb: Any,
    *,
    in_dlq: set[str],
) -> None:
    """find_by_label must agree with every current result, for the label names checked.

    Checked: the emulated model's palette labels (every good image has one) and
    ``index_check_labels`` of the synthetic ``part-NNN`` labels (a seeded
    sample; each query costs a scan of the table in moto). For each object and
    name: listed iff its current result is LABELED with that label, with that
    label's best confidence and the current versionId; nothing listed for an
    object without a current result.

    A record that ended in the DLQ (``in_dlq``: keys) is not finished: its
    result may be stored (current) while the retry that would have put its
    entries and announced it never came (docs/behaviour.md#label-index-entries: "once
    a record is finished"). For such a result, never announced, missing
    entries are allowed (a redrive puts them before announcing); stale or
    wrong ones are not.
    """
    from labeler.domain.label_result import best_confidences
    from labeler.queries import find_by_label
    from local.fakes.fake_model import PALETTE

    parts = [f"part-{n:03d}" for n in range(400)]
    if 0 <= config.index_check_labels < len(parts):
        parts = random.Random(config.seed).sample(parts, config.index_check_labels)
    names = {*PALETTE, *parts}
    indexed: dict[str, dict[str, dict[str, Any]]] = {}
    for name in sorted(names):
        listed = find_by_label(table, name, client=ddb)
        for entry in listed:
            if entry["projectVersionArn"] == ARN:
                indexed.setdefault(entry["key"], {})[name] = entry
        account.index_leftovers += _entries_stored(ddb, table, name) - len(listed)
    account.index_names_checked = len(names)
    for key, current in currents.items():
        labels = best_confidences(current["customLabels"]) if current and current["status"] == "LABELED" else {}
        expected = {name: confidence for name, confidence in labels.items() if name in names}
        found = indexed.pop(key, {})
        account.index_checked += 1
        missing, stale = set(expected) - set(found), set(found) - set(expected)
        if missing and key in in_dlq and current is not None and not current.get("eventPublished", False):
            account.index_unfinished += 1
            missing = set()
        wrong = [
            n
            for n in set(expected) & set(found)
            if abs(found[n]["confidence"] - expected[n]) > 1e-6
            or (current is not None and found[n].get("versionId") != current.get("versionId"))
        ]
        if missing or stale or wrong:
            account.problems.append(
                f"{key}: find_by_label disagrees with the current result ({len(missing)} labels missing, "
                f"{len(stale)} stale, {len(wrong)} with another confidence/version; "
                f"{len(labels)} labels, {len(expected)} of them checked)"
            )
    for key in indexed:
        account.problems.append(f"{key}: find_by_label lists an object without a current result")


def _entries_stored(ddb: Any, table: str, name: str) -> int:
    """How many label-index entries the label's partition holds, current or not."""
    from shared import table_layout as layout

    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "#pk = :pk",
        "ExpressionAttributeNames": {"#pk": layout.PARTITION_KEY},
        "ExpressionAttributeValues": {":pk": {"S": layout.label_partition(name)}},
        "Select": "COUNT",
    }
    count = 0
    while True:
        page = ddb.query(**request)
        count += int(page.get("Count", 0))
        if "LastEvaluatedKey" not in page:
            return count
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _consumed(sqs: Any, consumer_queue_url: str) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """The events the example consumer received; resultId -> when its first event reached that queue."""
    deliveries = drain_queue(sqs, consumer_queue_url)
    events = [json.loads(message["Body"]) for message in deliveries]
    announced_at: dict[str, float] = {}
    for message, event in zip(deliveries, events, strict=True):
        at = int(message["Attributes"]["SentTimestamp"]) / 1000
        rid = event["detail"]["resultId"]
        announced_at[rid] = min(at, announced_at.get(rid, at))
    return events, announced_at


def _latencies(account: Accounting, versions: list[Version], announced_at: dict[str, float], bucket: str) -> None:
    """Upload -> first event of every current version that should be announced (never announced: counted apart)."""
    for version in versions:
        if not version.superseded and version.kind != "nonimage":
            announced = announced_at.get(version.result_id(bucket))
            if announced is None:
                account.unannounced += 1
            else:
                account.latencies.append(announced - version.sent_at)


def _by_result(
    account: Accounting, events: list[dict[str, Any]], versions: list[Version], reuploads: list[Reupload], bucket: str
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """The Detected/Failed events by resultId, and the Removed events by the removed resultId; an event of
    an object version the driver never uploaded is a problem."""
    by_result: dict[str, list[dict[str, Any]]] = {}
    removed: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        announced = removed if event["detail-type"] == "Custom Labels Removed" else by_result
        announced.setdefault(event["detail"]["resultId"], []).append(event)
    known = {version.result_id(bucket) for version in versions}
    for group in reuploads:
        known.update(v.result_id(bucket) for v in (group.first, group.middle) if v is not None)
    for name, announced in (("event(s)", by_result), ("Removed event(s)", removed)):
        for result_id in set(announced) - known:
            account.problems.append(f"{len(announced[result_id])} {name} with an unknown resultId {result_id}")
    return by_result, removed


def _account(
    account: Accounting,
    resources: Any,
    versions: list[Version],
    config: SoakConfig,
    journal: list[dict[str, Any]],
    *,
    reuploads: list[Reupload],
) -> None:
    from labeler.queries import get_result

    sqs, ddb = boto3.client("sqs"), boto3.client("dynamodb")
    lost_response, died_after = _read_journal(account, journal)
    events, announced_at = _consumed(sqs, resources.consumer_queue_url)
    account.events = len(events)
    _latencies(account, versions, announced_at, resources.bucket)
    stamps = sorted(event["detail"]["processedAt"] for event in events if "processedAt" in event["detail"])
    if len(stamps) > 1:
        from datetime import datetime

        first, last = (datetime.fromisoformat(stamp.replace("Z", "+00:00")) for stamp in (stamps[0], stamps[-1]))
        account.processing_seconds = (last - first).total_seconds()
    by_result, removed = _by_result(account, events, versions, reuploads, resources.bucket)
    account.removed_events = sum(len(each) for each in removed.values())
    dead = _dead_letters(sqs, resources.dead_letter_queue_url)
    dead_versions, invalid_in_dlq = dead.versions, dead.invalid
    account.dlq = sum(dead_versions.values()) + invalid_in_dlq
    account.rows[("invalid message", "DLQ")] = invalid_in_dlq
    if invalid_in_dlq != config.invalid_messages:
        account.problems.append(f"{config.invalid_messages} invalid messages sent, {invalid_in_dlq} in the DLQ")
    currents: dict[str, dict[str, Any] | None] = {}
    outcomes: dict[str, str] = {}  # key -> terminal state of its newest version
    older: list[tuple[Version, bool]] = []
    for version in versions:
        current = get_result(resources.table_name, resources.bucket, version.key, ARN, client=ddb)
        currents[version.key] = current
        result_id = version.result_id(resources.bucket)
        mine = current is not None and current["resultId"] == result_id
        announcements = by_result.get(result_id, [])
        if len(announcements) > 1:
            cause = (
                "lost PutEvents response"
                if result_id in lost_response
                else "worker died after PutEvents accepted"
                if result_id in died_after
                else "UNEXPLAINED"
            )
            account.duplicates[cause] += len(announcements) - 1
        if version.superseded:
            older.append((version, mine))
            continue
        outcome, problem = _classify(
            version,
            current,
            mine=mine,
            events=announcements,
            in_dlq=dead_versions.get((version.key, version.version_id), 0),
            excused=result_id in lost_response or result_id in died_after,
        )
        account.rows[(version.kind if not version.extra_labels else "good (100-300 labels)", outcome)] += 1
        outcomes[version.key] = outcome
        if problem:
            account.problems.append(problem)
        if mine and current is not None and current["status"] == "LABELED" and version.extra_labels:
            account.many_label_results += 1
            if len(current["customLabels"]) != current["labelCount"] or current["labelCount"] < version.extra_labels:
                account.problems.append(
                    f"{version.key}: {len(current['customLabels'])} labels stored, labelCount "
                    f"{current['labelCount']}, the model returned at least {version.extra_labels}"
                )
    for version, mine in older:
        # The older result may stay current only while the newer version's message is in the DLQ.
        newer_dead = outcomes.get(version.key, "").startswith("DLQ")
        state = "current: the newer version is in the DLQ" if mine and newer_dead else "replaced by the newer version"
        account.rows[(f"{version.kind} (superseded)", state)] += 1
        if mine and not newer_dead:
            account.problems.append(
                f"{version.key} {version.version_id} (sequencer {version.sequencer}): an older version is current"
            )
    for group in reuploads:
        currents[group.first.key], outcomes[group.first.key] = _account_reupload(
            account,
            group,
            resources=resources,
            ddb=ddb,
            by_result=by_result,
            removed=removed,
            dead=dead,
            excused=lost_response | died_after,
        )
    unfinished = {key for key, outcome in outcomes.items() if outcome.startswith("DLQ")}
    _check_label_index(account, config, resources.table_name, currents, ddb, in_dlq=unfinished)


def _account_reupload(
    account: Accounting,
    group: Reupload,
    *,
    resources: Any,
    ddb: Any,
    by_result: dict[str, list[dict[str, Any]]],
    removed: dict[str, list[dict[str, Any]]],
    dead: DeadLetters,
    excused: set[str],
) -> tuple[dict[str, Any] | None, str]:
    """One re-upload group: S3 holds X, so the current result must be X's, labeled, not deleted.

    X may be announced once per upload of X (twice when Y, or the deletion, was
    processed between them), Y at most once, the deletion at most once.
    X stored but never announced is unfinished, not lost, while the notification of X's second
    upload is in the DLQ: redriven, it finds X stored and announces it (behaviour.md#delivery-guarantee).
    Had that notification finished, X would have been announced: otherwise X is lost.
    Returns the current result (for the label-index check) and the outcome.
    """
    from labeler.queries import get_result

    key, bucket = group.first.key, resources.bucket
    current = get_result(resources.table_name, bucket, key, ARN, client=ddb)
    x_id = group.first.result_id(bucket)
    y_id = group.middle.result_id(bucket) if group.middle is not None else None
    x_events = by_result.get(x_id, [])
    too_many = (
        len(x_events) > 2 or (y_id is not None and len(by_result.get(y_id, [])) > 1) or len(removed.get(x_id, [])) > 1
    )
    x_current = current is not None and current["resultId"] == x_id and "deletedAt" not in current
    if x_current and current is not None and current["status"] == "LABELED":
        outcome = "X current" if not too_many or x_id in excused or y_id in excused else "DUPLICATED"
        if not x_events:
            again_dead = (key, group.again.sequencer) in dead.sequencers
            outcome = "DLQ (retries exhausted): X stored" if again_dead else "LOST: X never announced"
    elif dead.versions.get((key, ""), 0):
        outcome = "DLQ (retries exhausted)"
    else:
        older = "Y" if current is not None and current["resultId"] == y_id else (current or {}).get("status", "no row")
        outcome = f"WRONG: {older} current"
    account.rows[(group.kind, outcome)] += 1
    if outcome.startswith(("WRONG", "LOST", "DUPLICATED")):
        account.problems.append(f"{key}: {group.kind}: {outcome} (S3 holds X, sequencer {group.again.sequencer})")
    return current, outcome


class _ManagerDied(BaseException):
    """The manager's process ended here (not an Exception: nothing in it may catch this)."""


def _outage_phase(config: SoakConfig, account: Accounting) -> None:
    """A model outage longer than the grace period, the real manager failing on the way.

    Runs local/outage_sim.py's scenario (moto in-process with SQS on a scaled
    clock: retention, grace and outage divided by ``outage_scale``; the manager
    runs once a simulated minute, each run one Lambda invocation) with manager
    faults: a share of its state-table writes refused (the run fails, the next
    one retries), and its process dying right after StartProjectVersion,
    before it saved that. Every image must end labeled or in the DLQ (none
    expired), and all must be labeled after the operator's redrive.
    """
    from unittest import mock

    from local import outage_sim
    from manager.handler import Manager
    from manager.handler import logger as manager_logger

    rng = random.Random(config.seed)
    counts: Counter[str] = Counter()
    from_clients = Manager.from_clients.__func__  # type: ignore[attr-defined]
    run_once = Manager.run_once

    def faulty_from_clients(cls: type[Manager], manager_config: Any, **clients: Any) -> Manager:
        def refuse_write(kwargs: dict[str, Any], call: Any) -> Any:
            if rng.random() < config.manager_state_failure_rate:
                counts["manager state writes refused"] += 1
                raise client_error("InternalServerError", "injected", status=500, operation="UpdateItem")
            return call(**kwargs)

        model = clients["rekognition"]
        start = model.start_project_version

        def start_then_die(**request: Any) -> Any:
            answer = start(**request)
            counts["model starts"] += 1
            if rng.random() < config.manager_death_after_start_rate:
                counts["manager died after StartProjectVersion, before saving"] += 1
                raise _ManagerDied
            return answer

        model.start_project_version = start_then_die
        clients["dynamodb"] = FaultyClient(clients["dynamodb"], {"update_item": refuse_write})
        return from_clients(cls, manager_config, **clients)

    def one_invocation(self: Manager, owner: str | None = None) -> Any:
        counts["manager runs"] += 1
        try:
            return run_once(self, owner)
        except _ManagerDied:
            return None  # the next scheduled run is a new execution environment
        except Exception:
            counts["manager runs failed"] += 1
            return None

    manager_logger.setLevel("CRITICAL")
    with (
        mock.patch.object(Manager, "from_clients", classmethod(faulty_from_clients)),
        mock.patch.object(Manager, "run_once", one_invocation),
    ):
        result = outage_sim.simulate_outage(
            outage_days=config.outage_days,
            grace_hours=config.outage_grace_hours,
            retention_seconds=round(config.outage_retention_days * 86400),
            scale=config.outage_scale,
        )
    account.outage = {
        "uploaded": result.uploaded,
        "labeled": len(result.labeled),
        "in the DLQ at the repair": len(result.dead_lettered),
        "moved to the DLQ by the manager": result.moved_by_manager,
        "expired (lost)": result.lost,
        "longest wait before the DLQ (h, real-world)": round(
            result.longest_wait_before_dlq_minutes * config.outage_scale / 60, 1
        ),
        **counts,
    }
    if result.lost:
        account.problems.append(f"outage phase: {result.lost} image(s) expired from the ingest queue")
    if len(result.labeled) != result.uploaded:
        account.problems.append(
            f"outage phase: {result.uploaded - len(result.labeled)} image(s) not labeled after the redrive"
        )
    if config.outage_days * 24 > config.outage_grace_hours and not result.moved_by_manager:
        account.problems.append("outage phase: the outage outlasted the grace period but nothing was dead-lettered")


PROBLEM_KINDS = {  # marker in a problem's text -> its kind
    "an older version is current": "an older version is current (sequencer order)",
    "LOST (": "lost",
    "DUPLICATED": "duplicated without an unknown PutEvents outcome",
    "find_by_label": "label index disagrees with the current result",
    "labels stored": "labels dropped from a result",
    "unknown resultId": "events with an unknown resultId",
    ", expected ": "wrongly classified",
    "non-image": "non-image not skipped",
    "outage phase": "outage phase",
}


def problem_kinds(problems: list[str]) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for problem in problems:
        kinds[next((kind for marker, kind in PROBLEM_KINDS.items() if marker in problem), "other")] += 1
    return kinds


def percentile(values: list[float], pct: float, *, missing: int = 0) -> float:
    """The ``pct`` percentile (nearest rank) of ``values`` plus ``missing`` values known only to be
    larger than all of them (never seen: infinite)."""
    ranked = sorted(values) + [math.inf] * missing
    if not ranked:
        return math.nan
    return ranked[max(0, math.ceil(pct / 100 * len(ranked)) - 1)]


def print_accounting(config: SoakConfig, account: Accounting) -> None:
    stats = account.worker_stats
    print(
        f"Soak: {config.images} images, seed {config.seed}, {config.concurrency} workers, "
        f"{account.elapsed:.1f} s; {account.events} events, {account.dlq} DLQ messages"
    )
    print(
        f"Clock x{config.time_scale:.3g}: function timeout {config.function_timeout_seconds:.1f} s, "
        f"queue visibility timeout {account.visibility_timeout} s"
    )
    print(
        f"Workers: {sum(s['invocations'] for s in stats)} invocations, {sum(s['messages'] for s in stats)} messages "
        f"received, {sum(s['item_failures'] for s in stats)} retried, {sum(s['timeouts'] for s in stats)} timed out, "
        f"{sum(s['crashes'] for s in stats)} died, {sum(s['starts'] for s in stats)} execution environments started; "
        f"{sum(s['busy_seconds'] for s in stats):.0f} s in invocations, slowest "
        f"{max((s['slowest_seconds'] for s in stats), default=0):.1f} s; labeler CPU "
        f"{1000 * account.labeler_cpu_seconds / max(1, config.images):.1f} ms per image"
    )
    if account.latencies:
        p50, p99 = percentile(account.latencies, 50), percentile(account.latencies, 99)
        print(
            f"Upload -> event: p50 {p50:.1f} s, p99 {p99:.1f} s, max {max(account.latencies):.1f} s "
            f"({len(account.latencies)} versions; {account.unannounced} never announced); "
            f"{len(account.visibility_changes)} visibility changes by the handler"
        )
    width = max(len(kind) for kind, _ in account.rows) + 2
    print(f"\n{'object kind':<{width}}{'terminal state':<44}count")
    for (kind, outcome), count in sorted(account.rows.items()):
        print(f"{kind:<{width}}{outcome:<44}{count}")
    print("\nInjected faults:")
    for fault, count in sorted(account.faults.items()):
        print(f"  {fault:<62}{count}")
    print(f"  {'Lambda timeouts (worker killed at the deadline)':<62}{sum(s['timeouts'] for s in stats)}")
    print(
        f"\nAnnouncements: {account.ambiguous_put_events} resultIds with a lost PutEvents response, "
        f"{account.died_after_put_events} whose worker died after PutEvents accepted; duplicates: "
        + (", ".join(f"{n} ({cause})" for cause, n in sorted(account.duplicates.items())) or "none")
    )
    print(
        f"Label index: {account.index_checked} objects checked against find_by_label for "
        f"{account.index_names_checked} label names; "
        f"{account.many_label_results} current results with 100-300 labels; "
        f"{account.index_leftovers} entries of replaced writes left by faults (never returned); "
        f"{account.index_unfinished} stored, unannounced results in the DLQ with entries still to put"
    )
    print(
        f"Re-uploads of the same bytes: {sum(n for (k, _), n in account.rows.items() if k.startswith('re-upload'))} "
        f"keys; {account.removed_events} Custom Labels Removed events"
    )
    print(
        f"Model calls wasted on concurrent deliveries of one version (LabelsDiscarded): {account.labels_discarded} "
        f"of {account.faults['DetectCustomLabels calls (incl. botocore retries)']} DetectCustomLabels calls"
    )
    if account.outage:
        print(
            f"\nOutage phase: model version unusable {config.outage_days:g} days, "
            f"grace {config.outage_grace_hours:g} h, ingest retention {config.outage_retention_days:g} days "
            f"(clock 1/{config.outage_scale:g}):"
        )
        for name, value in account.outage.items():
            print(f"  {name:<62}{value:g}")
    if account.problems:
        print(f"\nFAILED: {len(account.problems)} problem(s): lost, duplicated or wrongly classified:")
        for kind, count in sorted(problem_kinds(account.problems).items()):
            print(f"  {kind:<62}{count}")
        for problem in account.problems[:30]:
            print(f"  {problem}")
    else:
        print(
            "\nOK: every object version in exactly one terminal state; nothing lost; every duplicate "
            "announcement explained by an unknown PutEvents outcome; label index consistent."
        )


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = SoakConfig()
    for f in dataclasses.fields(SoakConfig):
        default = getattr(defaults, f.name)
        kind = _parse_bool if isinstance(default, bool) else type(default)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=default, help=f"default {default}")
    args = parser.parse_args(argv)
    config = SoakConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SoakConfig)})
    account = run(config)
    print_accounting(config, account)
    return 0 if account.ok else 1


if __name__ == "__main__":
    sys.exit(main())
