"""The calls the labeler makes to DynamoDB and EventBridge, in order, pinned (issue 17: the restructure by phase).

The batch logic and the store were split into phases and adapters; the promise
was that the same writes go out in the same order with the same condition
expressions. This test records every call through the real handler path, in
a scenario that touches each write path (a new result, a replacement, a
publish that fails and is recovered from the stored result without
relabeling, a deletion announced Removed, a mark that fails once and is
retried in-process), and compares it with the trace recorded before the
restructure (commit 175efd8, where this same test passes unchanged).

Tokens and ids are left out: the trace keeps each call's operation, its
condition and update expressions, and the kinds of items it reads or writes.
"""

# ruff: noqa: E501 (the recorded trace below quotes whole condition expressions)

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from labeler import handler
from local.samples import make_image
from shared import table_layout as layout
from tests.support.builders import notification_body, s3_removal_record
from tests.support.harness import Harness
from tests.support.table_writes import is_mark

SCRATCH = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
DENT = make_image({"dent": (0.5, 0.5, 0.4, 0.4), "scratch": (0.1, 0.1, 0.2, 0.2)})
PLAIN = make_image({"dent": (0.2, 0.2, 0.3, 0.3)})


def _kind(key: dict[str, Any]) -> str:
    pk, sk = key[layout.PARTITION_KEY]["S"], key[layout.SORT_KEY]["S"]
    if pk.startswith(layout.LABEL_PARTITION_PREFIX):
        return "LABEL"
    if sk.startswith(layout.PUBLISHED_PREFIX):
        return "PUBLISHED"
    if "#PART#" in sk:
        return "PART"
    if sk.startswith(layout.RESULT_PREFIX):
        return "RESULT"
    return "OTHER"


def _describe(service: str, operation: str, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    if service == "events":
        return (operation, tuple(entry["DetailType"] for entry in kwargs["Entries"]))
    if operation == "batch_write_item":
        requests = [r for rs in kwargs["RequestItems"].values() for r in rs]
        kinds = sorted(
            ("put", _kind(r["PutRequest"]["Item"]))
            if "PutRequest" in r
            else ("delete", _kind(r["DeleteRequest"]["Key"]))
            for r in requests
        )
        return (operation, tuple(kinds))
    if operation == "batch_get_item":
        (request,) = kwargs["RequestItems"].values()
        return (
            operation,
            tuple(sorted(_kind(key) for key in request["Keys"])),
            request.get("ConsistentRead"),
            tuple(request.get("ExpressionAttributeNames", {}).values()),  # the attributes it projects
        )
    if operation == "query":
        return (
            operation,
            kwargs.get("KeyConditionExpression"),
            kwargs.get("FilterExpression"),
            kwargs.get("ConsistentRead"),
        )
    return (
        operation,
        _kind(kwargs["Item"] if "Item" in kwargs else kwargs["Key"]),
        kwargs.get("ConditionExpression"),
        kwargs.get("UpdateExpression"),
        kwargs.get("ReturnValues"),
        tuple(sorted(kwargs.get("ExpressionAttributeNames", {}).items())),
    )


def _any(_kwargs: dict[str, Any]) -> bool:
    return True


def _server_error(operation: str) -> Exception:
    return ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, operation)


def _lost_answer(operation: str) -> Exception:
    return ClientError({"Error": {"Code": "RequestTimeout", "Message": "injected: answer lost"}}, operation)


def _bug(operation: str) -> Exception:
    return RuntimeError(f"injected bug in {operation}")


Failure = tuple[int, Callable[[dict[str, Any]], bool], Callable[[str], Exception]]


class Recorder:
    def __init__(self) -> None:
        self.trace: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def fault(self, service: str, operation: str, failure: Failure | None = None) -> Any:
        """Record each call; ``failure``: (how many, which calls, what is raised) to fail first."""
        times, picks, error = failure or (0, _any, _server_error)
        remaining = [times]

        def record(kwargs: dict[str, Any], call: Any) -> Any:
            with self._lock:
                self.trace.append((service, *_describe(service, operation, kwargs)))
                failing = remaining[0] > 0 and picks(kwargs)
                if failing:
                    remaining[0] -= 1
                    self.trace.append(("injected", operation))
            if failing:
                if error is _lost_answer:  # the write goes in, its answer is lost
                    call(**kwargs)
                raise error(operation)
            return call(**kwargs)

        return record

    def take(self) -> list[tuple[Any, ...]]:
        trace, self.trace = self.trace, []
        return trace


