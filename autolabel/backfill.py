"""`autolabel backfill`: label the objects already in a bucket, through the backfill queue.

Lists a bucket/prefix (ListObjectVersions when the bucket has versioning, so
each message names the exact current version; ListObjectsV2 otherwise), skips
what already has a result for the stack's model version, and sends one message
per remaining object to the backfill queue (labeler/domain/backfill_request.py
is the message). The labeler decides each one again against the table
(docs/behaviour.md#backfill), so a skipped check here is an optimisation, never
a guarantee.

Paced: it never lets the backfill queue hold more than the model can label in
half the queue's retention, at the measured (or given) throughput.
Resumable: a local checkpoint file records, after every batch sent, the last
key handled and the counts; the same command resumes from it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autolabel.errors import ParameterError, ServiceError
from autolabel.function_code import function_names, import_function_module

if TYPE_CHECKING:
    from labeler.domain import backfill_rules
    from labeler.domain.backfill_request import BackfillRequest, backfill_request
    from labeler.domain.s3_notification import IMAGE_EXTENSIONS
    from labeler.domain.stored_state import StoredState
    from labeler.ports import StoreError
    from labeler.read_side import ResultsReader
    from shared.names import LABELER_SERVICE, METRICS_NAMESPACE
    from shared.queue_backlog import queue_backlog
else:  # the functions' packages, imported without changing sys.path (autolabel.function_code)
    (StoreError,) = function_names("labeler.ports", "StoreError")
    (ResultsReader,) = function_names("labeler.read_side", "ResultsReader")
    (StoredState,) = function_names("labeler.domain.stored_state", "StoredState")
    BackfillRequest, backfill_request = function_names(
        "labeler.domain.backfill_request", "BackfillRequest", "backfill_request"
    )
    (IMAGE_EXTENSIONS,) = function_names("labeler.domain.s3_notification", "IMAGE_EXTENSIONS")
    backfill_rules = import_function_module("labeler.domain.backfill_rules")
    LABELER_SERVICE, METRICS_NAMESPACE = function_names("shared.names", "LABELER_SERVICE", "METRICS_NAMESPACE")
    (queue_backlog,) = function_names("shared.queue_backlog", "queue_backlog")

CHECKPOINT_VERSION = 1
SEND_BATCH = 10  # SendMessageBatch
STATE_BATCH = 100  # BatchGetItem
# The pace: the backfill queue never holds more than the model labels in this
# share of the queue's retention, so nothing can expire before it is labeled.
RETENTION_SHARE = 0.5
# Without a measurement (no ImagesLabeled datapoint in the last week), assume
# one image per second per inference unit: conservative for small images; pass
# --images-per-second with the figure docs/performance.md measured for yours.
ASSUMED_IMAGES_PER_SECOND_PER_UNIT = 1.0
PRICE_PER_INFERENCE_UNIT_HOUR = 4.0  # USD, us-east-1 list price (README: Costs)
DEFAULT_CHECKPOINT_DIR = Path(".autolabel") / "backfill"


@dataclass(frozen=True)
class Filters:
    prefix: str = ""
    since: datetime | None = None
    until: datetime | None = None
    suffixes: tuple[str, ...] = IMAGE_EXTENSIONS  # compared lower-case, as the labeler does
    min_size: int | None = None  # bytes, inclusive
    max_size: int | None = None

    @property
    def selection(self) -> backfill_rules.Selection:
        return backfill_rules.Selection(self.since, self.until, self.suffixes, self.min_size, self.max_size)

    def matches(self, entry: Listed) -> bool:
        return self.selection.reason_to_skip(entry.key, entry.size, entry.last_modified) is None

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "prefix": self.prefix,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "suffixes": list(self.suffixes),
        }
        # Only when given, so that checkpoints of runs without size bounds keep their file name.
        for name, bound in (("minSize", self.min_size), ("maxSize", self.max_size)):
            if bound is not None:
                described[name] = bound
        return described


@dataclass
class Progress:
    """What a run has done so far; saved in the checkpoint after every batch sent."""

    listed: int = 0  # objects listed under the prefix (current versions)
    matched: int = 0  # listed, in the time window and with a wanted suffix
    already_labeled: int = 0  # matched, with a result of this version for this model
    other_version: int = 0  # matched, with a result of another version the listing cannot order
    enqueued: int = 0  # messages sent to the backfill queue
    by_extension: dict[str, int] = field(default_factory=dict)  # listed objects by extension

    def reset(self) -> None:
        self.listed = self.matched = self.already_labeled = self.other_version = self.enqueued = 0
        self.by_extension = {}

    def add(self, other: Progress) -> None:
        for name in ("listed", "matched", "already_labeled", "other_version", "enqueued"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for extension, count in other.by_extension.items():
            self.by_extension[extension] = self.by_extension.get(extension, 0) + count


@dataclass
class Checkpoint:
    bucket: str
    filters: dict[str, Any]
    force: bool
    run_id: str
    model: str
    queue_url: str
    listed_after: str = ""  # every key up to and including this one is handled
    done: bool = False
    started_at: str = ""
    updated_at: str = ""
    progress: Progress = field(default_factory=Progress)

    def to_json(self) -> str:
        return json.dumps({"version": CHECKPOINT_VERSION, **asdict(self)}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        data = json.loads(text)
        if data.pop("version", None) != CHECKPOINT_VERSION:
            raise ParameterError("the checkpoint file is of another version; pass --restart")
        data["progress"] = Progress(**data.get("progress", {}))
        return cls(**data)

    def save(self, path: Path, now: datetime) -> None:
        self.updated_at = now.isoformat(timespec="seconds")
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(self.to_json())
        os.replace(temporary, path)  # atomic: an interruption never leaves half a checkpoint


def checkpoint_path(bucket: str, filters: Filters, force: bool, directory: Path = DEFAULT_CHECKPOINT_DIR) -> Path:
    """One checkpoint per bucket and set of options, so different backfills never mix."""
    digest = hashlib.sha256(json.dumps([bucket, filters.describe(), force], sort_keys=True).encode()).hexdigest()
    return directory / f"{bucket}-{digest[:12]}.json"


@dataclass(frozen=True)
class Listed:
    key: str
    version_id: str | None
    etag: str
    size: int
    last_modified: datetime
    older_versions: tuple[str, ...] = ()  # non-current versions of the key seen in the same page


def extension_of(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[1].lower() if "." in name else "(none)"


def bucket_is_versioned(s3: Any, bucket: str) -> bool:
    return s3.get_bucket_versioning(Bucket=bucket).get("Status") in ("Enabled", "Suspended")


def list_current(s3: Any, bucket: str, prefix: str, after: str, versioned: bool) -> Iterator[list[Listed]]:
    """Pages of the current objects under ``prefix`` whose keys come after ``after``, in key order."""
    if not versioned:
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if after:
            request["StartAfter"] = after
        while True:
            page = s3.list_objects_v2(**request)
            yield [
                Listed(o["Key"], None, o["ETag"], int(o["Size"]), o["LastModified"]) for o in page.get("Contents", [])
            ]
            if not page.get("IsTruncated"):
                return
            request["ContinuationToken"] = page["NextContinuationToken"]
    request = {"Bucket": bucket, "Prefix": prefix}
    if after:
        request["KeyMarker"] = after  # versions of keys after it
    while True:
        page = s3.list_object_versions(**request)
        older: dict[str, list[str]] = {}
        for version in page.get("Versions", []):
            if not version.get("IsLatest"):
                older.setdefault(version["Key"], []).append(str(version["VersionId"]))
        # A key whose latest entry is a delete marker has no latest version here: it is not listed.
        yield [
            Listed(
                v["Key"],
                str(v["VersionId"]),
                v["ETag"],
                int(v["Size"]),
                v["LastModified"],
                tuple(older.get(v["Key"], ())),
            )
            for v in page.get("Versions", [])
            if v.get("IsLatest")
        ]
        if not page.get("IsTruncated"):
            return
        request["KeyMarker"] = page["NextKeyMarker"]
        if page.get("NextVersionIdMarker"):
            request["VersionIdMarker"] = page["NextVersionIdMarker"]
        else:
            request.pop("VersionIdMarker", None)


def queue_retention_seconds(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["MessageRetentionPeriod"])
    return int(attributes["Attributes"]["MessageRetentionPeriod"])


def measured_images_per_second(cloudwatch: Any, now: datetime) -> float | None:
    """The labeler's best hour of the last week (ImagesLabeled + ImagesFailed), per second; None without data."""
    best = 0.0
    for metric in ("ImagesLabeled", "ImagesFailed"):
        try:
            datapoints = cloudwatch.get_metric_statistics(
                Namespace=METRICS_NAMESPACE,
                MetricName=metric,
                Dimensions=[{"Name": "service", "Value": LABELER_SERVICE}],
                StartTime=now - timedelta(days=7),
                EndTime=now,
                Period=3600,
                Statistics=["Sum"],
            ).get("Datapoints", [])
        except Exception:  # no permission, no endpoint: fall back to the assumption
            return None
        best = max([best, *(float(point.get("Sum", 0)) for point in datapoints)])
    return best / 3600 if best > 0 else None


