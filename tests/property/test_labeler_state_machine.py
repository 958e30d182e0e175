"""Property-based tests of the labeler's decisions and store against a reference model.

A Hypothesis RuleBasedStateMachine uploads new versions of a few keys (random
S3 sequencers of 14-22 hex digits, newer under S3's right-pad rule, sometimes
shorter than the older one), delivers their notifications through the real
handler (``labeler.handler.handler`` with the real pipeline injected) in random
batches and orders, duplicates and replays old notifications, and injects
failures into chosen DynamoDB and PutEvents calls: clean throttling, botocore
connection errors before the request is applied, and lost responses (applied,
then a read timeout). A record that fails is delivered again later.

DynamoDB is moto in-process with the synthesized template's key schema (one
table per test run, one bucket per example); DetectCustomLabels is scripted
per object version (including results with 100-150 distinct labels);
PutEvents is recorded.

Unversioned uploads (issue 16): a key may also be overwritten without a
versionId (an unversioned bucket: the resultId comes from the ETag), with new
bytes or with the bytes of an earlier unversioned upload of the key again (the
same resultId), and deletions between them; their notifications are delivered
in any order like the others. The model answers the same for every
unversioned upload of a key (it reads whatever the key holds).

Deletions (deletions on): a key may also be deleted (a delete marker, its
sequencer newer than every earlier event of the key, possibly before any
upload), and those notifications are delivered, duplicated and replayed the
same way.

Checked after every delivery, and once everything is drained without faults:

- the current result (``queries.get_result``) is never older than one already
  seen or than any acknowledged notification (sequencer order: right-pad, then
  compare), and ends as the newest upload's, with its full ``customLabels`` in
  Rekognition's order;
- the label index equals the current result (``queries.find_by_label`` for
  every label ever used: the object iff its current result has the label, at
  that label's best confidence);
- every current result is announced, and no resultId is announced twice unless
  a PutEvents call for it had an unknown outcome (duplicates then identical);
  a record whose event EventBridge accepted is never put back on the queue;
- a result already stored is never sent to Rekognition again;
- with deletions: the stored state (a result, or its deletion) only moves
  forward in sequencer order, a key whose newest event is a deletion ends
  deleted (the deletion recorded, no label index, its result announced
  removed once), and no Detected/Failed event of a result follows its Removed.

Profiles (tests/property/conftest.py): ``ci`` (default, derandomized) and
``deep`` (``make property``). ``HYPOTHESIS_SEED=<n>`` replays a printed seed.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import boto3
import pytest
from hypothesis import event, note, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test
from moto import mock_aws

from labeler import handler
from labeler.adapters.clients import AwsClients
from labeler.adapters.result_items import label_index_keys
from labeler.config import LabelerConfig
from labeler.domain.s3_notification import S3ObjectEvent
from labeler.logic.pipeline import LabelingPipeline
from labeler.queries import find_by_label, get_result
from labeler.wiring import build_pipeline
from local.emulator import create_table
from local.fakes.canned_models import ScriptedRekognition
from local.fakes.faults import (
    DYNAMODB_ENDPOINT,
    EVENTS_ENDPOINT,
    FaultKind,
    FaultPlan,
    FaultSwitch,
    PlannedFault,
    objects_concerned,
    with_faults,
)
from local.fakes.recorders import FakeClock, RecordingEventBus
from local.poller import FakeLambdaContext
from local.stack_template import StackFacts
from shared import table_layout as layout
from shared.dynamo_codec import serialize_item
from shared.names import LABELER_SERVICE
from tests.support.builders import notification_body, s3_record, s3_removal_record, sqs_messages_event
from tests.support.reference import LABEL_POOL, LabelSpec, Version, best_confidences, is_newer, next_sequencer

ARN = "arn:aws:rekognition:us-east-1:123456789012:project/props/version/props.1/1700000000000"
TABLE = "props-results"
BUS = "props-bus"
# Keys as users name them; notifications carry them URL-encoded.
KEYS = ("a.png", "dir/b c.jpg", "x+y.JPEG")
DYNAMODB_OPERATIONS = ("put_item", "update_item", "batch_write_item", "batch_get_item", "query")
MAX_BATCH = 10
MAX_PENDING = 10  # keeps examples (and their drain) short
DRAIN_ROUNDS = 12
REMOVED = "Custom Labels Removed"
CLAIMS_EXPIRED = 600.0  # seconds: more than the pipeline's publish-claim TTL (120 s)

F = TypeVar("F", bound=Callable[..., Any])


# -- strategies ------------------------------------------------------------------

FEW_LABELS = st.lists(st.tuples(st.integers(0, 7), st.integers(5000, 9999), st.booleans()), max_size=4).map(
    lambda few: LabelSpec("few", few=tuple(few))
)
MANY_LABELS = st.tuples(st.integers(100, 120), st.integers(0, LABEL_POOL - 1), st.integers(0, 4989)).map(
    lambda many: LabelSpec("many", many=many)
)
# Mostly a few labels; one upload in four has more than 99 distinct labels (slow in moto), one in eight is empty.
LABEL_SPECS = st.sampled_from(["few", "few", "few", "few", "few", "many", "many", "empty"]).flatmap(
    lambda kind: {"few": FEW_LABELS, "many": MANY_LABELS, "empty": st.just(LabelSpec("empty"))}[kind]
)
KEY_INDEXES = st.integers(0, len(KEYS) - 1)
FAULTS = st.lists(
    st.one_of(
        st.builds(
            PlannedFault,
            operation=st.sampled_from(("put_item", "batch_write_item", *DYNAMODB_OPERATIONS)),  # writes more often
            key_index=KEY_INDEXES,
            occurrence=st.integers(1, 3),
            kind=st.sampled_from([kind for kind in FaultKind if kind is not FaultKind.PARTIAL]),
        ),
        st.builds(
            PlannedFault,
            operation=st.just("put_events"),
            key_index=KEY_INDEXES,
            occurrence=st.integers(1, 2),
            kind=st.sampled_from(list(FaultKind)),
        ),
    ),
    max_size=3,
)


# -- the world one test run shares -----------------------------------------------


@dataclass
class World:
    raw: Any  # the moto DynamoDB client, for checks (no faults)
    rekognition: ScriptedRekognition
    bus: RecordingEventBus
    switch: FaultSwitch
    clock: FakeClock
    pipeline: LabelingPipeline
    buckets: Iterator[int]


def _pipeline_with_clock(config: LabelerConfig, clients: AwsClients, clock: FakeClock) -> LabelingPipeline:
    """The production wiring (build_pipeline), with the test's clock for publish claims, processedAt and backoff."""
    pipeline = build_pipeline(config, clients)
    store: Any = pipeline.ctx.results
    ledger: Any = pipeline.ctx.ledger
    if not hasattr(store, "_clock") or not hasattr(ledger, "_clock"):
        raise AssertionError("the store adapters no longer take a clock: adapt _pipeline_with_clock")
    pipeline.ctx.clock = clock.now
    store._clock = clock.time  # the publish claims a result write takes
    ledger._clock = clock.time  # the claims taken and tested on recovery
    pipeline.ctx.sleep = clock.advance  # in-process backoff: simulated time passes, no real sleep
    return pipeline


