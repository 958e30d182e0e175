"""Faults between the steps of a record: dropped connections, ambiguous outcomes, deadlines.

Each test drives the real handler inside moto and injects the fault with
``local.fakes.faults``: connection errors raised before a request is applied, and
the ambiguous kind where the request was applied but the response was lost.
The promise under test: every record finishes labeled or failed (or is
retried with nothing half-done), and a result is announced once, except after
a PutEvents call whose outcome was unknown, which is counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from labeler import handler
from local.fakes.faults import Call, Fault, client_error, fail_times, lost_after_applied
from local.samples import make_image
from tests.support.builders import notification_body, sqs_event
from tests.support.harness import Harness
from tests.support.metrics import emitted
from tests.support.table_writes import is_index_only_write, is_mark

SCRATCH = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
DENT = make_image({"dent": (0.5, 0.5, 0.4, 0.4)})
URL = "https://dynamodb.us-east-1.amazonaws.com/"


def read_timeout() -> Exception:
    return ReadTimeoutError(endpoint_url=URL)


def connection_closed() -> Exception:
    return ConnectionClosedError(endpoint_url=URL)


def endpoint_unreachable() -> Exception:
    return EndpointConnectionError(endpoint_url=URL)


def on_marks(fault: Fault) -> Fault:
    """Apply ``fault`` to mark-published writes only; everything else calls through."""

    def maybe(kwargs: dict[str, Any], call: Call) -> Any:
        return fault(kwargs, call) if is_mark(kwargs) else call(**kwargs)

    return maybe


def on_both_mark_paths(harness: Harness, fault: Fault) -> None:
    harness.dynamodb.faults["batch_write_item"] = on_marks(fault)


@dataclass
class Context:
    """A Lambda context whose remaining time the test controls."""

    remaining_ms: int = 60_000
    function_name: str = "autolabel-labeler-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:autolabel-labeler-test"
    aws_request_id: str = "test-request"
    calls: list[int] = field(default_factory=list)

    def get_remaining_time_in_millis(self) -> int:
        self.calls.append(self.remaining_ms)
        return self.remaining_ms


def invoke(harness: Harness, keys: list[str], context: Any | None = None) -> dict[str, Any]:
    """Invoke the handler directly with notifications for already uploaded keys."""
    bodies = []
    for key in keys:
        head = harness.s3.head_object(Bucket=harness.resources.bucket, Key=key)
        bodies.append(
            notification_body(
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": harness.resources.bucket},
                        "object": {"key": key, "size": head["ContentLength"], "eTag": head["ETag"].strip('"')},
                    },
                }
            )
        )
    response: dict[str, Any] = handler.handler(sqs_event(*bodies), context or Context())
    return response


# -- a dropped connection after the event went out (the mark) ------------------


@pytest.mark.parametrize("error", [connection_closed, endpoint_unreachable, read_timeout])
@pytest.mark.parametrize("images", [1, 2])  # one publication item, or several in one BatchWriteItem
def test_connection_error_on_the_mark_after_putevents_never_puts_the_record_back(
    harness: Harness, error: Any, images: int
) -> None:
    on_both_mark_paths(harness, fail_times(2, error))
    for n in range(images):
        harness.upload(f"{n}.png", SCRATCH)
    harness.run()
    assert harness.poller.stats.item_failures == 0 and harness.poller.stats.handler_errors == 0
    assert len(harness.new_events()) == images
    assert harness.dead_letters() == []
    # The mark was retried in-process: a second delivery is a known duplicate.
    for n in range(images):
        harness.upload(f"{n}.png", SCRATCH)  # same bytes, same ETag: the same notification again
    harness.run()
    assert harness.new_events() == []
    assert harness.rekognition_calls() == images


def test_mark_that_keeps_failing_is_counted_and_the_record_still_acknowledged(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    def always(_kwargs: dict[str, Any], _call: Call) -> Any:
        raise endpoint_unreachable()

    on_both_mark_paths(harness, always)
    harness.upload("a.png", SCRATCH)
    harness.discard_notifications()
    context = Context()
    response = invoke(harness, ["a.png"], context)
    assert response == {"batchItemFailures": []}
    assert len(harness.new_events()) == 1
    assert emitted(capsys.readouterr().out, "PublishMarksFailed") == 1


def test_mark_failing_several_times_then_redelivered_announces_once(harness: Harness) -> None:
    on_both_mark_paths(harness, fail_times(4, read_timeout))
    harness.upload("a.png", SCRATCH)
    harness.run()
    harness.upload("a.png", SCRATCH)  # S3 delivers the same notification again
    harness.run()
    events = harness.new_events()
    assert len(events) == 1
    assert harness.rekognition_calls() == 1
    assert harness.dead_letters() == [] and harness.poller.stats.handler_errors == 0


# -- PutEvents outcomes: unknown (ambiguous) versus not sent ------------------


def test_ambiguous_putevents_is_the_only_duplicate_and_it_is_counted(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.events.faults["put_events"] = applied_once(read_timeout)
    harness.upload("a.png", SCRATCH)
    harness.run()
    events = harness.new_events()
    assert len(events) == 2  # the lost response hid an accepted event: republished once
    assert len({e["detail"]["resultId"] for e in events}) == 1  # with the same resultId
    assert emitted(capsys.readouterr().out, "AmbiguousPublishes") == 1
    assert harness.rekognition_calls() == 1


@pytest.mark.parametrize("error", [endpoint_unreachable, lambda: client_error("ThrottlingException", status=400)])
def test_putevents_not_sent_is_retried_without_a_duplicate(
    harness: Harness, error: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.events.faults["put_events"] = fail_times(1, error)
    harness.upload("a.png", SCRATCH)
    harness.run()
    assert len(harness.new_events()) == 1
    assert emitted(capsys.readouterr().out, "AmbiguousPublishes") == 0


def applied_once(error: Any) -> Fault:
    """The ambiguous kind, once: the request is applied and its response lost; later calls go through."""
    done = [False]

    def fault(kwargs: dict[str, Any], call: Call) -> Any:
        if done[0]:
            return call(**kwargs)
        done[0] = True
        return lost_after_applied(error)(kwargs, call)

    return fault


# -- the store's own ambiguous outcomes ------------------------------------------


def test_result_write_applied_but_response_lost_is_not_relabeled_or_doubled(harness: Harness) -> None:
    lose_first_response = applied_once(connection_closed)

    harness.dynamodb.faults["put_item"] = lose_first_response  # the result item's conditional write
    harness.upload("a.png", SCRATCH)
    harness.upload("b.png", DENT)
    harness.run()
    events = harness.new_events()
    assert sorted(e["detail"]["key"] for e in events) == ["a.png", "b.png"]
    assert harness.rekognition_calls() == 2
    assert harness.dead_letters() == []


# -- more than 99 distinct labels: the index always equals the current result ----


class ManyLabelsModel:
    """A model whose answer for each key is set by the test (any number of labels)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.calls: list[dict[str, Any]] = []

    def detect_custom_labels(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        names = self.answers[request["Image"]["S3Object"]["Name"]]
        return {"CustomLabels": [{"Name": name, "Confidence": 99.0 - n * 0.1} for n, name in enumerate(names)]}


def fail_index_writes_once(harness: Harness) -> None:
    """Fail, once, the first write that carries only label-index items (after the result went in)."""
    done = [False]

    def fault(kwargs: dict[str, Any], call: Call) -> Any:
        if not done[0] and is_index_only_write(kwargs):
            done[0] = True
            raise client_error("ProvisionedThroughputExceededException", operation="Write")
        return call(**kwargs)

    harness.dynamodb.faults["batch_write_item"] = fault


def many_labels_harness(harness: Harness) -> ManyLabelsModel:
    model = ManyLabelsModel()
    harness.model = model  # type: ignore[assignment]
    harness.pipeline = harness.build_pipeline()
    handler.use_pipeline(harness.pipeline)
    return model


def test_index_of_a_150_label_result_is_complete_after_a_failed_index_write(harness: Harness) -> None:
    model = many_labels_harness(harness)
    names = [f"label-{n:03d}" for n in range(150)]
    model.answers["a.png"] = names
    fail_index_writes_once(harness)
    first = harness.upload_quietly("a.png", SCRATCH)
    harness.send(notification_body(harness.record_for("a.png", first, sequencer="0010")))
    harness.run()
    missing = [name for name in names if [f["key"] for f in harness.by_label(name)] != ["a.png"]]
    assert missing == []
    assert len(harness.new_events()) == 1
    result = harness.result("a.png")
    assert result is not None and [label["Name"] for label in result["customLabels"]] == names

    # Relabeled from 150 labels to 1, with an index write failing again.
    model.answers["a.png"] = ["dent"]
    fail_index_writes_once(harness)
    second = harness.upload_quietly("a.png", DENT)
    harness.send(notification_body(harness.record_for("a.png", second, sequencer="0011")))
    harness.run()
    still_found = [name for name in names if harness.by_label(name)]
    assert still_found == []
    assert [f["key"] for f in harness.by_label("dent")] == ["a.png"]


# -- retries bounded by the invocation's remaining time ---------------------------


def test_no_rekognition_call_starts_that_cannot_finish_in_time(harness: Harness) -> None:
    harness.upload("a.png", SCRATCH)
    harness.discard_notifications()
    response = invoke(harness, ["a.png"], Context(remaining_ms=8_000))
    assert len(response["batchItemFailures"]) == 1
    assert harness.rekognition_calls() == 0
    assert harness.result("a.png") is None and harness.new_events() == []


def test_record_out_of_time_after_labeling_is_failed_cleanly_and_finished_by_the_retry(harness: Harness) -> None:
    context = Context(remaining_ms=55_000)

    def slow_model(_request: dict[str, Any]) -> None:
        context.remaining_ms = 6_000  # the call took most of what was left

    harness.model.fault = slow_model
    harness.upload("a.png", SCRATCH)
    harness.discard_notifications()
    response = invoke(harness, ["a.png"], context)
    assert len(response["batchItemFailures"]) == 1
    assert harness.new_events() == []
    stored = harness.dynamodb._client.get_item(
        TableName=harness.resources.table_name,
        Key={
            "pk": {"S": f"{harness.resources.bucket}/a.png"},
            "sk": {"S": f"RESULT#{harness.config.project_version_arn}"},
        },
        ConsistentRead=True,
    ).get("Item")
    # Never half-done: either nothing stored, or stored unpublished with no claim left behind.
    assert stored is None or ("publishClaimedAt" not in stored and not stored["eventPublished"]["BOOL"])
    harness.model.fault = None
    response = invoke(harness, ["a.png"], Context())
    assert response == {"batchItemFailures": []}
    assert len(harness.new_events()) == 1


# -- alarm noise: a batch that is entirely retried is not a function error ---------


def test_a_lone_throttled_message_is_a_batch_item_failure_not_a_function_error(harness: Harness) -> None:
    harness.model.fault = lambda _request: client_error("ThrottlingException", operation="DetectCustomLabels")
    harness.upload("a.png", SCRATCH)
    harness.discard_notifications()
    response = invoke(harness, ["a.png"])  # raised BatchProcessingError before: the errors alarm paged
    assert len(response["batchItemFailures"]) == 1


# -- a transient error on the recovery path is a fault, not a bug ------------------


def test_connection_error_while_loading_a_stored_result_is_retried_not_counted_as_a_bug(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.events.faults["put_events"] = fail_times(1, endpoint_unreachable)  # stored, not yet published
    harness.upload("a.png", SCRATCH)
    harness.run()
    assert len(harness.new_events()) == 1  # the retry published the stored result
    capsys.readouterr()
    harness.dynamodb.faults["query"] = fail_times(1, read_timeout)  # load() of the recovery path
    harness.events.faults["put_events"] = fail_times(1, endpoint_unreachable)
    harness.upload("b.png", DENT)
    harness.run()
    assert len(harness.new_events()) == 1
    out = capsys.readouterr().out
    assert emitted(out, "UnexpectedErrors") == 0