def pace_limit(images_per_second: float, retention_seconds: int) -> int:
    """The most messages the backfill queue may hold: what the model labels in half the retention."""
    return max(SEND_BATCH, math.floor(images_per_second * retention_seconds * RETENTION_SHARE))


@dataclass
class Pace:
    images_per_second: float
    source: str  # "measured", "given" or "assumed"
    limit: int


def decide_pace(
    *,
    given: float | None,
    measured: float | None,
    inference_units: int,
    retention_seconds: int,
) -> Pace:
    if given is not None:
        rate, source = given, "given"
    elif measured is not None:
        rate, source = measured, "measured"
    else:
        rate, source = ASSUMED_IMAGES_PER_SECOND_PER_UNIT * inference_units, "assumed"
    return Pace(rate, source, pace_limit(rate, retention_seconds))


def classify(listed: Listed, state: StoredState | None) -> str:
    """'new', 'labeled' (a result of this version), 'older' (of a version listed as non-current) or 'other'."""
    return backfill_rules.classify(listed.version_id, listed.etag, listed.older_versions, state)


class ProgressView:
    """The progress bar: enqueued as its count; listed, labeled, rate and ETA beside it. Silent when disabled."""

    def __init__(self, enabled: bool, stream: Any = None) -> None:
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm  # only the backfill needs it

            self._bar = tqdm(total=None, unit="msg", desc="backfill enqueued", file=stream, dynamic_ncols=True)
        self._started = time.monotonic()
        self._labeled_at_start: int | None = None  # a resumed run's rate counts its own work only

    def update(self, progress: Progress, labeled: int | None, pace_note: str = "") -> None:
        if self._bar is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-6)
        postfix: dict[str, Any] = {"listed": progress.listed, "skipped": progress.already_labeled}
        if labeled is not None:
            if self._labeled_at_start is None:
                self._labeled_at_start = labeled
            postfix["labeled"] = labeled
            rate = (labeled - self._labeled_at_start) / elapsed
            left = progress.enqueued - labeled
            postfix["labeled/s"] = f"{rate:.1f}"
            postfix["eta"] = _duration(left / rate) if rate > 0 and left > 0 else "-"
        if pace_note:
            postfix["pace"] = pace_note
        self._bar.n = progress.enqueued
        self._bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