@pytest.fixture
def quiet_handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hundreds of invocations: no EMF lines, and only the handler's errors in the captured output."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    loggers = [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name == LABELER_SERVICE or name.startswith(f"{LABELER_SERVICE}.")
    ]
    levels = [each.level for each in loggers]
    for each in loggers:
        each.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for each, level in zip(loggers, levels, strict=True):
            each.setLevel(level)


@pytest.fixture
def world(stack_facts: StackFacts, quiet_handler: None) -> Iterator[World]:
    with mock_aws():
        raw = boto3.client("dynamodb", region_name="us-east-1")
        create_table(raw, stack_facts, TABLE)
        rekognition, bus, switch, clock = ScriptedRekognition(), RecordingEventBus(), FaultSwitch(), FakeClock()
        clients = AwsClients(
            rekognition=rekognition,
            dynamodb=with_faults(raw, DYNAMODB_OPERATIONS, switch, DYNAMODB_ENDPOINT),
            events=with_faults(bus, ("put_events",), switch, EVENTS_ENDPOINT),
        )
        config = LabelerConfig(project_version_arn=ARN, results_table_name=TABLE, event_bus_name=BUS, deletions=True)
        yield World(
            raw, rekognition, bus, switch, clock, _pipeline_with_clock(config, clients, clock), itertools.count()
        )


# -- the state machine -------------------------------------------------------------


@dataclass(frozen=True)
class Deletion:
    """A delete of a key in the versioned bucket: S3 creates a delete marker and notifies."""

    key: str
    key_index: int
    version_id: str  # the delete marker's
    sequencer: str

    def short(self) -> str:
        return f"{self.key} deleted by {self.version_id}(seq {self.sequencer})"


Event = Version | Deletion


@dataclass(frozen=True)
class Message:
    message_id: str
    body: str
    version: Event


