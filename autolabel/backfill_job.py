"""`autolabel backfill ... --in-aws`: start, follow and cancel the backfill job in AWS (docs/backfill.md).

The job is one execution of the stack's backfill state machine (output
``BackfillJobStateMachineArn``); its id is the execution's name. Before it
starts, the command estimates what it will cost (a listing count, or
``--objects``) and asks for confirmation above ``--confirm-above`` dollars.
"""

from __future__ import annotations

import json
import math
import secrets
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from autolabel import backfill as client_backfill
from autolabel.errors import NotFound, ParameterError

STATE_TRANSITION_PRICE = 0.025 / 1000  # USD per Standard state transition, us-east-1 (docs/backfill.md)
LAMBDA_GB_SECOND_PRICE = 0.0000133334  # USD, arm64, us-east-1
LAMBDA_REQUEST_PRICE = 0.20 / 1_000_000
# One enqueue call of a batch, measured in the emulator (docs/performance.md): a generous bound for AWS.
ENQUEUE_SECONDS_PER_BATCH = 2.0
JOB_MEMORY_GB = 0.5
# A model start takes minutes before the first image; the manager stops it after idleMinutes (default 15).
MODEL_START_MINUTES = 20
MODEL_IDLE_MINUTES = 15
DEFAULT_CONFIRM_ABOVE_USD = 10.0
REPORT_ROOT = "jobs/"


@dataclass(frozen=True)
class JobShape:
    """What the deployed definition says about speed: read from DescribeStateMachine, not assumed."""

    max_concurrency: int
    items_per_batch: int

    @classmethod
    def from_definition(cls, definition: dict[str, Any]) -> JobShape:
        enqueue = definition["States"]["ListAndEnqueue"]
        return cls(int(enqueue.get("MaxConcurrency", 1)), int(enqueue["ItemBatcher"]["MaxItemsPerBatch"]))


def job_name(run: str, now: datetime) -> str:
    """A new execution's name; the random tail keeps a resume started within the same second unique."""
    return f"backfill-{now.astimezone(UTC):%Y%m%dT%H%M%S}-{run[:8]}-{secrets.token_hex(3)}"


def job_input(
    *,
    name: str,
    run: str,
    bucket: str,
    filters: client_backfill.Filters,
    force: bool,
    stale: bool,
    pace_limit: int,
) -> dict[str, Any]:
    """The execution's input (labeler/backfill_job.py reads it as its Job)."""
    report = f"{REPORT_ROOT}{name}/"
    return {
        "run": run,
        "bucket": bucket,
        "prefix": filters.prefix,
        "report": report,
        "ledgers": f"{report}ledger/",
        "engineResults": f"engine/{name}",
        "paceLimit": pace_limit,
        "selection": filters.selection.to_json(),
        "force": force,
        "stale": stale,
    }


