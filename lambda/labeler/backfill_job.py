"""The backfill job in AWS (docs/backfill.md): the Lambda steps of its state machine.

One function, three actions (``action`` in the event, set by the step):

- ``enqueue``: one batch of listed objects (the Distributed Map's ItemBatcher
  gives ``{"BatchInput": {"action", "job"}, "Items": [...]}``). The command's
  selection and skip rules (``domain/backfill_rules.py``), then one backfill
  message per object to label, the command's message format
  (``domain/backfill_request.py``). Paced: while the backfill queue holds, with
  what every other batch running now could add, more than the job's
  ``paceLimit`` (what the model labels in half the queue's retention), it
  raises ``BackfillQueueFull`` before sending anything, and the step retries
  later. Then it writes the batch's ledger (each object and what became of it)
  to the report bucket and returns the batch's counts. A retried batch sends
  again what an earlier attempt may have sent: the labeler acknowledges those
  as duplicates (same ``resultId``, forced ones included).
- ``reconcile``: a batch of ledger files, once the backfill queue drained.
  Each object sent is looked up in the results table: labeled, failed (a
  FAILED result) or dead-lettered (no result of its version). Writes the
  objects not labeled, and why, next to the ledger; returns the counts.
- ``summarize``: adds the reconcile batches' counts and the batches the
  engine gave up on (from the two maps' ResultWriter output) into
  ``report.json``: listed = skipped + labeled + failed + dead-lettered.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

from labeler.adapters.dynamo_table import batch_get, result_key
from labeler.domain import backfill_rules as rules
from labeler.domain.backfill_request import BackfillRequest, backfill_request, forced_result_id
from labeler.domain.label_result import FAILED, LABELED
from labeler.read_side import ResultsReader
from shared.aws_config import DATA_CONFIG
from shared.lambda_setup import BuiltOnFirstUse
from shared.queue_backlog import queue_backlog
from shared.validation import parse_positive_int, parse_project_version_arn, required

OWNER = "the backfill job Lambda"
SEND_BATCH = 10  # SendMessageBatch
SEND_ATTEMPTS = 5
REPORT_ROOT = "jobs/"
# What became of a listed object (the ledger's "outcome").
ENQUEUED, SKIPPED = "enqueued", "skipped"
SENDING = "sending"  # written before the send; "enqueued" once every message was accepted
SEND_INCOMPLETE = "its batch failed while sending (engine-failures.jsonl names the engine's error)"
# Why a sent object has no result of its version after the lane drained.
DEAD_LETTERED = "dead-lettered: no result of this object version after the backfill queue drained (backfill DLQ)"


class BackfillQueueFull(Exception):
    """The backfill queue holds what the model labels in half its retention: nothing was sent, retry later."""


class BackfillSendFailed(Exception):
    """SQS refused some of the batch's messages after retries; the step retries the batch."""


@dataclass(frozen=True)
class JobConfig:
    """The function's environment (set by the BackfillJob construct)."""

    project_version_arn: str
    results_table_name: str
    queue_url: str
    report_bucket: str
    image_bucket: str
    # The Distributed Map's MaxConcurrency and ItemBatcher size: what the other batches may add at once.
    max_concurrency: int
    batch_size: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> JobConfig:
        return cls(
            project_version_arn=parse_project_version_arn(environ.get("PROJECT_VERSION_ARN"), "PROJECT_VERSION_ARN"),
            results_table_name=required(environ, "RESULTS_TABLE_NAME", OWNER),
            queue_url=required(environ, "BACKFILL_QUEUE_URL", OWNER),
            report_bucket=required(environ, "REPORT_BUCKET", OWNER),
            image_bucket=required(environ, "IMAGE_BUCKET", OWNER),
            max_concurrency=parse_positive_int(required(environ, "MAX_CONCURRENCY", OWNER), "MAX_CONCURRENCY") or 1,
            batch_size=parse_positive_int(required(environ, "ITEMS_PER_BATCH", OWNER), "ITEMS_PER_BATCH") or 1,
        )