def _tracked(method: F) -> F:
    """Remember that a step failed, so that teardown only cleans up."""

    @functools.wraps(method)
    def step(self: LabelerMachine, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self.failed = True
            raise

    return step  # type: ignore[return-value]


class LabelerMachine(RuleBasedStateMachine):
    world: World  # set on a subclass per test run

    def __init__(self) -> None:
        super().__init__()
        world = self.world
        self.bucket = f"props-{next(world.buckets):05d}"
        self.failed = False
        self.versions: dict[int, list[Version]] = {index: [] for index in range(len(KEYS))}
        self.timeline: dict[int, list[Event]] = {index: [] for index in range(len(KEYS))}  # uploads and deletions
        self.pending: list[Message] = []
        self.sent: list[Message] = []
        self.seen_current: dict[int, Event] = {}  # newest current state (result or deletion) observed so far
        self.acknowledged: dict[int, Event] = {}  # newest event whose notification was acknowledged
        self.ambiguous: Counter[str] = Counter()  # resultId -> PutEvents calls with an unknown outcome
        self.detect_violations: list[str] = []
        self.touched: set[int] = set()  # keys delivered since their last settled check
        self.unversioned_spec: dict[int, LabelSpec] = {}  # the model's answer for any unversioned upload of a key
        self.ids = itertools.count(1)
        self.invocations = itertools.count(1)
        world.rekognition.calls.clear()
        world.rekognition.on_call = self._on_detect
        world.bus.announcements.clear()
        world.switch.plan = None
        handler.use_pipeline(world.pipeline)

    # -- rules -------------------------------------------------------------------

    @precondition(lambda self: len(self.pending) < MAX_PENDING)
    @rule(
        key_index=KEY_INDEXES,
        length=st.integers(14, 22),
        bump=st.integers(0, 2),
        lowercase=st.booleans(),
        spec=LABEL_SPECS,
    )
    @_tracked
    def upload(self, key_index: int, length: int, bump: int, lowercase: bool, spec: LabelSpec) -> None:
        """A new version of a key: S3 sends one notification for it."""
        number = next(self.ids)
        previous = self.timeline[key_index][-1].sequencer if self.timeline[key_index] else None
        version = Version(
            key=KEYS[key_index],
            key_index=key_index,
            version_id=f"v{number}",
            etag=f"{number:032x}",
            sequencer=next_sequencer(previous, length, bump, lowercase=lowercase),
            spec=spec,
        )
        self.versions[key_index].append(version)
        self.timeline[key_index].append(version)
        if not spec.empty_object:
            self.world.rekognition.script(self.bucket, version.key, version.version_id, version.labels)
        body = notification_body(
            s3_record(
                version.key,
                bucket=self.bucket,
                size=version.size,
                etag=version.etag,
                version_id=version.version_id,
                sequencer=version.sequencer,
            )
        )
        self._enqueue(body, version)
        note(f"uploaded {version.short()}")

    @precondition(lambda self: len(self.pending) < MAX_PENDING)
    @rule(
        key_index=KEY_INDEXES,
        length=st.integers(14, 22),
        bump=st.integers(0, 2),
        again=st.one_of(st.none(), st.integers(0, 3)),
        spec=LABEL_SPECS,
    )
    @_tracked
    def upload_unversioned(self, key_index: int, length: int, bump: int, again: int | None, spec: LabelSpec) -> None:
        """The key overwritten in an unversioned bucket (no versionId): new bytes, or (``again``) the bytes of
        one of its earlier unversioned uploads once more, which have that upload's resultId."""
        number = next(self.ids)
        earlier = [v for v in self.versions[key_index] if not v.version_id]
        etag = earlier[again % len(earlier)].etag if again is not None and earlier else f"{number:032x}"
        previous = self.timeline[key_index][-1].sequencer if self.timeline[key_index] else None
        version = Version(
            key=KEYS[key_index],
            key_index=key_index,
            version_id="",
            etag=etag,
            sequencer=next_sequencer(previous, length, bump),
            spec=self.unversioned_spec.setdefault(key_index, spec),
        )
        self.versions[key_index].append(version)
        self.timeline[key_index].append(version)
        if not version.spec.empty_object:
            self.world.rekognition.script(self.bucket, version.key, "", version.labels)
        body = notification_body(
            s3_record(version.key, bucket=self.bucket, size=version.size, etag=etag, sequencer=version.sequencer)
        )
        self._enqueue(body, version)
        note(f"uploaded (unversioned{', same bytes again' if earlier and etag in {v.etag for v in earlier} else ''}) "
             f"{version.short()} etag {etag[-4:]}")  # fmt: skip

    @precondition(lambda self: len(self.pending) < MAX_PENDING)
    @rule(key_index=KEY_INDEXES, length=st.integers(14, 22), bump=st.integers(0, 2))
    @_tracked
    def delete(self, key_index: int, length: int, bump: int) -> None:
        """The key is deleted (a delete marker): S3 sends one ObjectRemoved notification."""
        number = next(self.ids)
        previous = self.timeline[key_index][-1].sequencer if self.timeline[key_index] else None
        deletion = Deletion(KEYS[key_index], key_index, f"dm{number}", next_sequencer(previous, length, bump))
        self.timeline[key_index].append(deletion)
        body = notification_body(
            s3_removal_record(
                deletion.key, bucket=self.bucket, version_id=deletion.version_id, sequencer=deletion.sequencer
            )
        )
        self._enqueue(body, deletion)
        note(f"deleted {deletion.short()}")

    @precondition(lambda self: bool(self.sent) and len(self.pending) < MAX_PENDING)
    @rule(key_index=KEY_INDEXES, which=st.integers(0, 15))
    @_tracked
    def redeliver_copy(self, key_index: int, which: int) -> None:
        """S3 delivers at least once: a notification of this key sent earlier arrives again (duplicate or stale)."""
        earlier = [m for m in self.sent if m.version.key_index == key_index]
        if earlier:
            original = earlier[which % len(earlier)]
            self._enqueue(original.body, original.version)

    @precondition(lambda self: bool(self.pending))
    @rule(picks=st.lists(st.tuples(KEY_INDEXES, st.integers(0, MAX_BATCH - 1)), min_size=1, max_size=MAX_BATCH),
          faults=FAULTS, wait=st.sampled_from([CLAIMS_EXPIRED, CLAIMS_EXPIRED, 1.0, 60.0]))  # fmt: skip
    @_tracked
    def deliver(self, picks: list[tuple[int, int]], faults: list[PlannedFault], wait: float) -> None:
        """One invocation with some pending messages, in this order, with these faults injected.

        A fault's key_index n means the n-th distinct key of the batch.

        A pick is (key, n): the n-th pending message of that key (oldest first).
        Picks name messages per key so that removing a step about another key
        (as Hypothesis does when it shrinks) leaves the batch as it was.
        """
        batch: list[Message] = []
        for key_index, nth in picks:
            of_key = [m for m in self.pending if m.version.key_index == key_index]
            if of_key and of_key[nth % len(of_key)] not in batch:
                batch.append(of_key[nth % len(of_key)])
        self._invoke(batch or self.pending[:1], faults, wait)

    def teardown(self) -> None:
        try:
            if not self.failed:
                self._drain()
                self._check_label_queries()
        finally:
            self.world.rekognition.on_call = None
            self.world.switch.plan = None
            self._delete_items()

    # -- driving -----------------------------------------------------------------

    def _enqueue(self, body: str, version: Event) -> None:
        message = Message(f"{self.bucket}-m{next(self.ids)}", body, version)
        self.pending.append(message)
        self.sent.append(message)

    def _invoke(self, batch: list[Message], faults: list[PlannedFault], wait: float) -> None:
        world = self.world
        world.clock.advance(wait)
        world.bus.invocation += 1
        invocation = world.bus.invocation
        # A fault's key_index is drawn relative to the batch (the n-th distinct key in it), so that it hits.
        keys_in_batch = list(dict.fromkeys(m.version.key_index for m in batch))
        faults = [replace(f, key_index=keys_in_batch[f.key_index % len(keys_in_batch)]) for f in faults]
        plan = FaultPlan(faults, objects_concerned(self.bucket, KEYS))
        world.switch.plan = plan
        escaped: Exception | None = None
        try:
            response = handler.handler(sqs_messages_event([(m.message_id, m.body) for m in batch]), FakeLambdaContext())
            failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        except Exception as error:  # the invocation failed: Lambda puts the whole batch back
            escaped, failed = error, {m.message_id for m in batch}
        finally:
            world.switch.plan = None
        retried = sum(m.message_id in failed for m in batch)
        note(
            f"invocation {next(self.invocations)}: {[m.version.short() for m in batch]}, wait {wait:g}s; "
            f"faults fired {[_describe(f) for f in plan.fired]}; retried {retried}/{len(batch)}"
            + (f"; invocation error {type(escaped).__name__}: {str(escaped).splitlines()[0]}" if escaped else "")
        )
        for fault in plan.fired:
            event(f"fault fired: {fault.operation} {fault.kind.value}")
        if escaped is not None:
            event(f"invocation error: {type(escaped).__name__}")
        lost_result_ids: set[str] = set()
        for operation, kwargs in plan.lost_responses:
            if operation == "put_events":
                for entry in kwargs["Entries"]:
                    lost_result_ids.add(_detail(entry)["resultId"])
        for result_id in lost_result_ids:
            self.ambiguous[result_id] += 1
        self.touched.update(m.version.key_index for m in batch)
        acknowledged = [m for m in batch if m.message_id not in failed]
        self.pending = [m for m in self.pending if m not in acknowledged]
        for message in acknowledged:
            newest = self.acknowledged.get(message.version.key_index)
            if newest is None or is_newer(message.version.sequencer, newest.sequencer):
                self.acknowledged[message.version.key_index] = message.version
        self._check_after_invocation(invocation, batch, failed, lost_result_ids)

    def _drain(self) -> None:
        """Quiescence: deliver everything still pending, without faults, until nothing is left."""
        for _ in range(DRAIN_ROUNDS):
            if not self.pending:
                return
            self._invoke(self.pending[:MAX_BATCH], [], CLAIMS_EXPIRED)
        left = ", ".join(m.version.short() for m in self.pending)
        raise AssertionError(f"still retried after {DRAIN_ROUNDS} fault-free invocations: {left}")

    def _on_detect(self, bucket: str, key: str, version_id: str) -> None:
        if bucket != self.bucket:
            return
        current = self._current_identity(key)
        if current is not None and current.get("versionId") == version_id:
            self.detect_violations.append(f"{key}@{version_id} sent to Rekognition again although stored as current")

    def _delete_items(self) -> None:
        """Keep the shared table small (moto scans it on every query): remove this example's items."""
        raw = self.world.raw
        for key in KEYS:
            request: dict[str, Any] = {
                "TableName": TABLE,
                "KeyConditionExpression": "#pk = :pk",
                "ExpressionAttributeNames": {"#pk": layout.PARTITION_KEY, "#sk": layout.SORT_KEY},
                "ExpressionAttributeValues": {":pk": {"S": layout.object_partition(self.bucket, key)}},
                "ProjectionExpression": "#pk, #sk",
            }
            keys = _query_all(raw, request)
            for start in range(0, len(keys), 25):
                raw.batch_write_item(
                    RequestItems={TABLE: [{"DeleteRequest": {"Key": item}} for item in keys[start : start + 25]]}
                )

    # -- checks ------------------------------------------------------------------

    def _current(self, key_index: int) -> dict[str, Any] | None:
        return get_result(TABLE, self.bucket, KEYS[key_index], ARN, client=self.world.raw)

    def _current_identity(self, key: str) -> dict[str, Any] | None:
        """versionId and sequencer of the current result item (one small GetItem; full reads are slow in moto)."""
        item = self.world.raw.get_item(
            TableName=TABLE,
            Key={
                layout.PARTITION_KEY: {"S": layout.object_partition(self.bucket, key)},
                layout.SORT_KEY: {"S": layout.result_sort_key(ARN)},
            },
            ConsistentRead=True,
            ProjectionExpression="versionId, etag, #seq, deletion, #status",
            ExpressionAttributeNames={"#seq": "sequencer", "#status": "status"},
        ).get("Item")
        if not item:
            return None
        identity = {name: value["S"] for name, value in item.items() if "S" in value}
        deletion = item.get("deletion", {}).get("M", {})
        for name in ("versionId", "sequencer"):
            if name in deletion:
                identity[f"deletion.{name}"] = deletion[name]["S"]
        return identity

    def _state_of(self, key_index: int, stored: dict[str, Any]) -> Event:
        """The event the stored state stands for: its deletion when deleted, else its result's version."""
        if "deletion.versionId" in stored:
            for event_ in self.timeline[key_index]:
                if isinstance(event_, Deletion) and event_.version_id == stored["deletion.versionId"]:
                    assert stored.get("deletion.sequencer") == event_.sequencer, stored
                    return event_
            raise AssertionError(f"{KEYS[key_index]} is deleted by no deletion that happened: {stored}")
        return self._version_of(key_index, stored)

    def _version_of(self, key_index: int, stored: dict[str, Any]) -> Version:
        """The upload the stored result stands for: by versionId; unversioned, by ETag and sequencer (the
        newest event of those bytes the labeler has seen)."""
        for version in self.versions[key_index]:
            if version.version_id and version.version_id == stored.get("versionId"):
                return version
            unversioned = not version.version_id and not stored.get("versionId")
            if unversioned and (version.etag, version.sequencer) == (stored.get("etag"), stored.get("sequencer")):
                return version
        raise AssertionError(f"current result of {KEYS[key_index]} is of no uploaded version: {stored}")

    def _check_after_invocation(
        self, invocation: int, batch: list[Message], failed: set[str], lost_result_ids: set[str]
    ) -> None:
        assert not self.detect_violations, self.detect_violations
        # Once PutEvents accepted an event, nothing that follows may put its record back on the queue.
        for announcement in self.world.bus.announcements:
            if announcement.invocation != invocation or announcement.result_id in lost_result_ids:
                continue
            detail = announcement.detail
            if announcement.detail_type == REMOVED:  # the deletion's own message, by its marker
                announced = (detail["key"], detail["deletion"]["versionId"])
            else:
                announced = (detail["key"], detail["versionId"])
            requeued = [
                m.message_id
                for m in batch
                if m.message_id in failed and (m.version.key, m.version.version_id or None) == announced
            ]
            assert not requeued, (
                f"EventBridge accepted the event of {detail['key']}@{detail['versionId']}, "
                f"yet its record was put back on the queue ({requeued})"
            )
        for key_index in sorted({m.version.key_index for m in batch}):
            self._check_current_order(key_index)
        for key_index in sorted(self.touched):
            if not any(m.version.key_index == key_index for m in self.pending):
                self._check_settled(key_index)
                self.touched.discard(key_index)
        self._check_announcement_counts()

    def _check_current_order(self, key_index: int) -> None:
        """The current result only moves forward, and never lags an acknowledged notification."""
        key = KEYS[key_index]
        stored = self._current_identity(key)
        acknowledged = self.acknowledged.get(key_index)
        current = self._state_of(key_index, stored) if stored is not None else None
        if stored is not None and current is not None:
            if isinstance(current, Version):
                assert stored["sequencer"] == current.sequencer, stored
            seen = self.seen_current.get(key_index)
            if seen is not None:
                assert not is_newer(seen.sequencer, current.sequencer), (
                    f"an older delivery overwrote a newer result of {key}: {seen.short()} replaced by {current.short()}"
                )
            self.seen_current[key_index] = current
        if acknowledged is not None and (current is None or is_newer(acknowledged.sequencer, current.sequencer)):
            # Acknowledged as superseded: only fine while a version at least as new is still to be retried.
            assert any(
                m.version.key_index == key_index and not is_newer(acknowledged.sequencer, m.version.sequencer)
                for m in self.pending
            ), (
                f"{acknowledged.short()} was acknowledged, but the current result of {key} is "
                f"{current.short() if current else 'nothing'} and no newer version is left to retry"
            )

    def _check_settled(self, key_index: int) -> None:
        """Nothing pending for this key: its result, label index and announcement are final."""
        key = KEYS[key_index]
        if isinstance(self.timeline[key_index][-1], Deletion):
            self._check_settled_deleted(key_index)
            return
        newest = self.versions[key_index][-1]
        stored = self._current(key_index)
        assert stored is not None, f"{key}: nothing stored after all its notifications were handled"
        assert "deletedAt" not in stored, f"{key}: deleted although its newest event is an upload"
        current = self._version_of(key_index, stored)
        assert current == newest, f"{key}: current result is {current.short()}, the newest upload is {newest.short()}"
        expected = newest.labels
        assert stored["status"] == newest.status, stored["status"]
        if newest.status == "FAILED":  # an empty object: no Rekognition call
            assert stored["error"]["code"] == "InvalidImageFormatException", stored["error"]
        assert stored["customLabels"] == expected, f"{key}: customLabels differ from Rekognition's answer"
        assert stored["labelCount"] == len(expected)
        best = best_confidences(expected)
        assert set(stored["labelNames"]) == set(best) and len(stored["labelNames"]) == len(best)
        ranked = [best[name] for name in stored["labelNames"]]
        assert ranked == sorted(ranked, reverse=True), f"{key}: labelNames not highest confidence first"
        assert (stored["etag"], stored["size"]) == (newest.etag, newest.size)
        index = self._label_index_items(key_index)
        missing = sorted(set(best) - set(index))
        extra = sorted(set(index) - set(best))
        wrong = sorted(name for name in set(best) & set(index) if index[name] != best[name])
        assert not (missing or extra or wrong), (
            f"{key}: label index differs from the current result {current.short()} "
            f"({len(best)} labels): missing {missing}, not in the result {extra}, wrong confidence {wrong}"
        )
        announced = [
            a for a in self.world.bus.announcements if a.result_id == stored["resultId"] and a.detail_type != REMOVED
        ]
        assert announced, f"{key}: current result {current.short()} was never announced"
        detail_type = "Custom Labels Failed" if newest.status == "FAILED" else "Custom Labels Detected"
        # The same bytes uploaded again (unversioned) were announced with the sequencer of the upload labeled.
        sequencers = {v.sequencer for v in self._same_bytes(newest)} if not newest.version_id else {newest.sequencer}
        for announcement in announced:
            detail = announcement.detail
            assert announcement.detail_type == detail_type
            assert (detail["key"], detail["versionId"]) == (key, newest.version_id or None)
            assert detail["sequencer"] in sequencers, f"{key}: announced {detail['sequencer']}, not of these bytes"
            if newest.status == "LABELED":
                assert detail["labelCount"] == len(expected) and detail["labelNames"] == stored["labelNames"]
                if not detail["truncated"]:
                    assert detail["customLabels"] == expected
        # Earlier announcements of the same bytes uploaded again were of a result replaced since.
        last = announced[-1].detail if not newest.version_id else None
        for detail in [last] if last is not None else [a.detail for a in announced]:
            assert detail["processedAt"] == stored["processedAt"], f"{key}: event and stored result differ"

    def _check_settled_deleted(self, key_index: int) -> None:
        """The key's newest event is a deletion: it is recorded, nothing is indexed, the result announced removed."""
        key = KEYS[key_index]
        newest = self.timeline[key_index][-1]
        stored = self._current(key_index)
        assert stored is not None, f"{key}: the deletion {newest.short()} was not recorded"
        assert stored.get("deletion", {}).get("sequencer") == newest.sequencer, (
            f"{key}: the recorded deletion {stored.get('deletion')} is not the newest, {newest.short()}"
        )
        # find_by_label never lists a deleted key: checked at quiescence (_check_label_queries).
        assert stored["status"] == "DELETED", f"{key}: deleted, yet its status is {stored['status']}"
        if not stored.get("etag"):  # a tombstone (no object behind it): no result was stored before the deletion
            return
        version = self._version_of(key_index, stored)
        assert is_newer(newest.sequencer, version.sequencer)
        assert stored["customLabels"] == version.labels, f"{key}: the kept result lost its labels"
        removed = [
            a for a in self.world.bus.announcements if a.detail_type == REMOVED and a.result_id == stored["resultId"]
        ]
        assert removed, f"{key}: the deleted result {version.short()} was never announced removed"
        assert all(a.detail["labelNames"] == stored["labelNames"] for a in removed)

    def _label_index_items(self, key_index: int) -> dict[str, float]:
        """The object's current label-index entries, read directly: label name -> confidence.

        Current: stored under the indexId of the object's result item, which is
        not deleted (what find_by_label returns). Read by key: the entries the
        stored result's labels give under its indexId (one BatchGetItem, where a
        scan of the growing table was too slow). An entry under the current
        indexId for a label the result lacks would be caught by the
        find_by_label check at quiescence (``_check_label_queries``).
        """
        raw = self.world.raw.get_item(
            TableName=TABLE,
            Key={
                layout.PARTITION_KEY: {"S": layout.object_partition(self.bucket, KEYS[key_index])},
                layout.SORT_KEY: {"S": layout.result_sort_key(ARN)},
            },
            ConsistentRead=True,
        ).get("Item")
        if raw is None or "removalId" in raw or layout.INDEX_ID not in raw:
            return {}
        stored = get_result(TABLE, self.bucket, KEYS[key_index], ARN, client=self.world.raw)
        assert stored is not None
        index_id = raw[layout.INDEX_ID]["S"]
        keys = [serialize_item(key) for key in label_index_keys(stored["customLabels"], index_id)]
        current: dict[str, float] = {}
        for start in range(0, len(keys), 100):
            answer = self.world.raw.batch_get_item(
                RequestItems={TABLE: {"Keys": keys[start : start + 100], "ConsistentRead": True}}
            )
            assert not answer.get("UnprocessedKeys"), "moto left keys unprocessed"
            for entry in answer["Responses"][TABLE]:
                assert entry["resultId"]["S"] == stored["resultId"], f"{KEYS[key_index]}: entry of another result"
                current[entry[layout.LABEL_NAME]["S"]] = float(entry[layout.LABEL_CONFIDENCE]["N"])
        return current

    def _same_bytes(self, version: Version) -> list[Version]:
        """The unversioned uploads of ``version``'s key with its bytes (its resultId); [version] when versioned."""
        if version.version_id:
            return [version]
        return [v for v in self.versions[version.key_index] if not v.version_id and v.etag == version.etag]

    def _uploads_of(self, result_id: str) -> int:
        """How many uploads a resultId stands for: more than one for the same bytes uploaded again (unversioned)."""
        uploads = Counter(
            S3ObjectEvent("ObjectCreated:Put", self.bucket, v.key, v.size, v.etag, None, v.sequencer).result_id(ARN)
            for versions in self.versions.values()
            for v in versions
            if not v.version_id
        )
        return max(1, uploads[result_id])

    def _check_announcement_counts(self) -> None:
        """No resultId announced twice, unless a PutEvents call for it had an unknown outcome.

        The same bytes uploaded again (unversioned: the same resultId) may be announced once per upload,
        and again after their Removed: they became current again (docs/events.md)."""
        by_result: dict[tuple[bool, str], list[dict[str, Any]]] = {}
        removed_at: dict[str, int] = {}
        for position, announcement in enumerate(self.world.bus.announcements):
            removal = announcement.detail_type == REMOVED
            by_result.setdefault((removal, announcement.result_id), []).append(announcement.detail)
            if removal:
                removed_at.setdefault(announcement.result_id, position)
            elif announcement.detail.get("versionId") is not None:
                first_removed = removed_at.get(announcement.result_id)
                assert first_removed is None, (
                    f"{announcement.detail['key']}@{announcement.detail['versionId']} announced "
                    f"{announcement.detail_type} after its Removed"
                )
        for (removal, result_id), details in by_result.items():
            uploads = self._uploads_of(result_id)
            allowed = uploads + self.ambiguous[result_id]
            where = f"{details[0]['key']}@{details[0]['versionId']}" + (" (Removed)" if removal else "")
            assert len(details) <= allowed, (
                f"{where} (resultId {result_id}) announced {len(details)} times; "
                f"{self.ambiguous[result_id]} PutEvents call(s) for it had an unknown outcome"
            )
            if not removal and uploads == 1:  # a Removed repeated after an unknown outcome may name a newer deletion
                assert all(detail == details[0] for detail in details), f"{where}: duplicate events differ"

    def _check_label_queries(self) -> None:
        """At quiescence, through the public query: find_by_label for every label ever used."""
        names = {str(label["Name"]) for versions in self.versions.values() for v in versions for label in v.labels}
        current: dict[str, tuple[Version, dict[str, float]]] = {}
        for timeline in self.timeline.values():
            if timeline and isinstance(timeline[-1], Version):  # a deleted key answers no label
                newest = timeline[-1]
                current[newest.key] = (newest, best_confidences(newest.labels))
        for name in sorted(names):
            found = [
                entry for entry in find_by_label(TABLE, name, client=self.world.raw) if entry["bucket"] == self.bucket
            ]
            expected = sorted(
                (key, version.version_id or None, best[name])
                for key, (version, best) in current.items()
                if name in best
            )
            got = sorted((entry["key"], entry.get("versionId"), entry["confidence"]) for entry in found)
            assert got == expected, f"find_by_label({name!r}) returned {got}, expected {expected}"
            assert all(entry["projectVersionArn"] == ARN for entry in found)
            confidences = [entry["confidence"] for entry in found]
            assert confidences == sorted(confidences, reverse=True), f"find_by_label({name!r}) not most confident first"


def _describe(fault: PlannedFault) -> str:
    return f"{fault.kind.value} on {fault.operation} call {fault.occurrence} about {KEYS[fault.key_index]}"


def _query_all(client: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = client.query(**request)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def _detail(entry: dict[str, Any]) -> dict[str, Any]:
    detail: dict[str, Any] = json.loads(entry["Detail"])
    return detail


# -- the test ------------------------------------------------------------------------


def test_labeler_keeps_newest_result_index_and_announcements_consistent(world: World) -> None:
    class Machine(LabelerMachine):
        pass

    Machine.world = world

    profile = settings()
    chosen = os.environ.get("HYPOTHESIS_SEED")
    if chosen is None and not profile.derandomize:
        chosen = str(random.SystemRandom().randrange(2**32))
    if chosen is not None:
        profile = settings(profile, derandomize=False)
        seed(int(chosen))(Machine)
        print(f"Hypothesis seed {chosen}: rerun with HYPOTHESIS_SEED={chosen}")
    else:
        print("Hypothesis derandomized (profile's fixed examples); HYPOTHESIS_SEED=<n> explores others")
    run_state_machine_as_test(Machine, settings=profile)