@dataclass
class BackfillRun:
    """One `autolabel backfill` (or its resumption), with its clients and knobs."""

    s3: Any
    sqs: Any
    dynamodb: Any
    table_name: str
    queue_url: str
    model: str
    bucket: str
    filters: Filters
    force: bool = False
    checkpoint_file: Path | None = None
    restart: bool = False
    pace: Pace | None = None
    view: ProgressView | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    pace_poll_seconds: float = 30.0
    stop_after: int | None = None  # raise KeyboardInterrupt once this many were enqueued (tests, the demo)
    _backlog: int = 0

    def open_checkpoint(self) -> tuple[Checkpoint, bool]:
        """(the checkpoint, whether it resumes an earlier run)."""
        path = self.path
        if path.exists() and not self.restart:
            checkpoint = Checkpoint.from_json(path.read_text())
            if checkpoint.model != self.model or checkpoint.queue_url != self.queue_url:
                raise ParameterError(
                    f"{path} belongs to another deployment or model version; pass --restart or --checkpoint"
                )
            return checkpoint, True
        now = self.clock().isoformat(timespec="seconds")
        return (
            Checkpoint(
                bucket=self.bucket,
                filters=self.filters.describe(),
                force=self.force,
                run_id=uuid.uuid4().hex,
                model=self.model,
                queue_url=self.queue_url,
                started_at=now,
            ),
            False,
        )

    @property
    def path(self) -> Path:
        return self.checkpoint_file or checkpoint_path(self.bucket, self.filters, self.force)

    def run(self, *, dry_run: bool = False) -> Checkpoint:
        """List, check and enqueue (or, ``dry_run``, only count); returns the final checkpoint."""
        checkpoint, _ = self.open_checkpoint()
        if checkpoint.done and not dry_run:
            return checkpoint
        if dry_run:  # counts from the start, never touching the checkpoint
            checkpoint = Checkpoint(self.bucket, self.filters.describe(), self.force, "dry-run", self.model, "")
        store = ResultsReader(self.dynamodb, self.table_name)
        versioned = bucket_is_versioned(self.s3, self.bucket)
        self._backlog = 0 if dry_run else queue_backlog(self.sqs, self.queue_url)
        try:
            for page in list_current(self.s3, self.bucket, self.filters.prefix, checkpoint.listed_after, versioned):
                self._handle_page(page, checkpoint, store, dry_run)
            checkpoint.done = True
            if not dry_run:
                checkpoint.save(self.path, self.clock())
        finally:
            if self.view is not None:
                self.view.update(checkpoint.progress, self._labeled(checkpoint, dry_run))
        return checkpoint

    def _handle_page(self, page: Sequence[Listed], checkpoint: Checkpoint, store: ResultsReader, dry_run: bool) -> None:
        wanted = [entry for entry in page if self.filters.matches(entry)]
        states: dict[tuple[str, str, str], StoredState | None] = {}
        for start in range(0, len(wanted), STATE_BATCH):
            refs = [(self.bucket, entry.key, self.model) for entry in wanted[start : start + STATE_BATCH]]
            try:
                states.update(store.current_states(refs))
            except StoreError as error:
                raise ServiceError(f"could not read the current results: {error}") from None
        wanted_ids = {id(entry) for entry in wanted}
        pending = Progress()
        batch: list[BackfillRequest] = []
        for entry in page:
            pending.listed += 1
            extension = extension_of(entry.key)
            pending.by_extension[extension] = pending.by_extension.get(extension, 0) + 1
            if id(entry) not in wanted_ids:
                self._commit_if_full(batch, pending, checkpoint, entry.key, dry_run, force=False)
                continue
            pending.matched += 1
            kind = classify(entry, states.get((self.bucket, entry.key, self.model)))
            if kind == "labeled" and not self.force:
                pending.already_labeled += 1
            elif kind == "other":
                pending.other_version += 1  # the labeler would leave it: that version's notification decides
            else:
                batch.append(
                    backfill_request(
                        self.bucket,
                        entry.key,
                        version_id=entry.version_id,
                        etag=entry.etag,
                        size=entry.size,
                        run_id=checkpoint.run_id,
                        force=self.force,
                        last_modified=entry.last_modified.astimezone(UTC).isoformat(timespec="seconds"),
                        # The stored result is of a version this listing shows non-current: replace it.
                        replaces=_stored_version(states.get((self.bucket, entry.key, self.model)))
                        if kind == "older"
                        else None,
                    )
                )
            self._commit_if_full(batch, pending, checkpoint, entry.key, dry_run, force=False)
        if page:
            self._commit_if_full(batch, pending, checkpoint, page[-1].key, dry_run, force=True)

    def _commit_if_full(
        self,
        batch: list[BackfillRequest],
        pending: Progress,
        checkpoint: Checkpoint,
        last_key: str,
        dry_run: bool,
        *,
        force: bool,
    ) -> None:
        """Send a full batch (or, ``force``, what there is), then record it and the keys before it."""
        if len(batch) < SEND_BATCH and not force:
            return
        if batch and not dry_run:
            self._wait_for_room(len(batch), checkpoint)
            self._send(batch)
        pending.enqueued += len(batch)
        batch.clear()
        checkpoint.progress.add(pending)
        pending.reset()
        checkpoint.listed_after = last_key
        if not dry_run:
            checkpoint.save(self.path, self.clock())
            if self.view is not None:
                self.view.update(checkpoint.progress, self._labeled(checkpoint, dry_run))
            if self.stop_after is not None and checkpoint.progress.enqueued >= self.stop_after:
                raise KeyboardInterrupt

    def follow(self, checkpoint: Checkpoint, *, poll_seconds: float = 5.0) -> int:
        """Wait until this run's messages have left the backfill queue; returns the backlog left (0)."""
        while True:
            self._backlog = queue_backlog(self.sqs, self.queue_url)
            if self.view is not None:
                self.view.update(checkpoint.progress, self._labeled(checkpoint, False))
            if self._backlog == 0:
                return 0
            self.sleep(poll_seconds)

    def _labeled(self, checkpoint: Checkpoint, dry_run: bool) -> int | None:
        """Messages of this run that left the queue (labeled, or found done); an estimate from its depth."""
        if dry_run:
            return None
        return max(0, checkpoint.progress.enqueued - self._backlog)

    def _wait_for_room(self, count: int, checkpoint: Checkpoint) -> None:
        """Paced: wait while the backfill queue holds what the model labels in half its retention."""
        if self.pace is None:
            return
        while True:
            self._backlog = queue_backlog(self.sqs, self.queue_url)
            if self._backlog + count <= self.pace.limit:
                return
            if self.view is not None:
                self.view.update(
                    checkpoint.progress, self._labeled(checkpoint, False), pace_note="waiting for the model"
                )
            self.sleep(self.pace_poll_seconds)

    def _send(self, batch: Sequence[BackfillRequest]) -> None:
        entries = [{"Id": str(i), "MessageBody": request.to_body()} for i, request in enumerate(batch)]
        for _attempt in range(5):
            response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            failed = {entry["Id"] for entry in response.get("Failed", [])}
            if not failed:
                self._backlog += len(batch)
                return
            entries = [entry for entry in entries if entry["Id"] in failed]
            self.sleep(1.0)
        raise ServiceError(f"SQS refused {len(entries)} backfill message(s) five times; resume to retry")


