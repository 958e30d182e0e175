"""Benchmarks: figures printed, never asserted in tests (docs/performance.md).

    make benchmark                                # all (= .venv/bin/python -m local.benchmark)
    .venv/bin/python -m local.benchmark p1 p3     # some
    .venv/bin/python -m local.benchmark p4 --curve 250,1000,4000,10000
    .venv/bin/python -m local.benchmark --help

Each figure is printed with its target; one that misses it says MISSED. A
warning is printed first when the machine is too busy for the figures to mean
anything (load average above the core count, or CPU steal). The peer design
(local/peer.py: one invocation per S3 event, put_item + put_events per image)
is measured in the same run, and the ratios printed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from labeler import handler
from labeler.adapters.clients import AwsClients
from labeler.config import LabelerConfig
from labeler.wiring import build_pipeline
from local.fakes.canned_models import CannedLabelsModel, FixedLatencyModel
from local.fakes.faults import FaultyClient
from local.moto_process import moto_server_process
from local.peer import PEER_TABLE_KEY, PeerClients, peer_handler, s3_event
from local.poller import FakeLambdaContext
from local.samples import make_image
from local.stack_template import PLACEHOLDER_PROJECT_VERSION_ARN, default_facts
from local.wiring import deploy
from local.write_units import WriteMeter

ROOT = Path(__file__).resolve().parent.parent
MODEL_LATENCY_SECONDS = 0.2
# Targets (docs/performance.md). P1: a batch of 10 costs at most this many single images' time.
BATCH_RATIO_TARGET = 1.5
# P2: AWS calls per image besides DetectCustomLabels.
CALLS_PER_IMAGE_TARGET = 1.5
# P3: the handler's cold start may cost at most this much more than boto3 and its clients alone.
COLD_START_RATIO_TARGET = 1.2
# P4: share of the model's capped rate reached, in percent.
THROUGHPUT_PERCENT_TARGET = 90.0
# A share of CPU time stolen by the hypervisor above this makes timings meaningless.
STEAL_WARNING_SHARE = 0.05
# Scaling curve: the labeler's CPU per image may vary at most this much (%) between sizes.
CPU_FLATNESS_PERCENT_TARGET = 10.0
# P6: upload -> event. Idle: p50 at most the model's latency plus this; at the cap: p99 under this.
IDLE_P50_OVER_MODEL_SECONDS = 1.0
CAP_P99_SECONDS = 60.0
# P7: DynamoDB write units per image at most the labels plus this.
WRITE_UNITS_OVER_LABELS = 3
# P4 and P6: the model's capacity and latency.
MODEL_CAP_TPS = 20.0
MODEL_LATENCY = 0.1
DEFAULT_CURVE = (250, 1000)  # image counts of the scaling curve in `make benchmark` (P4 is the 1,000 point)


def target(value: float, limit: float, *, at_most: bool, unit: str = "") -> str:
    """``target <= 1.5`` / ``target >= 90%``, followed by ``MISSED`` when ``value`` does not meet it."""
    met = value <= limit if at_most else value >= limit
    return f"target {'<=' if at_most else '>='} {limit:g}{unit}{'' if met else ' MISSED'}"


def _cpu_times() -> tuple[int, int] | None:
    """(total, steal) jiffies from /proc/stat's cpu line; None where there is no /proc (macOS)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if fields[:1] != ["cpu"] or len(fields) < 9:
        return None
    values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(values), values[7]


