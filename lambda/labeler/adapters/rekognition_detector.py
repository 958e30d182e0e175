"""Rekognition adapter: DetectCustomLabels, its errors sorted into the failure classes of docs/behaviour.md#failures."""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labeler.config import LabelerConfig
from labeler.domain.s3_notification import S3ObjectEvent
from labeler.ports import CustomLabelsClient, Detection, PermanentImageError, RetryableDetectionError

# Rekognition cannot label these images: a FAILED result, never retried.
PERMANENT_ERROR_CODES = frozenset(
    {
        "InvalidImageFormatException",
        "ImageTooLargeException",
        "InvalidParameterException",
        "InvalidS3ObjectException",
    }
)
THROTTLING_ERROR_CODES = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "LimitExceededException"}
)
# The deployment is wrong (permissions, model ARN): retried, ends in the DLQ, alarms.
DEPLOYMENT_ERROR_CODES = frozenset({"AccessDeniedException", "ResourceNotFoundException"})
# Custom Labels guide: S3 objects up to 15 MB are accepted.
MAX_IMAGE_BYTES = 15 * 1024 * 1024


def precheck(obj: S3ObjectEvent) -> None:
    """Refuse what Rekognition would refuse, without paying for a call."""
    if obj.size == 0:
        raise PermanentImageError("InvalidImageFormatException", "The object is empty (0 bytes).")
    if obj.size > MAX_IMAGE_BYTES:
        raise PermanentImageError(
            "ImageTooLargeException",
            f"The object is {obj.size} bytes; Custom Labels accepts up to {MAX_IMAGE_BYTES} bytes.",
        )


class CustomLabelsDetector:
    def __init__(self, client: CustomLabelsClient, config: LabelerConfig) -> None:
        self._client = client
        self._config = config

    def request_for(self, obj: S3ObjectEvent, project_version_arn: str | None = None) -> dict[str, Any]:
        """The DetectCustomLabels request; ``project_version_arn`` defaults to the configured one model."""
        s3_object: dict[str, str] = {"Bucket": obj.bucket, "Name": obj.key}
        if obj.version_id:
            s3_object["Version"] = obj.version_id  # label exactly the uploaded bytes
        request: dict[str, Any] = {
            "ProjectVersionArn": project_version_arn or self._config.project_version_arn,
            "Image": {"S3Object": s3_object},
        }
        if self._config.min_confidence is not None:
            request["MinConfidence"] = self._config.min_confidence
        if self._config.max_results is not None:
            request["MaxResults"] = self._config.max_results
        return request

    def detect(self, obj: S3ObjectEvent, project_version_arn: str | None = None) -> Detection:
        precheck(obj)
        started = time.perf_counter()
        try:
            response = self._client.detect_custom_labels(**self.request_for(obj, project_version_arn))
        except ClientError as error:
            details = error.response.get("Error", {})
            code = str(details.get("Code") or "Unknown")
            message = str(details.get("Message") or error)
            if code in PERMANENT_ERROR_CODES:
                raise PermanentImageError(code, message) from error
            raise RetryableDetectionError(
                code,
                message,
                throttle=code in THROTTLING_ERROR_CODES,
                deployment_fault=code in DEPLOYMENT_ERROR_CODES,
            ) from error
        except BotoCoreError as error:  # connection reset, read timeout...
            raise RetryableDetectionError(type(error).__name__, str(error)) from error
        latency_ms = (time.perf_counter() - started) * 1000
        return Detection(custom_labels=list(response.get("CustomLabels", [])), latency_ms=latency_ms)