def _record_all(
    harness: Harness,
    recorder: Recorder,
    *,
    fail: dict[tuple[str, str], Failure] | None = None,
    operations: tuple[str, ...] = ("batch_get_item", "batch_write_item", "put_item", "update_item", "query"),
) -> None:
    fail = fail or {}
    for operation in operations:  # only operations the scenario calls: the harness checks each fault fires
        harness.dynamodb.faults[operation] = recorder.fault("dynamodb", operation, fail.get(("dynamodb", operation)))
    harness.events.faults["put_events"] = recorder.fault("events", "put_events", fail.get(("events", "put_events")))


def _with_deletions(harness: Harness) -> None:
    harness.config = dataclasses.replace(harness.config, deletions=True)
    harness.pipeline = harness.build_pipeline()
    handler.use_pipeline(harness.pipeline)


def test_the_writes_their_order_and_conditions_are_those_of_before_the_restructure(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_deletions(harness)
    recorder = Recorder()
    traces: dict[str, list[tuple[Any, ...]]] = {}

    _record_all(harness, recorder)
    harness.upload("a.png", SCRATCH)
    harness.run()
    traces["new result"] = recorder.take() + _metrics(capsys.readouterr().out)

    harness.upload("a.png", DENT)
    harness.run()
    traces["replacement"] = recorder.take() + _metrics(capsys.readouterr().out)

    _record_all(harness, recorder, fail={("events", "put_events"): (1, _any, _server_error)})
    harness.upload("b.png", PLAIN)
    harness.run()
    traces["publish fails, then recovered"] = recorder.take() + _metrics(capsys.readouterr().out)

    _record_all(harness, recorder)
    harness.s3.delete_object(Bucket=harness.resources.bucket, Key="a.png")
    harness.discard_notifications()
    harness.send(
        notification_body(s3_removal_record("a.png", bucket=harness.resources.bucket, sequencer="FFFFFFFFFFFFFFFFFF"))
    )
    harness.run()
    traces["deletion"] = recorder.take() + _metrics(capsys.readouterr().out)

    events = [e["detail-type"] for e in harness.new_events()]
    assert events.count("Custom Labels Detected") == 3
    assert events.count("Custom Labels Removed") == 1
    assert harness.result("b.png") is not None
    assert harness.rekognition_calls() == 3  # the recovered result was not labeled again

    assert traces == EXPECTED, _pretty(traces)


def _is_claim(kwargs: dict[str, Any]) -> bool:
    return kwargs.get("ReturnValues") == "ALL_OLD"  # the claim of a stored result (recovery)


def test_the_fault_paths_retry_and_count_as_before_the_restructure(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """AWS errors (StoreError), a bug (an unexpected exception) and a refused mark: same calls, same figures."""
    recorder = Recorder()
    traces: dict[str, list[tuple[Any, ...]]] = {}
    scenarios: list[tuple[str, str, dict[tuple[str, str], Failure]]] = [
        ("batch read refused", "c.png", {("dynamodb", "batch_get_item"): (1, _any, _server_error)}),
        ("result write refused", "d.png", {("dynamodb", "put_item"): (1, _any, _server_error)}),
        ("mark refused twice", "e.png", {("dynamodb", "batch_write_item"): (2, is_mark, _server_error)}),
        (
            "a bug in the claim of a stored result",
            "f.png",
            {("events", "put_events"): (1, _any, _server_error), ("dynamodb", "update_item"): (1, _is_claim, _bug)},
        ),
    ]
    for name, key, fail in scenarios:
        _record_all(harness, recorder, fail=fail)
        harness.upload(key, SCRATCH)
        harness.run()
        traces[name] = recorder.take() + _metrics(capsys.readouterr().out)

    events = harness.new_events()
    assert sorted(e["detail"]["key"] for e in events) == ["c.png", "d.png", "e.png", "f.png"]
    assert not harness.dead_letters()

    assert traces == EXPECTED_FAULTS, _pretty(traces)


def test_a_batch_of_ten_reads_once_writes_concurrently_and_publishes_in_one_request(harness: Harness) -> None:
    """The batch wins: one BatchGetItem, a conditional PutItem each, one shared index write, one PutEvents of 10."""
    recorder = Recorder()
    _record_all(harness, recorder, operations=("batch_get_item", "batch_write_item", "put_item"))
    keys = [f"batch/{n}.png" for n in range(10)]
    records = [harness.record_for(key, harness.upload_quietly(key, SCRATCH)) for key in keys]
    harness.send(notification_body(*records))
    harness.run()
    trace = recorder.take()

    operations = [call[1] if call[0] != "injected" else "injected" for call in trace]
    assert operations.count("batch_get_item") == 1
    assert trace[0][2] == ("RESULT",) * 10
    puts = [i for i, op in enumerate(operations) if op == "put_item"]
    assert len(puts) == 10
    writes = [i for i, op in enumerate(operations) if op == "batch_write_item"]
    assert [trace[i][2] for i in writes] == [(("put", "LABEL"),) * 10, (("put", "PUBLISHED"),) * 10]
    (publish,) = [i for i, op in enumerate(operations) if op == "put_events"]
    assert trace[publish][2] == ("Custom Labels Detected",) * 10
    assert max(puts) < writes[0] < publish < writes[1]  # results, their index, the events, then the marks
    assert len(harness.new_events()) == 10


def test_a_lost_answer_is_finished_and_published_as_before_the_restructure(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """The result write and the deletion went in, their answers were lost: each is recognised as our own write,
    finished (its index) and announced, never written again nor labeled again."""
    _with_deletions(harness)
    recorder = Recorder()
    traces: dict[str, list[tuple[Any, ...]]] = {}
    _record_all(harness, recorder, fail={("dynamodb", "put_item"): (1, _any, _lost_answer)})
    harness.upload("g.png", SCRATCH)
    harness.run()
    traces["result write's answer lost"] = recorder.take() + _metrics(capsys.readouterr().out)

    _record_all(harness, recorder, fail={("dynamodb", "update_item"): (1, _any, _lost_answer)})
    harness.s3.delete_object(Bucket=harness.resources.bucket, Key="g.png")
    harness.discard_notifications()
    removal = s3_removal_record("g.png", bucket=harness.resources.bucket, sequencer="FFFFFFFFFFFFFFFFFF")
    harness.send(notification_body(removal))
    harness.run()
    traces["deletion's answer lost"] = recorder.take() + _metrics(capsys.readouterr().out)

    kinds = [e["detail-type"] for e in harness.new_events()]
    assert kinds == ["Custom Labels Detected", "Custom Labels Removed"]
    assert harness.rekognition_calls() == 1
    assert traces == EXPECTED_LOST_ANSWERS, _pretty(traces)


def test_a_claim_refused_once_is_taken_again_at_once(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    """take_claim retries a StoreError once (idempotent for our token): the recovery needs no third delivery."""
    recorder = Recorder()
    _record_all(
        harness,
        recorder,
        fail={
            ("events", "put_events"): (1, _any, _server_error),
            ("dynamodb", "update_item"): (1, _is_claim, _server_error),
        },
    )
    harness.upload("h.png", SCRATCH)
    harness.run()
    trace = recorder.take()
    claims = [i for i, call in enumerate(trace) if call[:2] == ("dynamodb", "update_item") and call[5] == "ALL_OLD"]
    assert len(claims) == 2 and claims[1] == claims[0] + 2 and trace[claims[0] + 1] == ("injected", "update_item")
    retried = [figures for _, figures in _metrics(capsys.readouterr().out)]
    assert [dict(f)["RecordsRetried"] for f in retried] == [[1.0], [0.0]]  # the refused PutEvents only
    assert [e["detail"]["key"] for e in harness.new_events()] == ["h.png"]


def _metrics(stdout: str) -> list[tuple[Any, ...]]:
    """The EMF figures the handler emitted, one entry per invocation (latencies left out: they vary)."""
    figures = []
    for line in stdout.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        emitted = json.loads(line)
        names = [m["Name"] for m in emitted["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
        figures.append(("metrics", tuple((n, emitted[n]) for n in names if n != "RekognitionLatency")))
    return figures


def _pretty(traces: dict[str, list[tuple[Any, ...]]]) -> str:
    lines = []
    for name, trace in traces.items():
        lines.append(f"{name!r}: [")
        lines.extend(f"    {call!r}," for call in trace)
        lines.append("],")
    return "\n".join(lines)


# Recorded at 175efd8 (before the restructure) by these same scenarios, written with the builders below:
# each names one call as _describe records it, or the figures of one invocation.

# The batch read of the stored states (BatchGetItem, consistent), with the attributes it projects.
STATE_ATTRIBUTES = (
    "resultId",
    "sequencer",
    "processedAt",
    "eventPublished",
    "publishClaimedAt",
    "publishClaimedBy",
    "publishUncertain",
    "writeId",
    "indexId",
    "labelNames",
    "customLabels",
    "parts",
    "status",
    "versionId",
    "etag",
    "removalId",
    "removalPublished",
    "deletion",
    "deletedAt",
    "pk",
    "sk",
)
READ_STATES = ("dynamodb", "batch_get_item", ("RESULT",), True, STATE_ATTRIBUTES)
READ_MARKS = ("dynamodb", "batch_get_item", ("PUBLISHED",), True, ("itemType", "pk", "sk"))
READ_PARTITION = ("dynamodb", "query", "#pk = :pk AND begins_with(#sk, :prefix)", None, True)
FIND_RESULTS = ("dynamodb", "query", "#pk = :pk AND begins_with(#sk, :prefix)", "#type = :result", True)

PUT_NEW = ("dynamodb", "put_item", "RESULT", "attribute_not_exists(#pk)", None, None, (("#pk", "pk"),))
PUT_REPLACING = (
    "dynamodb",
    "put_item",
    "RESULT",
    "#rid = :rid AND #at = :at AND attribute_not_exists(#rm) AND attribute_not_exists(#seq)",
    None,
    None,
    (("#at", "processedAt"), ("#rid", "resultId"), ("#rm", "removalId"), ("#seq", "sequencer")),
)
RELEASE = (
    "dynamodb",
    "update_item",
    "RESULT",
    "#rid = :rid AND attribute_not_exists(#rm) AND #pub = :false AND #by = :me",
    "REMOVE #claim, #by",
    None,
    (
        ("#by", "publishClaimedBy"),
        ("#claim", "publishClaimedAt"),
        ("#pub", "eventPublished"),
        ("#rid", "resultId"),
        ("#rm", "removalId"),
    ),
)
CLAIM = (
    "dynamodb",
    "update_item",
    "RESULT",
    "#rid = :rid AND attribute_not_exists(#rm) AND #pub = :false AND (attribute_not_exists(#claim) OR #claim < :stale OR #by = :me)",
    "SET #claim = :now, #by = :me, #unc = if_not_exists(#unc, :false)",
    "ALL_OLD",
    (
        ("#by", "publishClaimedBy"),
        ("#claim", "publishClaimedAt"),
        ("#pub", "eventPublished"),
        ("#rid", "resultId"),
        ("#rm", "removalId"),
        ("#unc", "publishUncertain"),
    ),
)
STORE_DELETION = (
    "dynamodb",
    "update_item",
    "RESULT",
    "#rid = :rid AND #at = :at AND attribute_not_exists(#rm) AND attribute_not_exists(#seq) AND #by = :claimedBy",
    "SET #d0 = :d0, #d1 = :d1, #d2 = :d2, #d3 = :d3, #d4 = :d4, #wid = :me, #claim = :now, #by = :me REMOVE #unc",
    None,
    (
        ("#at", "processedAt"),
        ("#by", "publishClaimedBy"),
        ("#claim", "publishClaimedAt"),
        ("#d0", "status"),
        ("#d1", "deletedAt"),
        ("#d2", "deletion"),
        ("#d3", "removalId"),
        ("#d4", "removalPublished"),
        ("#rid", "resultId"),
        ("#rm", "removalId"),
        ("#seq", "sequencer"),
        ("#unc", "publishUncertain"),
        ("#wid", "writeId"),
    ),
)


def batch_write(*requests: tuple[str, str]) -> tuple[Any, ...]:
    """A BatchWriteItem of these (put | delete, item kind) requests, in _describe's sorted order."""
    return ("dynamodb", "batch_write_item", requests)


def publish(*detail_types: str) -> tuple[Any, ...]:
    return ("events", "put_events", detail_types)


def injected(operation: str) -> tuple[Any, ...]:
    return ("injected", operation)


INDEX_ONE = batch_write(("put", "LABEL"))
MARK = batch_write(("put", "PUBLISHED"))
DETECTED = publish("Custom Labels Detected")
REMOVED = publish("Custom Labels Removed")

# The figures every invocation emits, in the handler's order; LabelsPerImage follows when an image was labeled.
FIGURES = (
    "ImagesLabeled",
    "ImagesFailed",
    "ImagesSkipped",
    "DuplicatesIgnored",
    "StaleEventsIgnored",
    "RecordsRetried",
    "RekognitionThrottles",
    "InvalidMessages",
    "RecordsOutOfTime",
    "UnexpectedErrors",
    "DeploymentFaults",
    "PublishMarksFailed",
    "AmbiguousPublishes",
    "RetryDelaysNotSet",
    "ResultsRemoved",
    "DeletionsNotAnnounced",
    "LabelsDiscarded",
)


def metrics(labels_per_image: float | None = None, **figures: float) -> tuple[Any, ...]:
    """One invocation's figures: those named, every other one 0."""
    unknown = set(figures) - set(FIGURES)
    assert not unknown, f"not a figure of the handler: {unknown}"
    emitted = tuple((name, [float(figures.get(name, 0))]) for name in FIGURES)
    if labels_per_image is not None:
        emitted += (("LabelsPerImage", [float(labels_per_image)]),)
    return ("metrics", emitted)


LABELED_ONE = metrics(ImagesLabeled=1, labels_per_image=1)
RETRIED_ONE = metrics(RecordsRetried=1)
# A new object labeled, indexed, announced and marked.
LABEL_NEW = [READ_STATES, PUT_NEW, INDEX_ONE, DETECTED, MARK]
# A stored, unpublished result after a refused PutEvents: released, then claimed by the redelivery,
# its index finished and its event published, never relabeled.
RECOVER_STORED = [RELEASE, READ_STATES, READ_MARKS, CLAIM, READ_MARKS, READ_PARTITION, INDEX_ONE]
PUBLISH_RECOVERED = [READ_STATES, READ_MARKS, DETECTED, MARK]

EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "new result": [*LABEL_NEW, LABELED_ONE],
    "replacement": [
        READ_STATES,
        READ_MARKS,
        PUT_REPLACING,
        batch_write(("delete", "LABEL"), ("put", "LABEL"), ("put", "LABEL")),
        batch_write(("delete", "PUBLISHED")),
        DETECTED,
        MARK,
        metrics(ImagesLabeled=1, labels_per_image=2),
    ],
    "publish fails, then recovered": [
        *LABEL_NEW[:4],
        injected("put_events"),
        *RECOVER_STORED,
        *PUBLISH_RECOVERED,
        RETRIED_ONE,
        LABELED_ONE,
    ],
    "deletion": [
        FIND_RESULTS,
        READ_STATES,
        READ_MARKS,
        STORE_DELETION,
        batch_write(("delete", "LABEL"), ("delete", "LABEL")),
        REMOVED,
        MARK,
        metrics(ResultsRemoved=1),
    ],
}

EXPECTED_FAULTS: dict[str, list[tuple[Any, ...]]] = {
    "batch read refused": [READ_STATES, injected("batch_get_item"), *LABEL_NEW, RETRIED_ONE, LABELED_ONE],
    "result write refused": [
        READ_STATES,
        PUT_NEW,
        injected("put_item"),
        READ_STATES,
        *LABEL_NEW,
        RETRIED_ONE,
        LABELED_ONE,
    ],
    "mark refused twice": [
        *LABEL_NEW,
        injected("batch_write_item"),
        MARK,
        injected("batch_write_item"),
        MARK,
        LABELED_ONE,
    ],
    "a bug in the claim of a stored result": [
        *LABEL_NEW[:4],
        injected("put_events"),
        RELEASE,
        READ_STATES,
        READ_MARKS,
        CLAIM,
        injected("update_item"),
        *RECOVER_STORED[1:],
        *PUBLISH_RECOVERED,
        RETRIED_ONE,
        metrics(RecordsRetried=1, UnexpectedErrors=1),
        LABELED_ONE,
    ],
}

EXPECTED_LOST_ANSWERS: dict[str, list[tuple[Any, ...]]] = {
    "result write's answer lost": [
        READ_STATES,
        PUT_NEW,
        injected("put_item"),
        READ_STATES,
        READ_MARKS,
        INDEX_ONE,
        DETECTED,
        MARK,
        LABELED_ONE,
    ],
    "deletion's answer lost": [
        FIND_RESULTS,
        READ_STATES,
        READ_MARKS,
        STORE_DELETION,
        injected("update_item"),
        READ_STATES,
        READ_MARKS,
        READ_PARTITION,
        batch_write(("delete", "LABEL")),
        REMOVED,
        MARK,
        metrics(ResultsRemoved=1),
    ],
}