def new_run_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Estimate:
    objects: int  # matching the filters (already labeled ones not yet known: an upper bound)
    images_per_second: float
    throughput: str
    inference_units: int
    shape: JobShape

    @property
    def model_hours(self) -> float:
        labeling = self.objects / self.images_per_second / 3600 if self.images_per_second > 0 else math.inf
        return labeling + (MODEL_START_MINUTES + MODEL_IDLE_MINUTES) / 60

    @property
    def model_cost(self) -> float:
        return self.model_hours * self.inference_units * client_backfill.PRICE_PER_INFERENCE_UNIT_HOUR

    @property
    def engine_cost(self) -> float:
        """Step Functions and Lambda for the enqueue batches (waits for the model not counted: a few cents)."""
        batches = math.ceil(self.objects / self.shape.items_per_batch)
        transitions = batches * 3  # the child's start, its task, and its end
        lambda_cost = batches * (
            ENQUEUE_SECONDS_PER_BATCH * JOB_MEMORY_GB * LAMBDA_GB_SECOND_PRICE + LAMBDA_REQUEST_PRICE
        )
        return transitions * STATE_TRANSITION_PRICE + lambda_cost

    def to_json(self) -> dict[str, Any]:
        return {
            "objectsMatching": self.objects,
            "imagesPerSecond": round(self.images_per_second, 3),
            "throughput": self.throughput,
            "inferenceUnits": self.inference_units,
            "modelHours": round(self.model_hours, 2),
            "modelStartAndIdleMinutes": MODEL_START_MINUTES + MODEL_IDLE_MINUTES,
            "estimatedModelCostUsd": round(self.model_cost, 2),
            "estimatedEngineCostUsd": round(self.engine_cost, 2),
            "estimatedCostUsd": round(self.model_cost + self.engine_cost, 2),
        }

    def text(self) -> str:
        d = self.to_json()
        return (
            f"at most {d['objectsMatching']} object(s) to label (already labeled ones are skipped by the job) "
            f"at {d['imagesPerSecond']:g} images/s ({d['throughput']}) with {d['inferenceUnits']} inference unit(s): "
            f"{d['modelHours']:g} model-hour(s) including {d['modelStartAndIdleMinutes']} minutes of start and idle, "
            f"about ${d['estimatedModelCostUsd']:,.2f} for the model and ${d['estimatedEngineCostUsd']:,.2f} for "
            "Step Functions and Lambda"
        )


def count_matching(s3: Any, bucket: str, filters: client_backfill.Filters) -> int:
    """Objects under the prefix that pass the filters, by a ListObjectsV2 listing (1,000 per call)."""
    count = 0
    for page in client_backfill.list_current(s3, bucket, filters.prefix, "", versioned=False):
        count += sum(1 for entry in page if filters.matches(entry))
    return count


def confirm(estimate: Estimate, threshold: float, *, stdin: TextIO = sys.stdin, stderr: TextIO = sys.stderr) -> None:
    """Above the threshold, ask (a terminal) or refuse (no terminal: pass --yes)."""
    total = estimate.model_cost + estimate.engine_cost
    if total <= threshold:
        return
    question = f"This backfill is estimated at ${total:,.2f} (above ${threshold:,.2f}). Start it? [y/N] "
    if not stdin.isatty():
        raise ParameterError(f"the estimate ${total:,.2f} is above --confirm-above ${threshold:,.2f}: pass --yes")
    stderr.write(question)
    stderr.flush()
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise KeyboardInterrupt


def execution_arn(state_machine_arn: str, name: str) -> str:
    """arn:...:stateMachine:NAME + job name -> arn:...:execution:NAME:JOB (an ARN given as the job is kept)."""
    if name.startswith("arn:"):
        return name
    prefix, _, machine = state_machine_arn.partition(":stateMachine:")
    if not machine:
        raise ParameterError(f"not a state machine ARN: {state_machine_arn!r}")
    return f"{prefix}:execution:{machine}:{name}"


def describe(sfn: Any, arn: str) -> dict[str, Any]:
    try:
        return dict(sfn.describe_execution(executionArn=arn))
    except sfn.exceptions.ExecutionDoesNotExist:
        raise NotFound(f"no backfill job {arn.rsplit(':', 1)[-1]!r}") from None


MAP_STATES = ("ListAndEnqueue", "Reconcile")  # the definition's Distributed Maps, in the order they run


def map_run_counts(sfn: Any, arn: str) -> dict[str, dict[str, int]]:
    """Item counts of the job's Map Runs by Map state; empty where the API is not there (the emulator)."""
    try:
        runs = sorted(sfn.list_map_runs(executionArn=arn).get("mapRuns", []), key=lambda run: run["startDate"])
        counts = {}
        for state, run in zip(MAP_STATES, runs, strict=False):
            described = sfn.describe_map_run(mapRunArn=run["mapRunArn"])
            counts[state] = {k: int(v) for k, v in described.get("itemCounts", {}).items()}
    except Exception:
        return {}
    return counts


