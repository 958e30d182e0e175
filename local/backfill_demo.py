"""`make backfill-demo`: backfill a prefix of thousands of objects in the emulator, interrupted and resumed.

An embedded moto server holds the stack's resources (as `make local`). The
bucket gets N objects that were there "before autolabel" (their notifications
are discarded). Then the real command, `python -m autolabel backfill`, runs
as a subprocess against the emulator with its progress bar, while this
process plays the labeler's backfill trigger (the real handler, the emulated
model). The first run is interrupted (SIGINT, as Ctrl-C, or ``--stop-after``),
`backfill status` shows where it stopped, the same command resumes it with
``--wait``, and the end is checked: every object has one result, announced by
exactly one event, and was sent to the model once.

    .venv/bin/python -m local.backfill_demo [--objects 3000] [--interrupt-at 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3

from labeler import handler
from labeler.adapters.clients import create_clients
from labeler.logic.pipeline import build_pipeline
from labeler.queries import get_result
from local.emulator import (
    REGION,
    LocalResources,
    consumed_events,
    create_resources,
    drain_queue,
    labeler_config,
)
from local.fakes.fake_model import FakeCustomLabelsModel
from local.moto_process import moto_server_process
from local.poller import EventSourceMappingPoller
from local.run import lambda_output_to
from local.samples import make_image
from local.stack_template import PLACEHOLDER_PROJECT_VERSION_ARN, default_facts

PREFIX = "archive/2026/"
# Slow enough that the queue fills to its pace limit and the command visibly waits for the model.
DEMO_IMAGES_PER_SECOND = 0.0005


@dataclasses.dataclass
class DemoReport:
    objects: int
    first_exit: int
    resumed_exit: int
    labeled: int
    events: int
    distinct_result_ids: int
    model_calls: int
    dead_letters: int

    @property
    def ok(self) -> bool:
        n = self.objects
        return (
            self.first_exit == 130
            and self.resumed_exit == 0
            and self.labeled == self.events == self.distinct_result_ids == self.model_calls == n
            and self.dead_letters == 0
        )


def _upload(s3: Any, bucket: str, count: int) -> list[str]:
    body = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
    keys = [f"{PREFIX}img-{i:05d}.png" for i in range(count)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=body), keys))
    return keys


def _command(endpoint: str, resources: LocalResources, checkpoint: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "autolabel",
        "backfill",
        *args,
        "--endpoint-url",
        endpoint,
        "--checkpoint",
        str(checkpoint),
    ]


def _cli_environment(resources: LocalResources) -> dict[str, str]:
    return {
        **os.environ,
        "AUTOLABEL_TABLE": resources.table_name,
        "AUTOLABEL_BACKFILL_QUEUE_URL": resources.backfill_queue_url,
        "AUTOLABEL_BACKFILL_DLQ_URL": resources.backfill_dead_letter_queue_url,
        "AUTOLABEL_PROJECT_VERSION_ARN": PLACEHOLDER_PROJECT_VERSION_ARN,
        "AUTOLABEL_BUCKET": resources.bucket,
    }


def _enqueued(checkpoint: Path) -> int:
    try:
        return int(json.loads(checkpoint.read_text())["progress"]["enqueued"])
    except (OSError, ValueError, KeyError):
        return 0


def _label_while(poller: EventSourceMappingPoller, process: subprocess.Popen[bytes], until: Any = None) -> None:
    """Play the labeler's backfill trigger while the command runs; ``until()`` True: interrupt it (SIGINT)."""
    interrupted = False
    while process.poll() is None:
        if until is not None and not interrupted and until():
            process.send_signal(signal.SIGINT)  # Ctrl-C
            interrupted = True
        if not poller.poll_once():
            time.sleep(0.05)


def run_demo(count: int, interrupt_at: int, output_dir: Path, *, use_signal: bool = True) -> DemoReport:
    facts = default_facts()
    # moto in its own process (as the soak), patched so that thousands of results neither slow it
    # down nor fill the memory.
    with moto_server_process() as endpoint:
        print(f"autolabel backfill demo: AWS EMULATED by moto on {endpoint}; Custom Labels model EMULATED")
        return _demo(facts, endpoint, count, interrupt_at, output_dir, use_signal=use_signal)


