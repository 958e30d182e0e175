"""Attacks on issue 16's fixes: the sequencer ADVANCE of the same bytes uploaded again, every write
conditioned on the sequencer it read, status DELETED, Removed's ``detail.sequencer``, torn reads.

Black-box: each worker is its own LabelingPipeline (one invocation, ``run``) on the shared moto
table and bus, observed through ``get_result``, ``find_by_label``, the documented attributes and the
events on the consumer queue. Interleavings are forced inside FaultyClient calls (a second worker
runs inside the first one's call), never by sleeping. Unversioned bucket unless said: the resultId
comes from the ETag, so the same bytes again have the same resultId.

Tests that held stay as regression tests; a test that broke names its fix in its docstring.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest

from labeler.adapters.results_store import result_key
from labeler.domain.backfill_request import backfill_request
from labeler.logic.pipeline import BatchReport
from local.fakes.faults import Call, client_error
from local.samples import make_image
from tests.integration.labeler.test_attacks_store import run, unversioned_body
from tests.integration.labeler.test_formats_and_deletions import REMOVED, of_type, with_deletions
from tests.support.builders import notification_body, s3_removal_record
from tests.support.harness import ARN, Harness

SCRATCH = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
DENT = make_image({"dent": (0.5, 0.5, 0.4, 0.4)})
LOGO = make_image({"logo": (0.2, 0.6, 0.3, 0.2)})
DETECTED = "Custom Labels Detected"
SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "event-schema.json").read_text())


class Died(BaseException):
    """The worker's process stops inside a call (not an Exception: nothing in the pipeline catches it)."""


def _delete(harness: Harness, key: str, sequencer: str | None) -> str:
    """An ObjectRemoved:Delete of an unversioned bucket: no versionId."""
    return notification_body(
        s3_removal_record(key, bucket=harness.resources.bucket, sequencer=sequencer, event_name="ObjectRemoved:Delete")
    )


def _forced_backfill(harness: Harness, key: str, run_id: str) -> str:
    """`autolabel backfill s3://BUCKET/KEY --force`: the object as listed now, labeled again."""
    head = harness.s3.head_object(Bucket=harness.resources.bucket, Key=key)
    return backfill_request(
        harness.resources.bucket,
        key,
        version_id=None,
        etag=head["ETag"],
        size=head["ContentLength"],
        run_id=run_id,
        force=True,
    ).to_body()


def _backfill(harness: Harness, key: str) -> str:
    head = harness.s3.head_object(Bucket=harness.resources.bucket, Key=key)
    return backfill_request(
        harness.resources.bucket, key, version_id=None, etag=head["ETag"], size=head["ContentLength"], run_id="b1"
    ).to_body()


def _etag(content: bytes) -> str:
    """S3's ETag of a single-part upload. The fake model reads a key's current bytes (the records carry
    no versionId), so labels do not tell which upload a result is of; its ETag does."""
    return hashlib.md5(content).hexdigest()


def _result(harness: Harness, key: str = "a.png") -> dict[str, Any]:
    result = harness.result(key)
    assert result is not None
    return result


def _keys(harness: Harness, label: str) -> list[str]:
    return sorted(found["key"] for found in harness.by_label(label))


def _ok(report: BatchReport) -> BatchReport:
    assert not report.failed_messages, report.failed_messages
    return report


def _is_advance(kwargs: dict[str, Any]) -> bool:
    return "sequencerOrder" in kwargs.get("ExpressionAttributeNames", {}).values()


def _is_deletion(kwargs: dict[str, Any]) -> bool:
    return "deletedAt" in kwargs.get("ExpressionAttributeNames", {}).values()