def read_report(s3: Any, bucket: str, name: str) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{REPORT_ROOT}{name}/report.json")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return dict(json.loads(body))


def status(
    described: dict[str, Any],
    maps: dict[str, dict[str, int]],
    report: dict[str, Any] | None,
    backlog: int,
    now: datetime,
) -> dict[str, Any]:
    """The job's status: the engine's state and counts, the lane, the report once written; rate and ETA."""
    started: datetime = described["startDate"]
    listing = maps.get("ListAndEnqueue", {})
    processed = listing.get("succeeded", 0) + listing.get("failed", 0)
    total = listing.get("total", 0)
    elapsed = max((now - started).total_seconds(), 1.0)
    rate = processed / elapsed
    data: dict[str, Any] = {
        "job": described["name"],
        "status": described["status"],
        "startedAt": started.isoformat(timespec="seconds"),
        "listed": total,
        "processed": processed,
        "failedItems": listing.get("failed", 0),
        "inBackfillQueue": backlog,
        "itemsPerSecond": round(rate, 2),
        "eta": client_backfill._duration((total - processed) / rate) if rate > 0 and total > processed else "-",
    }
    if described.get("stopDate"):
        data["stoppedAt"] = described["stopDate"].isoformat(timespec="seconds")
    if report is not None:
        data["report"] = report
        data["status"] = described["status"] if described["status"] != "RUNNING" else "REPORTED"
    return data


def progress_line(data: dict[str, Any], stream: TextIO) -> None:
    """The same progress bar as the client backfill's (tqdm), drawn once."""
    from tqdm import tqdm

    bar = tqdm(total=data["listed"] or None, unit="obj", desc="backfill job", file=stream, dynamic_ncols=True)
    bar.n = data["processed"]
    bar.set_postfix({"queued": data["inBackfillQueue"], "obj/s": data["itemsPerSecond"], "eta": data["eta"]})
    bar.close()


Clock = Callable[[], datetime]


# -- the command's actions (autolabel/cli.py hooks them in) ---------------------------------------------

FiltersOf = Callable[[Any, str], tuple[str, client_backfill.Filters]]
Emit = Callable[[Any, Any, Callable[[Any], str]], None]


NO_JOB_ENGINE = (
    "has no Step Functions backfill job: use `autolabel backfill` without --in-aws "
    "(`make backfill-demo IN_AWS=1` emulates the job)"
)


def _machine(ctx: Any) -> tuple[Any, str]:
    ctx.refuse_in_emulator(NO_JOB_ENGINE, ("BackfillJobStateMachineArn",))
    return ctx.client("stepfunctions"), ctx.output("BackfillJobStateMachineArn")


def _shape(sfn: Any, machine: str) -> JobShape:
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=machine)["definition"])
    return JobShape.from_definition(definition)


def _pace(ctx: Any, args: Any) -> client_backfill.Pace:
    sqs = ctx.client("sqs")
    measured = (
        None
        if args.images_per_second is not None
        else client_backfill.measured_images_per_second(ctx.client("cloudwatch"), datetime.now(UTC))
    )
    return client_backfill.decide_pace(
        given=args.images_per_second,
        measured=measured,
        inference_units=args.inference_units,
        retention_seconds=client_backfill.queue_retention_seconds(sqs, ctx.output("BackfillQueueUrl")),
    )


