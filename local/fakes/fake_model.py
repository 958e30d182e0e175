"""An emulated Rekognition Custom Labels model (DetectCustomLabels only).

It validates images the way the service does (S3 object readable, PNG or
JPEG, 64-4096 px, at most 15 MB) and "detects" pure-colour regions: each
colour in ``PALETTE`` is a label whose bounding box is where that colour is.
It is deterministic, so tests and the local run can predict its answers.
It is NOT a model: the local run says so.

For load and soak runs it can also answer with many labels: ``extra_labels``
tells, per request, how many distinct synthetic labels (``part-NNN``, some
with polygons) to add, deterministically for a given object version.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from PIL import Image, UnidentifiedImageError

from labeler.ports import CustomLabelsClient
from local.fakes.faults import client_error

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

# Before the model runs: an error to raise instead of answering (a ClientError is
# answered as the service's error response; a botocore connection error is a
# transport failure). After it ran (``lost_response``): an error to raise
# instead of returning the answer, i.e. the call happened and its response was lost.
Fault = Callable[[dict[str, Any]], Exception | None]
ExtraLabels = Callable[[dict[str, Any]], int]


class FakeCustomLabelsModel(CustomLabelsClient):
    """Duck-types the boto3 Rekognition client's ``detect_custom_labels``."""

    def __init__(
        self,
        s3_client: Any,
        *,
        latency_seconds: float = 0.0,
        fault: Fault | None = None,
        lost_response: Fault | None = None,
        extra_labels: ExtraLabels | None = None,
    ) -> None:
        self._s3 = s3_client
        self._latency = latency_seconds
        self.fault = fault
        self.lost_response = lost_response
        self.extra_labels = extra_labels
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
        if self.extra_labels is not None and (count := self.extra_labels(request)) > 0:
            labels = sorted([*labels, *synthetic_labels(s3_object, count)], key=lambda label: -label["Confidence"])
        threshold = request.get("MinConfidence", DEFAULT_MODEL_THRESHOLD)
        labels = [label for label in labels if label["Confidence"] >= threshold]
        if "MaxResults" in request:
            labels = labels[: request["MaxResults"]]
        if self.lost_response is not None and (error := self.lost_response(request)) is not None:
            raise error
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


def synthetic_labels(s3_object: dict[str, str], count: int) -> list[dict[str, Any]]:
    """``count`` distinct labels, the same for the same object version; every third with a polygon.

    Names are drawn from ``part-000`` ... ``part-399`` starting at an offset
    that depends on the version, so two versions of a key share some labels
    and not others (what the label index must follow when a key is overwritten).
    """
    seed = hashlib.sha256(f"{s3_object['Name']}\0{s3_object.get('Version', '')}".encode()).digest()
    offset = int.from_bytes(seed[:4], "big")
    labels = []
    for index in range(min(count, 400)):
        name = f"part-{(offset + index) % 400:03d}"
        left, top = (seed[index % 32] % 80) / 100, (seed[(index + 7) % 32] % 80) / 100
        geometry: dict[str, Any] = {"BoundingBox": {"Width": 0.1, "Height": 0.1, "Left": left, "Top": top}}
        if index % 3 == 0:
            geometry["Polygon"] = [
                {"X": left, "Y": top},
                {"X": round(left + 0.1, 5), "Y": top},
                {"X": round(left + 0.05, 5), "Y": round(top + 0.1, 5)},
            ]
        confidence = round(50.0 + 49.0 * ((seed[(index + 3) % 32] * 257 + index) % 1000) / 1000, 3)
        labels.append({"Name": name, "Confidence": confidence, "Geometry": geometry})
    return labels