def _demo(
    facts: Any, endpoint: str, count: int, interrupt_at: int, output_dir: Path, *, use_signal: bool
) -> DemoReport:
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    resources = create_resources(
        facts,
        s3=s3,
        sqs=sqs,
        dynamodb=boto3.client("dynamodb"),
        events=boto3.client("events"),
        event_source=facts.function_environment.get("EVENT_SOURCE", "autolabel"),
        visibility_timeout=5,
    )
    config = labeler_config(facts, resources)  # the Lambda's own cold-start validation
    model = FakeCustomLabelsModel(s3)
    handler.use_pipeline(build_pipeline(config, dataclasses.replace(create_clients(), rekognition=model)))
    poller = EventSourceMappingPoller(
        sqs,
        resources.backfill_queue_url,
        resources.backfill_queue_arn,
        handler.handler,
        batch_size=facts.batch_size,
        retry_delay_seconds=1,
        region=REGION,
    )
    print(f"Uploading {count} objects under s3://{resources.bucket}/{PREFIX} (there before autolabel)...")
    # They were there before autolabel: no notification (and moto's notifications slow big uploads down).
    notifications = s3.get_bucket_notification_configuration(Bucket=resources.bucket)
    notifications.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=resources.bucket, NotificationConfiguration={})
    keys = _upload(s3, resources.bucket, count)
    s3.put_bucket_notification_configuration(Bucket=resources.bucket, NotificationConfiguration=notifications)
    drain_queue(sqs, resources.queue_url)

    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = output_dir / "backfill-checkpoint.json"
    checkpoint.unlink(missing_ok=True)
    uri = f"s3://{resources.bucket}/{PREFIX}"
    env = _cli_environment(resources)
    pace = ["--images-per-second", str(DEMO_IMAGES_PER_SECOND), "--poll-seconds", "1"]
    first_args = [uri, *pace] + ([] if use_signal else ["--stop-after", str(interrupt_at)])
    log_path = output_dir / "backfill-lambda-logs.jsonl"
    with log_path.open("w") as log_file, lambda_output_to(log_file):
        print(f"\n$ autolabel backfill {uri}   # interrupted after about {interrupt_at} enqueued", file=sys.stderr)
        first = subprocess.Popen(_command(endpoint, resources, checkpoint, *first_args), env=env)
        _label_while(poller, first, (lambda: _enqueued(checkpoint) >= interrupt_at) if use_signal else None)
        print(f"\n$ autolabel backfill status {uri}", file=sys.stderr)
        subprocess.run(_command(endpoint, resources, checkpoint, "status"), env=env, check=False)
        print(f"\n$ autolabel backfill {uri} --wait   # resumes from the checkpoint", file=sys.stderr)
        resumed = subprocess.Popen(_command(endpoint, resources, checkpoint, uri, *pace, "--wait"), env=env)
        _label_while(poller, resumed)
        poller.run_until_idle(max_seconds=60)
    events = consumed_events(sqs, resources.consumer_queue_url)
    (output_dir / "backfill-events.json").write_text(json.dumps(events, indent=1))
    dynamodb = boto3.client("dynamodb")
    labeled = sum(
        1
        for key in keys
        if (result := get_result(resources.table_name, resources.bucket, key, client=dynamodb)) is not None
        and result["status"] == "LABELED"
    )
    per_result = Counter(e["detail"]["resultId"] for e in events)
    report = DemoReport(
        objects=count,
        first_exit=int(first.returncode),
        resumed_exit=int(resumed.returncode),
        labeled=labeled,
        events=len(events),
        distinct_result_ids=len(per_result),
        model_calls=len(model.calls),
        dead_letters=len(drain_queue(sqs, resources.backfill_dead_letter_queue_url)),
    )
    print(
        f"\n{report.objects} objects: first run exited {report.first_exit} (interrupted), resumed run exited "
        f"{report.resumed_exit}; {report.labeled} labeled, {report.events} events for {report.distinct_result_ids} "
        f"distinct results, {report.model_calls} model calls, {report.dead_letters} dead letters."
    )
    print(
        "OK: every object labeled once and announced once"
        if report.ok
        else "NOT OK: see the figures above and " + str(log_path)
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, default=3000, help="objects in the prefix (default 3000)")
    parser.add_argument("--interrupt-at", type=int, default=None, help="enqueued before the interruption (N/3)")
    parser.add_argument("--output-dir", type=Path, default=Path(".local-run"))
    parser.add_argument(
        "--stop-after", action="store_true", help="interrupt with the command's --stop-after instead of SIGINT"
    )
    args = parser.parse_args(argv)
    interrupt_at = args.interrupt_at or max(10, args.objects // 3)
    with contextlib.suppress(KeyboardInterrupt):
        report = run_demo(args.objects, interrupt_at, args.output_dir, use_signal=not args.stop_after)
        return 0 if report.ok else 1
    return 130


if __name__ == "__main__":
    sys.exit(main())