def start(ctx: Any, args: Any, filters_of: FiltersOf, emit: Emit) -> int:
    """`autolabel backfill s3://BUCKET/PREFIX --in-aws`: estimate, confirm, start; prints the job id."""
    if args.force and args.stale:
        raise ParameterError("--stale and --force do not go together: --stale relabels what another model labeled")
    sfn, machine = _machine(ctx)
    bucket, filters = filters_of(args, args.target)
    run, force, stale = new_run_id(), bool(args.force), bool(args.stale)
    if args.resume:
        previous = json.loads(describe(sfn, execution_arn(machine, args.resume))["input"])
        if (previous["bucket"], previous["prefix"]) != (bucket, filters.prefix):
            raise ParameterError(f"job {args.resume} backfilled s3://{previous['bucket']}/{previous['prefix']}")
        run, force, stale = previous["run"], bool(previous["force"]), bool(previous["stale"])
    shape = _shape(sfn, machine)
    pace = _pace(ctx, args)
    at_once = shape.max_concurrency * shape.items_per_batch
    if pace.limit < at_once:
        raise ParameterError(
            f"the pace allows {pace.limit} queued messages, fewer than the {at_once} the job's concurrent batches "
            "may send at once: pass a larger --images-per-second or --inference-units"
        )
    objects = args.objects if args.objects is not None else count_matching(ctx.client("s3"), bucket, filters)
    estimate = Estimate(objects, pace.images_per_second, pace.source, args.inference_units, shape)
    if args.dry_run:
        emit(args, estimate.to_json(), lambda _d: estimate.text())
        return 0
    print(estimate.text(), file=sys.stderr)
    if not args.yes:
        confirm(estimate, args.confirm_above)
    name = job_name(run, datetime.now(UTC))
    document = job_input(
        name=name, run=run, bucket=bucket, filters=filters, force=force, stale=stale, pace_limit=pace.limit
    )
    started = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(document))
    summary = {"job": name, "executionArn": started["executionArn"], "run": run, "estimate": estimate.to_json()}
    emit(
        args,
        summary,
        lambda d: (
            f"started backfill job {d['job']}\nfollow it: autolabel backfill status {d['job']}; "
            f"stop it: autolabel backfill cancel {d['job']}"
        ),
    )
    return 0


def show_status(ctx: Any, args: Any, emit: Emit) -> int:
    """`autolabel backfill status JOB`."""
    sfn, machine = _machine(ctx)
    arn = execution_arn(machine, args.status_target)
    described = describe(sfn, arn)
    backlog = client_backfill.queue_backlog(ctx.client("sqs"), ctx.output("BackfillQueueUrl"))
    report = read_report(ctx.client("s3"), ctx.output("BackfillReportBucketName"), described["name"])
    data = status(described, map_run_counts(sfn, arn), report, backlog, datetime.now(UTC))
    if not args.no_progress:
        progress_line(data, sys.stderr)

    def human(d: dict[str, Any]) -> str:
        lines = [f"{k:<16} {v}" for k, v in d.items() if k != "report"]
        if "report" in d:
            counts = d["report"]["counts"]
            lines.append(
                "report           "
                + ", ".join(f"{k} {v}" for k, v in counts.items())
                + f" (reconciled: {d['report']['reconciled']}); not labeled, and why: {d['report']['notLabeled']}"
            )
        return "\n".join(lines)

    emit(args, data, human)
    return 0


def cancel(ctx: Any, args: Any, emit: Emit) -> int:
    """`autolabel backfill cancel JOB`: StopExecution; what was sent stays queued and is labeled."""
    sfn, machine = _machine(ctx)
    arn = execution_arn(machine, args.status_target)
    described = describe(sfn, arn)
    if described["status"] == "RUNNING":
        sfn.stop_execution(executionArn=arn, cause="autolabel backfill cancel")
    data = {"job": described["name"], "status": "ABORTED" if described["status"] == "RUNNING" else described["status"]}
    document = json.loads(described.get("input") or "{}")
    uri = f"s3://{document.get('bucket', 'BUCKET')}/{document.get('prefix', '')}"
    emit(
        args,
        data,
        lambda d: (
            f"backfill job {d['job']}: {d['status']}; what it sent is still labeled. "
            f"Resume it: autolabel backfill {uri} --in-aws --resume {d['job']}"
        ),
    )
    return 0
