"""The real path in moto: S3 notification -> SQS -> handler -> DynamoDB + EventBridge -> consumer queue.

One test per row of the README failure table (and the whole flow). The model is the fake of
local/fakes/fake_model.py; DynamoDB and EventBridge faults come from local/fakes/faults.py.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from labeler import handler
from local.fakes.faults import client_error, fail_times, put_events_rejecting
from local.samples import make_image
from shared.validation import ConfigError
from tests.support.builders import notification_body, s3_record, sqs_event
from tests.support.harness import ARN, Harness
from tests.support.table_writes import is_mark

SCRATCH = make_image({"scratch": (0.1, 0.1, 0.3, 0.3)})
DENT = make_image({"dent": (0.5, 0.5, 0.4, 0.4)})


def emitted(stdout: str, metric: str) -> list[float]:
    """Values of one EMF metric in the handler's stdout."""
    values: list[float] = []
    for line in stdout.splitlines():
        if line.startswith('{"_aws"'):
            values.extend(json.loads(line).get(metric, []))
    return values


def details(events: list[dict[str, Any]], detail_type: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in events if e["detail-type"] == detail_type]


def test_uploaded_image_is_labeled_stored_and_announced(harness: Harness) -> None:
    harness.upload("line 1/part+7.png", SCRATCH)
    harness.run()
    result = harness.result("line 1/part+7.png")  # stored under the decoded key
    assert result is not None and result["status"] == "LABELED"
    assert result["labelNames"] == ["scratch"] and result["labelCount"] == 1
    (event,) = harness.new_events()
    assert event["source"] == "autolabel" and event["detail-type"] == "Custom Labels Detected"
    assert event["detail"]["key"] == "line 1/part+7.png"
    assert event["detail"]["customLabels"] == result["customLabels"]
    assert event["detail"]["processedAt"] == result["processedAt"]
    assert event["detail"]["resultId"] == result["resultId"]
    assert harness.by_label("scratch") == [
        {
            "bucket": harness.resources.bucket,
            "key": "line 1/part+7.png",
            "projectVersionArn": ARN,
            "confidence": result["customLabels"][0]["Confidence"],
        }
    ]
    assert harness.dead_letters() == []


def test_version_and_sequencer_from_real_s3_events_are_used(harness: Harness) -> None:
    upload = harness.upload_quietly("a.png", SCRATCH)
    harness.send(notification_body(harness.record_for("a.png", upload, sequencer="0055AED6DCD90281E5")))
    harness.run()
    (call,) = harness.model.calls
    assert call["Image"]["S3Object"] == {
        "Bucket": harness.resources.bucket,
        "Name": "a.png",
        "Version": upload["VersionId"],
    }
    result = harness.result("a.png")
    assert result is not None
    assert (result["versionId"], result["sequencer"]) == (upload["VersionId"], "0055AED6DCD90281E5")
    (event,) = harness.new_events()
    assert event["detail"]["versionId"] == upload["VersionId"]
    assert event["detail"]["sequencer"] == "0055AED6DCD90281E5"


def test_min_confidence_and_max_results_reach_rekognition(stack_facts: Any) -> None:
    from moto import mock_aws

    with mock_aws():
        harness = Harness(stack_facts, min_confidence=0.0, max_results=1)
        harness.upload("two.png", make_image({"scratch": (0, 0, 0.3, 0.3), "logo": (0.5, 0.5, 0.3, 0.3)}))
        harness.run()
        (call,) = harness.model.calls
        assert call["MinConfidence"] == 0.0 and call["MaxResults"] == 1
        result = harness.result("two.png")
        assert result is not None
        assert (result["minConfidence"], result["maxResults"], result["labelCount"]) == (0, 1, 1)


def test_non_image_keys_are_skipped_without_a_call_a_row_or_an_event(harness: Harness, capsys: Any) -> None:
    harness.upload("notes.txt", b"hello")
    harness.upload("photo.gif", b"GIF89a")
    harness.run()
    assert harness.rekognition_calls() == 0
    assert harness.result("notes.txt") is None and harness.result("photo.gif") is None
    assert harness.new_events() == [] and harness.dead_letters() == []
    assert sum(emitted(capsys.readouterr().out, "ImagesSkipped")) == 2


def test_extension_check_ignores_letter_case(harness: Harness) -> None:
    harness.upload("UPPER.JPG", make_image({"dent": (0.2, 0.2, 0.5, 0.5)}, image_format="JPEG"))
    harness.upload("Mixed.PnG", DENT)
    harness.run()
    assert harness.rekognition_calls() == 2
    assert len(details(harness.new_events(), "Custom Labels Detected")) == 2