def busy_warning(load: float | None = None, cores: int | None = None, steal_share: float | None = None) -> str | None:
    """A warning line when the machine is too busy for timings to mean anything, else None.

    Defaults: the 1-minute load average, the usable cores, and the CPU steal over 0.2 s."""
    if load is None:
        with contextlib.suppress(OSError, AttributeError):
            load = os.getloadavg()[0]
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if steal_share is None:
        before = _cpu_times()
        if before is not None:
            time.sleep(0.2)
            after = _cpu_times()
            if after is not None and after[0] > before[0]:
                steal_share = (after[1] - before[1]) / (after[0] - before[0])
    reasons = []
    if load is not None and load > cores:
        reasons.append(f"load average {load:.2f} above the {cores} core(s)")
    if steal_share is not None and steal_share > STEAL_WARNING_SHARE:
        reasons.append(f"{100 * steal_share:.0f}% of CPU time stolen by the hypervisor")
    if not reasons:
        return None
    return f"WARNING: the machine is busy ({'; '.join(reasons)}): timings (P1, P3, P4) are not meaningful"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The handler's JSON logs and EMF go to stdout; keep the figures readable."""
    log_handler = handler.logger.registered_handler
    sink = io.StringIO()
    previous = log_handler.setStream(sink)  # type: ignore[attr-defined]
    try:
        with contextlib.redirect_stdout(sink):
            yield
    finally:
        log_handler.setStream(previous)  # type: ignore[attr-defined]