@dataclass(frozen=True)
class Job:
    """One job's options: the execution's input, as `autolabel backfill --in-aws` starts it."""

    run: str
    bucket: str
    prefix: str
    report: str  # the key prefix of its report: jobs/<execution name>/
    pace_limit: int
    selection: rules.Selection = field(default_factory=rules.Selection)
    force: bool = False
    stale: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        report = str(data["report"])
        if not report.startswith(REPORT_ROOT) or not report.endswith("/") or ".." in report:
            raise ValueError(f"a job's report prefix is {REPORT_ROOT}<name>/, not {report!r}")
        return cls(
            run=str(data["run"]),
            bucket=str(data["bucket"]),
            prefix=str(data.get("prefix") or ""),
            report=report,
            pace_limit=int(data["paceLimit"]),
            selection=rules.Selection.from_json(data.get("selection") or {}),
            force=bool(data.get("force", False)),
            stale=bool(data.get("stale", False)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "report": self.report,
            "paceLimit": self.pace_limit,
            "selection": self.selection.to_json(),
            "force": self.force,
            "stale": self.stale,
        }


@dataclass
class Item:
    """A listed object as the ItemReader gives it (listObjectsV2; an S3 Inventory manifest's rows alike)."""

    key: str
    etag: str
    size: int
    last_modified: datetime
    version_id: str | None = None

    @classmethod
    def from_reader(cls, raw: Mapping[str, Any]) -> Item:
        modified = raw.get("LastModified", raw.get("LastModifiedDate"))
        if isinstance(modified, int | float):
            moment = datetime.fromtimestamp(float(modified), UTC)
        else:
            moment = datetime.fromisoformat(str(modified).replace("Z", "+00:00"))
        version = raw.get("VersionId")
        return cls(
            key=str(raw["Key"]),
            etag=str(raw.get("Etag", raw.get("ETag", ""))).strip('"'),
            size=int(raw.get("Size", 0)),
            last_modified=moment if moment.tzinfo else moment.replace(tzinfo=UTC),
            version_id=str(version) if version and version != "null" else None,
        )


@dataclass
class Outcome:
    item: Item
    outcome: str
    reason: str = ""
    replaces: str | None = None

    def ledger_line(self) -> dict[str, Any]:
        line = {"key": self.item.key, "versionId": self.item.version_id, "etag": self.item.etag}
        return {**line, "size": self.item.size, "outcome": self.outcome, "reason": self.reason}


@dataclass
class Clients:
    s3: Any
    sqs: Any
    dynamodb: Any


class BackfillJob:
    """The actions, with their clients and configuration."""

    def __init__(self, config: JobConfig, clients: Clients) -> None:
        self.config = config
        self.clients = clients
        self.store = ResultsReader(clients.dynamodb, config.results_table_name)
        self._versioned: dict[str, bool] = {}

    # -- enqueue ---------------------------------------------------------------

    def enqueue(self, event: Mapping[str, Any]) -> dict[str, Any]:
        job = Job.from_json(event["BatchInput"]["job"])
        if job.bucket != self.config.image_bucket:
            raise ValueError(f"this job may read s3://{self.config.image_bucket} only, not s3://{job.bucket}")
        outcomes = [self._select(job, Item.from_reader(raw)) for raw in event.get("Items", [])]
        pending = [o for o in outcomes if not o.outcome]
        if pending:
            # First, and for the whole batch: a batch waiting for the model costs one SQS call per retry.
            self._wait_for_room(job, len(pending))
        self._current_versions(job, pending)
        self._apply_skip_rules(job, [o for o in pending if not o.outcome])
        ledger = ledger_key(job, outcomes)
        sent_before = self._sent_by_an_earlier_attempt(ledger)
        to_send = [o for o in outcomes if o.outcome == ENQUEUED]
        for outcome in outcomes:
            if outcome.item.key in sent_before and outcome.reason == rules.SKIP_LABELED:
                # An earlier attempt of this batch sent it and the labeler has labeled it since: this job's work.
                outcome.outcome, outcome.reason = ENQUEUED, ""
        # The ledger first: if the answer is lost after sending, the retry still knows what was sent.
        self._write_ledger(ledger, outcomes, sending=True)
        if to_send:
            self._send(job, to_send)
            self._write_ledger(ledger, outcomes, sending=False)
        return counts_of(outcomes) | {"ledger": ledger}

    def _write_ledger(self, key: str, outcomes: Sequence[Outcome], *, sending: bool) -> None:
        lines = []
        for outcome in outcomes:
            line = outcome.ledger_line()
            if sending and line["outcome"] == ENQUEUED:
                line["outcome"] = SENDING
            lines.append(json.dumps(line, separators=(",", ":")) + "\n")
        self.clients.s3.put_object(Bucket=self.config.report_bucket, Key=key, Body="".join(lines).encode())

    def _sent_by_an_earlier_attempt(self, ledger: str) -> set[str]:
        try:
            lines = self._read_lines(ledger)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return set()
            raise
        return {str(line["key"]) for line in lines if line.get("outcome") in (ENQUEUED, SENDING)}

    def _select(self, job: Job, item: Item) -> Outcome:
        if not item.key.startswith(job.prefix):
            return Outcome(item, SKIPPED, "outside the prefix")
        reason = job.selection.reason_to_skip(item.key, item.size, item.last_modified)
        return Outcome(item, SKIPPED, reason) if reason else Outcome(item, "")

    def _is_versioned(self, bucket: str) -> bool:
        if bucket not in self._versioned:
            status = self.clients.s3.get_bucket_versioning(Bucket=bucket).get("Status")
            self._versioned[bucket] = status in ("Enabled", "Suspended")
        return self._versioned[bucket]

    def _current_versions(self, job: Job, pending: Sequence[Outcome]) -> None:
        """A listing (listObjectsV2) has no versionId: HeadObject names the current version, as a notification would."""
        if not pending or not self._is_versioned(job.bucket):
            return
        for outcome in pending:
            if outcome.item.version_id is not None:
                continue  # an inventory row names its version
            head = self._head(job.bucket, outcome.item.key)
            if head is None:
                outcome.outcome, outcome.reason = SKIPPED, rules.SKIP_GONE
                continue
            outcome.item.version_id = str(head.get("VersionId") or "") or None
            outcome.item.etag = str(head.get("ETag", outcome.item.etag)).strip('"')
            outcome.item.size = int(head.get("ContentLength", outcome.item.size))

    def _head(self, bucket: str, key: str, version_id: str | None = None) -> dict[str, Any] | None:
        request = {"Bucket": bucket, "Key": key} | ({"VersionId": version_id} if version_id else {})
        try:
            return dict(self.clients.s3.head_object(**request))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NoSuchVersion", "400"):
                return None
            raise

    def _apply_skip_rules(self, job: Job, pending: Sequence[Outcome]) -> None:
        model = self.config.project_version_arn
        states = self.store.current_states([(job.bucket, o.item.key, model) for o in pending])
        for outcome in pending:
            item = outcome.item
            state = states.get((job.bucket, item.key, model))
            kind = rules.classify(item.version_id, item.etag, (), state)
            if kind == rules.OTHER and state is not None and self._is_non_current(job.bucket, item, state.version_id):
                kind = rules.OLDER  # the stored version exists and is not the current one: it is older
            if kind == rules.LABELED and not job.force:
                outcome.outcome, outcome.reason = SKIPPED, rules.SKIP_LABELED
            elif kind == rules.OTHER:
                outcome.outcome, outcome.reason = SKIPPED, rules.SKIP_OTHER_VERSION
            elif job.stale and kind != rules.NEW:
                outcome.outcome, outcome.reason = SKIPPED, rules.SKIP_NOT_STALE
            elif job.stale and not any(arn != model for arn in self.store.model_versions(job.bucket, item.key)):
                outcome.outcome, outcome.reason = SKIPPED, rules.SKIP_NEVER_LABELED
            else:
                outcome.outcome = ENQUEUED
                outcome.replaces = state.version_id if kind == rules.OLDER and state is not None else None

    def _is_non_current(self, bucket: str, item: Item, stored_version: str | None) -> bool:
        if item.version_id is None or stored_version is None or stored_version == item.version_id:
            return False
        return self._head(bucket, item.key, stored_version) is not None

    def _wait_for_room(self, job: Job, count: int) -> None:
        """Paced: room for this batch and a full batch from every other child running now, or BackfillQueueFull."""
        others = (self.config.max_concurrency - 1) * self.config.batch_size
        backlog = queue_backlog(self.clients.sqs, self.config.queue_url)
        if backlog + count + others > job.pace_limit:
            raise BackfillQueueFull(
                f"the backfill queue holds {backlog} message(s); this batch of {count} and up to {others} from "
                f"the other batches would pass the pace limit of {job.pace_limit}"
            )

    def _send(self, job: Job, outcomes: Sequence[Outcome]) -> None:
        requests = [self._request(job, o) for o in outcomes]
        for start in range(0, len(requests), SEND_BATCH):
            chunk = requests[start : start + SEND_BATCH]
            entries = [{"Id": str(i), "MessageBody": r.to_body()} for i, r in enumerate(chunk)]
            for _attempt in range(SEND_ATTEMPTS):
                response = self.clients.sqs.send_message_batch(QueueUrl=self.config.queue_url, Entries=entries)
                failed = {entry["Id"] for entry in response.get("Failed", [])}
                entries = [entry for entry in entries if entry["Id"] in failed]
                if not entries:
                    break
            else:
                raise BackfillSendFailed(f"SQS refused {len(entries)} backfill message(s) {SEND_ATTEMPTS} times")

    def _request(self, job: Job, outcome: Outcome) -> BackfillRequest:
        item = outcome.item
        return backfill_request(
            job.bucket,
            item.key,
            version_id=item.version_id,
            etag=item.etag,
            size=item.size,
            run_id=job.run,
            force=job.force,
            last_modified=item.last_modified.astimezone(UTC).isoformat(timespec="seconds"),
            replaces=outcome.replaces,
        )

    # -- reconcile -------------------------------------------------------------

    def reconcile(self, event: Mapping[str, Any]) -> dict[str, Any]:
        job = Job.from_json(event["BatchInput"]["job"])
        totals: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        for raw in event.get("Items", []):
            ledger = str(raw["Key"])
            if not ledger.startswith(f"{job.report}ledger/"):
                raise ValueError(f"{ledger} is not a ledger of this job")
            lines = self._read_lines(ledger)
            rows = self._reconcile_rows(job, lines)
            totals.update(row["counted"] for row in rows)
            reasons.update(row["reason"] for row in rows if row["counted"] == SKIPPED)
            not_labeled = [row for row in rows if row["counted"] != LABELED.lower()]
            body = "".join(json.dumps(_public(row), separators=(",", ":")) + "\n" for row in not_labeled)
            name = ledger.rsplit("/", 1)[-1]
            self.clients.s3.put_object(
                Bucket=self.config.report_bucket, Key=f"{job.report}not-labeled/{name}", Body=body.encode()
            )
            totals["listed"] += len(lines)
        return _counts(totals, reasons)

    def _read_lines(self, key: str) -> list[dict[str, Any]]:
        body = self.clients.s3.get_object(Bucket=self.config.report_bucket, Key=key)["Body"].read().decode()
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def _reconcile_rows(self, job: Job, lines: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        model = self.config.project_version_arn
        sent = [line for line in lines if line["outcome"] in (ENQUEUED, SENDING)]
        keys = [result_key(job.bucket, line["key"], model) for line in sent]
        projection = ("resultId", "status", "versionId", "etag", "error", "key")
        stored = {
            item["key"]: item
            for item in batch_get(self.clients.dynamodb, self.config.results_table_name, keys, projection=projection)
        }
        rows = []
        for line in lines:
            if line["outcome"] == SKIPPED:
                rows.append({**line, "counted": SKIPPED})
                continue
            counted, reason = self._fate(job, line, stored.get(line["key"]))
            if line["outcome"] == SENDING and counted == "deadLettered":
                counted, reason = "failed", SEND_INCOMPLETE
            rows.append({**line, "counted": counted, "reason": reason})
        return rows

    def _fate(self, job: Job, line: Mapping[str, Any], item: Mapping[str, Any] | None) -> tuple[str, str]:
        """('labeled' | 'failed' | 'deadLettered', why) of one object sent."""
        if item is None:
            return "deadLettered", DEAD_LETTERED
        listed = rules.listed_identity(line.get("versionId"), str(line.get("etag", "")))
        stored = rules.listed_identity(item.get("versionId"), str(item.get("etag", "")))
        if stored != listed:
            return "deadLettered", DEAD_LETTERED + f"; the stored result is of {stored}"
        if job.force:
            request = backfill_request(
                job.bucket,
                line["key"],
                version_id=line.get("versionId"),
                etag=str(line["etag"]),
                size=int(line.get("size", 0)),
                run_id=job.run,
                force=True,
            )
            if item.get("resultId") != forced_result_id(request.obj, self.config.project_version_arn, job.run):
                return "deadLettered", DEAD_LETTERED + " (the stored result is not this run's relabel)"
        if item.get("status") == FAILED:
            error = item.get("error") or {}
            return "failed", f"labeling failed: {error.get('code', '')}: {error.get('message', '')}".strip()
        return LABELED.lower(), ""

    # -- summarize -------------------------------------------------------------

    def summarize(self, event: Mapping[str, Any]) -> dict[str, Any]:
        job = Job.from_json(event["job"])
        totals: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        for output in self._outputs(event["reconcile"], "SUCCEEDED"):
            totals.update({k: int(v) for k, v in output.items() if isinstance(v, int)})
            reasons.update(output.get("skippedBy", {}))
        engine_failures = [row for batch in self._failures(event["enqueue"]) for row in batch]
        engine_failures += [row for batch in self._failures(event["reconcile"]) for row in batch]
        for row in engine_failures:
            if row.pop("ledgered", False):
                row["counted"] = "see its ledger"  # counted by the reconcile (failed: sending did not complete)
        if engine_failures:
            body = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in engine_failures)
            self.clients.s3.put_object(
                Bucket=self.config.report_bucket,
                Key=f"{job.report}not-labeled/engine-failures.jsonl",
                Body=body.encode(),
            )
            totals["listed"] += sum(1 for row in engine_failures if row.get("counted") == "failed")
            totals["failed"] += sum(1 for row in engine_failures if row.get("counted") == "failed")
            totals["unreconciledLedgers"] += sum(1 for row in engine_failures if row.get("counted") == "unreconciled")
        report: dict[str, Any] = {
            "job": job.report.removeprefix(REPORT_ROOT).rstrip("/"),
            "run": job.run,
            "bucket": job.bucket,
            "prefix": job.prefix,
            "counts": {name: totals[name] for name in ("listed", "skipped", "labeled", "failed", "deadLettered")},
            "skippedBy": dict(reasons),
            "notLabeled": f"s3://{self.config.report_bucket}/{job.report}not-labeled/",
        }
        counts = report["counts"]
        parts = counts["skipped"] + counts["labeled"] + counts["failed"] + counts["deadLettered"]
        # A ledger the engine could not reconcile leaves its objects out of every count.
        report["unreconciledLedgers"] = totals["unreconciledLedgers"]
        report["reconciled"] = counts["listed"] == parts and not totals["unreconciledLedgers"]
        self.clients.s3.put_object(
            Bucket=self.config.report_bucket, Key=f"{job.report}report.json", Body=json.dumps(report, indent=1).encode()
        )
        return report

    def _manifest(self, written: Mapping[str, Any]) -> dict[str, Any]:
        details = written["ResultWriterDetails"]
        body = self.clients.s3.get_object(Bucket=details["Bucket"], Key=details["Key"])["Body"].read()
        return dict(json.loads(body))

    def _result_files(self, written: Mapping[str, Any], status: str) -> Iterable[dict[str, Any]]:
        manifest = self._manifest(written)
        bucket = manifest.get("DestinationBucket", written["ResultWriterDetails"]["Bucket"])
        for entry in manifest.get("ResultFiles", {}).get(status, []):
            body = self.clients.s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            yield from json.loads(body)

    def _outputs(self, written: Mapping[str, Any], status: str) -> Iterable[dict[str, Any]]:
        for child in self._result_files(written, status):
            yield json.loads(child.get("Output") or "{}")

    def _failures(self, written: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
        """Per failed child: its objects (enqueue) or ledger files (reconcile), each with the engine's error."""
        failures = []
        for child in self._result_files(written, "FAILED"):
            batch = json.loads(child.get("Input") or "{}")
            why = f"the engine gave up on its batch: {child.get('Error', '')}: {child.get('Cause', '')}"[:1000]
            action = batch.get("BatchInput", {}).get("action")
            counted = "failed" if action == "enqueue" else "unreconciled"
            ledgered = action == "enqueue" and self._ledger_exists(batch)
            failures.append(
                [
                    {"key": raw.get("Key"), "counted": counted, "reason": why, "ledgered": ledgered}
                    for raw in batch.get("Items", [])
                ]
            )
        return failures

    def _ledger_exists(self, batch: Mapping[str, Any]) -> bool:
        """Whether the failed batch wrote its ledger (it failed while sending): then the reconcile counted it."""
        job = Job.from_json(batch["BatchInput"]["job"])
        outcomes = [Outcome(Item.from_reader(raw), "") for raw in batch.get("Items", [])]
        try:
            self.clients.s3.head_object(Bucket=self.config.report_bucket, Key=ledger_key(job, outcomes))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return False
            raise
        return True


def _public(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("key", "versionId", "etag", "size", "counted", "reason") if k in row}


def _counts(totals: Counter[str], reasons: Counter[str]) -> dict[str, Any]:
    names = ("listed", "skipped", "labeled", "failed", "deadLettered")
    return {name: totals[name] for name in names} | {"skippedBy": dict(reasons)}


def counts_of(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    reasons = Counter(o.reason for o in outcomes if o.outcome == SKIPPED)
    enqueued = sum(1 for o in outcomes if o.outcome == ENQUEUED)
    return {
        "listed": len(outcomes),
        "enqueued": enqueued,
        "skipped": len(outcomes) - enqueued,
        "skippedBy": dict(reasons),
    }


def ledger_key(job: Job, outcomes: Sequence[Outcome]) -> str:
    """The same batch (a retry) writes the same ledger file."""
    digest = hashlib.sha256("\0".join(o.item.key for o in outcomes).encode()).hexdigest()[:24]
    return f"{job.report}ledger/{digest}.jsonl"


def _job_from_environment() -> BackfillJob:
    config = JobConfig.from_environ(os.environ)
    clients = Clients(
        s3=boto3.client("s3", config=DATA_CONFIG),
        sqs=boto3.client("sqs", config=DATA_CONFIG),
        dynamodb=boto3.client("dynamodb", config=DATA_CONFIG),
    )
    return BackfillJob(config, clients)


_job = BuiltOnFirstUse(_job_from_environment)
use_job = _job.use  # tests and the emulator inject their own
ACTIONS: dict[str, Callable[[BackfillJob, Mapping[str, Any]], dict[str, Any]]] = {
    "enqueue": BackfillJob.enqueue,
    "reconcile": BackfillJob.reconcile,
    "summarize": BackfillJob.summarize,
}


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    action = event.get("action") or event.get("BatchInput", {}).get("action")
    if action not in ACTIONS:
        raise ValueError(f"unknown backfill job action {action!r}")
    return ACTIONS[str(action)](_job.get(), event)