def _stored_version(state: StoredState | None) -> str | None:
    return state.version_id if state is not None else None


def estimate(
    progress: Progress, pace: Pace, inference_units: int, price_per_unit_hour: float = PRICE_PER_INFERENCE_UNIT_HOUR
) -> dict[str, Any]:
    to_label = progress.enqueued
    hours = to_label / pace.images_per_second / 3600 if pace.images_per_second > 0 else float("inf")
    return {
        "listed": progress.listed,
        "byExtension": dict(sorted(progress.by_extension.items(), key=lambda item: (-item[1], item[0]))),
        "matched": progress.matched,
        "alreadyLabeled": progress.already_labeled,
        "otherVersionStored": progress.other_version,
        "toLabel": to_label,
        "imagesPerSecond": round(pace.images_per_second, 3),
        "throughput": pace.source,
        "inferenceUnits": inference_units,
        "modelHours": round(hours, 2),
        "estimatedCostUsd": round(hours * inference_units * price_per_unit_hour, 2),
    }


def status(checkpoint: Checkpoint, *, backlog: int, dead_letters: int, path: Path) -> dict[str, Any]:
    progress = checkpoint.progress
    labeled = max(0, progress.enqueued - backlog)
    return {
        "checkpoint": str(path),
        "bucket": checkpoint.bucket,
        "prefix": checkpoint.filters.get("prefix", ""),
        "run": checkpoint.run_id,
        "force": checkpoint.force,
        "listing": "complete" if checkpoint.done else f"in progress (after {checkpoint.listed_after!r})",
        "listed": progress.listed,
        "matched": progress.matched,
        "alreadyLabeled": progress.already_labeled,
        "otherVersionStored": progress.other_version,
        "enqueued": progress.enqueued,
        "inBackfillQueue": backlog,
        "labeled": labeled,
        "deadLetters": dead_letters,
        "percentDone": round(100.0 * labeled / progress.enqueued, 1) if progress.enqueued else 100.0,
        "startedAt": checkpoint.started_at,
        "updatedAt": checkpoint.updated_at,
    }