class Bench:
    """The stack's resources in moto, a handler wired to the fake model, events built by hand."""

    def __init__(self, latency: float = MODEL_LATENCY_SECONDS, prefix: str = "autolabel", model: Any = None) -> None:
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        self.s3 = boto3.client("s3")
        self.facts = default_facts()
        self.resources = deploy(self.facts, prefix=prefix)
        self.model = model or FixedLatencyModel(latency)
        self.raw_dynamodb = boto3.client("dynamodb")
        self.dynamodb = FaultyClient(self.raw_dynamodb)
        self.events = FaultyClient(boto3.client("events"))
        config = LabelerConfig(
            PLACEHOLDER_PROJECT_VERSION_ARN, self.resources.table_name, self.resources.event_bus_name
        )
        handler.use_pipeline(build_pipeline(config, AwsClients(self.model, self.dynamodb, self.events)))
        self.image = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
        self._n = 0
        self.peer_table = f"{prefix}-peer"
        boto3.client("dynamodb").create_table(
            TableName=self.peer_table,
            KeySchema=PEER_TABLE_KEY,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.peer_dynamodb = FaultyClient(boto3.client("dynamodb"))
        self.peer_events = FaultyClient(boto3.client("events"))
        self.peer = PeerClients(self.model, self.peer_dynamodb, self.peer_events)

    def peer_invoke(self, event: dict[str, Any]) -> float:
        """The peer's handler on one event (its records in order); wall time."""
        started = time.perf_counter()
        peer_handler(
            event,
            self.peer,
            table=self.peer_table,
            bus=self.resources.event_bus_name,
            arn=PLACEHOLDER_PROJECT_VERSION_ARN,
        )
        return time.perf_counter() - started

    def peer_concurrently(self, events: list[dict[str, Any]]) -> float:
        """One invocation per event, all at once (the peer's default concurrency); wall time of all."""
        from concurrent.futures import ThreadPoolExecutor

        started = time.perf_counter()
        with ThreadPoolExecutor(len(events)) as pool:
            list(pool.map(self.peer_invoke, events))
        return time.perf_counter() - started

    @staticmethod
    def single_events(batch: dict[str, Any]) -> list[dict[str, Any]]:
        """The S3 events of a batch's records, one per upload, as S3 would invoke the peer."""
        import json

        return [json.loads(record["body"]) for record in batch["Records"]]

    def batch(self, size: int) -> dict[str, Any]:
        import json

        records = []
        for _ in range(size):
            self._n += 1
            key = f"bench/{self._n:06d}.png"
            put = self.s3.put_object(Bucket=self.resources.bucket, Key=key, Body=self.image)
            records.append(
                {
                    "messageId": f"m{self._n}",
                    "body": json.dumps(
                        {
                            "Records": [
                                {
                                    "eventSource": "aws:s3",
                                    "eventName": "ObjectCreated:Put",
                                    "s3": {
                                        "bucket": {"name": self.resources.bucket},
                                        "object": {
                                            "key": key,
                                            "size": len(self.image),
                                            "eTag": put["ETag"].strip('"'),
                                            "versionId": put.get("VersionId"),
                                            "sequencer": f"{self._n:016X}",
                                        },
                                    },
                                }
                            ]
                        }
                    ),
                }
            )
        return {"Records": records}

    def invoke(self, event: dict[str, Any]) -> float:
        started = time.perf_counter()
        with quiet():
            response = handler.handler(event, FakeLambdaContext())
        elapsed = time.perf_counter() - started
        if response["batchItemFailures"]:
            raise RuntimeError(f"benchmark batch had failures: {response}")
        return elapsed


def p1(repeats: int = 5) -> None:
    def measure(size: int, n: int) -> float:
        # A fresh table each time, so every measurement sees the same table size.
        bench = Bench(prefix=f"p1-{size}-{n}")
        bench.invoke(bench.batch(size))  # warm: clients, connections, thread pool
        return bench.invoke(bench.batch(size))

    def measure_peer(n: int) -> tuple[float, float]:
        bench = Bench(prefix=f"p1-peer-{n}")
        warm = Bench.single_events(bench.batch(10))
        bench.peer_concurrently(warm)  # warm: clients, connections
        concurrent = bench.peer_concurrently(Bench.single_events(bench.batch(10)))
        merged = {"Records": [r for e in Bench.single_events(bench.batch(10)) for r in e["Records"]]}
        return concurrent, bench.peer_invoke(merged)

    with moto_server_process():
        one = statistics.median(measure(1, n) for n in range(repeats))
        ten = statistics.median(measure(10, n) for n in range(repeats))
        peer_runs = [measure_peer(n) for n in range(repeats)]
    peer_ten = statistics.median(run[0] for run in peer_runs)
    peer_in_order = statistics.median(run[1] for run in peer_runs)
    print(
        f"P1  one image: {one * 1000:.0f} ms; batch of 10: {ten * 1000:.0f} ms; "
        f"ratio {ten / one:.2f} ({target(ten / one, BATCH_RATIO_TARGET, at_most=True)}; "
        f"model latency {MODEL_LATENCY_SECONDS * 1000:.0f} ms, "
        f"moto server in its own process on loopback, median of {repeats})"
    )
    print(
        f"    peer, same 10 uploads: 10 concurrent invocations (its default concurrency, warm) "
        f"{peer_ten * 1000:.0f} ms (ours takes {ten / peer_ten:.2f}x that); one invocation given all 10 "
        f"records in order {peer_in_order * 1000:.0f} ms (ours takes {ten / peer_in_order:.2f}x that)"
    )


def p2(batches: int = 5) -> None:
    with mock_aws():
        bench = Bench(latency=0.0)
        for _ in range(batches):
            bench.invoke(bench.batch(10))
        images = 10 * batches
        calls = {
            **{f"dynamodb.{k}": v for k, v in bench.dynamodb.calls.items()},
            **{f"events.{k}": v for k, v in bench.events.calls.items()},
        }
        for _ in range(batches):
            for event in Bench.single_events(bench.batch(10)):
                bench.peer_invoke(event)
        peer_calls = {
            **{f"dynamodb.{k}": v for k, v in bench.peer_dynamodb.calls.items()},
            **{f"events.{k}": v for k, v in bench.peer_events.calls.items()},
        }
    total = sum(calls.values())
    peer_total = sum(peer_calls.values())
    print(
        f"P2  {total / images:.2f} AWS calls per image besides DetectCustomLabels "
        f"({target(total / images, CALLS_PER_IMAGE_TARGET, at_most=True)}) "
        f"at batch size 10: {dict(sorted(calls.items()))} for {images} images"
    )
    print(
        f"    peer: {peer_total / images:.2f} per image ({dict(sorted(peer_calls.items()))}); "
        f"ours = {total / peer_total:.2f}x the peer's"
    )


_CLIENTS = "boto3.client('rekognition'); boto3.client('dynamodb'); boto3.client('events')"


def _process_seconds(code: str, asset: Path) -> float:
    """Wall time of a whole fresh interpreter running ``code`` (isolated: no PYTHONPATH, no user site)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "benchmark",
        "AWS_SECRET_ACCESS_KEY": "benchmark",
        "PROJECT_VERSION_ARN": PLACEHOLDER_PROJECT_VERSION_ARN,
        "RESULTS_TABLE_NAME": "results",
        "EVENT_BUS_NAME": "bus",
    }
    started = time.perf_counter()
    subprocess.run([sys.executable, "-I", "-c", code], check=True, env=env, cwd=asset)
    return time.perf_counter() - started


def p3(repeats: int = 9) -> None:
    """Cold start as deployed: the built asset (with its bytecode), handler imported and clients created."""
    from autolabel.cdk.bundling import bundle_functions

    with tempfile.TemporaryDirectory() as tmp:
        asset, source_only = Path(tmp) / "asset", Path(tmp) / "source-only"
        bundle_functions(asset)
        # What a host app on another Python ships: no bytecode, and Lambda's
        # read-only /var/task cannot keep what each cold start compiles.
        bundle_functions(source_only, bytecode=False)
        prefix = f"import sys; sys.path.insert(0, {str(asset)!r}); "
        handler = prefix + "import labeler.handler as h; h.current_pipeline()"
        tracer = handler + "; from aws_lambda_powertools import Tracer; Tracer(service='x')"
        uncompiled = (
            f"import sys; sys.dont_write_bytecode = True; sys.path.insert(0, {str(source_only)!r}); "
            "import labeler.handler as h; h.current_pipeline()"
        )
        floor = "import boto3; " + _CLIENTS
        runs: dict[str, list[float]] = {"floor": [], "handler": [], "tracer": [], "uncompiled": []}
        _process_seconds(handler, asset)  # warm the OS file cache
        _process_seconds(uncompiled, source_only)
        for _ in range(repeats):  # interleaved, so all see the same machine load
            for name, code in (("floor", floor), ("handler", handler), ("tracer", tracer), ("uncompiled", uncompiled)):
                runs[name].append(_process_seconds(code, asset))
    pairs = [h / f for h, f in zip(runs["handler"], runs["floor"], strict=True)]
    b, h, t, u = (statistics.median(runs[name]) for name in ("floor", "handler", "tracer", "uncompiled"))
    ratio = statistics.median(pairs)
    print(
        f"P3  cold start as deployed (whole process, built asset with bytecode, three clients created): "
        f"{h * 1000:.0f} ms vs {b * 1000:.0f} ms for boto3 and the same clients alone; ratio {ratio:.2f} "
        f"({target(ratio, COLD_START_RATIO_TARGET, at_most=True)}; median of {repeats} paired runs). "
        f"A Powertools Tracer would make it {t * 1000:.0f} ms ({t / b:.2f}), so the labeler has none. "
        f"Without the asset's bytecode (synthesized on another Python): {u * 1000:.0f} ms ({u / b:.2f})"
    )


def p5() -> None:
    from autolabel.cdk.bundling import bundle_functions

    with tempfile.TemporaryDirectory() as tmp:
        asset = Path(tmp) / "asset"
        asset.mkdir()
        bundle_functions(asset)
        raw = sum(p.stat().st_size for p in asset.rglob("*") if p.is_file())
        archive = Path(tmp) / "asset.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in asset.rglob("*"):
                zf.write(path, path.relative_to(asset))
        zipped = archive.stat().st_size
    with mock_aws():
        bench = Bench(latency=0.0)
        bench.invoke(bench.batch(10))  # warm
        event = bench.batch(10)
        tracemalloc.start()
        bench.invoke(event)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(
        f"P5  Lambda asset: {raw / 1e6:.1f} MB unzipped, {zipped / 1e6:.1f} MB zipped; handler peak Python "
        f"allocations for a batch of 10 (warm, moto in-process): {peak / 1e6:.1f} MB"
    )


def _clean_soak(**changes: Any) -> Any:
    """A soak with no injected fault (the model's capacity apart), no outage phase, one label per image."""
    from local.soak import SoakConfig

    zero = {
        f.name: 0.0
        for f in dataclasses.fields(SoakConfig)
        if f.name.endswith(("_rate", "_every_seconds")) and f.name != "arrival_rate"
    }
    config = SoakConfig(
        **zero,  # type: ignore[arg-type]
        invalid_messages=0,
        index_check_labels=0,  # the palette's labels only: the accounting is not what is measured
        outage_days=0.0,
        model_tps_cap=MODEL_CAP_TPS,
        model_latency_seconds=MODEL_LATENCY,
    )
    return dataclasses.replace(config, **changes)


@dataclasses.dataclass
class Throughput:
    images: int
    labeled: int
    percent: float  # of the model's cap
    cpu_ms: float  # the labeler's CPU per image
    dlq: int
    problems: int
    model_calls: int
    seconds: float
    complete: bool  # every image labeled within the run's window


def _throughput(config: Any) -> Throughput:
    """One run against the capped model. The run is cut at ``config.max_seconds``: a record that went
    back to the queue may wait its visibility timeout, and the benchmark must end in bounded time."""
    from local.soak import run

    account = run(config)
    labeled = account.count("LABELED")
    complete = labeled == config.images
    # All labeled: first to last event. Cut short: what was labeled over the whole window.
    seconds = account.processing_seconds if complete else account.elapsed
    rate = labeled / seconds if seconds else 0.0
    return Throughput(
        images=config.images,
        labeled=labeled,
        percent=100 * rate / config.model_tps_cap,
        cpu_ms=1000 * account.labeler_cpu_seconds / max(1, labeled),
        dlq=account.dlq,
        problems=len(account.problems),
        model_calls=account.faults["DetectCustomLabels calls (incl. botocore retries)"],
        seconds=seconds,
        complete=complete,
    )


def _peer_throughput(images: int, cap: float = MODEL_CAP_TPS, latency: float = MODEL_LATENCY) -> Any:
    """The peer (local/peer.py) labels ``images`` uploads against the same capped model."""
    from botocore.config import Config

    from local.botocore_model import emulated_rekognition_client
    from local.fakes.model_server import RemoteModel, model_server_process
    from local.peer import DEFAULT_CONCURRENCY, run_peer

    with moto_server_process(), model_server_process(latency, cap) as model_url:
        s3, ddb, events = boto3.client("s3"), boto3.client("dynamodb"), boto3.client("events")
        s3.create_bucket(Bucket="peer-images")
        ddb.create_table(
            TableName="peer-results",
            KeySchema=PEER_TABLE_KEY,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        events.create_event_bus(Name="peer-bus")
        image = make_image({"scratch": (0.1, 0.1, 0.4, 0.4)}, size=(96, 96))
        keys = [f"peer/{n:05d}.png" for n in range(images)]
        for key in keys:
            s3.put_object(Bucket="peer-images", Key=key, Body=image)
        pool = Config(max_pool_connections=DEFAULT_CONCURRENCY)  # one connection per execution environment
        clients = PeerClients(
            emulated_rekognition_client(RemoteModel(model_url), Config()),  # boto3's default retries
            boto3.client("dynamodb", config=pool),
            boto3.client("events", config=pool),
        )

        def invoke(event: dict[str, Any]) -> list[float]:
            return peer_handler(
                event, clients, table="peer-results", bus="peer-bus", arn=PLACEHOLDER_PROJECT_VERSION_ARN
            )

        return run_peer([s3_event("peer-images", key) for key in keys], invoke)


def p4(curve: tuple[int, ...] = DEFAULT_CURVE) -> None:
    """Throughput at the model's cap (the 1,000-image point of the scaling curve), the peer at 1,000 images."""
    # Each run gets its images' worth of the cap plus 30 s, then is cut (figures over the whole window).
    points = [_throughput(_clean_soak(images=n, max_seconds=n / MODEL_CAP_TPS + 30)) for n in sorted(set(curve))]
    main = next((point for point in points if point.images == 1000), points[-1])
    print(
        f"P4  autolabel (batch 10, max concurrency 2): {main.labeled}/{main.images} labeled "
        f"{'in' if main.complete else 'by the end of the window,'} {main.seconds:.0f} s: "
        f"{main.percent:.0f}% of the model's {MODEL_CAP_TPS:.0f} TPS "
        f"({target(main.percent, THROUGHPUT_PERCENT_TARGET, at_most=False, unit='%')}); labeler CPU "
        f"{main.cpu_ms:.1f} ms/image; {main.dlq} in the DLQ, {main.problems} lost or duplicated; "
        f"{main.model_calls} model calls incl. throttled; model latency {MODEL_LATENCY * 1000:.0f} ms"
    )
    peer = _peer_throughput(1000)
    peer_percent = 100 * (peer.labeled / peer.processing_seconds if peer.processing_seconds else 0.0) / MODEL_CAP_TPS
    print(
        f"    peer, 1000 images (async invocations, concurrency up to 1000, Lambda's retries after 60 s and "
        f"120 s): {peer.labeled} labeled, {peer.dropped} dropped after 3 attempts, {peer.failed_attempts} failed "
        f"invocations; {peer_percent:.0f}% of the cap over {peer.processing_seconds:.0f} s; peer CPU "
        f"{1000 * peer.cpu_seconds / max(1, peer.labeled):.1f} ms/image; ours = "
        f"{main.percent / peer_percent if peer_percent else float('inf'):.1f}x the peer's share of the cap"
    )
    if len(points) > 1:
        cpus = [point.cpu_ms for point in points]
        spread = 100 * (max(cpus) / min(cpus) - 1)
        # At the cap, a longer run spends longer throttled: more model calls (and retried records) per
        # image, each a real piece of the labeler's work. CPU per model call is the code's own cost.
        per_call = [pt.cpu_ms * pt.labeled / max(1, pt.model_calls) for pt in points]
        call_spread = 100 * (max(per_call) / min(per_call) - 1)
        print(
            "    scaling curve: "
            + "; ".join(
                f"{pt.images}: {pt.percent:.0f}% of the cap ({pt.labeled} labeled in {pt.seconds:.0f} s, "
                f"{pt.dlq} in the DLQ, {pt.model_calls / max(1, pt.labeled):.2f} model calls per image), "
                f"{pt.cpu_ms:.1f} ms CPU/image, {cost:.2f} ms per model call"
                for pt, cost in zip(points, per_call, strict=True)
            )
            + f"; labeler CPU/image varies {spread:.0f}% "
            f"({target(spread, CPU_FLATNESS_PERCENT_TARGET, at_most=True, unit='%')}), "
            f"CPU per model call {call_spread:.0f}% "
            f"({target(call_spread, CPU_FLATNESS_PERCENT_TARGET, at_most=True, unit='%')})"
        )


def p6(idle_images: int = 10, cap_images: int = 500) -> None:
    """Upload -> event latency, idle and at the model's cap; the stack's own clock (no scaling)."""
    from local.soak import percentile, run

    def measure(images: int, rate: float, **faults: Any) -> tuple[Any, str]:
        # Unscaled: the stack's 60 s timeout and 360 s visibility timeout. The run is cut 60 s after
        # the last upload; an image not announced by then counts as slower than every other one.
        config = _clean_soak(images=images, arrival_rate=rate, time_scale=1.0, max_seconds=images / rate + 60, **faults)
        account = run(config)
        values, missing = account.latencies, account.unannounced
        p50, p99 = percentile(values, 50, missing=missing), percentile(values, 99, missing=missing)
        retried = sum(s["item_failures"] for s in account.worker_stats)
        changes = account.visibility_changes
        if changes:
            handled = (
                f"the handler set {len(changes)} visibility timeouts (median {statistics.median(changes):.0f} s, "
                f"longest {max(changes)} s)"
            )
        elif retried:
            handled = "the handler changed no visibility: each waited the queue's 360 s"
        else:
            handled = "none went back to the queue"

        def shown(seconds: float) -> str:  # a percentile among the never announced: only a bound is known
            return f"{seconds:.1f} s" if math.isfinite(seconds) else "over 60 s"

        figures = (
            f"p50 {shown(p50)}, p99 {shown(p99)} over {len(values) + missing} images "
            f"({missing} not announced within 60 s of the last upload); {retried} records retried, {handled}"
        )
        return (p50, p99), figures

    (idle_p50, _), idle = measure(idle_images, 1.0)
    # At the cap: uploads at its rate, 100 at a time; the model throttles above it, and the soak's
    # Rekognition faults are on (5% ThrottlingException, a 1 s ProvisionedThroughputExceeded burst every
    # 17 s, a 2 s model-not-ready window every 23 s): the records that fail go back to the queue. 500
    # images are 25 s of uploads: at least one not-ready window falls in every run.
    (_, cap_p99), busy = measure(
        cap_images,
        MODEL_CAP_TPS,
        arrival_burst=100,
        throttle_rate=0.05,
        burst_every_seconds=17.0,
        not_ready_every_seconds=23.0,
    )
    idle_goal = MODEL_LATENCY + IDLE_P50_OVER_MODEL_SECONDS
    print(
        f"P6  upload -> event, idle (1 upload/s, model latency {MODEL_LATENCY * 1000:.0f} ms): {idle} "
        f"(p50 {target(idle_p50, idle_goal, at_most=True, unit=' s')})"
    )
    print(
        f"    at the model's cap ({MODEL_CAP_TPS:.0f} uploads/s, 100 at a time, against {MODEL_CAP_TPS:.0f} TPS; "
        f"throttling, throughput bursts and not-ready windows on): "
        f"{busy} (p99 {target(cap_p99, CAP_P99_SECONDS, at_most=True, unit=' s')})"
    )


def p7(label_counts: tuple[int, ...] = (0, 5, 50, 300), batches: int = 1) -> None:
    """DynamoDB write units per image by DynamoDB's rules (local/write_units.py), ours and the peer's."""
    rows = []
    # The patched moto server, as the soak uses (its Query reads only the queried partition).
    with moto_server_process():
        for count in label_counts:
            bench = Bench(latency=0.0, model=CannedLabelsModel(count), prefix=f"p7-{count}")
            meter, peer_meter = WriteMeter(boto3.client("dynamodb")), WriteMeter(boto3.client("dynamodb"))
            meter.install(bench.raw_dynamodb)
            peer_meter.install(bench.peer_dynamodb._client)
            for _ in range(batches):
                batch = bench.batch(10)
                bench.invoke(batch)
                for event in Bench.single_events(batch):
                    bench.peer_invoke(event)
            images = 10 * batches
            ours, peer = meter.total / images, peer_meter.total / images

            def per_image(name: str, meter: WriteMeter = meter, images: int = images) -> float:
                return meter.units[name] / images

            goal = target(ours, count + WRITE_UNITS_OVER_LABELS, at_most=True)
            # What storing the result costs the peer too (one put of the same labels) is not ours to save:
            # beyond it, the goal is one unit per index entry plus the same few units.
            beyond = target(ours - peer, count + WRITE_UNITS_OVER_LABELS, at_most=True)
            rows.append(
                f"{count} labels: {ours:.1f} ({goal}; result items {per_image('item type RESULT'):.1f}, "
                f"label-index entries {per_image('item type LABEL'):.1f}, publication items "
                f"{per_image('item type PUBLISHED'):.1f}, secondary indexes {per_image('index'):.1f}, "
                f"in transactions {per_image('in transactions'):.1f}) vs peer {peer:.1f}; "
                f"beyond the peer's {ours - peer:.1f} ({beyond})"
            )
    print("P7  DynamoDB write units per image at batch size 10, by DynamoDB's rules: " + "; ".join(rows))


# In `make benchmark`'s order: P7 (write units) right after P2 (calls).
BENCHMARKS: dict[str, Callable[..., None]] = {
    "p1": p1,
    "p2": p2,
    "p7": p7,
    "p3": p3,
    "p4": p4,
    "p5": p5,
    "p6": p6,
}
DESCRIPTIONS = {
    "p1": "handler wall time, one SQS batch of 10 images vs one image (fake model, 200 ms); "
    f"target <= {BATCH_RATIO_TARGET:g}; the peer's 10 invocations beside it",
    "p2": f"AWS calls per image besides DetectCustomLabels at batch size 10; target <= {CALLS_PER_IMAGE_TARGET:g}; "
    "the peer's beside it",
    "p7": "DynamoDB write units per image for 0, 5, 50 and 300 labels, by DynamoDB's rules; "
    f"target <= labels + {WRITE_UNITS_OVER_LABELS}; the peer's beside it",
    "p3": "cold start: whole process importing the built handler vs boto3 and its clients alone; "
    f"target <= {COLD_START_RATIO_TARGET:g}",
    "p4": f"throughput of 1,000 images against a model capped at {MODEL_CAP_TPS:g} calls/s; "
    f"target >= {THROUGHPUT_PERCENT_TARGET:g}% of the cap; labeler CPU per image; the peer at 1,000 images; "
    f"the scaling curve (--curve), CPU per image flat within {CPU_FLATNESS_PERCENT_TARGET:g}%",
    "p5": "Lambda asset size, zipped and unzipped; handler peak Python memory for a batch of 10",
    "p6": f"upload -> event latency, idle (target p50 <= model latency + {IDLE_P50_OVER_MODEL_SECONDS:g} s) and "
    f"with uploads at the model's cap (target p99 < {CAP_P99_SECONDS:g} s)",
}


def _curve(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of image counts: {text}") from None
    if not sizes or min(sizes) < 10:
        raise argparse.ArgumentTypeError("image counts of at least 10")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name.upper()}  {DESCRIPTIONS[name]}" for name in BENCHMARKS)
    parser = argparse.ArgumentParser(
        prog="python -m local.benchmark",
        description="Print autolabel's performance figures with their targets (MISSED when one is not met), "
        "and the peer design's (local/peer.py) from the same run. Results and how they were taken: "
        "docs/performance.md.",
        epilog=f"benchmarks:\n{listing}\n\nmake benchmark runs them all (about 8 minutes on 2 cores).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "benchmarks",
        nargs="*",
        type=str.lower,
        metavar="P",
        help="which to run, in the order given: p1 .. p7 (default: all)",
    )
    parser.add_argument(
        "--curve",
        type=_curve,
        default=",".join(map(str, DEFAULT_CURVE)),
        metavar="N,N,...",
        help="P4's scaling curve: image counts (default %(default)s; the figures in docs/performance.md: "
        "250,1000,4000,10000, about 15 minutes more)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [name for name in args.benchmarks if name not in BENCHMARKS]
    if unknown:  # (argparse's choices= refuses an empty nargs="*" list on Python 3.11)
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    warning = busy_warning()
    if warning:
        print(warning)
    options = {"p4": {"curve": args.curve}}
    for name in args.benchmarks or list(BENCHMARKS):
        started = time.monotonic()
        BENCHMARKS[name](**options.get(name, {}))
        print(f"    ({name.upper()} took {time.monotonic() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
