"""Rekognition adapter: the request it sends and how it classifies failures (botocore Stubber)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber

from labeler.adapters.rekognition_detector import (
    MAX_IMAGE_BYTES,
    CustomLabelsDetector,
    PermanentImageError,
    RetryableDetectionError,
)
from labeler.config import LabelerConfig
from labeler.domain.s3_notification import S3ObjectEvent

ARN = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/p.1/1700000000000"
LABEL = {
    "Name": "scratch",
    "Confidence": 97.5,
    "Geometry": {
        "BoundingBox": {"Width": 0.1, "Height": 0.2, "Left": 0.3, "Top": 0.4},
        "Polygon": [{"X": 0.3, "Y": 0.4}, {"X": 0.4, "Y": 0.4}, {"X": 0.4, "Y": 0.6}],
    },
}


def obj(size: int = 1000, version_id: str | None = None) -> S3ObjectEvent:
    return S3ObjectEvent("ObjectCreated:Put", "bucket", "a b.png", size, "etag", version_id, None)


@pytest.fixture
def stubbed() -> Iterator[tuple[object, Stubber]]:
    client = boto3.client("rekognition", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def config(**overrides: object) -> LabelerConfig:
    return LabelerConfig(**{"project_version_arn": ARN, "results_table_name": "t", "event_bus_name": "b", **overrides})  # type: ignore[arg-type]


def test_sends_version_and_omits_unset_parameters(stubbed: tuple[object, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "detect_custom_labels",
        {"CustomLabels": [LABEL]},
        {"ProjectVersionArn": ARN, "Image": {"S3Object": {"Bucket": "bucket", "Name": "a b.png", "Version": "v7"}}},
    )
    detection = CustomLabelsDetector(client, config()).detect(obj(version_id="v7"))
    assert detection.custom_labels == [LABEL]
    assert detection.latency_ms >= 0


def test_min_confidence_zero_is_sent_as_zero_and_max_results_is_sent(stubbed: tuple[object, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "detect_custom_labels",
        {"CustomLabels": []},
        {
            "ProjectVersionArn": ARN,
            "Image": {"S3Object": {"Bucket": "bucket", "Name": "a b.png"}},
            "MinConfidence": 0.0,
            "MaxResults": 5,
        },
    )
    assert CustomLabelsDetector(client, config(min_confidence=0.0, max_results=5)).detect(obj()).custom_labels == []


@pytest.mark.parametrize(
    "code",
    ["InvalidImageFormatException", "ImageTooLargeException", "InvalidParameterException", "InvalidS3ObjectException"],
)
def test_image_errors_are_permanent_with_rekognitions_message(stubbed: tuple[object, Stubber], code: str) -> None:
    client, stubber = stubbed
    stubber.add_client_error("detect_custom_labels", service_error_code=code, service_message=f"{code} said so")
    with pytest.raises(PermanentImageError) as caught:
        CustomLabelsDetector(client, config()).detect(obj())
    assert (caught.value.code, caught.value.message) == (code, f"{code} said so")


@pytest.mark.parametrize(
    ("code", "status", "throttle"),
    [
        ("ThrottlingException", 400, True),
        ("ProvisionedThroughputExceededException", 400, True),
        ("LimitExceededException", 400, True),
        ("InternalServerError", 500, False),
        ("ServiceUnavailable", 503, False),
        ("ResourceNotReadyException", 400, False),
        ("AccessDeniedException", 400, False),
        ("ResourceNotFoundException", 400, False),
    ],
)
def test_service_and_deployment_errors_are_retryable(
    stubbed: tuple[object, Stubber], code: str, status: int, throttle: bool
) -> None:
    client, stubber = stubbed
    stubber.add_client_error("detect_custom_labels", service_error_code=code, http_status_code=status)
    with pytest.raises(RetryableDetectionError) as caught:
        CustomLabelsDetector(client, config()).detect(obj())
    assert caught.value.code == code
    assert caught.value.is_throttle is throttle


@pytest.mark.parametrize(
    ("size", "code"), [(0, "InvalidImageFormatException"), (MAX_IMAGE_BYTES + 1, "ImageTooLargeException")]
)
def test_prechecks_fail_without_calling_rekognition(stubbed: tuple[object, Stubber], size: int, code: str) -> None:
    client, _stubber = stubbed  # no response queued: any call would fail the test
    with pytest.raises(PermanentImageError) as caught:
        CustomLabelsDetector(client, config()).detect(obj(size=size))
    assert caught.value.code == code


def test_exactly_15_mib_is_still_sent(stubbed: tuple[object, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("detect_custom_labels", {"CustomLabels": []})
    assert CustomLabelsDetector(client, config()).detect(obj(size=MAX_IMAGE_BYTES)).custom_labels == []
