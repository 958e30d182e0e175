"""Benchmarks: figures printed, never asserted in tests (docs/performance.md).

    make benchmark                                # all (= .venv/bin/python -m local.benchmark)
    .venv/bin/python -m local.benchmark p1 p3     # some
    .venv/bin/python -m local.benchmark --help

Each figure is printed with its target; one that misses it says MISSED. A
warning is printed first when the machine is too busy for the figures to mean
anything (load average above the core count, or CPU steal).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
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
from labeler.logic.pipeline import build_pipeline
from local.emulator import create_resources
from local.faults import FaultyClient
from local.moto_process import moto_server_process
from local.poller import FakeLambdaContext
from local.samples import make_image
from local.stack_template import PLACEHOLDER_PROJECT_VERSION_ARN, default_facts

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


class FixedLatencyModel:
    """DetectCustomLabels that answers a canned result after a fixed latency (no image decoding:
    the emulated model's pixel loop would hold the GIL and measure itself, not the handler)."""

    ANSWER = {
        "CustomLabels": [
            {
                "Name": "scratch",
                "Confidence": 97.5,
                "Geometry": {"BoundingBox": {"Width": 0.3, "Height": 0.3, "Left": 0.1, "Top": 0.1}},
            }
        ]
    }

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.calls = 0

    def detect_custom_labels(self, **_request: Any) -> dict[str, Any]:
        self.calls += 1
        time.sleep(self.latency)
        return self.ANSWER


class Bench:
    """The stack's resources in moto, a handler wired to the fake model, events built by hand."""

    def __init__(self, latency: float = MODEL_LATENCY_SECONDS, prefix: str = "autolabel") -> None:
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        self.s3 = boto3.client("s3")
        self.facts = default_facts()
        self.resources = create_resources(
            self.facts,
            s3=self.s3,
            sqs=boto3.client("sqs"),
            dynamodb=boto3.client("dynamodb"),
            events=boto3.client("events"),
            event_source="autolabel",
            prefix=prefix,
        )
        self.model = FixedLatencyModel(latency)
        self.dynamodb = FaultyClient(boto3.client("dynamodb"))
        self.events = FaultyClient(boto3.client("events"))
        config = LabelerConfig(
            PLACEHOLDER_PROJECT_VERSION_ARN, self.resources.table_name, self.resources.event_bus_name
        )
        handler.use_pipeline(build_pipeline(config, AwsClients(self.model, self.dynamodb, self.events)))
        self.image = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
        self._n = 0

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

    with moto_server_process():
        one = statistics.median(measure(1, n) for n in range(repeats))
        ten = statistics.median(measure(10, n) for n in range(repeats))
    print(
        f"P1  one image: {one * 1000:.0f} ms; batch of 10: {ten * 1000:.0f} ms; "
        f"ratio {ten / one:.2f} ({target(ten / one, BATCH_RATIO_TARGET, at_most=True)}; "
        f"model latency {MODEL_LATENCY_SECONDS * 1000:.0f} ms, "
        f"moto server in its own process on loopback, median of {repeats})"
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
    total = sum(calls.values())
    print(
        f"P2  {total / images:.2f} AWS calls per image besides DetectCustomLabels "
        f"({target(total / images, CALLS_PER_IMAGE_TARGET, at_most=True)}) "
        f"at batch size 10: {dict(sorted(calls.items()))} for {images} images"
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
    from infra.bundling import bundle_functions

    with tempfile.TemporaryDirectory() as tmp:
        asset = Path(tmp)
        bundle_functions(asset)
        prefix = f"import sys; sys.path.insert(0, {str(asset)!r}); "
        handler = prefix + "import labeler.handler as h; h.current_pipeline()"
        tracer = handler + "; from aws_lambda_powertools import Tracer; Tracer(service='x')"
        floor = "import boto3; " + _CLIENTS
        runs: dict[str, list[float]] = {"floor": [], "handler": [], "tracer": []}
        _process_seconds(handler, asset)  # warm the OS file cache
        for _ in range(repeats):  # interleaved, so all see the same machine load
            for name, code in (("floor", floor), ("handler", handler), ("tracer", tracer)):
                runs[name].append(_process_seconds(code, asset))
    pairs = [h / f for h, f in zip(runs["handler"], runs["floor"], strict=True)]
    b, h, t = (statistics.median(runs[name]) for name in ("floor", "handler", "tracer"))
    ratio = statistics.median(pairs)
    print(
        f"P3  cold start as deployed (whole process, built asset with bytecode, three clients created): "
        f"{h * 1000:.0f} ms vs {b * 1000:.0f} ms for boto3 and the same clients alone; ratio {ratio:.2f} "
        f"({target(ratio, COLD_START_RATIO_TARGET, at_most=True)}; median of {repeats} paired runs). "
        f"A Powertools Tracer would make it {t * 1000:.0f} ms ({t / b:.2f}), so the labeler has none"
    )


def p5() -> None:
    from infra.bundling import bundle_functions

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


def p4(images: int = 1000, baseline_images: int = 300, cap: float = 20.0, latency: float = 0.1) -> None:
    from local.soak import SoakConfig, run

    no_faults = SoakConfig(
        throttle_rate=0.0,
        burst_every_seconds=0.0,
        not_ready_every_seconds=0.0,
        dynamodb_throttle_rate=0.0,
        put_events_failure_rate=0.0,
        duplicate_rate=0.0,
        out_of_order_rate=0.0,
        bad_rate=0.0,
        invalid_messages=0,
    )
    runs = {
        "autolabel (batch 10, max concurrency 2)": dataclasses.replace(no_faults, images=images),
        "batch 1, concurrency 1 (as AWS samples run)": dataclasses.replace(
            no_faults, images=baseline_images, batch_size=1, concurrency=1
        ),
    }
    for name, base in runs.items():
        config = dataclasses.replace(base, model_tps_cap=cap, model_latency_seconds=latency)
        account = run(config)
        labeled = account.count("LABELED")
        rate = labeled / account.processing_seconds if account.processing_seconds else 0.0
        lost = len(account.problems)
        percent = 100 * rate / cap
        # The baseline is there for comparison: only autolabel's own configuration has a target.
        goal = (
            f" ({target(percent, THROUGHPUT_PERCENT_TARGET, at_most=False, unit='%')})"
            if name.startswith("autolabel")
            else ""
        )
        print(
            f"P4  {name}: {labeled}/{config.images} labeled at {rate:.1f} images/s = {percent:.0f}% "
            f"of the model's {cap:.0f} TPS{goal}; "
            f"{account.dlq} in the DLQ, {lost} lost or duplicated; "
            f"{sum(s['model_calls'] for s in account.worker_stats)} model calls incl. throttled; "
            f"model latency {latency * 1000:.0f} ms"
        )


BENCHMARKS: dict[str, Callable[[], None]] = {"p1": p1, "p2": p2, "p3": p3, "p4": p4, "p5": p5}
DESCRIPTIONS = {
    "p1": "handler wall time, one SQS batch of 10 images vs one image (fake model, 200 ms); "
    f"target <= {BATCH_RATIO_TARGET:g}",
    "p2": f"AWS calls per image besides DetectCustomLabels at batch size 10; target <= {CALLS_PER_IMAGE_TARGET:g}",
    "p3": "cold start: whole process importing the built handler vs boto3 and its clients alone; "
    f"target <= {COLD_START_RATIO_TARGET:g}",
    "p4": "throughput of 1,000 images against a model capped at 20 calls/s; "
    f"target >= {THROUGHPUT_PERCENT_TARGET:g}% of the cap",
    "p5": "Lambda asset size, zipped and unzipped; handler peak Python memory for a batch of 10",
}


def build_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name.upper()}  {DESCRIPTIONS[name]}" for name in BENCHMARKS)
    parser = argparse.ArgumentParser(
        prog="python -m local.benchmark",
        description="Print autolabel's performance figures with their targets (MISSED when one is not met). "
        "Results and how they were taken: docs/performance.md.",
        epilog=f"benchmarks:\n{listing}\n\nmake benchmark runs them all (about 3 minutes on 2 cores).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "benchmarks",
        nargs="*",
        type=str.lower,
        metavar="P",
        help="which to run, in the order given: p1 .. p5 (default: all)",
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
    for name in args.benchmarks or list(BENCHMARKS):
        BENCHMARKS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