def parse_time(value: str, option: str) -> datetime:
    """ISO-8601 date or date-time; naive values are UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError(f"{option} must be an ISO-8601 date or time (2026-11-01, 2026-11-01T08:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_suffixes(values: Sequence[str] | None) -> tuple[str, ...]:
    if not values:
        return IMAGE_EXTENSIONS
    suffixes = tuple(
        (s if s.startswith(".") else f".{s}").lower() for value in values for s in value.split(",") if s.strip()
    )
    if not suffixes:
        raise ParameterError("--suffix needs at least one suffix, e.g. --suffix .png")
    return suffixes


_SIZE_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}


def parse_size(value: str | None, option: str) -> int | None:
    """Bytes: 2048, 500k, 5M, 1Gi (k/M/G are powers of 1000, Ki/Mi/Gi of 1024; a trailing B is allowed)."""
    if value is None:
        return None
    text = value.strip().lower().removesuffix("b")
    number = text.rstrip("kmgi")
    unit = text[len(number) :]
    try:
        size = float(number) * _SIZE_UNITS[unit]
    except (KeyError, ValueError):
        raise ParameterError(f"{option} must be a size in bytes, e.g. 2048, 500k, 5M or 1Gi; got {value!r}") from None
    if size < 0:
        raise ParameterError(f"{option} must not be negative")
    return int(size)