def test_empty_object_fails_without_a_call(harness: Harness) -> None:
    harness.upload("empty.png", b"")
    harness.run()
    assert harness.rekognition_calls() == 0
    result = harness.result("empty.png")
    assert result is not None and result["status"] == "FAILED" and result["labelCount"] == 0
    assert result["error"]["code"] == "InvalidImageFormatException"
    (failed,) = details(harness.new_events(), "Custom Labels Failed")
    assert failed["error"]["code"] == "InvalidImageFormatException"


def test_object_over_15_mib_fails_without_a_call(harness: Harness) -> None:
    upload = harness.upload_quietly("huge.png", SCRATCH)
    harness.send(notification_body(harness.record_for("huge.png", upload, size=15 * 1024 * 1024 + 1)))
    harness.run()
    assert harness.rekognition_calls() == 0
    result = harness.result("huge.png")
    assert result is not None and result["error"]["code"] == "ImageTooLargeException"
    assert details(harness.new_events(), "Custom Labels Failed")[0]["error"]["code"] == "ImageTooLargeException"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\xff\xd8\xff not a jpeg at all", "InvalidImageFormatException"),
        (make_image({"logo": (0, 0, 1, 1)}, size=(40, 40)), "InvalidParameterException"),
    ],
)
def test_images_rekognition_rejects_end_failed_with_its_message(harness: Harness, body: bytes, code: str) -> None:
    harness.upload("bad.png", body)
    harness.run()
    result = harness.result("bad.png")
    assert result is not None and result["status"] == "FAILED" and result["error"]["code"] == code
    assert result["error"]["message"]  # Rekognition's own message
    (failed,) = details(harness.new_events(), "Custom Labels Failed")
    assert failed["error"] == result["error"]
    assert harness.dead_letters() == []


def test_object_deleted_before_processing_fails_as_invalid_s3_object(harness: Harness) -> None:
    upload = harness.upload_quietly("gone.png", SCRATCH)
    record = harness.record_for("gone.png", upload, with_version=False)
    harness.s3.delete_object(Bucket=harness.resources.bucket, Key="gone.png")
    harness.send(notification_body(record))
    harness.run()
    result = harness.result("gone.png")
    assert result is not None and result["error"]["code"] == "InvalidS3ObjectException"


@pytest.mark.parametrize(
    "code",
    [
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "InternalServerError",
        "LimitExceededException",
        "ResourceNotReadyException",
    ],
)
def test_transient_rekognition_errors_are_retried_until_labeled(harness: Harness, code: str) -> None:
    failing = fail_times(2, lambda: client_error(code, "try later", status=500 if "Internal" in code else 400))
    harness.model.fault = lambda request: _raise_or_none(failing, request)
    harness.upload("a.png", SCRATCH)
    harness.run()
    assert harness.rekognition_calls() == 3
    assert harness.poller.stats.item_failures == 2
    result = harness.result("a.png")
    assert result is not None and result["status"] == "LABELED"
    assert len(harness.new_events()) == 1 and harness.dead_letters() == []


def _raise_or_none(fault: Any, request: dict[str, Any]) -> Any:
    try:
        fault(request, lambda **_: None)
    except Exception as error:
        return error
    return None


@pytest.mark.parametrize("code", ["AccessDeniedException", "ResourceNotFoundException"])
def test_deployment_faults_end_in_the_dlq_with_nothing_stored(harness: Harness, code: str) -> None:
    harness.model.fault = lambda request: client_error(code, "not allowed")
    harness.upload("a.png", SCRATCH)
    harness.run()
    assert harness.rekognition_calls() == harness.facts.max_receive_count
    assert harness.result("a.png") is None and harness.new_events() == []
    (dead,) = harness.dead_letters()
    assert dead["Records"][0]["s3"]["object"]["key"] == "a.png"  # the message, kept for redrive


def test_bad_message_goes_to_the_dlq_and_the_rest_of_the_batch_proceeds(harness: Harness) -> None:
    harness.upload_quietly("a.png", SCRATCH)
    harness.send("this is not JSON")
    harness.send(json.dumps({"Records": [{"eventSource": "aws:sns"}]}))
    harness.upload("a.png", SCRATCH)
    harness.run()
    assert harness.result("a.png") is not None
    assert len(harness.new_events()) == 1
    assert sorted(str(d) for d in harness.dead_letters()) == sorted(
        [str({"raw": "this is not JSON"}), str({"Records": [{"eventSource": "aws:sns"}]})]
    )


