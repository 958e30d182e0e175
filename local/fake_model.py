"""An emulated Rekognition Custom Labels model (DetectCustomLabels only).

It validates images the way the service does (S3 object readable, PNG or
JPEG, 64-4096 px, at most 15 MB) and "detects" pure-colour regions: each
colour in ``PALETTE`` is a label whose bounding box is where that colour is.
It is deterministic, so tests and the local run can predict its answers.
It is NOT a model: the local run says so.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from PIL import Image, UnidentifiedImageError

from local.faults import client_error

OPERATION = "DetectCustomLabels"
MAX_IMAGE_BYTES = 15 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 64, 4096
DEFAULT_MODEL_THRESHOLD = 50.0  # the "model's own threshold" when MinConfidence is omitted
PALETTE: dict[str, tuple[int, int, int]] = {
    "scratch": (220, 30, 30),
    "dent": (30, 30, 220),
    "logo": (30, 180, 60),
}
_TOLERANCE = 40

Fault = Callable[[dict[str, Any]], ClientError | None]


class FakeCustomLabelsModel:
    """Duck-types the boto3 Rekognition client's ``detect_custom_labels``."""

    def __init__(self, s3_client: Any, *, latency_seconds: float = 0.0, fault: Fault | None = None) -> None:
        self._s3 = s3_client
        self._latency = latency_seconds
        self.fault = fault
        self._lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []

    def detect_custom_labels(self, **request: Any) -> dict[str, Any]:
        with self._lock:
            self.calls.append(request)
        if self._latency:
            time.sleep(self._latency)
        if self.fault is not None and (error := self.fault(request)) is not None:
            raise error
        s3_object = request["Image"]["S3Object"]
        image = self._open(s3_object)
        labels = detect_regions(image)
        threshold = request.get("MinConfidence", DEFAULT_MODEL_THRESHOLD)
        labels = [label for label in labels if label["Confidence"] >= threshold]
        if "MaxResults" in request:
            labels = labels[: request["MaxResults"]]
        return {"CustomLabels": labels}

    def _open(self, s3_object: dict[str, str]) -> Image.Image:
        get: dict[str, str] = {"Bucket": s3_object["Bucket"], "Key": s3_object["Name"]}
        if "Version" in s3_object:
            get["VersionId"] = s3_object["Version"]
        try:
            body = self._s3.get_object(**get)["Body"].read()
        except ClientError:
            raise client_error(
                "InvalidS3ObjectException",
                operation=OPERATION,
                message="Unable to get object metadata from S3. Check object key, region and/or access permissions.",
            ) from None
        if len(body) > MAX_IMAGE_BYTES:
            raise client_error("ImageTooLargeException", operation=OPERATION, message="Image size is too large.")
        try:
            image = Image.open(io.BytesIO(body))
            image.load()
        except (UnidentifiedImageError, OSError):
            raise client_error(
                "InvalidImageFormatException", operation=OPERATION, message="Request has unsupported image format"
            ) from None
        if image.format not in ("PNG", "JPEG"):
            raise client_error(
                "InvalidImageFormatException", operation=OPERATION, message="Request has unsupported image format"
            )
        width, height = image.size
        if min(width, height) < MIN_SIDE or max(width, height) > MAX_SIDE:
            raise client_error(
                "InvalidParameterException",
                operation=OPERATION,
                message="Requested image should have minimum dimensions of 64x64 and maximum of 4096x4096",
            )
        return image


def detect_regions(image: Image.Image) -> list[dict[str, Any]]:
    """One label per palette colour present, with its bounding box; most confident first."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    step = max(1, max(width, height) // 256)  # sample: fast on large images
    boxes: dict[str, list[int]] = {}
    counts: dict[str, int] = {}
    pixels = rgb.load()
    assert pixels is not None
    for y in range(0, height, step):
        for x in range(0, width, step):
            r, g, b = pixels[x, y]  # type: ignore[misc]
            for name, (pr, pg, pb) in PALETTE.items():
                if abs(r - pr) <= _TOLERANCE and abs(g - pg) <= _TOLERANCE and abs(b - pb) <= _TOLERANCE:
                    box = boxes.setdefault(name, [x, y, x, y])
                    box[0], box[1] = min(box[0], x), min(box[1], y)
                    box[2], box[3] = max(box[2], x + step), max(box[3], y + step)
                    counts[name] = counts.get(name, 0) + 1
    labels = []
    for name, (left, top, right, bottom) in boxes.items():
        area = max(1, (right - left) * (bottom - top) // (step * step))
        fill = min(1.0, counts[name] / area)  # how much of its box the colour fills
        confidence = round(50.0 + 49.9 * fill, 3)
        labels.append(
            {
                "Name": name,
                "Confidence": confidence,
                "Geometry": {
                    "BoundingBox": {
                        "Width": round((min(right, width) - left) / width, 5),
                        "Height": round((min(bottom, height) - top) / height, 5),
                        "Left": round(left / width, 5),
                        "Top": round(top / height, 5),
                    }
                },
            }
        )
    return sorted(labels, key=lambda label: -label["Confidence"])
