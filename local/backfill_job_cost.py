"""Measure the backfill job function's cost per batch: wall time and AWS calls (docs/performance.md).

moto in its own process with the stack's resources (a versioned bucket, as
the stack creates it), N objects; the real ``labeler.backfill_job`` enqueue
action on batches of 100 listed objects (the template's ItemBatcher), then
reconcile on their ledgers, and one enqueue answered ``BackfillQueueFull``
(a batch waiting for the model). Prints the median wall time per call and
the AWS calls per object, by operation.

    .venv/bin/python -m local.backfill_job_cost [--objects 1000]
    .venv/bin/python -m local.backfill_job_cost --paper --batch-seconds 0.81   # the 10M / 1B table

``--paper`` computes, from a measured enqueue time per batch and the
engine's published limits, the time and cost of 10M and 1B objects at 1, 5
and 20 inference units (docs/performance.md states every assumption).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections import Counter
from typing import Any

import boto3

from labeler import backfill_job
from local.backfill_job_emulator import EmulatedBackfillJob, job_facts
from local.moto_process import moto_server_process
from local.samples import make_image
from local.stack_template import PLACEHOLDER_PROJECT_VERSION_ARN, default_facts, default_template
from local.wiring import deploy

REPORTS = "autolabel-backfill-reports"


def _counted(service: str, calls: Counter[str]) -> Any:
    client = boto3.client(service)
    client.meta.events.register("before-call.*.*", lambda model, **_: calls.update([f"{service}:{model.name}"]))
    return client


def measure(count: int) -> dict[str, Any]:
    facts = default_facts()
    with moto_server_process():
        s3 = boto3.client("s3")
        resources = deploy(facts)
        s3.create_bucket(Bucket=REPORTS)
        body = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
        for i in range(count):
            s3.put_object(Bucket=resources.bucket, Key=f"old/img-{i:05d}.png", Body=body)
        calls: Counter[str] = Counter()
        job = EmulatedBackfillJob(
            job_facts(default_template()),
            resources,
            REPORTS,
            PLACEHOLDER_PROJECT_VERSION_ARN,
            _counted("s3", calls),
            _counted("sqs", calls),
            _counted("dynamodb", calls),
        )
        listing = job.interpreter()._read_items(
            job.definition["States"]["ListAndEnqueue"]["ItemReader"], {"prefix": "old/"}
        )
        document = {
            "run": "cost",
            "bucket": resources.bucket,
            "prefix": "old/",
            "report": "jobs/cost/",
            "paceLimit": 10_000_000,
        }
        size = int(job.definition["States"]["ListAndEnqueue"]["ItemBatcher"]["MaxItemsPerBatch"])
        enqueue_seconds, reconcile_seconds = [], []
        for start in range(0, len(listing), size):
            event = {"BatchInput": {"action": "enqueue", "job": document}, "Items": listing[start : start + size]}
            began = time.perf_counter()
            job.function(event)
            enqueue_seconds.append(time.perf_counter() - began)
        enqueue_calls = Counter(calls)
        calls.clear()
        ledgers = [
            {"Key": o["Key"]} for o in s3.list_objects_v2(Bucket=REPORTS, Prefix="jobs/cost/ledger/")["Contents"]
        ]
        for ledger in ledgers:
            began = time.perf_counter()
            job.function({"BatchInput": {"action": "reconcile", "job": document}, "Items": [ledger]})
            reconcile_seconds.append(time.perf_counter() - began)
        reconcile_calls = Counter(calls)
        calls.clear()
        full = {"BatchInput": {"action": "enqueue", "job": {**document, "paceLimit": 1}}, "Items": listing[:size]}
        began = time.perf_counter()
        with contextlib.suppress(backfill_job.BackfillQueueFull):
            job.function(full)
        waiting_seconds = time.perf_counter() - began
        return {
            "objects": len(listing),
            "batch": size,
            "enqueue_ms": 1000 * statistics.median(enqueue_seconds),
            "reconcile_ms": 1000 * statistics.median(reconcile_seconds),
            "queue_full_ms": 1000 * waiting_seconds,
            "queue_full_calls": dict(calls),
            "enqueue_calls_per_object": {k: v / len(listing) for k, v in sorted(enqueue_calls.items())},
            "reconcile_calls_per_object": {k: v / len(listing) for k, v in sorted(reconcile_calls.items())},
        }


# docs/performance.md: the assumptions of the paper figures.
IMAGES_PER_SECOND_PER_UNIT = (1.0, 5.0)  # the command's assumption; AWS's older guidance
PRICE_PER_UNIT_HOUR = 4.0  # USD, as autolabel.backfill
START_AND_IDLE_HOURS = 35 / 60
TRANSITION_PRICE = 0.025 / 1000  # Step Functions Standard, us-east-1
TRANSITIONS_PER_BATCH = 3
CHILDREN = 4  # the template's MaxConcurrency
BATCH = 100  # the template's MaxItemsPerBatch
RETRY_SECONDS = 60  # BackfillQueueFull retry interval
MAX_EXECUTION_DAYS = 365  # Step Functions Standard: 1 year


def paper(batch_seconds: float) -> list[dict[str, Any]]:
    feed = CHILDREN * BATCH / batch_seconds  # objects/s the engine can send at most
    rows = []
    for objects in (10_000_000, 1_000_000_000):
        for units in (1, 5, 20):
            for per_unit in IMAGES_PER_SECOND_PER_UNIT:
                model = units * per_unit
                rate = min(model, feed)
                seconds = objects / rate
                retries = CHILDREN * seconds / RETRY_SECONDS if model < feed else 0
                transitions = TRANSITIONS_PER_BATCH * objects / BATCH + retries
                model_cost = (seconds / 3600 + START_AND_IDLE_HOURS) * units * PRICE_PER_UNIT_HOUR
                rows.append(
                    {
                        "objects": objects,
                        "units": units,
                        "per_unit": per_unit,
                        "days": seconds / 86400,
                        "model_usd": model_cost,
                        "engine_usd": transitions * TRANSITION_PRICE,
                        "bottleneck": "model" if model < feed else "engine feed (HeadObject per object)",
                        "jobs": max(1, int(-(-seconds // (MAX_EXECUTION_DAYS * 86400)))),
                    }
                )
    return rows


def print_paper(batch_seconds: float) -> None:
    feed = CHILDREN * BATCH / batch_seconds
    print(f"engine feed: {CHILDREN} batches of {BATCH} at once, {batch_seconds:.2f} s each: {feed:.0f} objects/s")
    print("objects | units | img/s per unit | days | model USD | Step Functions USD | bottleneck | jobs (1-year limit)")
    for r in paper(batch_seconds):
        print(
            f"{r['objects']:>13,} | {r['units']:>2} | {r['per_unit']:g} | {r['days']:,.1f} | {r['model_usd']:,.0f} | "
            f"{r['engine_usd']:,.2f} | {r['bottleneck']} | {r['jobs']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, default=1000, help="objects in the prefix (default 1000)")
    parser.add_argument("--paper", action="store_true", help="print the 10M / 1B table instead of measuring")
    parser.add_argument("--batch-seconds", type=float, default=None, help="with --paper: the enqueue time per batch")
    args = parser.parse_args(argv)
    if args.paper:
        print_paper(args.batch_seconds if args.batch_seconds else measure(args.objects)["enqueue_ms"] / 1000)
        return 0
    figures = measure(args.objects)
    print("backfill job function, moto in its own process (EMULATED AWS), versioned bucket:")
    print(f"  {figures['objects']} objects in batches of {figures['batch']}")
    per_object = figures["enqueue_ms"] / figures["batch"]
    print(f"  enqueue: median {figures['enqueue_ms']:.0f} ms per batch ({per_object:.1f} ms per object)")
    print(f"  reconcile: median {figures['reconcile_ms']:.0f} ms per ledger of {figures['batch']}")
    print(f"  a batch finding the queue full: {figures['queue_full_ms']:.0f} ms, calls {figures['queue_full_calls']}")
    for phase in ("enqueue", "reconcile"):
        per = ", ".join(f"{k} {v:.2f}" for k, v in figures[f"{phase}_calls_per_object"].items())
        print(f"  {phase} AWS calls per object: {per}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