def test_test_event_and_non_created_events_are_acknowledged(harness: Harness) -> None:
    harness.discard_notifications()
    harness.send(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": harness.resources.bucket}))
    harness.send(
        notification_body(s3_record("a.png", bucket=harness.resources.bucket, event_name="ObjectRemoved:Delete"))
    )
    harness.run()
    assert harness.poller.stats.deleted == 2 and harness.poller.stats.item_failures == 0
    assert harness.rekognition_calls() == 0 and harness.new_events() == []


def test_same_notification_twice_means_one_call_and_one_event(harness: Harness) -> None:
    upload = harness.upload_quietly("a.png", SCRATCH)
    body = notification_body(harness.record_for("a.png", upload, sequencer="00A1"))
    harness.send(body)
    harness.send(body)  # same batch
    harness.run()
    harness.send(body)  # a later batch
    harness.run()
    assert harness.rekognition_calls() == 1
    assert len(harness.new_events()) == 1
    assert harness.poller.stats.item_failures == 0


def test_older_event_after_newer_never_overwrites(harness: Harness) -> None:
    first = harness.upload_quietly("a.png", SCRATCH)
    second = harness.upload_quietly("a.png", DENT)
    harness.send(notification_body(harness.record_for("a.png", second, sequencer="00B2")))
    harness.run()
    harness.send(notification_body(harness.record_for("a.png", first, sequencer="00B1")))
    harness.run()
    result = harness.result("a.png")
    assert result is not None and result["labelNames"] == ["dent"] and result["versionId"] == second["VersionId"]
    assert harness.rekognition_calls() == 1  # the stale one was not even labeled
    assert [e["detail"]["versionId"] for e in harness.new_events()] == [second["VersionId"]]


@pytest.mark.parametrize(
    ("older", "newer"),
    [("0055AED6DCD90281E5", "0055AED6DCD9029"), ("0055AED6DCD9029", "0055AED6DCD90291")],
)
def test_sequencers_of_different_lengths_order_versions_as_s3_says(harness: Harness, older: str, newer: str) -> None:
    first = harness.upload_quietly("a.png", SCRATCH)
    second = harness.upload_quietly("a.png", DENT)
    # Newer first, then the older one: the older must not overwrite.
    harness.send(notification_body(harness.record_for("a.png", second, sequencer=newer)))
    harness.run()
    harness.send(notification_body(harness.record_for("a.png", first, sequencer=older)))
    harness.run()
    result = harness.result("a.png")
    assert result is not None and result["versionId"] == second["VersionId"] and result["labelNames"] == ["dent"]
    # Older first, then the newer one: the newer must be labeled and stored.
    third = harness.upload_quietly("b.png", SCRATCH)
    fourth = harness.upload_quietly("b.png", DENT)
    harness.send(notification_body(harness.record_for("b.png", third, sequencer=older)))
    harness.run()
    harness.send(notification_body(harness.record_for("b.png", fourth, sequencer=newer)))
    harness.run()
    result = harness.result("b.png")
    assert result is not None and result["versionId"] == fourth["VersionId"] and result["labelNames"] == ["dent"]
    versions = [e["detail"]["versionId"] for e in harness.new_events()]
    assert versions == [second["VersionId"], third["VersionId"], fourth["VersionId"]]


def test_two_versions_in_one_batch_label_only_the_newest(harness: Harness) -> None:
    first = harness.upload_quietly("a.png", SCRATCH)
    second = harness.upload_quietly("a.png", DENT)
    harness.send(notification_body(harness.record_for("a.png", second, sequencer="00C2")))
    harness.send(notification_body(harness.record_for("a.png", first, sequencer="00C1")))
    harness.run()
    assert harness.rekognition_calls() == 1
    result = harness.result("a.png")
    assert result is not None and result["labelNames"] == ["dent"]


def test_overwritten_object_is_no_longer_found_by_its_old_labels(harness: Harness) -> None:
    harness.upload("a.png", SCRATCH)
    harness.run()
    harness.upload("a.png", DENT)  # moto: no sequencer, new ETag
    harness.run()
    assert harness.by_label("scratch") == []
    assert [f["key"] for f in harness.by_label("dent")] == ["a.png"]


@pytest.mark.parametrize("failures", [1, 2, 3])
def test_dynamodb_write_error_is_retried(harness: Harness, failures: int) -> None:
    # The first record's result write is refused (after botocore's own retries, in AWS): nothing of
    # it was stored, so it goes back to SQS, and is labeled again. The other record is not held up.
    sqs_retries = failures
    harness.dynamodb.faults["put_item"] = fail_times(
        failures, lambda: client_error("ProvisionedThroughputExceededException", operation="PutItem")
    )
    harness.upload("a.png", SCRATCH)
    harness.upload("b.png", DENT)
    harness.run()
    assert harness.poller.stats.item_failures == sqs_retries
    assert harness.rekognition_calls() == 2 + sqs_retries  # a record not stored is labeled again
    assert harness.result("a.png") is not None and harness.result("b.png") is not None
    assert len(harness.new_events()) == 2


def test_dynamodb_read_error_retries_the_batch(harness: Harness) -> None:
    harness.dynamodb.faults["batch_get_item"] = fail_times(
        1, lambda: client_error("InternalServerError", status=500, operation="BatchGetItem")
    )
    harness.upload("a.png", SCRATCH)
    harness.upload("b.png", DENT)
    harness.run()
    assert harness.rekognition_calls() == 2  # nothing labeled before the state was known
    assert len(harness.new_events()) == 2


def test_putevents_partial_failure_retries_only_that_record_without_relabeling(harness: Harness) -> None:
    refused: set[str] = set()

    def refuse_b_once(entry: dict[str, Any]) -> bool:
        if '"key":"b.png"' in entry["Detail"] and "b" not in refused:
            refused.add("b")
            return True
        return False

    harness.events.faults["put_events"] = put_events_rejecting(refuse_b_once)
    for key, body in [("a.png", SCRATCH), ("b.png", DENT), ("c.png", SCRATCH)]:
        harness.upload(key, body)
    harness.run()
    assert harness.poller.stats.item_failures == 1
    assert harness.rekognition_calls() == 3  # b's stored result was published, not relabeled
    assert sorted(e["detail"]["key"] for e in harness.new_events()) == ["a.png", "b.png", "c.png"]


def test_putevents_call_failure_is_retried(harness: Harness) -> None:
    harness.events.faults["put_events"] = fail_times(
        1, lambda: client_error("InternalException", status=500, operation="PutEvents")
    )
    harness.upload("a.png", SCRATCH)
    harness.run()
    assert harness.rekognition_calls() == 1
    assert len(harness.new_events()) == 1


def test_failure_to_mark_published_does_not_republish(harness: Harness) -> None:
    def fail_marks(kwargs: dict[str, Any], call: Any) -> Any:
        if is_mark(kwargs):
            raise client_error("InternalServerError", status=500, operation="BatchWriteItem")
        return call(**kwargs)

    harness.dynamodb.faults["batch_write_item"] = fail_marks
    harness.upload("a.png", SCRATCH)
    harness.run()
    assert harness.poller.stats.item_failures == 0
    assert len(harness.new_events()) == 1


def test_rekognition_calls_of_a_batch_run_concurrently(harness: Harness, lambda_context: Any) -> None:
    # Each call waits until three calls are in flight at once; sequential calls
    # would break the barrier (timeout) and fail every record.
    barrier = threading.Barrier(3, timeout=10)

    def wait_for_the_others(request: dict[str, Any]) -> None:
        barrier.wait()

    harness.model.fault = wait_for_the_others
    for n in range(3):
        harness.upload(f"{n}.png", SCRATCH)
    harness.discard_notifications()
    bodies = [
        notification_body(s3_record(f"{n}.png", bucket=harness.resources.bucket, size=len(SCRATCH))) for n in range(3)
    ]
    response = handler.handler(sqs_event(*bodies), lambda_context)
    assert response == {"batchItemFailures": []}
    assert harness.rekognition_calls() == 3


def test_a_batch_of_ten_costs_few_dynamodb_and_eventbridge_calls(harness: Harness, lambda_context: Any) -> None:
    for n in range(10):
        harness.upload(f"{n}.png", SCRATCH)
    harness.discard_notifications()
    bodies = [
        notification_body(s3_record(f"{n}.png", bucket=harness.resources.bucket, size=len(SCRATCH))) for n in range(10)
    ]
    assert handler.handler(sqs_event(*bodies), lambda_context) == {"batchItemFailures": []}
    assert harness.events.calls == {"put_events": 1}
    # 1 BatchGetItem; one conditional PutItem per result (no transaction: it would bill twice);
    # 1 BatchWriteItem for the ten results' label-index entries and 1 for their publication items.
    assert harness.dynamodb.calls == {"batch_get_item": 1, "put_item": 10, "batch_write_item": 2}


def test_missing_configuration_fails_the_cold_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    handler.use_pipeline(None)
    monkeypatch.setenv("PROJECT_VERSION_ARN", ARN)
    monkeypatch.setenv("EVENT_BUS_NAME", "bus")
    monkeypatch.delenv("RESULTS_TABLE_NAME", raising=False)
    with pytest.raises(ConfigError, match="RESULTS_TABLE_NAME"):
        handler.handler(sqs_event(notification_body(s3_record("a.png"))), lambda_context)