def _detected(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return of_type(events, DETECTED)


# -- the same bytes after a deletion, in order -------------------------------------------------------


def test_the_same_bytes_after_a_deletion_are_ordered_by_their_own_event(harness: Harness) -> None:
    """X (s10), deleted (s11), Y (s12), X again (s13): S3 holds X. Delivered s10, s11, s13, s12.

    X again after the deletion is labeled again (same resultId): its result must carry its own
    sequencer (s13), not the deleted result's (s10). With s10, Y's late event (s12) looks newer and
    replaces X; and X's new Detected event says s10, older than the Removed (s11), so a consumer that
    orders a key's events by detail.sequencer (docs/events.md) believes the object deleted.
    """
    with_deletions(harness)
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    delete = _delete(harness, "a.png", "0011")
    y = unversioned_body(harness, "a.png", DENT, "0012")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0013")
    for body in (x1, delete, x2):
        _ok(run(harness.build_pipeline(), body))
    result = _result(harness)
    assert result["status"] == "LABELED" and result["sequencer"] == "0013"
    events = harness.new_events()
    assert [(e["detail-type"], e["detail"]["sequencer"]) for e in events] == [
        (DETECTED, "0010"),
        (REMOVED, "0011"),
        (DETECTED, "0013"),
    ]
    assert _ok(run(harness.build_pipeline(), y)).stale == 1
    assert _result(harness)["etag"] == _etag(SCRATCH)


# -- races of the ADVANCE with other writers ---------------------------------------------------------


def test_a_forced_backfill_that_read_before_an_advance_keeps_the_advanced_sequencer(harness: Harness) -> None:
    """X (s1) stored; `backfill --force` of X reads it and labels; X again (s3) advances the sequencer
    before the forced write; the forced write conflicts (the sequencer changed), decides again and must
    store the advanced sequencer. Otherwise the key is ordered at s1 again and Y's late event (s2)
    replaces X, which S3 holds."""
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    y = unversioned_body(harness, "a.png", DENT, "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")
    _ok(run(harness.build_pipeline(), x1))
    inner: list[BatchReport] = []

    def put_item(kwargs: dict[str, Any], call: Call) -> Any:
        if not inner:
            inner.append(run(harness.build_pipeline(), x2))  # between the forced relabel's read and write
        return call(**kwargs)

    harness.dynamodb.faults["put_item"] = put_item
    forced = _ok(run(harness.build_pipeline(), _forced_backfill(harness, "a.png", "retry-1")))
    assert inner and inner[0].duplicates == 1 and forced.labeled == 1
    assert _result(harness)["sequencer"] == "0012"
    late = _ok(run(harness.build_pipeline(), y))
    assert late.stale == 1 and _result(harness)["etag"] == _etag(SCRATCH)


def test_an_advance_that_read_before_a_forced_backfill_advances_the_forced_result(harness: Harness) -> None:
    """The other way round: X again (s3) reads X (s1); a forced relabel of X is stored before the
    advance's UpdateItem (another resultId): the advance fails, reads again and advances the forced result."""
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    y = unversioned_body(harness, "a.png", DENT, "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")
    _ok(run(harness.build_pipeline(), x1))
    forced_body = _forced_backfill(harness, "a.png", "retry-1")
    inner: list[BatchReport] = []

    def update_item(kwargs: dict[str, Any], call: Call) -> Any:
        if _is_advance(kwargs) and not inner:
            inner.append(run(harness.build_pipeline(), forced_body))
        return call(**kwargs)

    harness.dynamodb.faults["update_item"] = update_item
    again = _ok(run(harness.build_pipeline(), x2))
    assert inner and inner[0].labeled == 1 and again.duplicates == 1
    result = _result(harness)
    assert result["sequencer"] == "0012" and result["resultId"] == _detected(harness.new_events())[-1]["resultId"]
    assert _ok(run(harness.build_pipeline(), y)).stale == 1
    assert _result(harness)["etag"] == _etag(SCRATCH)


def test_a_deletion_that_read_before_an_advance_is_stale(harness: Harness) -> None:
    """X (s1); X deleted (s2) and uploaded again (s3). The deletion read X (s1); the advance (s3) lands
    before the deletion's UpdateItem: the deletion conflicts on the sequencer, decides again: stale."""
    with_deletions(harness)
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    delete = _delete(harness, "a.png", "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")
    _ok(run(harness.build_pipeline(), x1))
    harness.new_events()
    inner: list[BatchReport] = []

    def update_item(kwargs: dict[str, Any], call: Call) -> Any:
        if _is_deletion(kwargs) and not inner:
            inner.append(run(harness.build_pipeline(), x2))
        return call(**kwargs)

    harness.dynamodb.faults["update_item"] = update_item
    report = _ok(run(harness.build_pipeline(), delete))
    assert inner and inner[0].duplicates == 1 and report.stale == 1 and report.removed == 0
    result = _result(harness)
    assert result["status"] == "LABELED" and "deletedAt" not in result and result["sequencer"] == "0012"
    assert _keys(harness, "scratch") == ["a.png"] and harness.new_events() == []


def test_an_advance_that_read_before_a_deletion_labels_the_bytes_again(harness: Harness) -> None:
    """X (s1); deleted (s2), uploaded again (s3). X again read X (s1); the deletion lands before the
    advance: the advance fails (deleted), reads again; s3 is newer than the deletion: X is labeled and
    announced again (same resultId after its Removed, as docs/events.md says), and answers find_by_label."""
    with_deletions(harness)
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    delete = _delete(harness, "a.png", "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")
    _ok(run(harness.build_pipeline(), x1))
    inner: list[BatchReport] = []

    def update_item(kwargs: dict[str, Any], call: Call) -> Any:
        if _is_advance(kwargs) and not inner:
            inner.append(run(harness.build_pipeline(), delete))
        return call(**kwargs)

    harness.dynamodb.faults["update_item"] = update_item
    again = _ok(run(harness.build_pipeline(), x2))
    assert inner and inner[0].removed == 1 and again.labeled == 1
    result = _result(harness)
    assert result["status"] == "LABELED" and "deletedAt" not in result and result["sequencer"] == "0012"
    assert _keys(harness, "scratch") == ["a.png"]
    events = harness.new_events()
    assert [e["detail-type"] for e in events] == [DETECTED, REMOVED, DETECTED]
    assert len({e["detail"]["resultId"] for e in events}) == 1
    assert [e["detail"]["sequencer"] for e in events] == ["0010", "0011", "0012"]  # one order for the key


def test_two_advances_race_and_the_newest_sequencer_stays(harness: Harness) -> None:
    """X uploaded three times (s1, s3, s4), then Y's late event (s2). The s3 advance read before the
    s4 advance landed: its condition (stored order older than s3) fails, it reads again: a duplicate."""
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    y = unversioned_body(harness, "a.png", DENT, "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")
    x3 = unversioned_body(harness, "a.png", SCRATCH, "0013")
    _ok(run(harness.build_pipeline(), x1))
    inner: list[BatchReport] = []
    started: list[bool] = []

    def update_item(kwargs: dict[str, Any], call: Call) -> Any:
        if _is_advance(kwargs) and not started:
            started.append(True)  # before the nested run: its own advance must not nest again
            inner.append(run(harness.build_pipeline(), x3))
        return call(**kwargs)

    harness.dynamodb.faults["update_item"] = update_item
    report = _ok(run(harness.build_pipeline(), x2))
    assert inner and inner[0].duplicates == 1 and report.duplicates == 1
    assert _result(harness)["sequencer"] == "0013"
    assert _ok(run(harness.build_pipeline(), y)).stale == 1 and _result(harness)["etag"] == _etag(SCRATCH)
    assert harness.rekognition_calls() == 1


def test_an_advance_loses_to_newer_content_stored_meanwhile(harness: Harness) -> None:
    """X again (s2) read X (s1); Z (s3, other bytes) is stored before the advance: the advance fails
    (another resultId), reads again: X's event is older than Z's: stale. S3 holds Z."""
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0011")
    z = unversioned_body(harness, "a.png", LOGO, "0012")
    _ok(run(harness.build_pipeline(), x1))
    inner: list[BatchReport] = []

    def update_item(kwargs: dict[str, Any], call: Call) -> Any:
        if _is_advance(kwargs) and not inner:
            inner.append(run(harness.build_pipeline(), z))
        return call(**kwargs)

    harness.dynamodb.faults["update_item"] = update_item
    report = _ok(run(harness.build_pipeline(), x2))
    assert inner and inner[0].labeled == 1 and report.stale == 1
    result = _result(harness)
    assert result["etag"] == _etag(LOGO) and result["sequencer"] == "0012"


# -- an ADVANCE while the result's publication is pending ------------------------------------------


def test_an_advance_while_another_worker_publishes_is_announced_exactly_once(harness: Harness) -> None:
    """Worker A stored X (s1) and holds its publish claim; inside A's PutEvents, X again (s3) arrives:
    it advances the sequencer, then waits for A's claim (retried). A publishes; the retry is a duplicate."""
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    y = unversioned_body(harness, "a.png", DENT, "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")
    inner: list[BatchReport] = []

    def put_events(kwargs: dict[str, Any], call: Call) -> Any:
        if not inner:
            inner.append(run(harness.build_pipeline(), x2))
        return call(**kwargs)

    harness.events.faults["put_events"] = put_events
    _ok(run(harness.build_pipeline(), x1))
    assert inner and inner[0].failed_messages and inner[0].retries == 1  # IN_PROGRESS: retried later
    assert _result(harness)["sequencer"] == "0012"
    assert _ok(run(harness.build_pipeline(), x2)).duplicates == 1
    assert _ok(run(harness.build_pipeline(), y)).stale == 1
    detected = _detected(harness.new_events())
    assert len(detected) == 1 and detected[0]["etag"] == _etag(SCRATCH)


def test_an_advance_after_the_publisher_died_announces_the_result_once(harness: Harness) -> None:
    """A stored X (s1) and died before PutEvents (its claim held, never released). X again (s3)
    advances and waits for the claim; once it expired, the retry publishes X once, at the advanced
    sequencer; Y's late event is stale."""
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    y = unversioned_body(harness, "a.png", DENT, "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")

    def die(kwargs: dict[str, Any], call: Call) -> Any:
        raise Died

    harness.events.faults["put_events"] = die
    with pytest.raises(Died):
        run(harness.build_pipeline(), x1)
    del harness.events.faults["put_events"]
    waiting = run(harness.build_pipeline(), x2)
    assert waiting.failed_messages and waiting.retries == 1  # A's claim is fresh
    assert _result(harness)["sequencer"] == "0012"
    expired = harness.build_pipeline(claim_ttl=0.0)  # the claim's TTL has passed
    assert _ok(run(expired, x2)).labeled == 1
    assert _ok(run(harness.build_pipeline(), x2)).duplicates == 1
    assert _ok(run(harness.build_pipeline(), y)).stale == 1
    detected = _detected(harness.new_events())
    assert [(d["labelNames"], d["sequencer"]) for d in detected] == [(["scratch"], "0012")]
    assert harness.rekognition_calls() == 1


def test_an_advance_on_a_result_whose_publication_was_refused_publishes_it_once(harness: Harness) -> None:
    """X (s1) stored, PutEvents refused (claim released, unpublished). X again (s3) advances, then
    publishes the stored X (no relabel); the deletion (s2) delivered last is stale."""
    with_deletions(harness)
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    delete = _delete(harness, "a.png", "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")

    def refuse(kwargs: dict[str, Any], call: Call) -> Any:
        raise client_error("InternalException", status=500)

    harness.events.faults["put_events"] = refuse
    assert run(harness.build_pipeline(), x1).failed_messages
    del harness.events.faults["put_events"]
    assert _ok(run(harness.build_pipeline(), x2)).labeled == 1  # the stored result, published
    assert _ok(run(harness.build_pipeline(), delete)).stale == 1
    events = harness.new_events()
    assert [e["detail-type"] for e in events] == [DETECTED] and harness.rekognition_calls() == 1
    assert _keys(harness, "scratch") == ["a.png"]


# -- faults on the ADVANCE itself ------------------------------------------------------------------


def test_the_worker_dies_right_after_the_advance_applied(harness: Harness) -> None:
    """The UpdateItem applied, then the process stopped: the redelivery finds it done (a duplicate)."""
    with_deletions(harness)
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    delete = _delete(harness, "a.png", "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")
    _ok(run(harness.build_pipeline(), x1))

    def apply_then_die(kwargs: dict[str, Any], call: Call) -> Any:
        call(**kwargs)
        if _is_advance(kwargs):
            raise Died
        return None

    harness.dynamodb.faults["update_item"] = apply_then_die
    with pytest.raises(Died):
        run(harness.build_pipeline(), x2)
    del harness.dynamodb.faults["update_item"]
    assert _ok(run(harness.build_pipeline(), x2)).duplicates == 1
    assert _ok(run(harness.build_pipeline(), delete)).stale == 1
    assert _result(harness)["status"] == "LABELED" and _keys(harness, "scratch") == ["a.png"]
    assert [e["detail-type"] for e in harness.new_events()] == [DETECTED]


def test_a_throttled_advance_is_retried_and_orders_the_key_afterwards(harness: Harness) -> None:
    """The UpdateItem did not apply (throttled): the record is retried, not acknowledged, so the
    sequencer is not left behind (an acknowledged re-upload without its advance reopens defect 1)."""
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    y = unversioned_body(harness, "a.png", DENT, "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")
    _ok(run(harness.build_pipeline(), x1))

    def throttle(kwargs: dict[str, Any], call: Call) -> Any:
        if _is_advance(kwargs):
            raise client_error("ProvisionedThroughputExceededException")
        return call(**kwargs)

    harness.dynamodb.faults["update_item"] = throttle
    assert run(harness.build_pipeline(), x2).failed_messages
    del harness.dynamodb.faults["update_item"]
    assert _result(harness)["sequencer"] == "0010"
    assert _ok(run(harness.build_pipeline(), x2)).duplicates == 1
    assert _ok(run(harness.build_pipeline(), y)).stale == 1


# -- backfill against an advanced sequencer ---------------------------------------------------------


def test_a_plain_backfill_leaves_the_advanced_sequencer(harness: Harness) -> None:
    """A listing has no sequencer: a backfill of the same bytes is a duplicate and changes nothing."""
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    y = unversioned_body(harness, "a.png", DENT, "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")
    _ok(run(harness.build_pipeline(), x1))
    _ok(run(harness.build_pipeline(), x2))
    assert _ok(run(harness.build_pipeline(), _backfill(harness, "a.png"))).duplicates == 1
    assert _result(harness)["sequencer"] == "0012"
    assert _ok(run(harness.build_pipeline(), y)).stale == 1


def test_a_result_stored_by_a_backfill_is_ordered_by_the_next_notification_of_its_bytes(harness: Harness) -> None:
    """X labeled by a backfill (no sequencer); X's own notification (s3) then records s3, so Y's older
    event (s2) is stale instead of replacing X."""
    y = unversioned_body(harness, "a.png", DENT, "0011")
    x = unversioned_body(harness, "a.png", SCRATCH, "0012")
    assert _ok(run(harness.build_pipeline(), _backfill(harness, "a.png"))).labeled == 1
    assert "sequencer" not in _result(harness)
    assert _ok(run(harness.build_pipeline(), x)).duplicates == 1
    assert _result(harness)["sequencer"] == "0012"
    assert _ok(run(harness.build_pipeline(), y)).stale == 1 and _result(harness)["etag"] == _etag(SCRATCH)


def test_a_forced_backfill_after_an_advance_keeps_it(harness: Harness) -> None:
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    y = unversioned_body(harness, "a.png", DENT, "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")
    _ok(run(harness.build_pipeline(), x1))
    _ok(run(harness.build_pipeline(), x2))
    assert _ok(run(harness.build_pipeline(), _forced_backfill(harness, "a.png", "r1"))).labeled == 1
    assert _result(harness)["sequencer"] == "0012"
    assert _ok(run(harness.build_pipeline(), y)).stale == 1


# -- every delivery order ends where in-order delivery ends ------------------------------------------


def _final(harness: Harness, key: str) -> tuple[Any, ...]:
    result = _result(harness, key)
    return (
        result["status"],
        result["etag"],
        tuple(result["labelNames"]),
        result.get("sequencer"),
        "deletedAt" in result,
        tuple(label for label in ("scratch", "dent") if key in _keys(harness, label)),
    )


def test_every_delivery_order_of_upload_delete_other_upload_same_bytes_converges(harness: Harness) -> None:
    """X (s10), deleted (s11), Y (s12), X again (s13), one invocation per event, in all 24 orders:
    the final result (status, labels, sequencer, deletion) and find_by_label are those of the order
    S3 made them in (X, labeled, at s13), and so is the last event of the key by detail.sequencer."""
    with_deletions(harness)
    orders = list(itertools.permutations(range(4)))
    finals: dict[tuple[int, ...], tuple[Any, ...]] = {}
    for number, order in enumerate(orders):
        key = f"o{number}.png"
        bodies = [
            unversioned_body(harness, key, SCRATCH, "0010"),
            _delete(harness, key, "0011"),
            unversioned_body(harness, key, DENT, "0012"),
            unversioned_body(harness, key, SCRATCH, "0013"),
        ]
        for index in order:
            _ok(run(harness.build_pipeline(), bodies[index]))
        finals[order] = _final(harness, key)
    expected = ("LABELED", _etag(SCRATCH), ("scratch",), "0013", False, ("scratch",))
    assert finals[(0, 1, 2, 3)] == expected
    assert {order: final for order, final in finals.items() if final != expected} == {}
    # A consumer that orders each key's events by detail.sequencer ends at a Detected of X (at s10 when
    # X again was only an ADVANCE: nothing new to announce).
    last: dict[str, dict[str, Any]] = {}
    for event in harness.new_events():
        detail = event["detail"]
        if detail["key"] not in last or detail["sequencer"] > last[detail["key"]]["detail"]["sequencer"]:
            last[detail["key"]] = event
    assert len(last) == len(orders)
    assert {(e["detail-type"], e["detail"]["etag"]) for e in last.values()} == {(DETECTED, _etag(SCRATCH))}


# -- items stored by the release before issue 16 ----------------------------------------------------


def _as_old_release(harness: Harness, key: str, status: str = "LABELED") -> None:
    """What the release before issue 16 stored for a deleted result: its status kept, deletedAt added."""
    boto3.client("dynamodb").update_item(
        TableName=harness.resources.table_name,
        Key=result_key(harness.resources.bucket, key, ARN),
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": status}},
    )


def test_an_old_release_deleted_item_reads_as_deleted_and_orders_later_events(harness: Harness) -> None:
    with_deletions(harness)
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    delete = _delete(harness, "a.png", "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0013")
    for body in (x1, delete):
        _ok(run(harness.build_pipeline(), body))
    _as_old_release(harness, "a.png")
    old = _result(harness)
    assert old["status"] == "DELETED" and old["labelNames"] == ["scratch"] and "deletedAt" in old
    assert _keys(harness, "scratch") == []
    assert _ok(run(harness.build_pipeline(), delete)).duplicates == 1  # redelivered: nothing again
    assert _ok(run(harness.build_pipeline(), x1)).stale == 1  # older than the deletion
    assert _result(harness)["status"] == "DELETED"
    assert _ok(run(harness.build_pipeline(), x2)).labeled == 1  # uploaded again after it
    result = _result(harness)
    assert result["status"] == "LABELED" and "deletedAt" not in result and result["sequencer"] == "0013"
    assert _keys(harness, "scratch") == ["a.png"]


def test_an_old_release_failed_deleted_item_reads_as_deleted(harness: Harness) -> None:
    with_deletions(harness)
    _ok(run(harness.build_pipeline(), unversioned_body(harness, "a.png", SCRATCH, "0010")))
    _ok(run(harness.build_pipeline(), _delete(harness, "a.png", "0011")))
    _as_old_release(harness, "a.png", status="FAILED")
    assert _result(harness)["status"] == "DELETED"


def test_an_item_without_sequencer_order_is_advanced(harness: Harness) -> None:
    """A result item that has a sequencer but no sequencerOrder (written by hand, or by an older
    release): the advance's condition accepts it, and Y's late event is stale afterwards."""
    x1 = unversioned_body(harness, "a.png", SCRATCH, "0010")
    y = unversioned_body(harness, "a.png", DENT, "0011")
    x2 = unversioned_body(harness, "a.png", SCRATCH, "0012")
    _ok(run(harness.build_pipeline(), x1))
    boto3.client("dynamodb").update_item(
        TableName=harness.resources.table_name,
        Key=result_key(harness.resources.bucket, "a.png", ARN),
        UpdateExpression="REMOVE sequencerOrder",
    )
    assert _ok(run(harness.build_pipeline(), x2)).duplicates == 1
    assert _ok(run(harness.build_pipeline(), y)).stale == 1 and _result(harness)["sequencer"] == "0012"


# -- Removed events: detail.sequencer ----------------------------------------------------------------


@pytest.mark.parametrize("sequencer", ["0011", None])
def test_removed_carries_the_deletions_sequencer_at_the_top_level(harness: Harness, sequencer: str | None) -> None:
    with_deletions(harness)
    _ok(run(harness.build_pipeline(), unversioned_body(harness, "a.png", SCRATCH, "0010")))
    harness.new_events()
    _ok(run(harness.build_pipeline(), _delete(harness, "a.png", sequencer)))
    events = harness.new_events()
    (removed,) = of_type(events, REMOVED)
    assert "sequencer" in removed and removed["sequencer"] == sequencer == removed["deletion"]["sequencer"]
    jsonschema.validate({"detail-type": REMOVED, "detail": removed}, SCHEMA)
